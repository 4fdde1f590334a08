// win32/synchronize.cpp - process-shared synchronisation on Windows: an unnamed file mapping, a
// mutex that is an owner word with an event behind it, and a kernel semaphore under a counted
// condition variable.
//
// The region is a pagefile-backed mapping without a name (nothing to squat, gone with its
// last handle), its handle non-inheritable; spawn passes it in the child's handle list.
// The mutex keeps its uncontended path in user space: an owner word in the region, taken by
// compare-and-swap from 0 to (pid << 32 | thread id), with no kernel call (a kernel mutex
// costs about 1 us per lock on Windows and 30-45 us under Wine). Under contention a waiter
// counts itself in the region, sets the word's waiters bit and sleeps on an auto-reset event;
// a release that finds waiters does not free the word but marks it "handed over" and sets the
// event, which wakes exactly one sleeper (the kernel wakes them in the order they began to
// wait), and only a thread woken by the event may take a handed-over word: nobody can barge
// in between, so waiters are served in arrival order. Owner death, which a kernel mutex would
// report as WAIT_ABANDONED, is found by the waiter itself: it opens the owner's thread
// (OpenThread(SYNCHRONIZE)) and waits on {event, thread}. If that thread ends, or no longer
// exists, or its id now belongs to a thread of another process (ids are reused quickly), the
// owner died holding the lock: the waiter swaps the exact word it saw for its own and reports
// owner_dead. A thread, not only a process, dying with the lock counts. A woken waiter that
// dies before taking a handed-over word would strand it; a waiter that finds the word handed
// over and the event unset for a whole slice (50 ms) takes it instead. Not seen: an owner
// thread that died and whose id its own process gave to a new thread before anyone looked.
// Nothing needs marking "consistent".
// The condition variable keeps its counters in the region (waiters, granted releases, a
// generation; the same scheme as on POSIX) and its waiters sleep on a kernel semaphore, in
// slices of 50 ms because a semaphore cannot check the generation atomically as a futex does.
// A waiter killed while waiting stays counted, so a notify may grant it a release it never
// takes; a later waiter then takes it (a spurious wake-up), never a hang.
// POSIX differs: its mutex is a priority-inheritance futex, for which the kernel itself keeps
// the queue of waiters, hands over, and reports a dead owner (ESRCH, FUTEX_OWNER_DIED); all of
// it lives in a memfd region, so only the region's fd crosses to a child. Both sides leave the
// "repair, then make_consistent" protocol of a robust mutex to common/synchronize.cpp.
#include "../common/sys/synchronize.hpp"

#include <windows.h>

#include <atomic>
#include <chrono>
#include <new>

#include "../common/sys/error.hpp"

// The per-thread cache mp/lock.hpp reads inline; this file fills it.
MP_FAST_TLS std::uint64_t mp::detail::thread_token_cache = 0;

namespace mp::sys {


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
// The owner word: 0 when free, the holder's (pid << 32 | thread id), or kHandedOver; bit 0
// (kWaiters) is set while a waiter may be asleep on the event. Thread ids are multiples of 4,
// so bits 0 and 1 are free, and no thread's word is kHandedOver (its thread id would be 0).
// `waiting` counts the threads inside mutex_lock's slow path: a release hands over only when
// someone is there to take it.
struct MutexMem {
    std::atomic<std::uint64_t> word;
    std::atomic<std::uint32_t> waiting;
    std::atomic<std::uint32_t> sleepers;  // see mutex_sleepers
};
static_assert(sizeof(MutexMem) <= mutex_bytes, "mutex slot too small");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the owner word must be one interlocked word");
constexpr std::uint64_t kWaiters = 1;
constexpr std::uint64_t kHandedOver = 2;
// How long a handed-over word may wait for the waiter the event woke before another takes it.
constexpr auto kHandoverSlice = std::chrono::milliseconds(50);

MutexMem& mem_of(Mutex& m) noexcept { return *static_cast<MutexMem*>(m.mem); }

std::uint64_t me() noexcept {
    return (static_cast<std::uint64_t>(GetCurrentProcessId()) << 32) | GetCurrentThreadId();
}

// Whether the thread named by an owner value has ended, opening it as `th` (left open for the
// caller to wait on when it is alive). A thread id that now belongs to another process's
// thread means the owner is gone.
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

// Leaving the slow path without the mutex. The last waiter to go frees a word that was handed
// over to nobody (the waiter the event was meant for gave up or died).
void stop_waiting(MutexMem& mm) noexcept {
    if (mm.waiting.fetch_sub(1) == 1) {
        std::uint64_t h = kHandedOver | kWaiters;
        mm.word.compare_exchange_strong(h, 0);
    }
}
}  // namespace

std::error_code mutex_init(Mutex& m) noexcept {
    new (m.mem) MutexMem{};
    HANDLE h = CreateEventW(nullptr, FALSE, FALSE, nullptr);  // auto-reset: one wake per SetEvent
    if (!h) return last_error();
    m.kernel.reset(h);
    return {};
}

std::error_code mutex_lock(Mutex& m, const Deadline& deadline, LockStatus& st) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = me();
    std::uint64_t s = 0;
    if (mm.word.compare_exchange_strong(s, self)) {  // the uncontended path: no kernel call
        st = LockStatus::acquired;
        return {};
    }
    mm.waiting.fetch_add(1);
    bool woken = false;  // this thread took the event's wake-up: a handed-over word is its own
    for (;;) {
        s = mm.word.load();
        if ((s & ~kWaiters) == 0 || ((s & ~kWaiters) == kHandedOver && woken)) {
            // Free, or handed to this thread. The waiters bit stays: others may still sleep.
            if (mm.word.compare_exchange_strong(s, self | kWaiters)) {
                mm.waiting.fetch_sub(1);
                st = LockStatus::acquired;
                return {};
            }
            continue;
        }
        woken = false;
        if (!(s & kWaiters) && !mm.word.compare_exchange_strong(s, s | kWaiters)) continue;
        s |= kWaiters;
        HANDLE th = nullptr;
        bool dead = false;
        if ((s & ~kWaiters) == kHandedOver) {
            // Handed to the waiter the event woke. Wait for the event ourselves; a hand-over
            // that nobody takes within a slice belonged to a waiter that died on the way.
            const Deadline slice = deadline.or_within(kHandoverSlice);
            std::size_t signalled = 1;
            native_handle ev = m.kernel.get();
            if (auto ec = wait_objects(&ev, 1, slice, signalled)) {
                stop_waiting(mm);
                return ec;
            }
            if (signalled == 0) {
                woken = true;
                continue;
            }
            if (!deadline.passed()) {
                // A whole slice with the word handed over and nobody taking it: the waiter it
                // was meant for died on the way (or is stopped). A live one that comes late
                // finds the word taken and waits again.
                std::uint64_t still = s;
                if (mm.word.compare_exchange_strong(still, self | kWaiters)) {
                    mm.waiting.fetch_sub(1);
                    st = LockStatus::acquired;
                    return {};
                }
                continue;
            }
        } else if (!(dead = owner_gone(s & ~kWaiters, th))) {
            // Without the owner's handle (access denied), look again every 100 ms.
            const Deadline wait = th ? deadline : deadline.or_within(std::chrono::milliseconds(100));
            HANDLE hs[2] = {m.kernel.get(), th};
            std::size_t signalled = 2;
            mm.sleepers.fetch_add(1);
            const std::error_code ec = wait_objects(hs, th ? 2 : 1, wait, signalled);
            mm.sleepers.fetch_sub(1);
            if (ec) {
                if (th) CloseHandle(th);
                stop_waiting(mm);
                return ec;
            }
            if (signalled == 0) woken = true;
            if (signalled == 1) dead = true;
        }
        // Only the exact word seen can be taken over: a dead thread never changes it again.
        // The dead thread's handle stays open until then, so that its id cannot be given to a
        // new thread (whose word would look the same) before the swap.
        const bool taken = dead && mm.word.compare_exchange_strong(s, self | kWaiters);
        if (th) CloseHandle(th);
        if (taken) {
            mm.waiting.fetch_sub(1);
            st = LockStatus::owner_dead;
            return {};
        }
        if (!woken && deadline.passed()) {
            stop_waiting(mm);
            st = LockStatus::timed_out;
            return {};
        }
        // A wake-up taken from the event leads back to the top, never out: leaving with it
        // would strand a handed-over word (the loop takes it there).
    }
}

std::error_code mutex_unlock(Mutex& m) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = me();
    std::uint64_t s = mm.word.load();
    for (;;) {
        if ((s & ~kWaiters) != self) return os_error(ERROR_NOT_OWNER);
        // Someone waits: the word goes to the thread the event wakes, not to whoever comes.
        const std::uint64_t next = (s & kWaiters) && mm.waiting.load() > 0 ? (kHandedOver | kWaiters) : 0;
        if (mm.word.compare_exchange_weak(s, next)) break;  // only the caller's own word is given back
    }
    if ((s & kWaiters) && !SetEvent(m.kernel.get())) return last_error();
    return {};
}

bool mutex_try_uncontended(Mutex& m) noexcept {
    std::uint64_t s = 0;
    return mem_of(m).word.compare_exchange_strong(s, me());
}

bool mutex_unlock_uncontended(Mutex& m) noexcept {
    std::uint64_t s = me();
    return mem_of(m).word.compare_exchange_strong(s, 0);  // fails when the waiters bit is set
}

bool mutex_held_by_caller(Mutex& m) noexcept {
    return (mem_of(m).word.load(std::memory_order_relaxed) & ~kWaiters) == me();
}

std::uint32_t mutex_sleepers(Mutex& m) noexcept { return mem_of(m).sleepers.load(); }

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
constexpr auto kSlice = std::chrono::milliseconds(50);
}  // namespace

std::error_code cond_init(Cond& c) noexcept {
    new (c.mem) CondMem{};
    HANDLE h = CreateSemaphoreW(nullptr, 0, 0x7fffffff, nullptr);
    if (!h) return last_error();
    c.kernel.reset(h);
    return {};
}

std::error_code cond_wait(Cond& c, Mutex& m, const Deadline& deadline, LockStatus& st) noexcept {
    auto& cm = *static_cast<CondMem*>(c.mem);
    cm.waiters.fetch_add(1);
    const std::uint32_t my_gen = cm.gen.load();
    for (;;) {
        if (auto ec = mutex_unlock(m)) {
            cm.waiters.fetch_sub(1);
            return ec;
        }
        std::size_t signalled = 1;
        native_handle sem = c.kernel.get();
        const std::error_code wait_ec = wait_objects(&sem, 1, deadline.or_within(kSlice), signalled);
        LockStatus relock = LockStatus::acquired;
        if (auto ec = mutex_lock(m, Deadline::never(), relock)) return ec;
        if (wait_ec) {
            cm.waiters.fetch_sub(1);
            mutex_unlock(m);  // an error returns without m, as on POSIX
            return wait_ec;
        }
        if (cm.releases.load() > 0 && cm.gen.load() != my_gen) {
            cm.releases.fetch_sub(1);
            cm.waiters.fetch_sub(1);
            st = relock;
            return {};
        }
        if (relock == LockStatus::owner_dead || deadline.passed()) {
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
    if (!ReleaseSemaphore(c.kernel.get(), static_cast<LONG>(w > 0x7fffffffu ? 0x7fffffffu : w), nullptr))
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
