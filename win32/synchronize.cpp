// win32/synchronize.cpp - process-shared synchronisation on Windows: an unnamed file mapping, a
// mutex that is an owner word with an event behind it, and a kernel semaphore under a counted
// condition variable.
//
// The region is a pagefile-backed mapping without a name (nothing to squat, gone with its
// last handle), its handle non-inheritable; spawn passes it in the child's handle list.
// The mutex keeps its uncontended path in user space: an owner word in the region, taken by
// compare-and-swap from 0 to (pid << 32 | thread id), with no kernel call (a kernel mutex
// costs about 1 us per lock on Windows and 30-45 us under Wine). Only under contention does a
// waiter set the word's waiters bit and sleep on an auto-reset event, which a release that
// finds the bit set signals. Owner death, which a kernel mutex would report as WAIT_ABANDONED,
// is found by the waiter itself: it opens the owner's thread (OpenThread(SYNCHRONIZE)) and
// waits on {event, thread}. If that thread ends, or no longer exists, or its id now belongs to
// a thread of another process (ids are reused quickly), the owner died holding the lock: the
// waiter swaps the exact word it saw for its own and reports owner_dead. A thread, not only a
// process, dying with the lock counts, as it does for robust mutexes on POSIX. Not seen: an
// owner thread that died and whose id its own process gave to a new thread before anyone
// looked (ids are not reused that fast in practice). Nothing needs marking "consistent".
// The condition variable keeps its counters in the region (waiters, granted releases, a
// generation; the same scheme as on POSIX) and its waiters sleep on a kernel semaphore, in
// slices of 50 ms because a semaphore cannot check the generation atomically as a futex does.
// A waiter killed while waiting stays counted, so a notify may grant it a release it never
// takes; a later waiter then takes it (a spurious wake-up), never a hang.
// POSIX builds the same owner-word mutex, but its waiters sleep on the word itself (futex) and
// cannot wait for a thread's death: they look at the owner under /proc when it has held the
// word through a slice (1 ms, then 10 ms). Everything lives in a memfd region (owner words,
// futex words), so only the region's fd crosses to a child. Both sides leave the "repair,
// then make_consistent" protocol of a robust mutex to common/synchronize.cpp.
#include "../common/sys/synchronize.hpp"

#include <windows.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <new>

#include "mp/errors.hpp"
#include "mp/lock.hpp"

// The per-thread cache mp/lock.hpp reads inline; this file fills it.
__thread std::uint64_t mp::detail::thread_token_cache = 0;

namespace mp::sys {

static std::error_code last_error() noexcept { return {static_cast<int>(GetLastError()), win32_category()}; }

using Clock = std::chrono::steady_clock;

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

namespace {
// The owner word: 0 when free, else the holder's (pid << 32 | thread id), with bit 0 set when
// a waiter may be asleep on the event (thread ids are multiples of 4, so bit 0 is free).
struct MutexMem {
    std::atomic<std::uint64_t> word;
};
static_assert(sizeof(MutexMem) <= mutex_bytes, "mutex slot too small");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the owner word must be one interlocked word");
constexpr std::uint64_t kWaiters = 1;

std::uint64_t me() noexcept {
    return (static_cast<std::uint64_t>(GetCurrentProcessId()) << 32) | GetCurrentThreadId();
}

// Whether the thread named by an owner value has ended, opening it as `th` (left open for the
// caller to wait on when it is alive). A thread id that now belongs to another process's
// thread means the owner is gone. The rare case this cannot see: the owner thread died and
// its process gave its id to a new thread of its own before anyone looked.
bool owner_gone(std::uint64_t owner, HANDLE& th) noexcept {
    th = OpenThread(SYNCHRONIZE | THREAD_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(owner & 0xfffffffcu));
    if (!th) return GetLastError() == ERROR_INVALID_PARAMETER;  // no such thread
    if (GetProcessIdOfThread(th) != static_cast<DWORD>(owner >> 32)) {
        CloseHandle(th);
        th = nullptr;
        return true;
    }
    return false;
}
}  // namespace

std::error_code mutex_init(Mutex& m) noexcept {
    new (m.mem) MutexMem{};
    HANDLE h = CreateEventW(nullptr, FALSE, FALSE, nullptr);  // auto-reset: one wake per SetEvent
    if (!h) return last_error();
    m.kernel.reset(h);
    return {};
}

std::error_code mutex_lock(Mutex& m, double timeout_ms, LockStatus& st) noexcept {
    auto& w = static_cast<MutexMem*>(m.mem)->word;
    const std::uint64_t self = me();
    std::uint64_t s = 0;
    if (w.compare_exchange_strong(s, self)) {  // the uncontended path: no kernel call
        st = LockStatus::acquired;
        return {};
    }
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double, std::milli>(timeout_ms < 0 ? 0 : timeout_ms));
    for (;;) {
        s = w.load();
        if ((s & ~kWaiters) == 0) {
            // Taken from the slow path, the word keeps the waiters bit: others may still sleep.
            if (w.compare_exchange_strong(s, self | kWaiters)) {
                st = LockStatus::acquired;
                return {};
            }
            continue;
        }
        if (!(s & kWaiters) && !w.compare_exchange_strong(s, s | kWaiters)) continue;
        s |= kWaiters;
        HANDLE th = nullptr;
        bool dead = owner_gone(s & ~kWaiters, th);
        if (!dead) {
            double left = 100;  // without the owner's handle (access denied), look again
            if (timeout_ms >= 0) {
                const double l = std::chrono::duration<double, std::milli>(deadline - Clock::now()).count();
                left = l > 0 ? l : 0;
            } else if (th) {
                left = -1;
            }
            HANDLE hs[2] = {m.kernel.get(), th};
            const DWORD r = WaitForMultipleObjects(th ? 2 : 1, hs, FALSE,
                                                   left < 0 ? INFINITE : wait_call_ms(left));
            const DWORD err = r == WAIT_FAILED ? GetLastError() : 0;
            if (err || r != WAIT_OBJECT_0 + 1) {
                if (th) CloseHandle(th);
                th = nullptr;
            }
            if (err) {
                st = LockStatus::timed_out;
                return {static_cast<int>(err), win32_category()};
            }
            if (r == WAIT_OBJECT_0 + 1) {
                dead = true;
            } else if (r == WAIT_TIMEOUT && timeout_ms >= 0 && Clock::now() >= deadline) {
                // The word still carries the waiters bit on whoever holds it: nothing is lost.
                st = LockStatus::timed_out;
                return {};
            }
        }
        // Only the exact word seen can be taken over: a dead thread never changes it again.
        // The dead thread's handle stays open until then, so that its id cannot be given to a
        // new thread (whose word would look the same) before the swap.
        const bool taken = dead && w.compare_exchange_strong(s, self | kWaiters);
        if (th) CloseHandle(th);
        if (taken) {
            st = LockStatus::owner_dead;
            return {};
        }
        // A wake-up taken from the event always leads back to the top, never out: leaving
        // with it would strand a sleeper (the word's waiters bit makes the next release wake).
    }
}

std::error_code mutex_unlock(Mutex& m) noexcept {
    auto& w = static_cast<MutexMem*>(m.mem)->word;
    const std::uint64_t self = me();
    std::uint64_t s = w.load();
    do {
        if ((s & ~kWaiters) != self) return {ERROR_NOT_OWNER, win32_category()};
    } while (!w.compare_exchange_weak(s, 0));  // only the caller's own word is given back
    if ((s & kWaiters) && !SetEvent(m.kernel.get())) return last_error();
    return {};
}

bool mutex_try_uncontended(Mutex& m) noexcept {
    std::uint64_t s = 0;
    return static_cast<MutexMem*>(m.mem)->word.compare_exchange_strong(s, me());
}

bool mutex_unlock_uncontended(Mutex& m) noexcept {
    std::uint64_t s = me();
    return static_cast<MutexMem*>(m.mem)->word.compare_exchange_strong(s, 0);  // fails when the waiters bit is set
}

bool mutex_held_by_caller(Mutex& m) noexcept {
    return (static_cast<MutexMem*>(m.mem)->word.load(std::memory_order_relaxed) & ~kWaiters) == me();
}

// mutex_consistent: nothing to do on Windows; the owner word is simply the new owner's, and
// the lock works normally from then on.
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
    // id. Windows has no fork, so the cache never crosses into another process.
    static std::atomic<std::uint32_t> counter{0};
    std::uint64_t& c = mp::detail::thread_token_cache;
    if (c == 0)
        c = (static_cast<std::uint64_t>(GetCurrentThreadId()) << 32) |
            (counter.fetch_add(1) ^ (static_cast<std::uint32_t>(GetCurrentProcessId()) * 2654435761u)) | 1u;
    return c;
}

}  // namespace mp::sys
