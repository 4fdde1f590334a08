// common/sys/procinfo.hpp - the internal contract for facts about any process by pid: parent,
// executable, state, priority, scheduling policy. posix/procinfo.cpp and win32/procinfo.cpp
// implement it in this order; common/os.cpp validates arguments and turns the error codes into
// exceptions.
//
// Every pid given here is > 0 (common/os.cpp replaces 0 with our own pid). A pid that names no
// process reports std::errc::no_such_process on both sides (Windows' OpenProcess says
// ERROR_INVALID_PARAMETER; the Windows side translates it). A request the OS cannot express
// reports std::errc::not_supported; a fact the platform cannot read about another process
// (the portable POSIX profile, which has no /proc) std::errc::function_not_supported.
#pragma once

#include <string>
#include <system_error>

namespace mp::sys {

// The contract's own spelling of the facts mp/os.hpp reports, enumerator for enumerator in the
// same order (common/os.cpp converts and checks that at compile time), so that the platform
// files need no public header.
enum class ProcState { running, sleeping, disk_wait, stopped, zombie, dead, unknown };
enum class SchedPolicy { other, batch, idle, fifo, rr };
struct Scheduling {
    SchedPolicy policy = SchedPolicy::other;
    int priority = 0;
};
struct PriorityRange {
    int min = 0;
    int max = 0;
};

std::error_code parent_pid_of(int pid, int& out) noexcept;
std::error_code executable_of(int pid, std::string& out) noexcept;
std::error_code process_state(int pid, ProcState& out) noexcept;

// Niceness on the POSIX scale; Windows maps it to and from priority classes (mp/os.hpp).
// The caller has checked the range.
std::error_code get_priority(int pid, int& niceness) noexcept;
std::error_code set_priority(int pid, int niceness) noexcept;

std::error_code scheduling_priority_range(SchedPolicy policy, PriorityRange& out) noexcept;
std::error_code get_scheduling(int pid, Scheduling& out) noexcept;
// The caller has checked the priority against scheduling_priority_range.
std::error_code set_scheduling(int pid, const Scheduling& s) noexcept;

}  // namespace mp::sys
