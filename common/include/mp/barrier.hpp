// mp/barrier.hpp - mp::Barrier (Python's multiprocessing.Barrier / threading.Barrier): a
// meeting point for a fixed number of parties across processes.
//
//     mp::Barrier b(3, [] { std::puts("all here"); }, /*timeout=*/10.0);
//     // in each of 3 processes or threads:
//     std::size_t i = b.wait();       // 0 .. parties-1, distinct; the last arrival runs action
//     b.abort();  b.reset();  b.broken();  b.n_waiting();  b.parties();
//
// wait(timeout) (std::nullopt: the barrier's default timeout, itself std::nullopt meaning none) blocks until
// `parties` waits are under way, then releases them all. If the wait times out, or the action
// throws, or abort() is called, the barrier is broken: every waiter, and every later wait,
// throws BrokenBarrierError until reset(). reset() returns it to the empty state; those waiting
// at that moment get BrokenBarrierError.
//
// Crashes: a party that dies before arriving (or while waiting) can only be noticed by a
// timeout, so give the barrier or the wait one where parties may die: the others then get
// BrokenBarrierError instead of a hang. n_waiting() counts a party that died waiting until the
// barrier is reset or broken.
// The action is a std::function of this process: a fork child keeps a copy, but a spawned
// child's copy has none (code cannot cross by spawn); the action runs only where the last
// party to arrive has one. parties < 1 is ValueError. Copies share one barrier.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "codec.hpp"
#include "duration.hpp"
#include "errors.hpp"

namespace mp {

// Python's threading.BrokenBarrierError (a RuntimeError).
class BrokenBarrierError : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
};

namespace detail {
struct SyncState;
}

class Barrier {
public:
    explicit Barrier(int parties = 1, std::function<void()> action = {}, std::optional<double> timeout = std::nullopt);

    // timeout: std::nullopt takes the constructor's (see mp/duration.hpp for the spelling).
    std::size_t wait(std::optional<double> timeout = std::nullopt);
    template <class Rep, class Period>
    std::size_t wait(std::chrono::duration<Rep, Period> timeout) {
        return wait(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    void reset();
    void abort();
    int parties() const;
    int n_waiting() const;
    bool broken() const;

    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

private:
    std::shared_ptr<detail::SyncState> s_;
    std::function<void()> action_;
};

}  // namespace mp
