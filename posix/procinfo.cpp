// posix/procinfo.cpp - facts about any process by pid on POSIX (Linux): /proc, getpriority,
// sched_getscheduler; and what the portable profile can tell without /proc.
//
// Linux shows every process's kernel record as text under /proc/<pid>: `stat` holds the state
// letter (field 3) and the parent pid (field 4), `exe` is a symlink to the program file. The
// kernel keeps one scheduling record per thread: a niceness (-20..19, applied to the
// time-shared policies other/batch/idle) and a policy with a static priority (1..99 for the
// real-time fifo/rr). Raising niceness is free; lowering it, or choosing a real-time policy,
// needs CAP_SYS_NICE (root has it) or RLIMIT_NICE/RLIMIT_RTPRIO. A child that has ended stays
// in the table as a zombie (state Z) until its parent reaps it, and an orphan is re-parented at
// once to init or to the nearest subreaper, so field 4 changes.
// The portable profile (MP_POSIX_PORTABLE: POSIX.1-2008 only) has no /proc and POSIX no call
// that reads another process's record: parent and executable are known for this process only
// (getppid, the program's own path), and the state for this process (running) and for our own
// children (waitid with WNOWAIT: zombie or stopped, else unknown); for any other live process
// these report function_not_supported, and a pid that names nobody (kill(pid, 0) says ESRCH)
// no_such_process. Only the POSIX policies exist there: other, fifo, rr.
// Windows differs: the only per-process states are alive and ended, scheduling is by priority
// class (six levels, no policies), and the parent pid is recorded once at creation and never
// follows re-parenting, because there is none.
#include "../common/sys/procinfo.hpp"
#include "../common/sys/error.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#if defined(MP_POSIX_PORTABLE)
#include <csignal>
#include <sys/wait.h>

#include "../common/sys/process.hpp"
#endif

namespace mp::sys {

namespace {

#if defined(MP_POSIX_PORTABLE)
// Another process than this one: POSIX cannot read its record. No such process, or that.
std::error_code not_readable(int pid) noexcept {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return std::make_error_code(std::errc::no_such_process);
    return std::make_error_code(std::errc::function_not_supported);
}
#else
// /proc/<pid>/X missing means the process does not exist.
std::error_code proc_error(int err) noexcept {
    if (err == ENOENT || err == ESRCH) return std::make_error_code(std::errc::no_such_process);
    return os_error(err);
}

// Reads /proc/<pid>/stat and points `rest` just past the command name: field 2 is "(comm)",
// where comm may hold spaces and parentheses, so the fields restart after its LAST ')'.
// `rest` then begins " S 1234 ...": field 3 (state), field 4 (ppid) ...
std::error_code read_stat(int pid, char (&buf)[1024], const char*& rest) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return proc_error(errno);
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    const int err = errno;
    ::close(fd);
    if (n < 0) return proc_error(err);
    buf[n] = '\0';
    rest = std::strrchr(buf, ')');
    if (!rest || rest[1] != ' ' || rest[2] == '\0') return std::make_error_code(std::errc::protocol_error);
    rest += 1;
    return {};
}
#endif

int native_policy(SchedPolicy p) noexcept {
    switch (p) {
#if defined(MP_POSIX_PORTABLE)
        case SchedPolicy::batch:
        case SchedPolicy::idle: return -1;  // Linux's own policies
#else
        case SchedPolicy::batch: return SCHED_BATCH;
        case SchedPolicy::idle: return SCHED_IDLE;
#endif
        case SchedPolicy::fifo: return SCHED_FIFO;
        case SchedPolicy::rr: return SCHED_RR;
        case SchedPolicy::other: break;
    }
    return SCHED_OTHER;
}

}  // namespace

#if defined(MP_POSIX_PORTABLE)
std::error_code parent_pid_of(int pid, int& out) noexcept {
    if (pid != ::getpid()) return not_readable(pid);
    out = static_cast<int>(::getppid());
    return {};
}

std::error_code executable_of(int pid, std::string& out) noexcept {
    if (pid != ::getpid()) return not_readable(pid);
    return current_executable(out);
}

std::error_code process_state(int pid, ProcState& out) noexcept {
    if (pid == ::getpid()) {
        out = ProcState::running;  // it is running this
        return {};
    }
    // Our own child: waitid looks without reaping (WNOWAIT) and without waiting (WNOHANG).
    siginfo_t si{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT) == 0) {
        if (si.si_pid == 0) {
            out = ProcState::unknown;  // alive: running or asleep, POSIX cannot tell which
        } else {
            out = si.si_code == CLD_STOPPED || si.si_code == CLD_TRAPPED ? ProcState::stopped : ProcState::zombie;
        }
        return {};
    }
    return not_readable(pid);
}
#else
std::error_code parent_pid_of(int pid, int& out) noexcept {
    char buf[1024];
    const char* rest = nullptr;
    if (auto ec = read_stat(pid, buf, rest)) return ec;
    // rest = " S <ppid> ..."
    out = std::atoi(rest + 3);
    return {};
}

std::error_code executable_of(int pid, std::string& out) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/exe", pid);
    char target[4096];
    ssize_t n = ::readlink(path, target, sizeof target - 1);
    if (n < 0) {
        const int err = errno;
        // A zombie or a kernel thread has no exe link (ENOENT) while /proc/<pid> still exists.
        if (err == ENOENT) {
            char dir[64];
            std::snprintf(dir, sizeof dir, "/proc/%d", pid);
            if (::access(dir, F_OK) == 0) {
                out.clear();
                return {};
            }
        }
        return proc_error(err);
    }
    try {
        out.assign(target, static_cast<std::size_t>(n));
    } catch (...) {
        return std::make_error_code(std::errc::not_enough_memory);
    }
    return {};
}

std::error_code process_state(int pid, ProcState& out) noexcept {
    using S = ProcState;
    char buf[1024];
    const char* rest = nullptr;
    if (auto ec = read_stat(pid, buf, rest)) return ec;
    switch (rest[1]) {
        case 'R': out = S::running; break;
        case 'S': case 'I': out = S::sleeping; break;  // I: an idle kernel thread
        case 'D': out = S::disk_wait; break;
        case 'T': case 't': out = S::stopped; break;   // t: stopped by a tracer
        case 'Z': out = S::zombie; break;
        case 'X': case 'x': out = S::dead; break;
        default: out = S::unknown; break;
    }
    return {};
}
#endif

std::error_code get_priority(int pid, int& niceness) noexcept {
    // -1 is a valid niceness, so errors are told apart by errno alone.
    errno = 0;
    const int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(pid));
    if (n == -1 && errno != 0) return last_error();
    niceness = n;
    return {};
}

std::error_code set_priority(int pid, int niceness) noexcept {
    // EACCES: lowering niceness without CAP_SYS_NICE; EPERM: another user's process.
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(pid), niceness) < 0) return last_error();
    return {};
}

std::error_code scheduling_priority_range(SchedPolicy policy, PriorityRange& out) noexcept {
    const int p = native_policy(policy);
    if (p < 0) return std::make_error_code(std::errc::not_supported);
    const int lo = ::sched_get_priority_min(p), hi = ::sched_get_priority_max(p);
    if (lo < 0 || hi < 0) return last_error();
    out = {lo, hi};
    return {};
}

std::error_code get_scheduling(int pid, Scheduling& out) noexcept {
    using P = SchedPolicy;
    int p = ::sched_getscheduler(pid);
    if (p < 0) return last_error();
#ifdef SCHED_RESET_ON_FORK
    p &= ~SCHED_RESET_ON_FORK;
#endif
    sched_param param{};
    if (::sched_getparam(pid, &param) < 0) return last_error();
    switch (p) {
#if !defined(MP_POSIX_PORTABLE)
        case SCHED_BATCH: out.policy = P::batch; break;
        case SCHED_IDLE: out.policy = P::idle; break;
#endif
        case SCHED_FIFO: out.policy = P::fifo; break;
        case SCHED_RR: out.policy = P::rr; break;
        default: out.policy = P::other; break;  // SCHED_OTHER, and SCHED_DEADLINE shown as such
    }
    out.priority = param.sched_priority;
    return {};
}

std::error_code set_scheduling(int pid, const Scheduling& s) noexcept {
    sched_param param{};
    param.sched_priority = s.priority;
    if (native_policy(s.policy) < 0) return std::make_error_code(std::errc::not_supported);
    if (::sched_setscheduler(pid, native_policy(s.policy), &param) < 0) return last_error();
    return {};
}

}  // namespace mp::sys
