// win32/ring.cpp - a queue's shared ring on Windows: an unnamed pagefile-backed file mapping for
// the data and counters, three mutexes and three semaphores for the locking and waiting.
//
// Windows synchronisation objects are kernel objects reached by HANDLE; they cannot be placed
// in shared memory as POSIX pthread objects can. So a ring is seven handles, all unnamed and
// non-inheritable: the mapping (CreateFileMappingW on the pagefile), a mutex per RingLock and a
// semaphore per RingCond; a spawned child receives all seven through the handle list. A mutex
// whose owner dies is released by the kernel and the next wait returns WAIT_ABANDONED: the new
// owner repairs the state, as POSIX EOWNERDEAD. A condition variable is built from the ring
// mutex, a semaphore and two counters kept in the mapping under that mutex: a waiter counts
// itself, releases the mutex and waits on the semaphore; notify_all releases one token per
// waiter not already owed one. A token left behind by a waiter that timed out (or died) costs
// one spurious wakeup, never a lost one, and at most one token per counted waiter is ever
// outstanding. Every lock, unlock and wakeup is a kernel call (30-45 us each under Wine, well
// under 1 us on Windows).
// POSIX differs: robust pshared mutexes live inside the mapping and a wait is a futex on a
// counter there, so a ring is one fd and an uncontended put/get makes no system call at all.
#include "../common/sys/ring.hpp"

#include <windows.h>

#include "mp/errors.hpp"

namespace mp::sys {

namespace {

std::error_code last_error() noexcept { return {static_cast<int>(GetLastError()), win32_category()}; }

constexpr std::size_t kDataOffset = (sizeof(RingState) + 63) & ~std::size_t{63};

DWORD to_ms(const RingDeadline& deadline) noexcept {
    if (!deadline) return INFINITE;
    const auto left = *deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) return 0;
    // Rounded up, so that a wait never ends before its deadline.
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left + std::chrono::microseconds(999)).count();
    return ms >= 0xfffffffeLL ? 0xfffffffeu : static_cast<DWORD>(ms);
}

std::error_code map_view(Ring& out) noexcept {
    void* p = MapViewOfFile(out.mapping.get(), FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
    if (!p) return last_error();
    MEMORY_BASIC_INFORMATION info{};
    if (VirtualQuery(p, &info, sizeof info) == 0) {
        const std::error_code ec = last_error();
        UnmapViewOfFile(p);
        return ec;
    }
    out.view = p;
    out.view_size = info.RegionSize;
    out.state = static_cast<RingState*>(p);
    out.data = static_cast<unsigned char*>(p) + kDataOffset;
    return {};
}

// Takes the ring mutex back after a wait on a semaphore.
std::error_code relock(Ring& r, bool& owner_died) noexcept {
    const DWORD w = WaitForSingleObject(r.locks[0].get(), INFINITE);
    if (w == WAIT_ABANDONED) owner_died = true;
    else if (w != WAIT_OBJECT_0) return last_error();
    return {};
}

}  // namespace

Ring::~Ring() {
    if (view) UnmapViewOfFile(view);
}

std::error_code ring_create(std::size_t capacity, Ring& out) noexcept {
    const auto size = static_cast<unsigned long long>(kDataOffset + capacity);
    HANDLE m = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, static_cast<DWORD>(size >> 32),
                                  static_cast<DWORD>(size & 0xffffffffu), nullptr);
    if (!m) return last_error();
    out.mapping.reset(m);
    for (int i = 0; i < 3; ++i) {
        HANDLE l = CreateMutexW(nullptr, FALSE, nullptr);
        if (!l) return last_error();
        out.locks[i].reset(l);
        HANDLE s = CreateSemaphoreW(nullptr, 0, 0x7fffffff, nullptr);
        if (!s) return last_error();
        out.conds[i].reset(s);
    }
    if (auto ec = map_view(out)) return ec;
    out.state->capacity = capacity;  // a new pagefile-backed mapping is zero-filled
    return {};
}

void ring_handles(const Ring& r, std::vector<native_handle>& out) noexcept {
    out.push_back(r.mapping.get());
    for (const auto& l : r.locks) out.push_back(l.get());
    for (const auto& c : r.conds) out.push_back(c.get());
}

std::error_code ring_open(std::vector<Handle>& handles, Ring& out) noexcept {
    if (handles.size() != 7) return {ERROR_INVALID_PARAMETER, win32_category()};
    out.mapping = std::move(handles[0]);
    for (int i = 0; i < 3; ++i) {
        out.locks[i] = std::move(handles[1 + i]);
        out.conds[i] = std::move(handles[4 + i]);
    }
    if (auto ec = map_view(out)) return ec;
    // The view is rounded up to a page: the data area must fit in it.
    if (out.view_size < kDataOffset || out.state->capacity == 0 || out.state->capacity > out.view_size - kDataOffset)
        return {ERROR_INVALID_DATA, win32_category()};
    return {};
}

std::error_code ring_lock(Ring& r, RingLock which, const RingDeadline& deadline, bool& acquired,
                          bool& owner_died) noexcept {
    acquired = owner_died = false;
    const DWORD w = WaitForSingleObject(r.locks[static_cast<int>(which)].get(), to_ms(deadline));
    if (w == WAIT_TIMEOUT) return {};
    if (w == WAIT_ABANDONED) owner_died = true;
    else if (w != WAIT_OBJECT_0) return last_error();
    acquired = true;
    return {};
}

std::error_code ring_unlock(Ring& r, RingLock which) noexcept {
    if (!ReleaseMutex(r.locks[static_cast<int>(which)].get())) return last_error();
    return {};
}

std::error_code ring_wait(Ring& r, RingCond cond, const RingDeadline& deadline, bool& owner_died) noexcept {
    const int i = static_cast<int>(cond);
    owner_died = false;
    ++r.state->waiters[i];
    if (!ReleaseMutex(r.locks[0].get())) {
        --r.state->waiters[i];
        return last_error();
    }
    const DWORD w = WaitForSingleObject(r.conds[i].get(), to_ms(deadline));
    const DWORD wait_error = w == WAIT_FAILED ? GetLastError() : 0;
    if (auto ec = relock(r, owner_died)) return ec;
    RingState& s = *r.state;
    --s.waiters[i];
    if (w == WAIT_OBJECT_0) {
        if (s.pending[i]) --s.pending[i];
    } else if (s.pending[i] > s.waiters[i]) {
        // A token was released for this waiter after it timed out: take it back, so that it
        // does not wake a later waiter for nothing.
        if (WaitForSingleObject(r.conds[i].get(), 0) == WAIT_OBJECT_0) --s.pending[i];
    }
    if (wait_error) {
        ReleaseMutex(r.locks[0].get());  // an error means "not held", as on POSIX
        return {static_cast<int>(wait_error), win32_category()};
    }
    return {};
}

std::error_code ring_notify_all(Ring& r, RingCond cond) noexcept {
    const int i = static_cast<int>(cond);
    RingState& s = *r.state;
    if (s.waiters[i] <= s.pending[i]) return {};
    const std::uint32_t n = s.waiters[i] - s.pending[i];
    if (!ReleaseSemaphore(r.conds[i].get(), static_cast<LONG>(n), nullptr)) return last_error();
    s.pending[i] += n;
    return {};
}

}  // namespace mp::sys
