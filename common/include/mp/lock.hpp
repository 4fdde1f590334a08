// mp/lock.hpp - mp::Lock and mp::RLock (Python's multiprocessing.Lock and RLock), locks shared
// between processes that survive the death of their owner.
//
//     mp::Lock lock;                              // or mp::RLock (re-entrant)
//     {
//         std::lock_guard<mp::Lock> g(lock);      // lock() / unlock() / try_lock()
//         ...
//     }
//     if (lock.acquire(true, 0.5)) { ...; lock.release(); }  // Python's acquire(block, timeout)
//     lock.acquire(std::chrono::milliseconds(500));          // the same with a duration
//     ctx.Process(worker, lock).start();          // fork inherits it, spawn passes its handles
//
// A dead owner: when the process (or thread) holding the lock dies, the next acquire throws
// mp::OwnerDeadError, and the thread that caught it HOLDS the lock. The data the lock guards
// may be half-updated: repair it, call make_consistent(), and the lock works normally again:
//
//     try { lock.lock(); } catch (const mp::OwnerDeadError&) { repair(); lock.make_consistent(); }
//     ...; lock.unlock();
//
// If instead it releases the lock without make_consistent(), the lock is broken for good:
// every later acquire throws mp::OSError with code std::errc::state_not_recoverable (the
// protocol of POSIX's robust mutexes, ENOTRECOVERABLE; mp keeps it on both platforms).
// CPython's lock, a bare semaphore, cannot tell that its owner died and deadlocks there.
//
// The std::error_code forms (mp/errors.hpp) report these without an exception: a dead owner
// is true (held) with ec == std::errc::owner_dead, to be followed by the same repair and
// make_consistent(); a broken lock or an OS error is false with ec set; false with ec clear
// is what it always is, not acquired in time. RuntimeError and ValueError still throw.
//
//     std::error_code ec;
//     if (lock.acquire(true, 0.5, ec)) {
//         if (ec == std::errc::owner_dead) { repair(); lock.make_consistent(); }
//         ...; lock.release();
//     }
//
// How a death is noticed: the lock is an owner word in shared memory (no system call when
// uncontended). A waiter on Windows also waits on the owner's thread handle, so it learns of
// the death at once; on Linux it asks the kernel (and /proc) about the owner after 1 ms and
// then every 10 ms, and a non-blocking or timed attempt looks before it gives up. Not seen as a
// death on Linux: an owner thread that calls exec() holding the lock (it keeps its ids), and
// a killed owner that is still a zombie when /proc cannot be read; timed waits still end.
//
// Differences from Python, because a lock must know its owner to notice its death:
//  - Only the thread that acquired a Lock may release it (RuntimeError otherwise); Python's
//    multiprocessing.Lock may be released by anyone.
//  - A thread acquiring a Lock it already holds: Python waits (forever, or until the timeout).
//    mp returns false at once for a non-blocking call, false after the timeout for a timed
//    one, and throws RuntimeError for an unbounded one (a certain deadlock, never a hang).
// Errors: release of a Lock held by no one: ValueError ("semaphore or lock released too many
// times", as CPython); release of an RLock (or a Lock) this thread does not hold: RuntimeError
// ("cannot release un-acquired lock"). Copies share one lock, as Python references do; the
// OS resources go with the last copy in the last process. Threads of one process may share it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "codec.hpp"
#include "duration.hpp"
#include "errors.hpp"
#include "portability.hpp"

namespace mp {

// The previous owner died holding the lock; the catching thread now holds it (see above).
// An OSError with code std::errc::owner_dead (EOWNERDEAD).
class OwnerDeadError : public OSError {
public:
    explicit OwnerDeadError(const std::string& what) : OSError(std::make_error_code(std::errc::owner_dead), what) {}
};

class Condition;
namespace detail {
struct SyncState;
struct SharedMutex;  // the crash-safe mutex in the shared memory (common/synchronize.cpp)

// The calling thread's identity (the owner word's value), cached per thread so the hot path of
// a lock is one thread-local load. 0 until the first use, and again in the child after a fork
// (the platform layer clears it there): then thread_token_slow() computes and caches it.
// MP_FAST_TLS (mp/portability.hpp): one load, no call.
extern MP_FAST_TLS std::uint64_t thread_token_cache;
std::uint64_t thread_token_slow() noexcept;
inline std::uint64_t thread_token() noexcept {
    const std::uint64_t t = thread_token_cache;
    return MP_LIKELY(t != 0) ? t : thread_token_slow();
}

// The words of a Lock/RLock beside its mutex in the shared memory (plain integers, valid in
// every process that maps it). Only the owning thread writes owner and count while it holds
// the lock, and owner == my token can only be true when this thread wrote it: relaxed loads
// and plain stores are enough, no read-modify-write.
struct LockShared {
    std::atomic<std::uint64_t> owner;  // thread_token() of the holder, 0 when free
    std::atomic<std::uint32_t> count;  // RLock depth
    std::atomic<std::uint32_t> flags;  // pending make_consistent / unrecoverable (synchronize.cpp)
};

// What Lock and RLock share; use them, not this.
//
// The fast paths are inline (an RLock re-entry and its matching release, the owner checks):
// they touch only the shared words, through pointers kept in the object. Taking and
// releasing the mutex itself, and every error, is out of line in synchronize.cpp.
class LockBase {
public:
    // Python's acquire(block=True, timeout=None): std::nullopt waits without limit (a negative
    // timeout is a ValueError, mp/duration.hpp); with block == false the timeout is ignored and
    // the call only tries. true: acquired.
    // acquire() waits without limit and is always true; the forms that may fail are
    // [[nodiscard]]: a caller who drops their result does not know whether it holds the lock.
    bool acquire() { return acquire(true, std::nullopt); }
    [[nodiscard]] bool acquire(bool block, std::optional<double> timeout = std::nullopt) {
        return acquire_as(block, timeout, nullptr);
    }
    template <class Rep, class Period>
    [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
        return acquire(true, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    // The same with std::error_code (see the top of this file): true with ec ==
    // std::errc::owner_dead where the forms above throw OwnerDeadError (the lock is held);
    // false with ec set where they throw another OSError; ec cleared otherwise.
    bool acquire(std::error_code& ec) { return acquire(true, std::nullopt, ec); }
    [[nodiscard]] bool acquire(bool block, std::optional<double> timeout, std::error_code& ec) {
        ec.clear();
        return acquire_as(block, timeout, &ec);
    }
    template <class Rep, class Period>
    [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout, std::error_code& ec) {
        return acquire(true, std::optional<double>(mp::detail::nonnegative_seconds(timeout)), ec);
    }
    void release() {
        const std::uint64_t me = thread_token();
        LockShared& w = *w_;
        if (recursive_ && w.owner.load(std::memory_order_relaxed) == me) {
            const std::uint32_t depth = w.count.load(std::memory_order_relaxed);
            if (depth > 1) {
                w.count.store(depth - 1, std::memory_order_relaxed);
                return;
            }
        }
        release_last(me);
    }

    // The std Lockable / TimedLockable names, so std::lock_guard and std::unique_lock work.
    void lock() { acquire(); }
    [[nodiscard]] bool try_lock() { return acquire(false); }
    void unlock() { release(); }
    template <class Rep, class Period>
    [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
        return acquire(timeout);
    }
    template <class Clock, class Duration>
    [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Duration> t) {
        return acquire(t - Clock::now());
    }

    // After OwnerDeadError, by the thread that holds the lock: the guarded data is repaired,
    // the lock is to work normally again. Does nothing when no owner died.
    void make_consistent();

    // Whether some thread (of any process) holds the lock (CPython 3.14's locked()). A look at
    // that moment: another thread may take or release it right after.
    bool locked() const { return w_->owner.load(std::memory_order_relaxed) != 0; }

    // Whether the calling thread holds the lock (CPython's RLock._is_owned()).
    bool is_owned() const { return w_->owner.load(std::memory_order_relaxed) == thread_token(); }

    // The codec hook: a lock can be a Process argument.
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

    std::shared_ptr<SyncState> state_() const { return s_; }

    // Copies share the lock. A move copies too, so a moved-from lock still works (it never
    // holds dangling pointers into a mapping it no longer keeps alive).
    LockBase(const LockBase&) = default;
    LockBase& operator=(const LockBase&) = default;

protected:
    explicit LockBase(bool recursive);
    const char* name() const noexcept { return recursive_ ? "mp::RLock" : "mp::Lock"; }
    std::shared_ptr<SyncState> s_;  // keeps the mapping (and the kernel objects) alive
    LockShared* w_ = nullptr;       // into s_'s mapping
    SharedMutex* m_ = nullptr;      // s_'s mutex
    bool recursive_;
    friend class mp::Condition;

private:
    void bind();  // sets w_ and m_ from s_
    // Every acquire: ec == nullptr throws the failures, else reports them there.
    bool acquire_as(bool block, const std::optional<double>& timeout, std::error_code* ec) {
        const std::uint64_t me = thread_token();
        LockShared& w = *w_;
        if (w.owner.load(std::memory_order_relaxed) == me) {
            if (!recursive_) return acquire_held(block, timeout);
            w.count.store(w.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            return true;
        }
        return acquire_free(me, !block ? 0.0 : !timeout ? -1.0 : *timeout >= 0 ? *timeout * 1000.0 : bad_timeout(*timeout),
                            ec);
    }
    // The calling thread is the owner of a Lock (not re-entrant): false or RuntimeError.
    MP_COLD bool acquire_held(bool block, const std::optional<double>& timeout);
    [[noreturn]] MP_COLD double bad_timeout(double timeout) const;  // the ValueError for a negative or NaN timeout
    // Takes the mutex (ms < 0: without limit; 0: only tries); ec as in acquire_as.
    bool acquire_free(std::uint64_t me, double ms, std::error_code* ec);
    // The rest of acquire_free: waiting, a dead owner, a broken lock (taken: the uncontended
    // attempt got the mutex).
    MP_NOINLINE bool acquire_slow(std::uint64_t me, double ms, bool taken, std::error_code* ec);
    // The release that frees the mutex, or the error of a thread that does not hold it.
    void release_last(std::uint64_t me);
    // The release that wakes a waiter.
    MP_NOINLINE void release_slow();
};
}  // namespace detail

// multiprocessing.Lock: not re-entrant.
class Lock : public detail::LockBase {
public:
    Lock() : LockBase(false) {}
};

// multiprocessing.RLock: the owning thread may acquire it again; it is free once released as
// many times as acquired.
class RLock : public detail::LockBase {
public:
    RLock() : LockBase(true) {}
};

}  // namespace mp
