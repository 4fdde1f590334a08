// mp/wait.hpp - mp::wait: wait for the first of several connections and processes
// (Python's multiprocessing.connection.wait).
//
//     auto [r1, w1] = mp::Pipe(false);
//     mp::Process p(worker, w1);
//     p.start();
//     for (std::size_t i : mp::wait({r1, p}, 5.0)) {   // the indexes of the ready objects
//         if (i == 0) std::cout << r1.recv<std::string>();  // a message (or end of file) waits
//         if (i == 1) p.join();                             // the process has ended
//     }
//
// A Connection is ready when a message, or the peer's end of file, is waiting (a recv would
// not block for its first bytes); a Process when it has ended (its sentinel()). wait returns the
// indexes of every object that is ready, in order, as soon as one is; an empty result means
// the timeout passed first. std::nullopt (the default) waits without limit. EINTR never surfaces.
//
// How it waits differs by OS. POSIX: one poll(2) over the connections' fds and the processes'
// pidfds. Windows: a process HANDLE is a waitable object but a pipe is not, so wait looks at
// the connections (PeekNamedPipe), then waits on the process handles for a short step (1 ms,
// growing to 10 ms), and looks again: a message is seen within that step.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "connection.hpp"
#include "duration.hpp"

namespace mp {

class Process;
class WaitObject;

namespace detail {
// mp::wait in milliseconds, -1 for no limit (the pool waits with it).
std::vector<std::size_t> wait_ms(const std::vector<WaitObject>& objects, double timeout_ms);
}  // namespace detail

// One thing to wait for: a Connection, a Process, or a raw sentinel handle value.
class WaitObject {
public:
    WaitObject(const Connection& c) : conn_(c), is_connection_(true) {}  // NOLINT: implicit on purpose
    WaitObject(Process& p);                                                // NOLINT
    // Any handle that is "ready" in the sense of mp/wait.hpp's notes: a Process::sentinel() value,
    // or (POSIX) any readable fd.
    static WaitObject sentinel(std::uintptr_t handle) { return WaitObject(handle); }

private:
    explicit WaitObject(std::uintptr_t h) : sentinel_(h) {}
    friend std::vector<std::size_t> detail::wait_ms(const std::vector<WaitObject>&, double);
    Connection conn_;
    std::uintptr_t sentinel_ = 0;
    bool is_connection_ = false;
};

inline std::vector<std::size_t> wait(const std::vector<WaitObject>& objects,
                                     std::optional<double> timeout_seconds = std::nullopt) {
    return detail::wait_ms(objects, mp::detail::timeout_to_ms(timeout_seconds, "mp::wait"));
}
template <class Rep, class Period>
std::vector<std::size_t> wait(const std::vector<WaitObject>& objects, std::chrono::duration<Rep, Period> timeout) {
    return detail::wait_ms(objects, mp::detail::nonnegative_seconds(timeout) * 1000.0);
}

}  // namespace mp
