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
// The portable profile (MP_POSIX_PORTABLE: POSIX.1-2008 calls only) has no pidfd: a timed wait
// polls waitpid(WNOHANG) with a pause growing to 5 ms; a sentinel is a pipe whose write end a
// watcher thread holds until waitid(WNOWAIT) sees the child end (or the child is reaped), as
// CPython's sentinel is a pipe; the watch a spawned child gets on its parent is the read end of
// a pipe whose write end only the parent holds (end of file when it dies); a daemon's death
// with its parent is a thread that looks at getppid() every 100 ms instead of
// PR_SET_PDEATHSIG; and the program's own path is argv[0] resolved when the library loads,
// not /proc/self/exe.
// mp::subprocess runs other programs through the same posix_spawn: posix_spawnp for a name to
// look up in PATH, a chdir file action for cwd, POSIX_SPAWN_SETSID for a new session. glibc
// runs the child's half under vfork and returns the exec's errno (ENOENT, EACCES) from
// posix_spawn itself, so a failed exec is an error in the parent, with no zombie to reap.
// pass_fds, a new process group (POSIX_SPAWN_SETPGROUP; the child's pid then names the group,
// which killpg reaches as a whole: kill_tree) and the signal defaults are attributes and file
// actions of the same call. What posix_spawn cannot do (a umask, a user, a group) takes a
// fork+exec path, as CPython's does, that reports its child's failure through a pipe.
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
#include "../common/sys/handle.hpp"

#include <cerrno>
#include <climits>
#include <algorithm>
#include <thread>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#if defined(MP_POSIX_PORTABLE)
#include <cstdlib>
#include <mutex>
#include <pthread.h>
#include <vector>
#else
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif
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

// What the child does to its fd table before the exec, worked out in the parent: the same
// plan serves posix_spawn's file actions and the fork path below. The fds to pass must land
// on 3, 4, ... (inherit) or on their own numbers (pass_fds); a source that already sits below
// the top of those targets could be overwritten by an earlier dup2, so every source below
// `first_free` is first copied above it (close-on-exec, closed again after the spawn). dup2
// onto a different number clears close-on-exec on the copy, which is what makes exactly those
// fds survive execve. A pass_fds entry is its own source: it too goes up and comes back down.
struct FdPlan {
    std::vector<std::pair<int, int>> dup2s;  // (source, target), in order
    std::vector<int> closes;                 // careless fds (not close-on-exec) below first_free
    int first_free = 3;
    bool close_from = true;                  // close everything from first_free up
    std::vector<Handle> temporaries;

    int above(int fd) {
        if (fd >= first_free) return fd;
        int d = ::fcntl(fd, F_DUPFD_CLOEXEC, first_free);
        if (d < 0) return -1;
        temporaries.emplace_back(d);
        return d;
    }
};

std::error_code make_plan(const SpawnRequest& req, FdPlan& plan) {
    const int n = static_cast<int>(req.inherit.size());
    plan.first_free = 3 + n;
    std::vector<int> passed;
    for (native_handle fd : req.pass_fds) {
        if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
        if (::fcntl(fd, F_GETFD) < 0) return last_error();  // not open: EBADF, here in the parent
        if (fd > 2) passed.push_back(fd);
    }
    for (int fd : passed) plan.first_free = std::max(plan.first_free, fd + 1);
    const native_handle stdio[3] = {req.stdin_handle, req.stdout_handle, req.stderr_handle};
    int src[3];
    for (int i = 0; i < 3; ++i) {
        src[i] = stdio[i] == invalid_handle() ? -1 : plan.above(stdio[i]);
        if (stdio[i] != invalid_handle() && src[i] < 0) return last_error();
    }
    std::vector<int> inherit_src, pass_src;
    for (native_handle fd : req.inherit) {
        inherit_src.push_back(plan.above(fd));
        if (inherit_src.back() < 0) return last_error();
    }
    for (int fd : passed) {
        pass_src.push_back(plan.above(fd));
        if (pass_src.back() < 0) return last_error();
    }
    for (int i = 0; i < 3; ++i)
        if (src[i] >= 0 && !(i == 2 && req.stderr_to_stdout)) plan.dup2s.emplace_back(src[i], i);
    if (req.stderr_to_stdout) plan.dup2s.emplace_back(1, 2);
    for (int i = 0; i < n; ++i) plan.dup2s.emplace_back(inherit_src[static_cast<std::size_t>(i)], 3 + i);
    for (std::size_t i = 0; i < passed.size(); ++i) plan.dup2s.emplace_back(pass_src[i], passed[i]);
    plan.close_from = req.close_fds;
    if (req.close_fds) {
        // close_range() below takes everything from first_free up; between the targets, only an
        // fd a careless caller opened without O_CLOEXEC would survive, so those are closed one
        // by one (mp's own fds are all close-on-exec and vanish at the exec anyway).
        for (int fd = 3 + n; fd < plan.first_free; ++fd) {
            if (std::find(passed.begin(), passed.end(), fd) != passed.end()) continue;
            const int flags = ::fcntl(fd, F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC)) plan.closes.push_back(fd);
        }
    }
    return {};
}

struct FileActions {
    posix_spawn_file_actions_t fa;
    int err = 0;
    FileActions() { err = posix_spawn_file_actions_init(&fa); }
    ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
};

struct SpawnAttr {
    posix_spawnattr_t attr;
    int err = 0;
    SpawnAttr() { err = posix_spawnattr_init(&attr); }
    ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
};

// A program named without a '/' is looked up in PATH. posix_spawnp searches this process's
// PATH; a child given an environment of its own is looked up in that environment's PATH
// instead (CPython's rule: os.get_exec_path(env), "/bin:/usr/bin" when it has none), here in
// the parent, the way execvp would: the first regular file that may be executed wins; if none
// may, but one exists, the answer is EACCES; if none exists, ENOENT.
std::error_code find_in_child_path(const SpawnRequest& req, std::string& found) {
    std::string path = "/bin:/usr/bin";
    for (const auto& kv : req.env)
        if (kv.first == "PATH") path = kv.second;
    bool denied = false;
    std::size_t from = 0;
    for (;;) {
        const std::size_t colon = path.find(':', from);
        std::string dir = path.substr(from, colon == std::string::npos ? std::string::npos : colon - from);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + req.program;
        struct stat st{};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
            if (::access(candidate.c_str(), X_OK) == 0) {
                found = candidate;
                return {};
            }
            denied = true;
        }
        if (colon == std::string::npos) break;
        from = colon + 1;
    }
    return std::make_error_code(denied ? std::errc::permission_denied : std::errc::no_such_file_or_directory);
}

// The fork path, for what posix_spawn cannot do: a umask, a user, a group, supplementary groups
// (CPython's _posixsubprocess takes the same path for them, and plain fork rather than vfork,
// because setuid() in a vfork child would change the credentials of the parent's memory
// image's threads too). Everything the child touches is made here, before the fork: between
// the fork and the exec it only makes system calls, and reports a failure as (step, errno)
// on a close-on-exec pipe, which the parent reads: end of file means the exec succeeded.
struct ForkExec {
    const FdPlan* plan;
    const char* program;
    char* const* argv;
    char* const* envp;
    const char* cwd;
    bool new_session, process_group, restore_signals;
    int umask;
    long long uid, gid;
    bool set_groups;
    const gid_t* groups;
    std::size_t ngroups;
    int fd_limit;  // for a system without close_range: where the closing loop stops
};

[[noreturn]] void report_and_exit(int report, int e) noexcept {
    const int msg[1] = {e};
    (void)!::write(report, msg, sizeof msg);
    ::_exit(127);
}

[[noreturn]] void fork_exec_child(const ForkExec& f, int report) noexcept {
    auto fail = [report](int e) { report_and_exit(report, e); };
    // Signal handlers copied from the parent must not run here: back to the default, then
    // the parent's all-blocked mask (set around the fork) is lifted just before the exec.
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa{};
        if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_IGN && sa.sa_handler != SIG_DFL) {
            sa.sa_handler = SIG_DFL;
            sa.sa_flags = 0;
            ::sigaction(sig, &sa, nullptr);
        }
    }
    if (f.restore_signals) {
        struct sigaction dfl{};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(SIGPIPE, &dfl, nullptr);
        ::sigaction(SIGXFSZ, &dfl, nullptr);
    }
    if (f.new_session && ::setsid() < 0) fail(errno);
    if (!f.new_session && f.process_group && ::setpgid(0, 0) < 0) fail(errno);
    for (const auto& d : f.plan->dup2s)
        if (::dup2(d.first, d.second) < 0) fail(errno);
    for (int fd : f.plan->closes) ::close(fd);
    if (f.plan->close_from) {
        // Everything from first_free up goes, except the report pipe (which sits above
        // first_free, close-on-exec, and vanishes at the exec).
#if defined(SYS_close_range) && !defined(MP_POSIX_PORTABLE)
        if (::syscall(SYS_close_range, static_cast<unsigned>(f.plan->first_free), static_cast<unsigned>(report - 1), 0u) != 0 ||
            ::syscall(SYS_close_range, static_cast<unsigned>(report + 1), ~0u, 0u) != 0)
#endif
            for (int fd = f.plan->first_free; fd < f.fd_limit; ++fd)
                if (fd != report) ::close(fd);
    }
    if (f.cwd && ::chdir(f.cwd) < 0) fail(errno);
    if (f.umask >= 0) ::umask(static_cast<mode_t>(f.umask));
    if (f.set_groups && ::setgroups(f.ngroups, f.groups) < 0) fail(errno);
    if (f.gid >= 0 && ::setregid(static_cast<gid_t>(f.gid), static_cast<gid_t>(f.gid)) < 0) fail(errno);
    if (f.uid >= 0 && ::setreuid(static_cast<uid_t>(f.uid), static_cast<uid_t>(f.uid)) < 0) fail(errno);
    sigset_t none;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    ::execve(f.program, f.argv, f.envp);
    report_and_exit(report, errno);
}

std::error_code fork_exec(ForkExec& f, pid_t& pid) noexcept {
    // The report pipe's write end must survive the child's dup2s and closes: it is moved above
    // every target, and the closes leave it alone.
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) return last_error();
    Handle rd(report[0]), wr0(report[1]);
    const int high = ::fcntl(report[1], F_DUPFD_CLOEXEC, f.plan->first_free);
    if (high < 0) return last_error();
    Handle wr(high);
    wr0.reset();
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = ::fork();
    if (pid == 0) fork_exec_child(f, high);
    const int fork_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) return os_error(fork_errno);
    wr.reset();
    int msg[1] = {0};
    std::size_t got = 0;
    const std::error_code rec = read_full(rd.get(), msg, sizeof msg, got);
    if (!rec && got == 0) return {};  // the exec closed the pipe: the child runs the program
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = 0;
    if (rec) return rec;
    return os_error(msg[0]);
}

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
    // shell: /bin/sh -c COMMAND [$0 [$1 ...]]: the command is the shell's to parse.
    std::vector<std::string> shell_args;
    const std::vector<std::string>* args = &req.args;
    std::string program = req.program;
    bool search = req.search_path;
    if (req.shell) {
        if (program.empty()) program = "/bin/sh";
        shell_args.push_back(program);
        shell_args.push_back("-c");
        shell_args.insert(shell_args.end(), req.args.begin(), req.args.end());
        args = &shell_args;
        search = false;
    }
    if (search && req.replace_env && program.find('/') == std::string::npos) {
        SpawnRequest lookup;
        lookup.program = program;
        lookup.env = req.env;
        if (auto ec = find_in_child_path(lookup, program)) return ec;
        search = false;
    }

    FdPlan plan;
    if (auto ec = make_plan(req, plan)) return ec;

    std::vector<char*> argv;
    argv.reserve(args->size() + 1);
    for (const auto& a : *args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> added;
    std::vector<char*> envp = environment_block(req.env, req.replace_env, added);

    const bool credentials = req.umask >= 0 || req.uid >= 0 || req.gid >= 0 || req.set_groups;
    if (credentials) {
        // The fork path has no PATH search of its own: resolve the name as posix_spawnp would.
        if (search && program.find('/') == std::string::npos) {
            SpawnRequest lookup;
            lookup.program = program;
            const char* ours = ::getenv("PATH");
            lookup.env.emplace_back("PATH", ours ? ours : "/bin:/usr/bin");
            if (auto ec = find_in_child_path(lookup, program)) return ec;
        }
        std::vector<gid_t> groups(req.groups.begin(), req.groups.end());
        ForkExec f{&plan, program.c_str(), argv.data(), envp.data(), req.cwd.empty() ? nullptr : req.cwd.c_str(),
                   req.new_session, req.process_group, req.restore_signals, req.umask, req.uid, req.gid,
                   req.set_groups, groups.data(), groups.size(), static_cast<int>(std::min(::sysconf(_SC_OPEN_MAX), 1L << 20))};
        pid_t pid = 0;
        if (auto ec = fork_exec(f, pid)) return ec;
        out.pid = pid;
        out.process.reset();
        return {};
    }

    FileActions fa;
    if (fa.err) return os_error(fa.err);
    int e = 0;
    for (const auto& d : plan.dup2s)
        if (!e) e = posix_spawn_file_actions_adddup2(&fa.fa, d.first, d.second);
    for (int fd : plan.closes)
        if (!e) e = posix_spawn_file_actions_addclose(&fa.fa, fd);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    // Everything above the passed fds goes, even fds a careless caller opened without
    // O_CLOEXEC. glibc does this with close_range(), one system call, instead of the
    // close-every-fd-up-to-RLIMIT_NOFILE loop that makes other libraries' spawns slow.
    if (!e && plan.close_from) e = posix_spawn_file_actions_addclosefrom_np(&fa.fa, plan.first_free);
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
    // default action even if this process ignores them (as CPython's subprocess does, unless
    // restore_signals is off).
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    if (req.restore_signals) {
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGXFSZ);
    }
    e = posix_spawnattr_setsigmask(&sa.attr, &none);
    if (!e) e = posix_spawnattr_setsigdefault(&sa.attr, &defaults);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (req.new_session) {
        flags |= POSIX_SPAWN_SETSID;
    } else if (req.process_group) {
        flags |= POSIX_SPAWN_SETPGROUP;  // with pgroup 0: the child's own pid names its group
        if (!e) e = posix_spawnattr_setpgroup(&sa.attr, 0);
    }
    if (!e) e = posix_spawnattr_setflags(&sa.attr, flags);
    if (e) return os_error(e);

    // posix_spawnp looks a name without '/' up in PATH, as execvp does, and treats a name with
    // one exactly as posix_spawn would.
    pid_t pid = 0;
    e = (search ? ::posix_spawnp : ::posix_spawn)(&pid, program.c_str(), &fa.fa, &sa.attr, argv.data(), envp.data());
    if (e) return os_error(e);
    out.pid = pid;
    out.process.reset();
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

// getpwnam_r / getgrnam_r want a buffer of a size the system suggests; it grows on ERANGE.
template <class Entry, class Id>
static std::error_code lookup_id(const std::string& name, long long& id,
                                 int (*lookup)(const char*, Entry*, char*, std::size_t, Entry**), Id Entry::*field) noexcept try {
    std::vector<char> buf(16384);
    for (;;) {
        Entry entry{}, *found = nullptr;
        const int e = lookup(name.c_str(), &entry, buf.data(), buf.size(), &found);
        if (e == ERANGE) {
            buf.resize(buf.size() * 4);
            continue;
        }
        if (e) return os_error(e);
        if (!found) return std::make_error_code(std::errc::no_such_file_or_directory);
        id = static_cast<long long>(entry.*field);
        return {};
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code user_id(const std::string& name, long long& id) noexcept {
    return lookup_id(name, id, ::getpwnam_r, &passwd::pw_uid);
}

std::error_code group_id(const std::string& name, long long& id) noexcept {
    return lookup_id(name, id, ::getgrnam_r, &group::gr_gid);
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

#if !defined(MP_POSIX_PORTABLE)
// A wait status as Python reports it, from waitid's siginfo.
static int exit_code_of(const siginfo_t& si) noexcept {
    if (si.si_code == CLD_EXITED) return si.si_status;
    if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) return -si.si_status;
    return 255;
}
#endif

#if !defined(P_PIDFD) && !defined(MP_POSIX_PORTABLE)
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
#if defined(MP_POSIX_PORTABLE)  // no pidfd came with the child
        exitcode = 255;
#else
        siginfo_t si{};
        exitcode = c.process && ::waitid(P_PIDFD, static_cast<id_t>(c.process.get()), &si, WEXITED | WNOHANG) == 0 &&
                           si.si_pid != 0
                       ? exit_code_of(si)
                       : 255;
#endif
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

#if defined(MP_POSIX_PORTABLE)
// ---- the portable profile's pipes: sentinels and this process's watch -----------------------
// Each sentinel of a running child is the read end of a pipe; the write end is listed here
// with the child's pid, and closed (end of file: the sentinel is ready) by a watcher thread
// when waitid(WNOWAIT) sees the child end, or by reap() when the child is reaped first. The
// watch handles this process gives its spawned children are copies of the read end of one
// pipe whose write end only this process holds. A fork child closes what it copied of both
// (or its siblings' sentinels, and its parent's death, would wait for it too).
namespace {
struct PortablePipes {
    std::mutex mu;
    std::vector<std::pair<int, int>> sentinels;  // (pid, write end)
    int life_read = -1, life_write = -1;
};
PortablePipes& pipes() noexcept {
    static PortablePipes* p = new PortablePipes;  // never destroyed: watcher threads may outlive main
    return *p;
}
void close_sentinels_of(int pid) noexcept {
    PortablePipes& pp = pipes();
    std::lock_guard<std::mutex> lock(pp.mu);
    for (std::size_t i = 0; i < pp.sentinels.size();) {
        if (pp.sentinels[i].first == pid) {
            ::close(pp.sentinels[i].second);
            pp.sentinels[i] = pp.sentinels.back();
            pp.sentinels.pop_back();
        } else {
            ++i;
        }
    }
}
// Around fork: the list is whole in the child (no thread was half way through it), and the
// child drops what it copied without freeing anything (it may be between fork and exec).
void lock_pipes() noexcept { pipes().mu.lock(); }
void unlock_pipes() noexcept { pipes().mu.unlock(); }
void drop_pipes_in_child() noexcept {
    PortablePipes& pp = pipes();
    for (const auto& s : pp.sentinels) ::close(s.second);
    new (&pp.sentinels) std::vector<std::pair<int, int>>();  // the old buffer is left behind
    if (pp.life_write >= 0) ::close(pp.life_write);
    if (pp.life_read >= 0) ::close(pp.life_read);
    pp.life_read = pp.life_write = -1;
    pp.mu.unlock();
}
struct PipesAtFork {
    PipesAtFork() noexcept { ::pthread_atfork(lock_pipes, unlock_pipes, drop_pipes_in_child); }
} pipes_at_fork;
}  // namespace
#endif

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
#if defined(MP_POSIX_PORTABLE)
    close_sentinels_of(c.pid);  // before its watcher does: no descriptor outlives the reap
#endif
    return {};
}

// A pidfd turns "has this child exited?" into an fd that poll() understands (Linux 5.3+).
static int open_pidfd(int pid) noexcept {
#if defined(SYS_pidfd_open) && !defined(MP_POSIX_PORTABLE)
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
#if !defined(MP_POSIX_PORTABLE)  // (portable: no pidfd came with it)
        if (c.process) {
            if (::syscall(SYS_pidfd_send_signal, c.process.get(), signum, nullptr, 0) != 0 && errno != ESRCH)
                return last_error();
            return {};
        }
#endif
        // No pidfd (a kernel before 5.3): the pid is still the child's while no status has come.
        pollfd p{c.status.get(), POLLIN, 0};
        if (::poll(&p, 1, 0) != 0) return {};
    }
    if (::kill(c.pid, signum) != 0 && errno != ESRCH) return last_error();
    return {};
}

std::error_code signal_process_tree(Child& c, int signum) noexcept {
    // The child leads its group (process_group or new_session), so its pid is the group's id.
    // A group id cannot be given to a new process while the group has a member, so the signal
    // reaches this tree only, also after its leader was reaped.
    if (c.pid <= 0) return std::make_error_code(std::errc::invalid_argument);
    if (::killpg(c.pid, signum) != 0 && errno != ESRCH) return last_error();
    return {};
}

std::error_code interrupt_process(Child& c) noexcept { return signal_process(c, SIGINT); }

#if defined(MP_POSIX_PORTABLE)
// POSIX has no call that names the running program's file. The C libraries of Linux, the BSDs
// and macOS pass (argc, argv, envp) to a shared library's constructors, so argv[0] is resolved
// here, before main() can chdir: a path with a '/' through realpath(), a bare name through
// PATH as the shell found it. A program started under another argv[0] (exec -a) is not found.
namespace {
char g_executable[PATH_MAX];
int g_executable_errno = ENOENT;

void find_executable(const char* argv0) noexcept {
    if (!argv0 || !*argv0) return;
    if (std::strchr(argv0, '/')) {
        g_executable_errno = ::realpath(argv0, g_executable) ? 0 : errno;
        return;
    }
    const char* path = std::getenv("PATH");
    for (const char* p = path ? path : ""; p && *p;) {
        const char* colon = std::strchr(p, ':');
        const std::size_t len = colon ? static_cast<std::size_t>(colon - p) : std::strlen(p);
        char candidate[PATH_MAX];
        if (len + std::strlen(argv0) + 2 < sizeof candidate) {
            std::memcpy(candidate, p, len);
            candidate[len] = '/';
            std::strcpy(candidate + len + 1, argv0);
            if (::access(candidate, X_OK) == 0 && ::realpath(candidate, g_executable)) {
                g_executable_errno = 0;
                return;
            }
        }
        p = colon ? colon + 1 : nullptr;
    }
}

__attribute__((constructor)) void record_argv0(int argc, char** argv, char**) {
    if (argc > 0 && argv) find_executable(argv[0]);
}
}  // namespace

std::error_code current_executable(std::string& out) noexcept try {
    if (g_executable_errno != 0) return os_error(g_executable_errno);
    out = g_executable;
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}
#else
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
#endif

std::error_code die_with_parent(int expected_parent_pid, bool started_by_main_thread) noexcept {
#if defined(MP_POSIX_PORTABLE)
    // No PR_SET_PDEATHSIG and no pidfd: the watcher thread below, looking at getppid() (which
    // changes when the parent dies and we are re-parented) every 100 ms.
    (void)started_by_main_thread;
    const int fd = -1;
    if (::getppid() != expected_parent_pid) return std::make_error_code(std::errc::no_such_process);
#else
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
#endif
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

#if defined(MP_POSIX_PORTABLE)
// POSIX cannot name a process's first thread; the portable die_with_parent does not ask.
bool is_main_thread() noexcept { return true; }

std::error_code open_self_watch(Handle& out) noexcept {
    PortablePipes& pp = pipes();
    std::lock_guard<std::mutex> lock(pp.mu);
    if (pp.life_write < 0) {
        PipeEnds p;
        if (auto ec = make_pipe(p)) return ec;
        pp.life_read = p.read.release();
        pp.life_write = p.write.release();
    }
    return duplicate_handle(pp.life_read, out);
}

// Only a process's own pipe can say that it ended: POSIX has no handle on another process.
std::error_code open_watch(int, Handle&) noexcept { return std::make_error_code(std::errc::function_not_supported); }
#else
bool is_main_thread() noexcept { return ::syscall(SYS_gettid) == ::getpid(); }

std::error_code open_self_watch(Handle& out) noexcept { return open_watch(::getpid(), out); }

std::error_code open_watch(int pid, Handle& out) noexcept {
    int fd = open_pidfd(pid);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
}
#endif

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
#if defined(MP_POSIX_PORTABLE)
    PipeEnds p;
    if (auto ec = make_pipe(p)) return ec;
    const int pid = c.pid;
    {
        PortablePipes& pp = pipes();
        std::lock_guard<std::mutex> lock(pp.mu);
        try {
            pp.sentinels.emplace_back(pid, p.write.get());
        } catch (...) {
            return std::make_error_code(std::errc::not_enough_memory);
        }
    }
    p.write.release();  // the list owns it now
    try {
        std::thread([pid] {
            siginfo_t si{};
            while (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
            }
            close_sentinels_of(pid);  // ended, or reaped already (ECHILD)
        }).detach();
    } catch (...) {
        close_sentinels_of(pid);
        return std::make_error_code(std::errc::resource_unavailable_try_again);
    }
    out = std::move(p.read);
    return {};
#else
    int fd = open_pidfd(c.pid);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
#endif
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
