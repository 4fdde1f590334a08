// common/sys/procinfo.hpp - the internal contract for facts about any process by pid: parent,
// executable, state, priority, scheduling policy. posix/procinfo.cpp and win32/procinfo.cpp
// implement it in this order; common/os.cpp validates arguments and turns the error codes into
// exceptions.
//
// Every pid given here is > 0 (common/os.cpp replaces 0 with our own pid). A pid that names no
// process reports std::errc::no_such_process on both sides (Windows' OpenProcess says
// ERROR_INVALID_PARAMETER; the Windows side translates it). A request the OS cannot express
// reports std::errc::not_supported.
#pragma once

#include <string>
#include <system_error>

#include "mp/os.hpp"

namespace mp::sys {

std::error_code parent_pid_of(int pid, int& out) noexcept;
std::error_code executable_of(int pid, std::string& out) noexcept;
std::error_code process_state(int pid, mp::os::ProcessState& out) noexcept;

// Niceness on the POSIX scale; Windows maps it to and from priority classes (mp/os.hpp).
// The caller has checked the range.
std::error_code get_priority(int pid, int& niceness) noexcept;
std::error_code set_priority(int pid, int niceness) noexcept;

std::error_code scheduling_priority_range(mp::os::SchedPolicy policy, mp::os::PriorityRange& out) noexcept;
std::error_code get_scheduling(int pid, mp::os::Scheduling& out) noexcept;
// The caller has checked the priority against scheduling_priority_range.
std::error_code set_scheduling(int pid, const mp::os::Scheduling& s) noexcept;

}  // namespace mp::sys
