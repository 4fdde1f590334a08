// common/os.cpp - the portable part of mp/os.hpp: argument checks, pid 0 meaning "this
// process", and error codes from the platform layer (common/sys/procinfo.hpp) turned into
// Python's exceptions.
#include "mp/os.hpp"

#include <string>

#include "mp/errors.hpp"
#include "sys/os.hpp"
#include "sys/procinfo.hpp"

namespace mp::os {

namespace {

int resolve(int pid, const char* fn) {
    if (pid < 0) throw ValueError(std::string("mp::os::") + fn + ": pid must be >= 0 (0 means this process), got " +
                                  std::to_string(pid));
    return pid == 0 ? sys::current_pid() : pid;
}

[[noreturn]] void fail(std::error_code ec, const char* fn, int pid) {
    if (ec == std::errc::not_supported)
        throw NotImplementedError(std::string("mp::os::") + fn +
                                  ": Windows has no POSIX scheduling policies; threads are scheduled by "
                                  "priority class (see mp::os::set_priority), so only {other, 0} exists; the "
                                  "portable POSIX profile has POSIX's other, fifo and rr only (batch and idle are Linux's)");
    if (ec == std::errc::function_not_supported)
        throw NotImplementedError(std::string("mp::os::") + fn + "(pid " + std::to_string(pid) +
                                  "): this build cannot read another process's record (POSIX has no call for it, "
                                  "and the portable POSIX profile reads no /proc; README, \"Platforms\")");
    raise_os_error(ec, std::string("mp::os::") + fn + "(pid " + std::to_string(pid) + ")");
}

// The contract's copies of the public enums, enumerator for enumerator.
static_assert(static_cast<int>(sys::ProcState::unknown) == static_cast<int>(ProcessState::unknown) &&
                  static_cast<int>(sys::ProcState::zombie) == static_cast<int>(ProcessState::zombie) &&
                  static_cast<int>(sys::ProcState::running) == 0,
              "sys::ProcState follows mp::os::ProcessState");
static_assert(static_cast<int>(sys::SchedPolicy::rr) == static_cast<int>(SchedPolicy::rr) &&
                  static_cast<int>(sys::SchedPolicy::fifo) == static_cast<int>(SchedPolicy::fifo) &&
                  static_cast<int>(sys::SchedPolicy::other) == 0,
              "sys::SchedPolicy follows mp::os::SchedPolicy");
sys::SchedPolicy to_sys(SchedPolicy p) { return static_cast<sys::SchedPolicy>(p); }

}  // namespace

int parent_pid_of(int pid) {
    pid = resolve(pid, "parent_pid_of");
    int out = 0;
    if (auto ec = sys::parent_pid_of(pid, out)) fail(ec, "parent_pid_of", pid);
    return out;
}

std::string executable_of(int pid) {
    pid = resolve(pid, "executable_of");
    std::string out;
    if (auto ec = sys::executable_of(pid, out)) fail(ec, "executable_of", pid);
    return out;
}

const char* to_string(ProcessState s) noexcept {
    switch (s) {
        case ProcessState::running: return "running";
        case ProcessState::sleeping: return "sleeping";
        case ProcessState::disk_wait: return "disk_wait";
        case ProcessState::stopped: return "stopped";
        case ProcessState::zombie: return "zombie";
        case ProcessState::dead: return "dead";
        case ProcessState::unknown: break;
    }
    return "unknown";
}

ProcessState process_state(int pid) {
    pid = resolve(pid, "process_state");
    sys::ProcState out = sys::ProcState::unknown;
    if (auto ec = sys::process_state(pid, out)) fail(ec, "process_state", pid);
    return static_cast<ProcessState>(out);
}

int get_priority(int pid) {
    pid = resolve(pid, "get_priority");
    int out = 0;
    if (auto ec = sys::get_priority(pid, out)) fail(ec, "get_priority", pid);
    return out;
}

void set_priority(int pid, int niceness) {
    if (niceness < min_niceness || niceness > max_niceness)
        throw ValueError("mp::os::set_priority: niceness must be in -20..19 (POSIX scale), got " +
                         std::to_string(niceness));
    pid = resolve(pid, "set_priority");
    if (auto ec = sys::set_priority(pid, niceness)) fail(ec, "set_priority", pid);
}

const char* to_string(SchedPolicy p) noexcept {
    switch (p) {
        case SchedPolicy::other: return "other";
        case SchedPolicy::batch: return "batch";
        case SchedPolicy::idle: return "idle";
        case SchedPolicy::fifo: return "fifo";
        case SchedPolicy::rr: return "rr";
    }
    return "other";
}

PriorityRange scheduling_priority_range(SchedPolicy policy) {
    sys::PriorityRange out;
    if (auto ec = sys::scheduling_priority_range(to_sys(policy), out)) fail(ec, "scheduling_priority_range", 0);
    return {out.min, out.max};
}

Scheduling get_scheduling(int pid) {
    pid = resolve(pid, "get_scheduling");
    sys::Scheduling out;
    if (auto ec = sys::get_scheduling(pid, out)) fail(ec, "get_scheduling", pid);
    return {static_cast<SchedPolicy>(out.policy), out.priority};
}

void set_scheduling(int pid, SchedPolicy policy, int priority) {
    pid = resolve(pid, "set_scheduling");
    sys::PriorityRange range;
    if (auto ec = sys::scheduling_priority_range(to_sys(policy), range)) {
        // Windows: only {other, 0} exists; anything else is not a range problem but a missing
        // concept.
        fail(ec, "set_scheduling", pid);
    }
    if (priority < range.min || priority > range.max)
        throw ValueError(std::string("mp::os::set_scheduling: priority for policy ") + to_string(policy) +
                         " must be in " + std::to_string(range.min) + ".." + std::to_string(range.max) +
                         ", got " + std::to_string(priority));
    if (auto ec = sys::set_scheduling(pid, sys::Scheduling{to_sys(policy), priority})) fail(ec, "set_scheduling", pid);
}

}  // namespace mp::os
