// common/sys/signals.hpp - the internal contract for mp::signals: catching a signal so that
// it is only *recorded*, waiting for recorded signals, and sending one to a process.
//
// posix/signals.cpp and win32/signals.cpp implement these functions, in this order. Everything
// here is noexcept and reports std::error_code. Signals are numbered as on Linux (mp::sig::*,
// 1..64); a recorded set is a 64-bit mask, bit (sig - 1). common/signals.cpp keeps the user's
// handlers and runs them on the thread that dispatches.
#pragma once

#include <cstdint>
#include <system_error>

#include "deadline.hpp"

namespace mp::sys {

// mp's signal numbers (mp::sig::* in mp/signals.hpp, which common/signals.cpp checks against
// these), Linux's numbering on every system: the platform files translate where the OS
// numbers differently.
namespace signum {
constexpr int HUP = 1, INT = 2, QUIT = 3, KILL = 9, USR1 = 10, USR2 = 12, PIPE = 13, ALRM = 14, TERM = 15,
              CHLD = 17;
}  // namespace signum

inline std::uint64_t signal_bit(int sig) noexcept { return std::uint64_t{1} << (sig - 1); }

// From now on, sig sent to this process is recorded instead of taking its default action.
// POSIX: a sigaction() handler that sets a bit and writes a byte to a self-pipe. Windows: a
// named event Local\mp-signal-<pid>-<sig> (owner-only DACL) that signal_send sets.
std::error_code signal_catch(int sig) noexcept;

// sig is ignored from now on (SIG_IGN; Windows: the event stays, so a sender does not fall
// back to terminating us, but nothing is recorded).
std::error_code signal_ignore(int sig) noexcept;

// sig takes its default action again (SIG_DFL; Windows: the event goes, so a sender falls back
// to what the default is: TerminateProcess for a signal that terminates on POSIX). A recorded
// but undispatched sig is dropped.
std::error_code signal_default(int sig) noexcept;

// Waits until some signal is recorded or the deadline passes, then takes the recorded set
// (fired; 0 when the deadline passed) and clears it. May return fired = 0 before the deadline
// (a wakeup for a signal taken by another thread); the caller loops.
std::error_code signal_wait(const Deadline& deadline, std::uint64_t& fired) noexcept;

// The recorded set, without taking it.
std::uint64_t signal_pending() noexcept;

// Sends sig to the process pid (> 0). POSIX: kill(2). Windows: sets the receiver's event for
// sig if it has one, and otherwise, for a signal whose POSIX default is to terminate,
// TerminateProcess(0x10000 | sig) as Python's os.kill does (so exitcode reads -sig). No such
// process: std::errc::no_such_process.
std::error_code signal_send(int pid, int sig) noexcept;

}  // namespace mp::sys
