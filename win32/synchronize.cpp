// win32/synchronize.cpp - process-shared synchronisation on Windows: an unnamed file mapping, a
// kernel mutex, and a kernel semaphore under a counted condition variable.
//
// The region is a pagefile-backed mapping without a name (nothing to squat, gone with its
// last handle), its handle non-inheritable; spawn passes it in the child's handle list. The
// mutex is a kernel mutex (CreateMutexW): the kernel records its owning thread and, when that
// thread ends while holding it, hands it to the next waiter with WAIT_ABANDONED. That is the
// owner-death report, and it needs no "consistent" step: the new owner simply owns it.
// Choice made here: every lock and unlock is a kernel call (about 1 us on Windows, 30-45 us
// under Wine). A user-space fast path (an owner word set by compare-and-swap in the region,
// falling back to an event only under contention, with owner death found by waiting on the
// owner's process handle) would avoid that, but it must get right pid reuse, a thread (not
// process) that exits holding the lock, and the hand-over between the word and the event;
// that design is not done yet, so the kernel mutex, whose owner tracking is exact, is used.
// The condition variable keeps its counters in the region (waiters, granted releases, a
// generation; the same scheme as on POSIX) and its waiters sleep on a kernel semaphore, in
// slices of 50 ms because a semaphore cannot check the generation atomically as a futex does.
// A waiter killed while waiting stays counted, so a notify may grant it a release it never
// takes; a later waiter then takes it (a spurious wake-up), never a hang.
// POSIX differs: a memfd region holds everything (robust pthread mutex, futex words), so only
// the region's fd crosses to a child; a dead owner is EOWNERDEAD, and the new owner must call
// pthread_mutex_consistent or the mutex is lost for good (ENOTRECOVERABLE). The uncontended
// lock there never enters the kernel.
#include "../common/sys/synchronize.hpp"

#include <windows.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <new>

#include "mp/errors.hpp"

namespace mp::sys {

static std::error_code last_error() noexcept { return {static_cast<int>(GetLastError()), win32_category()}; }

using Clock = std::chrono::steady_clock;

// WaitForSingleObject with a timeout that never ends early: Windows rounds waits to its timer
// tick, so a wait that returns WAIT_TIMEOUT before the deadline waits again for the rest.
static DWORD wait_until(HANDLE h, double timeout_ms) noexcept {
    if (timeout_ms < 0) return WaitForSingleObject(h, INFINITE);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double, std::milli>(timeout_ms));
    for (;;) {
        const double left = std::chrono::duration<double, std::milli>(deadline - Clock::now()).count();
        const double capped = std::ceil(left > 0 ? left : 0);
        const DWORD r = WaitForSingleObject(h, capped > 0x7ffffffe ? 0x7ffffffe : static_cast<DWORD>(capped));
        if (r != WAIT_TIMEOUT || Clock::now() >= deadline) return r;
    }
}

// ---- shared region ----------------------------------------------------------------------

std::error_code region_create(std::size_t size, SharedRegion& out) noexcept {
    const auto big = static_cast<unsigned long long>(size);
    HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, static_cast<DWORD>(big >> 32),
                                  static_cast<DWORD>(big & 0xffffffffu), nullptr);
    if (!h) return last_error();
    out.h.reset(h);
    return region_map(out, size);
}

std::error_code region_map(SharedRegion& r, std::size_t size) noexcept {
    void* p = MapViewOfFile(r.h.get(), FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
    if (!p) return last_error();
    r.addr = p;
    r.size = size;
    return {};
}

void region_unmap(SharedRegion& r) noexcept {
    if (r.addr) UnmapViewOfFile(r.addr);
    r.addr = nullptr;
}

// ---- mutex ------------------------------------------------------------------------------

std::error_code mutex_init(Mutex& m) noexcept {
    HANDLE h = CreateMutexW(nullptr, FALSE, nullptr);
    if (!h) return last_error();
    m.kernel.reset(h);
    return {};
}

std::error_code mutex_lock(Mutex& m, double timeout_ms, LockStatus& st) noexcept {
    const DWORD r = timeout_ms == 0 ? WaitForSingleObject(m.kernel.get(), 0) : wait_until(m.kernel.get(), timeout_ms);
    switch (r) {
    case WAIT_OBJECT_0: st = LockStatus::acquired; return {};
    case WAIT_ABANDONED: st = LockStatus::owner_dead; return {};
    case WAIT_TIMEOUT: st = LockStatus::timed_out; return {};
    default: st = LockStatus::timed_out; return last_error();
    }
}

std::error_code mutex_unlock(Mutex& m) noexcept {
    if (!ReleaseMutex(m.kernel.get())) return last_error();
    return {};
}

// mutex_consistent: nothing to do on Windows; an abandoned mutex is owned by whoever got
// WAIT_ABANDONED and works normally from then on.
std::error_code mutex_consistent(Mutex&) noexcept { return {}; }

// ---- condition variable -----------------------------------------------------------------

namespace {
// The counting scheme ("generation + releases", after Schmidt and Pyarali): a notify grants
// releases and starts a new generation; only waiters that began before it (gen != my_gen)
// may take a release, so a waiter arriving later cannot steal a wake-up from an earlier one.
struct CondMem {
    std::atomic<std::uint32_t> gen;       // bumped by each notify that grants
    std::atomic<std::uint32_t> waiters;   // waiters not yet gone (changed under the mutex)
    std::atomic<std::uint32_t> releases;  // granted, not yet taken (changed under the mutex)
};
static_assert(sizeof(CondMem) <= cond_bytes, "cond slot too small");

// A semaphore count cannot say "only if gen is still what I saw" as a futex can, so a waiter
// between releasing the mutex and sleeping may find its wake-up eaten by another waiter's
// re-check loop. Sleeps are therefore cut into slices, after which a waiter looks again:
// at worst a wake-up comes this late, never not at all.
constexpr double kSliceMs = 50;
}  // namespace

std::error_code cond_init(Cond& c) noexcept {
    new (c.mem) CondMem{};
    HANDLE h = CreateSemaphoreW(nullptr, 0, 0x7fffffff, nullptr);
    if (!h) return last_error();
    c.sem.reset(h);
    return {};
}

std::error_code cond_wait(Cond& c, Mutex& m, double timeout_ms, LockStatus& st) noexcept {
    auto& cm = *static_cast<CondMem*>(c.mem);
    cm.waiters.fetch_add(1);
    const std::uint32_t my_gen = cm.gen.load();
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double, std::milli>(timeout_ms < 0 ? 0 : timeout_ms));
    for (;;) {
        if (auto ec = mutex_unlock(m)) {
            cm.waiters.fetch_sub(1);
            return ec;
        }
        double slice = kSliceMs;
        if (timeout_ms >= 0) {
            const double left = std::chrono::duration<double, std::milli>(deadline - Clock::now()).count();
            slice = left < slice ? (left > 0 ? left : 0) : slice;
        }
        const DWORD r = WaitForSingleObject(c.sem.get(), static_cast<DWORD>(std::ceil(slice)));
        const DWORD wait_error = r == WAIT_FAILED ? GetLastError() : 0;
        LockStatus relock = LockStatus::acquired;
        if (auto ec = mutex_lock(m, -1, relock)) return ec;
        if (wait_error) {
            cm.waiters.fetch_sub(1);
            return {static_cast<int>(wait_error), win32_category()};
        }
        if (cm.releases.load() > 0 && cm.gen.load() != my_gen) {
            cm.releases.fetch_sub(1);
            cm.waiters.fetch_sub(1);
            st = relock;
            return {};
        }
        if (relock == LockStatus::owner_dead || (timeout_ms >= 0 && Clock::now() >= deadline)) {
            cm.waiters.fetch_sub(1);
            st = relock == LockStatus::owner_dead ? LockStatus::owner_dead : LockStatus::timed_out;
            return {};
        }
    }
}

std::error_code cond_notify(Cond& c, unsigned n) noexcept {
    auto& cm = *static_cast<CondMem*>(c.mem);
    const std::uint32_t w = cm.waiters.load(), r = cm.releases.load();
    const std::uint32_t avail = w > r ? w - r : 0;
    const std::uint32_t k = n < avail ? n : avail;
    if (k == 0) return {};
    cm.releases.fetch_add(k);
    cm.gen.fetch_add(1);
    // Every waiter wakes and looks: the ones that may take a release do, the rest sleep again
    // (and the counts they leave behind are used up by those re-checks).
    if (!ReleaseSemaphore(c.sem.get(), static_cast<LONG>(w > 0x7fffffffu ? 0x7fffffffu : w), nullptr))
        return last_error();
    return {};
}

// ---- identity -------------------------------------------------------------------------

std::uint64_t thread_token() noexcept {
    // A thread id is unique among live threads; the counter tells apart a dead thread's reused
    // id. Windows has no fork, so a thread_local never crosses into another process.
    static std::atomic<std::uint32_t> counter{0};
    thread_local std::uint64_t token =
        (static_cast<std::uint64_t>(GetCurrentThreadId()) << 32) |
        (counter.fetch_add(1) ^ (static_cast<std::uint32_t>(GetCurrentProcessId()) * 2654435761u)) | 1u;
    return token;
}

}  // namespace mp::sys
