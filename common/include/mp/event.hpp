// mp/event.hpp - mp::Event (Python's multiprocessing.Event): a flag shared between processes
// that processes can wait for.
//
//     mp::Event go;
//     ctx.Process(worker, go).start();     // worker: go.wait(); ...
//     go.set();                            // wakes every waiter; is_set() is now true
//     bool got = go.wait(0.5);             // false: the timeout passed with the flag clear
//     go.clear();
//
// wait never returns false before its timeout has passed. Crashes: a process killed while
// waiting leaves nothing behind that could block the others; one killed inside set() or
// clear() leaves the flag either set or clear (the internal lock is robust).
#pragma once

#include <chrono>
#include <memory>

#include "codec.hpp"
#include "duration.hpp"

namespace mp {
namespace detail {
struct SyncState;
}

class Event {
public:
    Event();
    bool is_set() const;
    void set();
    void clear();
    // Waits until the flag is set or timeout seconds passed (std::nullopt: without limit); returns the
    // flag. wait() waits without limit and is always true; the timed forms are [[nodiscard]]:
    // their result is the only way to know whether the flag was set.
    bool wait() { return wait(std::nullopt); }
    [[nodiscard]] bool wait(std::optional<double> timeout);
    template <class Rep, class Period>
    [[nodiscard]] bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }

    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

private:
    std::shared_ptr<detail::SyncState> s_;
};

}  // namespace mp
