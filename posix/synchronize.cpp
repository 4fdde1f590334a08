// posix/synchronize.cpp - process-shared synchronisation on POSIX (Linux): a memfd region, a
// robust pthread mutex, and a futex-counted condition variable.
//
// The region is a memfd (an unnamed file in memory: nothing to unlink, nothing left behind by
// a crash), mapped MAP_SHARED, its fd close-on-exec; the fd is what spawn passes, fork simply
// keeps the mapping. The mutex is a pthread mutex set PTHREAD_PROCESS_SHARED and
// PTHREAD_MUTEX_ROBUST: the kernel keeps a list of the robust mutexes each thread holds and,
// when the thread dies, marks them so that the next pthread_mutex_lock returns EOWNERDEAD (and
// owns the mutex). Unless that owner calls pthread_mutex_consistent before unlocking, the
// mutex becomes ENOTRECOVERABLE for good. Timed locks are pthread_mutex_clocklock on
// CLOCK_MONOTONIC (glibc 2.30), immune to wall-clock changes; they never return EINTR.
// The condition variable is not a pthread_cond_t: in glibc (before 2.40) a waiter killed in
// pthread_cond_wait keeps a reference that a later signal or broadcast waits for, forever. So
// it is counters in the region (waiters, granted releases, a generation) with the generation
// as a futex(2) word that waiters sleep on (FUTEX_WAIT without the PRIVATE flag works across
// processes on shared memory). A waiter killed while waiting stays counted, so a notify may
// grant it a release it never takes; a later waiter then takes it (a spurious wake-up), never
// a hang.
// Windows differs: it has no robust process-shared mutex in user memory, so mp builds one: an
// owner word (pid, thread id) taken by compare-and-swap, an event for contended waiters, and
// owner death found by waiting on the owner's thread handle; there is no "consistent" step.
// Its condition variable sleeps on a kernel semaphore. Those handles must cross to a spawned
// child beside the region's.
#include "../common/sys/synchronize.hpp"

#include "mp/lock.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <ctime>
#include <linux/futex.h>
#include <new>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// The per-thread cache mp/lock.hpp reads inline; this file fills it and clears it after fork.
__thread std::uint64_t mp::detail::thread_token_cache __attribute__((tls_model("initial-exec"))) = 0;

namespace mp::sys {

static std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

static timespec deadline_after(double timeout_ms) noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const double whole = std::floor(timeout_ms / 1000.0);
    const double frac_ns = (timeout_ms - whole * 1000.0) * 1e6;
    ts.tv_sec += static_cast<time_t>(whole);
    ts.tv_nsec += static_cast<long>(std::ceil(frac_ns));
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_nsec -= 1000000000L;
        ++ts.tv_sec;
    }
    return ts;
}

// Time left until a CLOCK_MONOTONIC deadline; false once it has passed.
static bool time_left(const timespec& deadline, timespec& left) noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    left.tv_sec = deadline.tv_sec - now.tv_sec;
    left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
    if (left.tv_nsec < 0) {
        left.tv_nsec += 1000000000L;
        --left.tv_sec;
    }
    return left.tv_sec > 0 || (left.tv_sec == 0 && left.tv_nsec > 0);
}

// ---- shared region ----------------------------------------------------------------------

std::error_code region_create(std::size_t size, SharedRegion& out) noexcept {
    const int fd = static_cast<int>(::syscall(SYS_memfd_create, "mp-sync", MFD_CLOEXEC));
    if (fd < 0) return last_error();
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

static_assert(sizeof(pthread_mutex_t) <= mutex_bytes, "mutex slot too small");

std::error_code mutex_init(Mutex& m) noexcept {
    pthread_mutexattr_t a;
    int e = ::pthread_mutexattr_init(&a);
    if (e) return {e, std::generic_category()};
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    e = ::pthread_mutex_init(static_cast<pthread_mutex_t*>(m.mem), &a);
    ::pthread_mutexattr_destroy(&a);
    return {e, std::generic_category()};
}

std::error_code mutex_lock(Mutex& m, double timeout_ms, LockStatus& st) noexcept {
    auto* pm = static_cast<pthread_mutex_t*>(m.mem);
    int e;
    if (timeout_ms < 0) {
        e = ::pthread_mutex_lock(pm);
    } else if (timeout_ms == 0) {
        e = ::pthread_mutex_trylock(pm);
        if (e == EBUSY) e = ETIMEDOUT;
    } else {
        const timespec deadline = deadline_after(timeout_ms);
        e = ::pthread_mutex_clocklock(pm, CLOCK_MONOTONIC, &deadline);
    }
    switch (e) {
    case 0: st = LockStatus::acquired; return {};
    case EOWNERDEAD: st = LockStatus::owner_dead; return {};
    case ETIMEDOUT: st = LockStatus::timed_out; return {};
    default: st = LockStatus::timed_out; return {e, std::generic_category()};
    }
}

std::error_code mutex_unlock(Mutex& m) noexcept {
    return {::pthread_mutex_unlock(static_cast<pthread_mutex_t*>(m.mem)), std::generic_category()};
}

std::error_code mutex_consistent(Mutex& m) noexcept {
    return {::pthread_mutex_consistent(static_cast<pthread_mutex_t*>(m.mem)), std::generic_category()};
}

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

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val, const timespec* rel) noexcept {
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, val, rel, nullptr, 0);
}
}  // namespace

std::error_code cond_init(Cond& c) noexcept {
    new (c.mem) CondMem{};
    return {};
}

std::error_code cond_wait(Cond& c, Mutex& m, double timeout_ms, LockStatus& st) noexcept {
    auto& cm = *static_cast<CondMem*>(c.mem);
    cm.waiters.fetch_add(1);
    const std::uint32_t my_gen = cm.gen.load();
    std::uint32_t seen = my_gen;
    const timespec deadline = deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        if (auto ec = mutex_unlock(m)) {
            cm.waiters.fetch_sub(1);
            return ec;
        }
        // Sleeps only while gen is still `seen`; EINTR, EAGAIN and timeouts are judged below,
        // under the mutex.
        timespec left{};
        if (timeout_ms < 0) {
            futex(&cm.gen, FUTEX_WAIT, seen, nullptr);
        } else if (time_left(deadline, left)) {
            futex(&cm.gen, FUTEX_WAIT, seen, &left);
        }
        LockStatus relock = LockStatus::acquired;
        if (auto ec = mutex_lock(m, -1, relock)) return ec;
        if (cm.releases.load() > 0 && cm.gen.load() != my_gen) {
            cm.releases.fetch_sub(1);
            cm.waiters.fetch_sub(1);
            st = relock;
            return {};
        }
        // An inconsistent mutex must not be unlocked again (it would be lost): report now.
        if (relock == LockStatus::owner_dead || (timeout_ms >= 0 && !time_left(deadline, left))) {
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
    // Every sleeper wakes and looks: the ones that may take a release do, the rest sleep again.
    if (futex(&cm.gen, FUTEX_WAKE, INT_MAX, nullptr) < 0) return last_error();
    return {};
}

// ---- identity -------------------------------------------------------------------------

namespace {
// The child of a fork is a new process: the forking thread's cached token (the only thread
// there) must not name it. The handler runs in that thread before fork() returns.
void after_fork_in_child() noexcept { mp::detail::thread_token_cache = 0; }
struct ForkWatch {
    ForkWatch() noexcept { ::pthread_atfork(nullptr, nullptr, after_fork_in_child); }
} fork_watch;
std::atomic<std::uint32_t> thread_counter{0};
}  // namespace

std::uint64_t thread_token() noexcept {
    // A tid is unique among live threads; the counter tells apart a dead thread's reused tid.
    std::uint64_t& c = mp::detail::thread_token_cache;
    if (c == 0) {
        std::uint64_t t = (static_cast<std::uint64_t>(::syscall(SYS_gettid)) << 32) |
                          (thread_counter.fetch_add(1) ^ (static_cast<std::uint32_t>(::getpid()) * 2654435761u));
        c = t == 0 ? 1 : t;
    }
    return c;
}

}  // namespace mp::sys
