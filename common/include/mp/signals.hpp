// mp/signals.hpp - signal handlers that run on your thread, and mp::kill (Python's signal
// module and os.kill, with the same interface on POSIX and Windows).
//
//     mp::signals::handle(mp::sig::USR1, [](int s) { std::printf("got %d\n", s); });
//     mp::kill(parent_pid, mp::sig::USR1);              // from another process
//     std::vector<int> ran = mp::signals::dispatch(5.0);  // runs the handler here, on this thread
//
// Why dispatch? A real signal handler interrupts a thread anywhere (inside malloc, holding a
// lock), so it may only do async-signal-safe things. mp's OS-level handler just records the
// signal; your handler runs when a thread calls dispatch(), as an ordinary function: it may
// allocate, lock, print and throw (an exception leaves dispatch at once, and signals taken in
// the same dispatch whose handlers had not run yet are dropped). Python does the same (its handlers run in the main thread between bytecodes);
// here you choose the thread and the moment. Dispatch from one thread. If you want a thread
// that does nothing but dispatch, start one, but know that fork() copies only the calling
// thread: a fork child has no dispatcher (start it again there), and forking while other
// threads hold locks is unsafe in general (prefer spawn).
//
// Windows has no signals between processes: there mp catches a signal with a named event per
// (process, signal), Local\mp-signal-<pid>-<sig>, which mp::kill sets; so a Windows process
// receives only what mp::kill sends (not Ctrl+C: console events need a shared console). Sending
// to a process that has not caught the signal does what POSIX's default would: TerminateProcess
// (exitcode -sig) for every mp::sig signal but CHLD, which is dropped. See win32/signals.cpp.
//
// Signal numbers are mp::sig::USR1 ... (Linux's values; `SIGUSR1` itself is a macro on POSIX
// and missing on Windows, so mp cannot name a constant mp::SIGUSR1).
// Standard signals do not queue: two sends before one dispatch may run the handler once.
// After fork the child keeps the handlers but not the recorded signals (as POSIX does not pass
// pending signals to a child); a spawned child starts with none.
//
// Errors: a signal that cannot be caught (KILL; on POSIX also STOP), a fault signal given to
// handle() (SEGV, BUS, FPE, ILL: the faulting instruction would raise it again at once, before
// any dispatch), or a number outside 1..64 -> ValueError; kill of a pid that names no process -> ProcessLookupError; pid <= 0 (process
// groups, "everyone") -> ValueError; not allowed -> PermissionError.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "duration.hpp"
#include "errors.hpp"

namespace mp {

namespace sig {
constexpr int HUP = 1;
constexpr int INT = 2;
constexpr int QUIT = 3;
constexpr int KILL = 9;
constexpr int USR1 = 10;
constexpr int USR2 = 12;
constexpr int PIPE = 13;
constexpr int ALRM = 14;
constexpr int TERM = 15;
constexpr int CHLD = 17;
}  // namespace sig

// Sends sig to the process pid (Python's os.kill). See above for Windows.
void kill(int pid, int sig);

namespace signals {

using Handler = std::function<void(int)>;

// From now on sig is recorded and handler runs in dispatch() (Python's signal.signal).
// Replaces an earlier handler of sig.
void handle(int sig, Handler handler);
// sig is ignored (SIG_IGN).
void ignore(int sig);
// sig takes its default action again (SIG_DFL); a recorded, undispatched sig is dropped.
void restore(int sig);
inline void default_action(int sig) { restore(sig); }

// Waits up to timeout_seconds (std::nullopt: without limit; 0: only looks) until at least one handler
// has run, runs the handlers of every recorded signal on this thread, and returns their
// signal numbers in ascending order (empty after the timeout, which it never cuts short).
std::vector<int> dispatch(std::optional<double> timeout_seconds = 0.0);
inline std::vector<int> wait(std::optional<double> timeout_seconds) { return dispatch(timeout_seconds); }
// The same with a duration (a negative one: only looks, see mp/duration.hpp).
template <class Rep, class Period>
std::vector<int> dispatch(std::chrono::duration<Rep, Period> timeout) {
    return dispatch(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
}
template <class Rep, class Period>
std::vector<int> wait(std::chrono::duration<Rep, Period> timeout) {
    return dispatch(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
}

// The signals recorded and not yet dispatched.
std::vector<int> pending();

}  // namespace signals
}  // namespace mp
