// mp/condition.hpp - mp::Condition (Python's multiprocessing.Condition): wait until another
// process says that something changed, under a shared lock.
//
//     mp::Condition cv;                         // its own RLock; or mp::Condition cv(lock)
//     mp::Value<int> items(0, false);           // the state it guards (no lock of its own)
//     // consumer                               // producer
//     std::unique_lock<mp::Condition> g(cv);    std::lock_guard<mp::Condition> g(cv);
//     cv.wait_for([&] { return items.value() > 0; });  items.set(items.value() + 1);
//     items.set(items.value() - 1);             cv.notify();
//
// wait(timeout) releases the lock (all levels of an RLock), sleeps until notified or the
// timeout passed, takes the lock back, and returns false on timeout. wait_for(pred, timeout)
// loops until pred() is true and returns pred()'s last value. notify(n) wakes at most n
// waiters, notify_all() all of them. Without holding the lock: wait and notify throw
// RuntimeError ("cannot wait on un-acquired lock", as CPython).
//
// Crashes: a notifier that dies before notifying can only be caught by a timeout, so give
// waits one where a partner may die. If the lock's owner dies while a waiter sleeps, that
// waiter (once notified or timed out) gets OwnerDeadError and holds the lock (see
// mp/lock.hpp). A waiter killed while waiting may absorb one notify: the next waiter then wakes
// spuriously and re-checks its predicate (wait_for does), never hangs.
// Copies share; fork inherits, spawn passes the condition and its lock.
#pragma once

#include <chrono>
#include <memory>

#include "codec.hpp"
#include "duration.hpp"
#include "lock.hpp"

namespace mp {

class Condition {
public:
    Condition() : Condition(RLock()) {}
    explicit Condition(const Lock& lock);
    explicit Condition(const RLock& lock);

    // As Lock's: acquire() is always true, the forms that may fail are [[nodiscard]].
    bool acquire() { return lock_.acquire(); }
    [[nodiscard]] bool acquire(bool block, std::optional<double> timeout = std::nullopt) { return lock_.acquire(block, timeout); }
    void release() { lock_.release(); }
    void lock() { lock_.lock(); }
    [[nodiscard]] bool try_lock() { return lock_.try_lock(); }
    void unlock() { lock_.unlock(); }

    // Called holding the lock. false: the timeout (seconds; std::nullopt: none) passed.
    bool wait(std::optional<double> timeout = std::nullopt);
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    // Returns the predicate's last value: [[nodiscard]], since with a timeout it is the only
    // way to know whether the condition holds. (wait(timeout) is not: a timed wait in a loop
    // that checks its own predicate drops its result on purpose.)
    template <class Pred>
    [[nodiscard]] bool wait_for(Pred pred, std::optional<double> timeout = std::nullopt) {
        using C = std::chrono::steady_clock;
        if (timeout && *timeout > 1e9) timeout.reset();  // decades: no limit (and no overflow of the clock below)
        if (timeout && !(*timeout >= 0)) wait(timeout);  // the ValueError that wait gives
        const auto end = C::now() + std::chrono::duration_cast<C::duration>(std::chrono::duration<double>(timeout ? *timeout : 0));
        bool result = pred();
        while (!result) {
            std::optional<double> left;
            if (timeout) {
                left = std::chrono::duration<double>(end - C::now()).count();
                if (*left <= 0) break;
            }
            wait(left);
            result = pred();
        }
        return result;
    }
    template <class Pred, class Rep, class Period>
    [[nodiscard]] bool wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout) {
        return wait_for(pred, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    void notify(unsigned n = 1);
    void notify_all();

    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

private:
    explicit Condition(const detail::LockBase& lock);
    detail::LockBase lock_;
    std::shared_ptr<detail::SyncState> s_;
};

}  // namespace mp
