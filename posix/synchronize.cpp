// posix/synchronize.cpp - process-shared synchronisation on POSIX. Two profiles (meson option
// posix_profile): Linux's, a memfd region, a priority-inheritance futex as the crash-safe mutex
// and a futex-counted condition variable; and the portable one (MP_POSIX_PORTABLE, POSIX.1-2008
// calls only), described after Linux's.
//
// The region is a memfd (an unnamed file in memory: nothing to unlink, nothing left behind by
// a crash), mapped MAP_SHARED, its fd close-on-exec; spawn passes the fd, fork keeps the
// mapping. Everything a primitive needs is in it, so the fd is all that crosses to a child.
// The mutex is a PI futex word (futex(2), FUTEX_LOCK_PI): 0 when free, else the holder's
// thread id, which the kernel understands. Taking a free mutex is one compare-and-swap in user
// space, giving it back another; the kernel is entered only under contention, and then it
// does two things no user-space lock can: it queues the waiters in arrival order and hands
// the mutex straight to the first of them on release (nobody can barge in between), and,
// because it knows the owner, it notices the owner's death. A thread that dies (or execs)
// while others wait has the mutex handed to the first waiter with FUTEX_OWNER_DIED set; a
// waiter that arrives after a death finds no thread behind the id and gets ESRCH (a zombie
// counts as dead). Beside the word, the holder keeps its full identity (thread token: pid,
// tid and start time) in the region while it holds the mutex and clears it before letting
// go: a new holder that finds it still set knows the previous one never let go.
// Not seen as a death: an owner that calls exec() holding the mutex while nobody waits (its
// thread id lives on in the new program), and a dead owner whose thread id was given to a new
// thread of its own process before anyone looked (the kernel then waits for that thread);
// timed waits still end. The "consistent" protocol (owner_dead, repair, make_consistent, or
// the lock is unrecoverable) is kept by common/synchronize.cpp, as on Windows.
// The condition variable is not a pthread_cond_t: in glibc (before 2.40) a waiter killed in
// pthread_cond_wait keeps a reference that a later signal or broadcast waits for, forever. So
// it is counters in the region (waiters, granted releases, a generation) with the generation
// as a futex word that waiters sleep on. A waiter killed while waiting stays counted, so a
// notify may grant it a release it never takes; a later waiter then takes it (a spurious
// wake-up), never a hang.
// The portable profile has no futex, so no call that sleeps on a word of shared memory. Its
// region is shm_open under a fresh random name, unlinked at once (so nothing is left behind
// but in the instant between the two calls). Its mutex is a pthread_mutex_t in the slot,
// PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST: the C library lists the robust mutexes a
// thread holds, and the kernel marks each as its owner's death at that thread's exit, so the
// next locker gets EOWNERDEAD (makes it consistent at once; common/ keeps the protocol, as
// with the futex). The owner identity beside it is the same as Linux's. What it loses: the
// order in which waiters get a freed mutex is the library's (no promised hand-over to the
// first waiter), and a timed wait takes a CLOCK_REALTIME deadline (pthread_mutex_timedlock),
// so the loop re-arms it from the steady deadline when the wall clock jumps. Its condition
// variable is the same counters, but a pthread_cond_t cannot be the sleep behind them: it is
// the object a killed waiter jams (above). So a waiter sleeps by looking at the generation
// with a pause that grows from 50 us to 2 ms: a notify reaches it within that pause, and an
// idle waiter wakes 500 times a second to look. A thread's identity is its pid, a number of
// its own in its process and the steady clock's time when it first asked (no tids and no
// /proc in POSIX).
// Windows differs: no kernel object can live in shared memory there, so its mutex is an owner
// word with an event behind it and the owner's thread handle to wait on for its death, and it
// hands over through the event; those kernel handles cross to a spawned child beside the
// region's. The queue ring (common/queues.cpp) uses these same objects.
#include "../common/sys/synchronize.hpp"
#include "../common/sys/error.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <new>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(MP_POSIX_PORTABLE)
#include <algorithm>
#include <chrono>
#include <thread>
#else
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

// The per-thread cache mp/lock.hpp reads inline; this file fills it and clears it after fork.
MP_FAST_TLS std::uint64_t mp::detail::thread_token_cache = 0;

namespace mp::sys {

namespace {
#if !defined(MP_POSIX_PORTABLE)
// futex(2) on a 32-bit word of the shared mapping. Without FUTEX_PRIVATE_FLAG the kernel keys
// the word by its page, so it works across processes.
long futex(void* word, int op, std::uint32_t val, const timespec* ts, std::uint32_t val3 = 0) noexcept {
    return ::syscall(SYS_futex, static_cast<std::uint32_t*>(word), op, val, ts, nullptr, val3);
}
#endif

timespec to_timespec(std::chrono::nanoseconds ns) noexcept {
    return timespec{static_cast<time_t>(ns.count() / 1000000000), static_cast<long>(ns.count() % 1000000000)};
}

#if !defined(MP_POSIX_PORTABLE)
// A steady_clock time point as CLOCK_MONOTONIC (libstdc++'s steady_clock is that clock).
timespec monotonic_of(const Deadline& d) noexcept {
    return to_timespec(std::chrono::duration_cast<std::chrono::nanoseconds>(d.time_point().time_since_epoch()));
}
#endif

#if defined(MP_POSIX_PORTABLE)
// The deadline as CLOCK_REALTIME, for pthread_mutex_timedlock (POSIX.1-2008 has no other clock).
timespec realtime_of(const Deadline& d) noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return to_timespec(std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec) + d.left());
}
#endif
}  // namespace

// ---- shared region ----------------------------------------------------------------------

std::error_code region_create(std::size_t size, SharedRegion& out) noexcept {
#if defined(MP_POSIX_PORTABLE)
    // A name nobody else uses (pid, a counter, the clock), created exclusively and unlinked at
    // once: from then on it is an unnamed object, as a memfd. shm_open sets FD_CLOEXEC.
    static std::atomic<unsigned> counter{0};
    int fd = -1;
    for (int attempt = 0; fd < 0; ++attempt) {
        timespec t{};
        ::clock_gettime(CLOCK_MONOTONIC, &t);
        char name[64];
        std::snprintf(name, sizeof name, "/mp-sync-%ld-%u-%lx", static_cast<long>(::getpid()), counter.fetch_add(1),
                      static_cast<unsigned long>(t.tv_nsec));
        fd = ::shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {
            ::shm_unlink(name);
        } else if (errno != EEXIST || attempt >= 100) {
            return last_error();
        }
    }
#else
    const int fd = static_cast<int>(::syscall(SYS_memfd_create, "mp-sync", MFD_CLOEXEC));
    if (fd < 0) return last_error();
#endif
    Handle h(fd);
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return last_error();
    out.h = std::move(h);
    return region_map(out, size);
}

std::error_code region_map(SharedRegion& r, std::size_t size) noexcept {
    // Touching a page past the end of the file would be SIGBUS, not an error: check first.
    struct stat st {};
    if (::fstat(r.h.get(), &st) != 0) return last_error();
    if (static_cast<std::size_t>(st.st_size) < size) return std::make_error_code(std::errc::invalid_argument);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, r.h.get(), 0);
    if (p == MAP_FAILED) return last_error();
    r.addr = p;
    r.size = size;
    return {};
}

void region_unmap(SharedRegion& r) noexcept {
    if (r.addr) ::munmap(r.addr, r.size);
    r.addr = nullptr;
}

// ---- mutex ------------------------------------------------------------------------------

#if defined(MP_POSIX_PORTABLE)
namespace {
// A robust process-shared pthread mutex, with the holder's thread_token() beside it (set after
// taking it, cleared before giving it back, as on Linux), and the count of sleepers.
struct MutexMem {
    pthread_mutex_t mutex;
    std::atomic<std::uint32_t> sleepers;  // see mutex_sleepers
    std::atomic<std::uint64_t> owner;
};
static_assert(sizeof(MutexMem) <= mutex_bytes, "mutex slot too small for this C library's pthread_mutex_t");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the owner must be a plain atomic word");
constexpr std::uint64_t kIdBits = 0x3fffff;
// An owner word that no thread's token can be (its pid field is 0): "the holder died", left
// by mutex_try_uncontended for the mutex_lock that follows it to report.
constexpr std::uint64_t kDiedMark = 1;

MutexMem& mem_of(Mutex& m) noexcept { return *static_cast<MutexMem*>(m.mem); }

// Having taken the mutex (r: what pthread said): records the caller as the holder, and says
// whether the previous one died holding it (EOWNERDEAD, or an identity it never cleared).
LockStatus settle_taken(MutexMem& mm, std::uint64_t self, int r) noexcept {
    bool died = mm.owner.load(std::memory_order_acquire) != 0;
    if (r == EOWNERDEAD) {
        died = true;
        ::pthread_mutex_consistent(&mm.mutex);  // common/ keeps the consistent protocol
    }
    mm.owner.store(self, std::memory_order_relaxed);
    return died ? LockStatus::owner_dead : LockStatus::acquired;
}
}  // namespace

std::error_code mutex_init(Mutex& m) noexcept {
    auto* mm = new (m.mem) MutexMem{};
    pthread_mutexattr_t a;
    if (const int e = ::pthread_mutexattr_init(&a)) return os_error(e);
    int e = ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!e) e = ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!e) e = ::pthread_mutex_init(&mm->mutex, &a);
    ::pthread_mutexattr_destroy(&a);
    return e ? os_error(e) : std::error_code{};
}

std::error_code mutex_lock(Mutex& m, const Deadline& deadline, LockStatus& st) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = thread_token();
    int r = ::pthread_mutex_trylock(&mm.mutex);  // free (or a dead owner's): no sleep
    if (r == EBUSY && !deadline.passed()) {
        mm.sleepers.fetch_add(1, std::memory_order_relaxed);
        if (deadline.is_never()) {
            r = ::pthread_mutex_lock(&mm.mutex);
        } else {
            do {  // re-armed while the steady deadline has not passed (the wall clock may jump)
                const timespec ts = realtime_of(deadline);
                r = ::pthread_mutex_timedlock(&mm.mutex, &ts);
            } while (r == ETIMEDOUT && !deadline.passed());
        }
        mm.sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
    if (r == EBUSY || r == ETIMEDOUT) {
        st = LockStatus::timed_out;
        return {};
    }
    if (r != 0 && r != EOWNERDEAD) return os_error(r);
    st = settle_taken(mm, self, r);
    return {};
}

std::error_code mutex_unlock(Mutex& m) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = thread_token();
    if (mm.owner.load(std::memory_order_relaxed) != self) return std::make_error_code(std::errc::operation_not_permitted);
    mm.owner.store(0, std::memory_order_release);
    if (const int e = ::pthread_mutex_unlock(&mm.mutex)) {
        mm.owner.store(self, std::memory_order_relaxed);
        return os_error(e);
    }
    return {};
}

bool mutex_try_uncontended(Mutex& m) noexcept {
    MutexMem& mm = mem_of(m);
    const int r = ::pthread_mutex_trylock(&mm.mutex);
    if (r == EBUSY) return false;
    if (r == 0 && mm.owner.load(std::memory_order_relaxed) == 0) {
        mm.owner.store(thread_token(), std::memory_order_relaxed);
        return true;
    }
    // Taken, but with a death to report (EOWNERDEAD, or an identity never cleared): a bool
    // cannot say it, so the mark stays in the owner word and mutex_lock reports it.
    if (r == EOWNERDEAD) {
        ::pthread_mutex_consistent(&mm.mutex);
        if (mm.owner.load(std::memory_order_relaxed) == 0) mm.owner.store(kDiedMark, std::memory_order_relaxed);
    }
    if (r == 0 || r == EOWNERDEAD) ::pthread_mutex_unlock(&mm.mutex);
    return false;
}

bool mutex_unlock_uncontended(Mutex& m) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = thread_token();
    if (mm.owner.load(std::memory_order_relaxed) != self) return false;
    mm.owner.store(0, std::memory_order_release);
    if (::pthread_mutex_unlock(&mm.mutex) == 0) return true;  // it wakes a sleeper itself
    mm.owner.store(self, std::memory_order_relaxed);  // mutex_unlock reports the error
    return false;
}

bool mutex_held_by_caller(Mutex& m) noexcept {
    return mem_of(m).owner.load(std::memory_order_relaxed) == thread_token();
}

std::uint32_t mutex_sleepers(Mutex& m) noexcept { return mem_of(m).sleepers.load(); }

// mutex_consistent: nothing to do; mutex_lock made the pthread mutex consistent when it got
// EOWNERDEAD (common/ tracks whether the user did).
std::error_code mutex_consistent(Mutex&) noexcept { return {}; }

#else  // Linux: the PI futex

namespace {
// `word` is the PI futex (the holder's tid | FUTEX_WAITERS when the kernel queues waiters |
// FUTEX_OWNER_DIED after the kernel handed over a dead owner's mutex); `owner` is the
// holder's thread_token(), set after taking the word and cleared before giving it back.
struct MutexMem {
    std::atomic<std::uint32_t> word;
    std::atomic<std::uint32_t> sleepers;  // see mutex_sleepers
    std::atomic<std::uint64_t> owner;
};
static_assert(sizeof(MutexMem) <= mutex_bytes, "mutex slot too small");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free,
              "the futex word and the owner must be plain atomic words");
constexpr std::uint64_t kIdBits = 0x3fffff;  // pids and tids are below 2^22 (PID_MAX_LIMIT)

MutexMem& mem_of(Mutex& m) noexcept { return *static_cast<MutexMem*>(m.mem); }
std::uint32_t tid_of(std::uint64_t token) noexcept { return static_cast<std::uint32_t>(token & kIdBits); }
int pid_of(std::uint64_t token) noexcept { return static_cast<int>((token >> 32) & kIdBits); }

// Having taken the word: records the caller as the holder, and says whether the previous one
// died holding the mutex (the kernel's OWNER_DIED mark, or an identity it never cleared).
LockStatus settle_taken(MutexMem& mm, std::uint64_t self) noexcept {
    bool died = mm.owner.load(std::memory_order_acquire) != 0;
    std::uint32_t w = mm.word.load(std::memory_order_relaxed);
    while (w & FUTEX_OWNER_DIED) {
        died = true;
        if (mm.word.compare_exchange_weak(w, w & ~std::uint32_t{FUTEX_OWNER_DIED})) break;
    }
    mm.owner.store(self, std::memory_order_relaxed);
    return died ? LockStatus::owner_dead : LockStatus::acquired;
}

// The word names a thread that no longer exists (the kernel said ESRCH, or EDEADLK because
// this thread got the dead owner's id): the caller takes the mutex over from exactly the
// word it saw, which a dead thread can never change again.
bool take_over(MutexMem& mm, std::uint32_t seen, std::uint32_t tid) noexcept {
    return mm.word.compare_exchange_strong(seen, tid | (seen & FUTEX_WAITERS));
}

// Before sleeping in the kernel behind the thread the word names: is it the holder the owner
// identity names, and does that thread still exist in that process? A dead owner's id that
// another process's new thread got would otherwise make the kernel wait for that stranger.
bool owner_id_reused(MutexMem& mm, std::uint32_t word) noexcept {
    const std::uint64_t owner = mm.owner.load(std::memory_order_relaxed);
    if (owner == 0 || tid_of(owner) != (word & FUTEX_TID_MASK)) return false;  // between its two stores
    return ::syscall(SYS_tgkill, pid_of(owner), static_cast<int>(tid_of(owner)), 0) != 0 && errno == ESRCH;
}

// FUTEX_LOCK_PI2 (Linux 5.14) takes a CLOCK_MONOTONIC deadline; FUTEX_LOCK_PI a
// CLOCK_REALTIME one, so the fallback converts and lets the caller loop on the real deadline.
long lock_pi(MutexMem& mm, const Deadline& deadline) noexcept {
    static std::atomic<bool> no_pi2{false};
    if (deadline.is_never()) return futex(&mm.word, FUTEX_LOCK_PI, 0, nullptr);
    if (!no_pi2.load(std::memory_order_relaxed)) {
        const timespec ts = monotonic_of(deadline);
        const long r = futex(&mm.word, FUTEX_LOCK_PI2, 0, &ts);
        if (r == 0 || errno != ENOSYS) return r;
        no_pi2.store(true, std::memory_order_relaxed);
    }
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const auto at = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec) + deadline.left();
    const timespec ts = to_timespec(at);
    return futex(&mm.word, FUTEX_LOCK_PI, 0, &ts);
}
}  // namespace

std::error_code mutex_init(Mutex& m) noexcept {
    new (m.mem) MutexMem{};
    return {};
}

std::error_code mutex_lock(Mutex& m, const Deadline& deadline, LockStatus& st) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = thread_token();
    const std::uint32_t tid = tid_of(self);
    for (;;) {
        std::uint32_t w = 0;
        if (mm.word.compare_exchange_strong(w, tid, std::memory_order_acquire)) {  // free: no system call
            st = settle_taken(mm, self);
            return {};
        }
        if (owner_id_reused(mm, w) && take_over(mm, w, tid)) {
            st = settle_taken(mm, self);
            if (st == LockStatus::acquired) st = LockStatus::owner_dead;
            return {};
        }
        // A try asks the kernel too: it knows whether the thread behind the word is alive.
        long r;
        if (deadline.passed()) {
            r = futex(&mm.word, FUTEX_TRYLOCK_PI, 0, nullptr);
        } else {
            mm.sleepers.fetch_add(1, std::memory_order_relaxed);
            r = lock_pi(mm, deadline);
            const int saved = errno;
            mm.sleepers.fetch_sub(1, std::memory_order_relaxed);
            errno = saved;
        }
        if (r == 0) {
            st = settle_taken(mm, self);
            return {};
        }
        switch (errno) {
            case ESRCH:    // no thread behind the word (gone, or a zombie): the owner died
            case EDEADLK:  // the word names this thread: a dead owner had our id
                w = mm.word.load(std::memory_order_relaxed);
                if ((w & FUTEX_TID_MASK) != 0 && (errno == ESRCH || (w & FUTEX_TID_MASK) == tid) && take_over(mm, w, tid)) {
                    st = settle_taken(mm, self);
                    if (st == LockStatus::acquired) st = LockStatus::owner_dead;
                    return {};
                }
                continue;  // the word changed meanwhile: look again
            case EAGAIN:   // the owner is exiting right now, or (a try) it is held
            case EBUSY:
            case EINTR:
            case ETIMEDOUT:
                if (deadline.passed()) {
                    st = LockStatus::timed_out;
                    return {};
                }
                continue;
            default:
                return last_error();
        }
    }
}

std::error_code mutex_unlock(Mutex& m) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint32_t tid = tid_of(thread_token());
    std::uint32_t w = mm.word.load(std::memory_order_relaxed);
    if ((w & FUTEX_TID_MASK) != tid || mm.owner.load(std::memory_order_relaxed) != thread_token())
        return std::make_error_code(std::errc::operation_not_permitted);
    mm.owner.store(0, std::memory_order_release);
    std::uint32_t mine = tid;  // exactly our id: no waiters queued
    if (mm.word.compare_exchange_strong(mine, 0, std::memory_order_release)) return {};
    // Waiters are queued in the kernel (FUTEX_WAITERS): it hands the mutex to the first of them.
    if (futex(&mm.word, FUTEX_UNLOCK_PI, 0, nullptr) != 0) return last_error();
    return {};
}

bool mutex_try_uncontended(Mutex& m) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = thread_token();
    std::uint32_t w = 0;
    if (!mm.word.compare_exchange_strong(w, tid_of(self), std::memory_order_acquire)) return false;
    // Free means that the last holder let go (cleared its identity first): nothing to report.
    mm.owner.store(self, std::memory_order_relaxed);
    return true;
}

bool mutex_unlock_uncontended(Mutex& m) noexcept {
    MutexMem& mm = mem_of(m);
    const std::uint64_t self = thread_token();
    std::uint32_t w = tid_of(self);
    if (mm.word.load(std::memory_order_relaxed) != w || mm.owner.load(std::memory_order_relaxed) != self) return false;
    mm.owner.store(0, std::memory_order_release);
    if (mm.word.compare_exchange_strong(w, 0, std::memory_order_release)) return true;
    mm.owner.store(self, std::memory_order_relaxed);  // waiters arrived: mutex_unlock hands over
    return false;
}

bool mutex_held_by_caller(Mutex& m) noexcept {
    return mem_of(m).owner.load(std::memory_order_relaxed) == thread_token();
}

std::uint32_t mutex_sleepers(Mutex& m) noexcept { return mem_of(m).sleepers.load(); }

// mutex_consistent: nothing to do; the new holder simply owns the word. (A pthread robust
// mutex would need pthread_mutex_consistent; common/ keeps that protocol.)
std::error_code mutex_consistent(Mutex&) noexcept { return {}; }

#endif  // MP_POSIX_PORTABLE

// ---- condition variable -----------------------------------------------------------------

namespace {
// The counting scheme ("generation + releases", after Schmidt and Pyarali): a notify grants
// releases and starts a new generation; only waiters that began before it (gen != my_gen)
// may take a release, so a waiter arriving later cannot steal a wake-up from an earlier one.
struct CondMem {
    std::atomic<std::uint32_t> gen;       // the futex word: bumped by each notify that grants
    std::atomic<std::uint32_t> waiters;   // waiters not yet gone (changed under the mutex)
    std::atomic<std::uint32_t> releases;  // granted, not yet taken (changed under the mutex)
};
static_assert(sizeof(CondMem) <= cond_bytes, "cond slot too small");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "futex needs a plain 32-bit word");

// Sleeps while gen is still `seen`, until the deadline at most (a wake-up may come early).
void sleep_on_gen(CondMem& cm, std::uint32_t seen, const Deadline& deadline) noexcept {
#if defined(MP_POSIX_PORTABLE)
    // No POSIX call sleeps on a word: look, with a pause that grows from 50 us to 2 ms.
    auto pause = std::chrono::microseconds(50);
    while (cm.gen.load() == seen && !deadline.passed()) {
        std::this_thread::sleep_until(deadline.or_within(pause).time_point());
        pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::microseconds(2000));
    }
#else
    if (deadline.is_never()) {
        futex(&cm.gen, FUTEX_WAIT, seen, nullptr);
    } else if (!deadline.passed()) {
        const timespec left = to_timespec(deadline.left());
        futex(&cm.gen, FUTEX_WAIT, seen, &left);
    }
#endif
}
}  // namespace

std::error_code cond_init(Cond& c) noexcept {
    new (c.mem) CondMem{};
    return {};
}

std::error_code cond_wait(Cond& c, Mutex& m, const Deadline& deadline, LockStatus& st) noexcept {
    auto& cm = *static_cast<CondMem*>(c.mem);
    cm.waiters.fetch_add(1);
    const std::uint32_t my_gen = cm.gen.load();
    std::uint32_t seen = my_gen;
    for (;;) {
        if (auto ec = mutex_unlock(m)) {
            cm.waiters.fetch_sub(1);
            return ec;
        }
        // Sleeps only while gen is still `seen`; EINTR, EAGAIN and timeouts are judged below,
        // under the mutex.
        sleep_on_gen(cm, seen, deadline);
        LockStatus relock = LockStatus::acquired;
        if (auto ec = mutex_lock(m, Deadline::never(), relock)) return ec;
        if (cm.releases.load() > 0 && cm.gen.load() != my_gen) {
            cm.releases.fetch_sub(1);
            cm.waiters.fetch_sub(1);
            st = relock;
            return {};
        }
        // An inconsistent mutex must not be unlocked again (it would be lost): report now.
        if (relock == LockStatus::owner_dead || deadline.passed()) {
            cm.waiters.fetch_sub(1);
            st = relock == LockStatus::owner_dead ? LockStatus::owner_dead : LockStatus::timed_out;
            return {};
        }
        seen = cm.gen.load();
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
#if !defined(MP_POSIX_PORTABLE)  // (portable: the sleepers see the new generation themselves)
    // Every sleeper wakes and looks: the ones that may take a release do, the rest sleep again.
    if (futex(&cm.gen, FUTEX_WAKE, INT_MAX, nullptr) < 0) return last_error();
#endif
    return {};
}

// ---- identity -------------------------------------------------------------------------

namespace {
// The child of a fork is a new process: the forking thread's cached token (the only thread
// there) must not name it. The handler runs in that thread before fork() returns.
// (A thread that never locked has nothing to clear: a read costs no copy-on-write fault.)
void after_fork_in_child() noexcept {
    if (mp::detail::thread_token_cache != 0) mp::detail::thread_token_cache = 0;
}
struct ForkWatch {
    ForkWatch() noexcept { ::pthread_atfork(nullptr, nullptr, after_fork_in_child); }
} fork_watch;
}  // namespace

namespace {
// The 19 bits of a thread's start time (clock ticks since boot; portable: its first use, in
// steady-clock nanoseconds) kept in its token: two threads that had the same pid and tid one
// after the other differ there.
std::uint32_t stamp_of_start(unsigned long long start) noexcept {
    return static_cast<std::uint32_t>((start * 0x9e3779b97f4a7c15ull) >> 45) | 1u;  // never 0: 0 is "unknown"
}

#if defined(MP_POSIX_PORTABLE)
// The token: a number of the thread's own in its process in bits 0-21 (POSIX has no tids),
// the pid in bits 32-53, and 19 bits of the steady clock's time at its first use in bits
// 22-30 and 54-63: a later process that gets the same pid, and the same number for one of
// its threads, differs there. Out of line: the lock paths only read the cache.
std::atomic<std::uint32_t> threads_numbered{0};

MP_COLD std::uint64_t compute_thread_token() noexcept {
    const int pid = static_cast<int>(::getpid());
    std::uint32_t n;
    do {
        n = static_cast<std::uint32_t>((threads_numbered.fetch_add(1, std::memory_order_relaxed) + 1) & kIdBits);
    } while (n == 0);
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    const std::uint64_t stamp =
        stamp_of_start(static_cast<unsigned long long>(t.tv_sec) * 1000000000ull + static_cast<unsigned long long>(t.tv_nsec));
    return mp::detail::thread_token_cache = (static_cast<std::uint64_t>(n) & kIdBits) | ((stamp & 0x1ff) << 22) |
                                            ((static_cast<std::uint64_t>(pid) & kIdBits) << 32) | ((stamp >> 9) << 54);
}
#else
// Reads state and start time of thread `tid` of process `pid` from /proc/<pid>/task/<tid>/stat.
// 0, ENOENT (no such thread in that process) or another errno (/proc unreadable here).
int read_task_stat(int pid, int tid, char& state, unsigned long long& start) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ESRCH ? ENOENT : errno;
    char buf[512];
    ssize_t n;
    do {
        n = ::read(fd, buf, sizeof buf - 1);
    } while (n < 0 && errno == EINTR);
    const int read_errno = errno;
    ::close(fd);
    if (n <= 0) return n == 0 ? ENOENT : read_errno == ESRCH ? ENOENT : read_errno;  // ended while read
    buf[n] = 0;
    // Field 2 is "(comm)" and comm may hold spaces and parentheses: fields 3.. follow the last ')'.
    const char* p = std::strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2]) return EPROTO;
    p += 2;
    state = *p;
    for (int field = 3; field < 22; ++field) {  // starttime is field 22
        p = std::strchr(p, ' ');
        if (!p) return EPROTO;
        ++p;
    }
    start = std::strtoull(p, nullptr, 10);
    return 0;
}

// The token: tid in bits 0-21, pid in bits 32-53, and 19 bits of the thread's start time in
// bits 22-30 and 54-63. The mutex takes the tid for its futex word and the pid to ask whether
// that thread still exists; a dead thread's reused tid gives a different token (the start time
// differs). Out of line: the lock paths only read the cache.
MP_COLD std::uint64_t compute_thread_token() noexcept {
    const int pid = static_cast<int>(::getpid());
    const int tid = static_cast<int>(::syscall(SYS_gettid));
    char state = 0;
    unsigned long long start = 0;
    const std::uint64_t stamp = read_task_stat(pid, tid, state, start) == 0 ? stamp_of_start(start) : 0;
    return mp::detail::thread_token_cache = (static_cast<std::uint64_t>(tid) & kIdBits) | ((stamp & 0x1ff) << 22) |
                                            ((static_cast<std::uint64_t>(pid) & kIdBits) << 32) | ((stamp >> 9) << 54);
}
#endif
}  // namespace

std::uint64_t thread_token() noexcept {
    const std::uint64_t c = mp::detail::thread_token_cache;
    return MP_LIKELY(c != 0) ? c : compute_thread_token();
}

}  // namespace mp::sys
