// posix/process.cpp - child processes on POSIX: fork, posix_spawn, waitpid, kill.
//
// POSIX makes a process in two independent steps: fork() duplicates the caller (memory, fd
// table, the one calling thread) and execve() replaces the duplicate's program. mp's "fork"
// start method stops after the first step and runs the target in the copy; "spawn" does both
// at once with posix_spawn(), which glibc implements with clone(CLONE_VM|CLONE_VFORK) so that
// the page tables are never copied. A parent learns of a child's end through waitpid(), which
// also frees its zombie entry; until then the pid stays reserved, so signalling an unreaped
// child can never hit a stranger. For a wait with a timeout mp opens a pidfd, which poll()
// reports readable when the child exits.
// mp::subprocess runs other programs through the same posix_spawn: posix_spawnp for a name to
// look up in PATH, a chdir file action for cwd, POSIX_SPAWN_SETSID for a new session. glibc
// runs the child's half under vfork and returns the exec's errno (ENOENT, EACCES) from
// posix_spawn itself, so a failed exec is an error in the parent, with no zombie to reap.
// Windows has no fork: CreateProcessW always starts a fresh program, returns a process HANDLE
// (a reference that keeps the exit code alive, the counterpart of the zombie), and there are
// no signals: TerminateProcess sets an exit code of the caller's choosing. There, a program
// found in PATH, a working directory and a new process group are all arguments of
// CreateProcessW (after SearchPathW for the name).
// The rest of the fork/spawn lesson is portable and lives in common/: process.cpp's
// start_fork (the registry lock held across fork_process, and become_forked_child: what the
// copy does once fork returns 0, without allocating) and start_spawn (the payload a new run of
// the program receives), and bootstrap.cpp (that new run's side: mp::bootstrap reads the
// payload and becomes the child).
#include "../common/sys/process.hpp"
#include "../common/sys/error.hpp"

#include <cerrno>
#include <climits>
#include <algorithm>
#include <thread>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

namespace mp::sys {


int fork_process(std::error_code& ec) noexcept {
    pid_t pid = ::fork();
    if (pid < 0) ec = last_error();
    return pid;
}

namespace {

// posix_spawn's file actions run in order in the child. The fds to pass must land on 3, 4, ...;
// a source that already sits in that range could be overwritten by an earlier dup2, so every
// source below the range's end is first copied above it (close-on-exec, closed again after the
// spawn). dup2 onto a different number clears close-on-exec on the copy, which is what makes
// exactly those fds survive execve.
struct FileActions {
    posix_spawn_file_actions_t fa;
    std::vector<Handle> temporaries;
    int err = 0;
    FileActions() { err = posix_spawn_file_actions_init(&fa); }
    ~FileActions() { posix_spawn_file_actions_destroy(&fa); }

    int above(int fd, int floor) {
        if (fd >= floor) return fd;
        int d = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
        if (d < 0) return -1;
        temporaries.emplace_back(d);
        return d;
    }
};

struct SpawnAttr {
    posix_spawnattr_t attr;
    int err = 0;
    SpawnAttr() { err = posix_spawnattr_init(&attr); }
    ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
};

}  // namespace

// Our environment (or none, for replace) with `extra` applied, as the NULL-terminated array
// posix_spawn wants; `added` keeps the "name=value" strings of `extra` alive.
static std::vector<char*> environment_block(const std::vector<std::pair<std::string, std::string>>& extra, bool replace,
                                            std::vector<std::string>& added) {
    std::vector<char*> envp;
    for (char** p = replace ? nullptr : environ; p && *p; ++p) {
        bool replaced = false;
        for (const auto& kv : extra) {
            const std::size_t k = kv.first.size();
            if (std::strncmp(*p, kv.first.c_str(), k) == 0 && (*p)[k] == '=') replaced = true;
        }
        if (!replaced) envp.push_back(*p);
    }
    added.reserve(extra.size());
    for (const auto& kv : extra) {
        added.push_back(kv.first + "=" + kv.second);
        envp.push_back(const_cast<char*>(added.back().c_str()));
    }
    envp.push_back(nullptr);
    return envp;
}

std::error_code spawn_process(const SpawnRequest& req, Child& out) noexcept try {
    const int n = static_cast<int>(req.inherit.size());
    const int first_free = 3 + n;

    FileActions fa;
    if (fa.err) return os_error(fa.err);
    const native_handle stdio[3] = {req.stdin_handle, req.stdout_handle, req.stderr_handle};
    int stdio_src[3];
    for (int i = 0; i < 3; ++i) {
        stdio_src[i] = stdio[i] == invalid_handle() ? -1 : fa.above(stdio[i], first_free);
        if (stdio[i] != invalid_handle() && stdio_src[i] < 0) return last_error();
    }
    std::vector<int> src(req.inherit.size());
    for (int i = 0; i < n; ++i) {
        src[static_cast<std::size_t>(i)] = fa.above(req.inherit[static_cast<std::size_t>(i)], first_free);
        if (src[static_cast<std::size_t>(i)] < 0) return last_error();
    }
    int e = 0;
    for (int i = 0; i < 3 && !e; ++i)
        if (stdio_src[i] >= 0 && !(i == 2 && req.stderr_to_stdout))
            e = posix_spawn_file_actions_adddup2(&fa.fa, stdio_src[i], i);
    if (!e && req.stderr_to_stdout) e = posix_spawn_file_actions_adddup2(&fa.fa, 1, 2);
    for (int i = 0; i < n && !e; ++i)
        e = posix_spawn_file_actions_adddup2(&fa.fa, src[static_cast<std::size_t>(i)], 3 + i);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    // Everything above the passed fds goes, even fds a careless caller opened without
    // O_CLOEXEC. glibc does this with close_range(), one system call, instead of the
    // close-every-fd-up-to-RLIMIT_NOFILE loop that makes other libraries' spawns slow.
    if (!e) e = posix_spawn_file_actions_addclosefrom_np(&fa.fa, first_free);
#endif
    // Last, so that a relative program path is found from the new directory (as Python does).
    if (!e && !req.cwd.empty()) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
        e = posix_spawn_file_actions_addchdir_np(&fa.fa, req.cwd.c_str());
#else
        e = ENOSYS;
#endif
    }
    if (e) return os_error(e);

    SpawnAttr sa;
    if (sa.err) return os_error(sa.err);
    // The child starts with no signals blocked, and with SIGPIPE and SIGXFSZ back at their
    // default action even if this process ignores them (as CPython's subprocess does).
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    e = posix_spawnattr_setsigmask(&sa.attr, &none);
    if (!e) e = posix_spawnattr_setsigdefault(&sa.attr, &defaults);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (req.new_session) flags |= POSIX_SPAWN_SETSID;
    if (!e) e = posix_spawnattr_setflags(&sa.attr, flags);
    if (e) return os_error(e);

    std::vector<char*> argv;
    argv.reserve(req.args.size() + 1);
    for (const auto& a : req.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    std::vector<std::string> added;
    std::vector<char*> envp = environment_block(req.env, req.replace_env, added);

    // posix_spawnp looks a name without '/' up in PATH, as execvp does, and treats a name with
    // one exactly as posix_spawn would.
    pid_t pid = 0;
    e = (req.search_path ? ::posix_spawnp : ::posix_spawn)(&pid, req.program.c_str(), &fa.fa, &sa.attr,
                                                           argv.data(), envp.data());
    if (e) return os_error(e);
    out.pid = pid;
    out.process.reset();
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code check_directory(const std::string& path) noexcept {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return last_error();
    if (!S_ISDIR(st.st_mode)) return std::make_error_code(std::errc::not_a_directory);
    return {};
}

// A wait status as Python reports it: the exit code, or -signum for a death by signal.
static int exit_code_of(int status) noexcept {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return 255;
}

// ---- a forkserver's child (sys/forkserver.hpp) -----------------------------------------------
// It is the server's child, so waitpid cannot see it. Its connection to the server (c.status)
// carries its raw wait status, 4 bytes written at once when the server has reaped it; end of
// file there means the server and the child (which holds a copy of the server's end) are both
// gone, and the pidfd (c.process) tells whether the child has really ended.

// A wait status as Python reports it, from waitid's siginfo.
static int exit_code_of(const siginfo_t& si) noexcept {
    if (si.si_code == CLD_EXITED) return si.si_status;
    if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) return -si.si_status;
    return 255;
}

#if !defined(P_PIDFD)
#define P_PIDFD static_cast<idtype_t>(3)  // Linux 5.4; glibc < 2.36 lacks the name
#endif

// Looks, never waits. orphaned: the server is gone and the child runs on (it exec'd, or is
// half way through its exit).
static std::error_code look_forkserver_child(Child& c, bool& exited, int& exitcode, bool& orphaned) noexcept {
    exited = orphaned = false;
    // The status is only peeked at, never consumed: it stays in the socket, so that a
    // sentinel (a duplicate of this connection) stays readable after the join, also in the
    // instant between the server's send and its close.
    int status = 0;
    ssize_t r;
    do {
        r = ::recv(c.status.get(), &status, sizeof status, MSG_DONTWAIT | MSG_PEEK);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
        return last_error();
    }
    if (r > 0 && r < static_cast<ssize_t>(sizeof status)) {
        // Never seen (4 bytes go in one piece), but the rest is on its way: wait for it.
        ssize_t more;
        do {
            more = ::recv(c.status.get(), &status, sizeof status, MSG_WAITALL | MSG_PEEK);
        } while (more < 0 && errno == EINTR);
        if (more < 0) return last_error();
        r = more;
    }
    if (r == static_cast<ssize_t>(sizeof status)) {
        exitcode = exit_code_of(status);
    } else {
        // End of file without a status: the server died before it could collect one.
        if (c.process) {
            pollfd p{c.process.get(), POLLIN, 0};
            if (::poll(&p, 1, 0) == 0) {
                orphaned = true;
                return {};
            }
        }
        // Its status was the server's to collect. If the child became ours (we are the child
        // subreaper it was re-parented to), we collect it; otherwise nobody can know it: 255,
        // as CPython reports then.
        siginfo_t si{};
        exitcode = c.process && ::waitid(P_PIDFD, static_cast<id_t>(c.process.get()), &si, WEXITED | WNOHANG) == 0 &&
                           si.si_pid != 0
                       ? exit_code_of(si)
                       : 255;
    }
    exited = true;
    c.status.reset();
    c.process.reset();
    return {};
}

static std::error_code wait_forkserver_child(Child& c, const Deadline& deadline, bool& exited, int& exitcode) noexcept {
    for (;;) {
        bool orphaned = false;
        if (auto ec = look_forkserver_child(c, exited, exitcode, orphaned); ec || exited) return ec;
        if (deadline.passed()) {
            // Its connection (the sentinel) is at end of file while it runs on: a join that
            // waits there would spin. So a look in that state (rare: the server was killed and
            // the child exec'd) pauses a millisecond on the pidfd.
            if (orphaned) {
                pollfd p{c.process.get(), POLLIN, 0};
                int ready = 0;
                poll_until(&p, 1, Deadline::after(std::chrono::milliseconds(1)), ready);
            }
            return {};
        }
        pollfd p{orphaned ? c.process.get() : c.status.get(), POLLIN, 0};
        int ready = 0;
        if (auto ec = poll_until(&p, 1, deadline, ready)) return ec;
    }
}

// ---- our own child -------------------------------------------------------------------------

static std::error_code reap(Child& c, bool hang, bool& exited, int& exitcode) noexcept {
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(c.pid, &status, hang ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return last_error();
    if (r == 0) {
        exited = false;
        return {};
    }
    exited = true;
    exitcode = exit_code_of(status);
    c.process.reset();
    return {};
}

// A pidfd turns "has this child exited?" into an fd that poll() understands (Linux 5.3+).
static int open_pidfd(int pid) noexcept {
#if defined(SYS_pidfd_open)
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

std::error_code wait_process(Child& c, const Deadline& deadline, bool& exited, int& exitcode) noexcept {
    // waitpid(0) and waitpid(-1) would reap somebody else's child.
    if (c.pid <= 0) return std::make_error_code(std::errc::invalid_argument);
    if (c.status) return wait_forkserver_child(c, deadline, exited, exitcode);
    if (deadline.is_never()) return reap(c, true, exited, exitcode);
    if (auto ec = reap(c, false, exited, exitcode); ec || exited || deadline.passed()) return ec;
    if (!c.process) {
        int fd = open_pidfd(c.pid);
        if (fd >= 0) c.process.reset(fd);
    }
    auto pause = std::chrono::microseconds(50);
    for (;;) {
        if (c.process) {
            pollfd p{c.process.get(), POLLIN, 0};
            int ready = 0;
            if (auto ec = poll_until(&p, 1, deadline, ready)) return ec;
        } else {
            // No pidfd (an old kernel): poll waitpid with a pause that grows to 5 ms.
            const auto nap = deadline.or_within(pause);
            std::this_thread::sleep_until(nap.time_point());
            pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::microseconds(5000));
        }
        if (auto ec = reap(c, false, exited, exitcode); ec || exited || deadline.passed()) return ec;
    }
}

std::error_code signal_process(Child& c, int signum) noexcept {
    if (c.status) {
        // A forkserver's child: once its server has reaped it, its pid may name a stranger, so
        // the signal goes through its pidfd, which names that one process for ever.
        if (c.process) {
            if (::syscall(SYS_pidfd_send_signal, c.process.get(), signum, nullptr, 0) != 0 && errno != ESRCH)
                return last_error();
            return {};
        }
        // No pidfd (a kernel before 5.3): the pid is still the child's while no status has come.
        pollfd p{c.status.get(), POLLIN, 0};
        if (::poll(&p, 1, 0) != 0) return {};
    }
    if (::kill(c.pid, signum) != 0 && errno != ESRCH) return last_error();
    return {};
}

std::error_code current_executable(std::string& out) noexcept try {
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf);
    if (n < 0) return last_error();
    if (static_cast<std::size_t>(n) >= sizeof buf) return std::make_error_code(std::errc::filename_too_long);
    out.assign(buf, static_cast<std::size_t>(n));
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code die_with_parent(int expected_parent_pid, bool started_by_main_thread) noexcept {
    if (started_by_main_thread) {
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return last_error();
        // The parent may have died before prctl ran: then we were already re-parented and no
        // signal will come, so check by hand.
        if (::getppid() != expected_parent_pid) return std::make_error_code(std::errc::no_such_process);
        return {};
    }
    // Opened before the re-check, so a parent that dies after it is still the one watched.
    const int fd = open_pidfd(expected_parent_pid);
    if (::getppid() != expected_parent_pid) {
        if (fd >= 0) ::close(fd);
        return std::make_error_code(std::errc::no_such_process);
    }
    try {
        std::thread([fd, expected_parent_pid] {
            if (fd >= 0) {
                pollfd p{fd, POLLIN, 0};
                while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
                }
            } else {  // no pidfd (a kernel before 5.3): look every 100 ms
                while (::getppid() == expected_parent_pid) ::usleep(100000);
            }
            ::kill(::getpid(), SIGKILL);
        }).detach();
    } catch (...) {
        if (fd >= 0) ::close(fd);
        return std::make_error_code(std::errc::resource_unavailable_try_again);
    }
    return {};
}

bool is_main_thread() noexcept { return ::syscall(SYS_gettid) == ::getpid(); }

std::error_code open_self_watch(Handle& out) noexcept { return open_watch(::getpid(), out); }

std::error_code open_watch(int pid, Handle& out) noexcept {
    int fd = open_pidfd(pid);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
}

std::error_code wait_watch(native_handle h, const Deadline& deadline, bool& ended) noexcept {
    pollfd p{h, POLLIN, 0};
    int ready = 0;
    if (auto ec = poll_until(&p, 1, deadline, ready)) return ec;
    ended = ready > 0;
    return {};
}

std::error_code open_sentinel(Child& c, bool reaped, Handle& out) noexcept {
    if (reaped) {
        PipeEnds p;
        if (auto ec = make_pipe(p)) return ec;
        out = std::move(p.read);
        return {};
    }
    // A forkserver's child: its connection becomes readable when it ends, and stays so.
    if (c.status) return duplicate_handle(c.status.get(), out);
    // Not reaped: the pid cannot have been reused (a zombie keeps it), so this is our child.
    int fd = open_pidfd(c.pid);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
}

bool pid_exists(int pid) noexcept {
    if (pid <= 0) return false;
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

const char* const* start_methods() noexcept {
    // fork stays the default: README.md, "Choosing a start method", gives the figures.
    static const char* const methods[] = {"fork", "spawn", "forkserver", nullptr};
    return methods;
}

}  // namespace mp::sys
