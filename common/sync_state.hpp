// common/sync_state.hpp - the shared memory every process-shared object of mp is built in:
// Lock, RLock, Semaphore, Event, Condition, Barrier, Value/Array (common/synchronize.cpp) and
// the Queue's ring (common/queues.cpp).
//
// One SharedRegion (sys/synchronize.hpp) laid out as
//   [header 64 B: magic, kind, mutex count, cond count, payload size][mutex slots][cond slots][payload]
// with the crash-safe mutexes and condition variables of the platform layer in the slots. It
// passes to a spawned child as the region's handle and size and, where the OS keeps a kernel
// object beside a slot (Windows: an event per mutex, a semaphore per cond), that handle too.
// Nothing in a region is a pointer: each process maps it at its own address.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "mp/codec.hpp"
#include "sys/synchronize.hpp"

namespace mp::detail {

enum SyncKind : std::uint8_t { kLock = 1, kRLock, kSemaphore, kEvent, kCondition, kBarrier, kBlock, kQueue };

// mp/lock.hpp names the mutex only as this, so that no sys:: name is in a public header.
struct SharedMutex : sys::Mutex {};

struct SyncState {
    sys::SharedRegion region;
    std::vector<SharedMutex> mutexes;
    std::vector<sys::Cond> conds;
    void* payload = nullptr;
    std::uint64_t payload_size = 0;
    std::uint8_t kind = 0;
    SyncState() = default;
    SyncState(const SyncState&) = delete;
    SyncState& operator=(const SyncState&) = delete;
    ~SyncState() { sys::region_unmap(region); }

    template <class P>
    P& data() const {
        return *static_cast<P*>(payload);
    }
};

// A new zero-filled object of `kind` with its mutexes and conds set up; OSError on failure.
std::shared_ptr<SyncState> create_sync_state(SyncKind kind, std::size_t n_mutex, std::size_t n_cond, std::size_t payload);

// The codec halves: what a child needs to map the same object, and the object rebuilt from
// it (DecodeError when what arrived is not an object of `kind`).
void encode_sync_state(const std::shared_ptr<SyncState>& s, Encoder& e);
std::shared_ptr<SyncState> decode_sync_state(Decoder& d, SyncKind kind);

const char* sync_kind_name(std::uint8_t kind);

}  // namespace mp::detail
