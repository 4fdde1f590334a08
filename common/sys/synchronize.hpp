// common/sys/synchronize.hpp - the internal contract for process-shared synchronisation: a
// shared memory region, a mutex that reports a dead owner, and a condition variable that a
// dead waiter cannot jam.
//
// posix/synchronize.cpp and win32/synchronize.cpp implement these functions, in this order.
// Everything is noexcept and reports std::error_code; common/synchronize.cpp builds Lock,
// RLock, Semaphore, Event, Condition, Barrier, Value and Array on these three pieces (as
// CPython's threading module builds them on a lock) and turns failures into exceptions.
//
// The memory of a primitive lives in a SharedRegion (common/sync_state.hpp lays it out); a
// Mutex or Cond is a slot of mutex_bytes / cond_bytes in it, plus, where the OS needs one, a
// kernel object that waiters sleep on under contention (Windows: an event or a semaphore).
// Whatever a process needs to rebuild the object is the region's handle and those kernel
// handles. Nothing in a region may be a pointer: a view's address differs per process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <system_error>

#include "handle.hpp"
#include "mp/portability.hpp"

// The functions are MP_INTERNAL (hidden on ELF): common/synchronize.cpp then calls them
// directly, not through the PLT (they are on every lock's path, and nothing outside libmp
// uses them).
#define MP_SYS_SYNC_API MP_INTERNAL

namespace mp::sys {

// ---- shared region ----------------------------------------------------------------------

// Zero-filled memory shared by every process that maps it (POSIX: a memfd; Windows: a
// pagefile-backed mapping without a name). The handle is close-on-exec / non-inheritable.
struct SharedRegion {
    Handle h;
    void* addr = nullptr;
    std::size_t size = 0;
};

MP_SYS_SYNC_API std::error_code region_create(std::size_t size, SharedRegion& out) noexcept;

// Maps r.h (received from a parent) read-write; size is what the creator asked for.
MP_SYS_SYNC_API std::error_code region_map(SharedRegion& r, std::size_t size) noexcept;

MP_SYS_SYNC_API void region_unmap(SharedRegion& r) noexcept;

// ---- mutex ------------------------------------------------------------------------------

constexpr std::size_t mutex_bytes = 64;

// The same two fields on both sides: the slot, and the kernel object waiters sleep on where
// the OS needs one beside the memory (Windows: an event; POSIX: none, the futex is the slot
// itself, and `kernel` stays empty). Whatever has a kernel object passes it to a child too.
struct Mutex {
    void* mem = nullptr;  // mutex_bytes inside a region
    Handle kernel;
};

enum class LockStatus {
    acquired,    // the caller holds the mutex
    owner_dead,  // the caller holds it; its previous owner died holding it
    timed_out,   // the caller does not hold it
};

// Sets up a new mutex in m.mem (and on Windows its event in m.kernel).
MP_SYS_SYNC_API std::error_code mutex_init(Mutex& m) noexcept;

// Waits until the deadline (Deadline::now(): just tries).
// Neither side has an "unrecoverable" state of its own (released without mutex_consistent
// after owner_dead): common/ tracks it.
// The mutex does not detect that the caller already holds it: common/ checks that first.
MP_SYS_SYNC_API std::error_code mutex_lock(Mutex& m, const Deadline& deadline, LockStatus& st) noexcept;

MP_SYS_SYNC_API std::error_code mutex_unlock(Mutex& m) noexcept;

// The uncontended paths of mutex_lock and mutex_unlock alone, which cannot fail: one atomic
// instruction each, no system call and no error_code to build (Lock and RLock try these
// first, and they are most of what lock.uncontended measures). mutex_try_uncontended takes a
// free mutex (true) or does nothing (false: it is held; call mutex_lock). The caller holding
// m, mutex_unlock_uncontended releases it when no waiter may be asleep (true), or does
// nothing (false: call mutex_unlock, which wakes a waiter or reports the error).
MP_SYS_SYNC_API bool mutex_try_uncontended(Mutex& m) noexcept;
MP_SYS_SYNC_API bool mutex_unlock_uncontended(Mutex& m) noexcept;

// Whether the calling thread holds m (its own identity is in the owner word).
MP_SYS_SYNC_API bool mutex_held_by_caller(Mutex& m) noexcept;

// How many threads are in mutex_lock's sleep for m right now (counted just before the
// sleeping call, uncounted after it). Tests use it to line waiters up in a known order: the
// mutex serves them in the order they fell asleep.
std::uint32_t mutex_sleepers(Mutex& m) noexcept;  // not hidden: tests call it

// After owner_dead: marks the mutex usable again. Nothing to do on either side today (the
// waiter that found the owner dead simply owns the word); a robust pthread mutex would call
// pthread_mutex_consistent here.
MP_SYS_SYNC_API std::error_code mutex_consistent(Mutex& m) noexcept;

// ---- condition variable -----------------------------------------------------------------

constexpr std::size_t cond_bytes = 16;

// As Mutex: the counters in the region, and (Windows) the semaphore the waiters sleep on.
struct Cond {
    void* mem = nullptr;  // cond_bytes inside a region: waiter count and pending wake-ups
    Handle kernel;
};

MP_SYS_SYNC_API std::error_code cond_init(Cond& c) noexcept;

// Called holding m: releases m, sleeps until notified or the deadline passed, then takes m
// back (without limit). On an error it returns without m. st: acquired (notified, or a spurious wake-up),
// timed_out (m is held again), owner_dead (m is held again; its last owner died holding it).
MP_SYS_SYNC_API std::error_code cond_wait(Cond& c, Mutex& m, const Deadline& deadline, LockStatus& st) noexcept;

// Called holding the mutex the waiters use: wakes at most n of them (n = ~0u: all).
MP_SYS_SYNC_API std::error_code cond_notify(Cond& c, unsigned n) noexcept;

// ---- identity -------------------------------------------------------------------------

// A number naming the calling thread of the calling process, never 0, distinct from every
// other live thread on the machine (and from this thread's own number before a fork).
// Computed once per thread and cached in mp::detail::thread_token_cache, which the platform
// file defines and mp/lock.hpp reads inline; on POSIX a fork child's cache is cleared so that
// it computes its own.
MP_SYS_SYNC_API std::uint64_t thread_token() noexcept;

}  // namespace mp::sys

namespace mp::detail {
// The same variable mp/lock.hpp declares (one entity, declared in both places so that the
// platform files need no public header).
extern MP_FAST_TLS std::uint64_t thread_token_cache;
}  // namespace mp::detail
