// common/sys/ring.hpp - the internal contract for a queue's shared storage and its waiting: one
// anonymous shared mapping holding a byte ring, three crash-safe locks and three condition
// variables that work between processes.
//
// posix/ring.cpp and win32/ring.cpp implement these functions, in this order. The ring's byte
// layout and the record format belong to common/queues.cpp, which sees the mapping through
// RingState (below) and the data area; the platform files own only the lock and wait objects
// (a control block at the start of the mapping on POSIX, kernel objects on Windows). All of it
// is noexcept and reports std::error_code.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <system_error>
#include <vector>

#include "handle.hpp"

namespace mp::sys {

// ring: guards RingState and the data; held for a copy, never across a wait.
// writer / reader: held by one producer (consumer) for the whole of an item that travels in
// several chunks, so that two big items never interleave.
enum class RingLock : int { ring = 0, writer = 1, reader = 2 };
enum class RingCond : int { not_empty = 0, not_full = 1, all_done = 2 };

// The positions and counts that one step of common/queues.cpp changes together (see
// RingState::redo).
struct RingUpdate {
    std::uint64_t head, tail, items, unfinished, w_start;
    std::uint32_t w_partial, r_partial;
};

// The portable part of the mapping, read and written only with the ring lock held. Byte
// positions count up for ever (head <= tail, tail - head <= capacity); the offset in the data
// area is position % capacity. Nothing here is a pointer: each process maps the view at its
// own address.
struct RingState {
    std::uint64_t capacity;     // bytes of data area
    std::uint64_t head;         // next byte a consumer reads
    std::uint64_t tail;         // next byte a producer writes (published last)
    std::uint64_t items;        // items whose first chunk is in the ring and not yet taken
    std::uint64_t unfinished;   // JoinableQueue: items put and not yet task_done
    std::int64_t maxsize;       // <= 0: no item limit (the ring's bytes still limit)
    std::uint64_t w_start;      // where the item being written in chunks began
    std::uint32_t w_partial;    // a producer has written the first chunk of an item, not the last
    std::uint32_t r_partial;    // a consumer has taken the first chunk of an item, not the last
    std::uint32_t waiters[3];   // processes waiting on each RingCond (no waiter: no wakeup call)
    std::uint32_t pending[3];   // Windows: wakeup tokens released and not yet taken
    // A redo record: a step that changes several of the fields above writes their new values
    // here, raises redo_valid, applies them, and lowers it. A process killed between any two
    // of those stores leaves either the old state (flag down) or an update the next holder of
    // the ring lock applies again (flag up): the counts never drift.
    std::uint32_t redo_valid;
    RingUpdate redo;
};

// One process's view of a ring. Destroying it unmaps the view and closes the handles.
struct Ring {
    Ring() = default;
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring();

    Handle mapping;  // memfd (POSIX) / pagefile-backed file mapping (Windows)
#if defined(_WIN32)
    Handle locks[3];  // mutexes, by RingLock
    Handle conds[3];  // semaphores, by RingCond
#endif
    void* view = nullptr;
    std::size_t view_size = 0;
    RingState* state = nullptr;
    unsigned char* data = nullptr;
};

using RingDeadline = std::optional<std::chrono::steady_clock::time_point>;  // empty: no limit

// Creates a ring with `capacity` bytes of data area, the state zeroed and capacity set.
std::error_code ring_create(std::size_t capacity, Ring& out) noexcept;

// The handles a child needs to open the same ring, in the order ring_open takes them back.
void ring_handles(const Ring& r, std::vector<native_handle>& out) noexcept;

// Opens a ring from handles received from a parent (taking ownership of them).
std::error_code ring_open(std::vector<Handle>& handles, Ring& out) noexcept;

// Takes a lock, waiting at most until the deadline (acquired = false on timeout; a deadline in
// the past is a try). owner_died: the previous owner died holding it; the lock is now held and
// already marked consistent, and the caller repairs what that owner left half done.
std::error_code ring_lock(Ring& r, RingLock which, const RingDeadline& deadline, bool& acquired,
                          bool& owner_died) noexcept;

std::error_code ring_unlock(Ring& r, RingLock which) noexcept;

// With the ring lock held: waits for a notify_all on `cond` or the deadline, then takes the ring
// lock back (owner_died as for ring_lock). It may return early (spurious wakeups): callers loop
// on their condition. Counts itself in RingState::waiters while it waits.
std::error_code ring_wait(Ring& r, RingCond cond, const RingDeadline& deadline, bool& owner_died) noexcept;

// With the ring lock held: wakes every process waiting on `cond`; nothing when none waits.
std::error_code ring_notify_all(Ring& r, RingCond cond) noexcept;

}  // namespace mp::sys
