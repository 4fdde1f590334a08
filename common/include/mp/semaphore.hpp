// mp/semaphore.hpp - mp::Semaphore and mp::BoundedSemaphore (Python's multiprocessing
// Semaphore and BoundedSemaphore), counters shared between processes.
//
//     mp::Semaphore slots(3);                 // at most 3 holders at a time
//     {
//         std::lock_guard<mp::Semaphore> g(slots);   // acquire() ... release()
//         ...
//     }
//     if (slots.acquire(true, 0.5)) ...       // Python's acquire(block, timeout) -> bool
//     slots.get_value();                      // the count now (a snapshot)
//     mp::BoundedSemaphore b(2);  b.release(); // ValueError: released too many times
//
// A negative initial value is ValueError. Any thread of any process may release (a semaphore
// has no owner). Copies share one semaphore; fork inherits it, spawn passes its handles.
//
// After a crash: a semaphore has no owner, so nothing can tell that a killed process held a
// permit. Its permit is NOT returned: the count stays one lower for good (a BoundedSemaphore
// too), and waiters are not woken for it. What mp does promise: the semaphore's own state
// (count, waiters) stays usable when a process dies in the middle of acquire or release (its
// internal lock is robust), and a waiter killed while waiting costs nothing but, at most, a
// spurious wake-up of another waiter, which then waits again. Use a Lock where a dead holder
// must be detected.
#pragma once

#include <chrono>
#include <memory>

#include "codec.hpp"
#include "duration.hpp"
#include "errors.hpp"

namespace mp {
namespace detail {
struct SyncState;
}

class Semaphore {
public:
    explicit Semaphore(int value = 1) : Semaphore(value, -1) {}

    // true: a permit was taken. std::nullopt waits without limit; block == false only tries.
    // acquire() waits without limit and is always true; the forms that may fail are
    // [[nodiscard]]: a caller who drops their result does not know whether it has a permit.
    bool acquire() { return acquire(true, std::nullopt); }
    [[nodiscard]] bool acquire(bool block, std::optional<double> timeout = std::nullopt);
    template <class Rep, class Period>
    [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
        return acquire(true, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    // Returns n permits (Python 3.9's release(n)); BoundedSemaphore: ValueError past its
    // initial value.
    void release(int n = 1);
    int get_value() const;
    // Whether an acquire would have to wait: no permit is left (CPython 3.14's locked()).
    bool locked() const { return get_value() == 0; }

    void lock() { acquire(); }
    [[nodiscard]] bool try_lock() { return acquire(false); }
    void unlock() { release(); }
    template <class Rep, class Period>
    [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
        return acquire(timeout);
    }

    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

protected:
    Semaphore(int value, int max);

private:
    std::shared_ptr<detail::SyncState> s_;
};

class BoundedSemaphore : public Semaphore {
public:
    explicit BoundedSemaphore(int value = 1) : Semaphore(value, value) {}
};

}  // namespace mp
