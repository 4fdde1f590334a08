// posix/synchronize.cpp - process-shared synchronisation on POSIX (Linux): a memfd region, an
// owner-word mutex on a futex, and a futex-counted condition variable.
//
// The region is a memfd (an unnamed file in memory: nothing to unlink, nothing left behind by
// a crash), mapped MAP_SHARED, its fd close-on-exec; the fd is what spawn passes, fork simply
// keeps the mapping.
// The mutex is one 64-bit owner word in the region: 0 when free, else the holder's identity
// (tid, pid and the thread's start time), taken by compare-and-swap and given back by another,
// so the uncontended lock never enters the kernel. A contended waiter sets the word's waiters
// bit and sleeps on the word with futex(2) (FUTEX_WAIT without the PRIVATE flag works across
// processes); a release that finds the bit wakes one. Owner death is found by the waiter: when
// the same owner has held the word through a whole slice (1 ms, then 10 ms), or the waiter's
// time is up, it asks the kernel whether that thread exists (tgkill with signal 0) and reads
// /proc/<pid>/task/<tid>/stat. No such thread, a zombie (a killed process that its parent has
// not reaped yet), or a different start time (the tid was reused) means the owner died
// holding the lock: the waiter swaps the exact word it saw for its own and reports
// owner_dead. So a later waiter notices a death within about 1 ms, one already asleep within
// 10 ms, and a try at once. Not seen as a death: an owner thread that calls exec() holding
// the lock (it keeps its tid and start time; a robust mutex is released by exec), and a
// zombie when /proc is unreadable; waiters with a timeout still get it.
// Why not a robust pthread mutex (PTHREAD_MUTEX_ROBUST, EOWNERDEAD), where the kernel marks the
// mutexes on a dying thread's robust list at once? glibc's robust lock+unlock costs about 13 ns
// here against 9 ns for two atomic instructions, and mp's wrapper brought it to 17 ns: more
// than a tenth of CPython's `with lock:` (bench lock.uncontended). What the owner word gives
// up: detection takes up to a slice instead of being immediate, and needs /proc (without it
// the kernel still says whether the tid exists, but a zombie looks alive until a timeout).
// The "consistent" protocol (owner_dead, repair, make_consistent, or the lock is unrecoverable)
// is kept by common/synchronize.cpp, as for Windows.
// The condition variable is not a pthread_cond_t: in glibc (before 2.40) a waiter killed in
// pthread_cond_wait keeps a reference that a later signal or broadcast waits for, forever. So
// it is counters in the region (waiters, granted releases, a generation) with the generation
// as a futex word that waiters sleep on. A waiter killed while waiting stays counted, so a
// notify may grant it a release it never takes; a later waiter then takes it (a spurious
// wake-up), never a hang.
// Windows builds the same owner-word mutex (there is no robust mutex in user memory at all),
// with an event for contended waiters and the owner's thread handle to wait on for its death,
// which Windows signals at once; its condition variable sleeps on a kernel semaphore. Those
// kernel handles must cross to a spawned child beside the region's; here only the memfd does.
#include "../common/sys/synchronize.hpp"

#include "mp/lock.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
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

namespace {
// The futex(2) call, on any aligned 32-bit word of the shared mapping. Without the PRIVATE
// flag the kernel keys the word by its page, so it works across processes.
long futex(void* word, int op, std::uint32_t val, const timespec* rel) noexcept {
    return ::syscall(SYS_futex, static_cast<std::uint32_t*>(word), op, val, rel, nullptr, 0);
}

// The owner word: 0 when free, else the holder's thread_token() (see "identity" below), with
// kWaiters set when a waiter may be asleep on it. Waiters sleep on its lower 32 bits, which
// hold the holder's tid and the waiters bit, so every change that matters to a sleeper (a
// release, a new owner, the bit being set) changes the word the kernel compares.
struct MutexMem {
    std::atomic<std::uint64_t> word;
};
static_assert(sizeof(MutexMem) <= mutex_bytes, "mutex slot too small");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the owner word must be one atomic word");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the futex half of the owner word is its first 4 bytes");
constexpr std::uint64_t kWaiters = std::uint64_t{1} << 31;
constexpr std::uint64_t kIdBits = 0x3fffff;  // pids and tids are below 2^22 (PID_MAX_LIMIT)
// A waiter asleep behind an owner looks at that owner after 1 ms, then every 10 ms (the
// owner-death detection latency); a release wakes it at once. Most holds end well within the
// first slice, so a contended lock rarely costs a look (a read under /proc).
constexpr long kFirstLookNs = 1000 * 1000;
constexpr long kLookNs = 10 * 1000 * 1000;

std::atomic<std::uint64_t>& word_of(Mutex& m) noexcept { return static_cast<MutexMem*>(m.mem)->word; }
void* futex_half(std::atomic<std::uint64_t>& w) noexcept { return &w; }

// The 19 bits of a thread's start time (clock ticks since boot) kept in its token: two threads
// that had the same pid and tid one after the other differ there.
std::uint32_t stamp_of_start(unsigned long long start) noexcept {
    return static_cast<std::uint32_t>((start * 0x9e3779b97f4a7c15ull) >> 45) | 1u;  // never 0: 0 is "unknown"
}
std::uint32_t stamp_of_token(std::uint64_t t) noexcept {
    return static_cast<std::uint32_t>(((t >> 22) & 0x1ff) | ((t >> 54) << 9));
}

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

// Whether the thread named by an owner token has ended: no such thread in that process, a
// thread that has ended but is not reaped yet (a killed process stays a zombie until its
// parent waits), or a newer thread that got the same pid and tid (its start time differs).
// The kernel's own answer comes first: /proc can hide a live thread (hidepid=2 for another
// user's process), and taking a live owner's lock would break mutual exclusion, so a missing
// /proc entry alone never counts. When /proc cannot be read, a zombie looks alive (its waiters
// wait for their timeout instead).
bool owner_gone(std::uint64_t owner) noexcept {
    const int pid = static_cast<int>((owner >> 32) & kIdBits);
    const int tid = static_cast<int>(owner & kIdBits);
    if (::syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH) return true;  // EPERM: it exists
    char state = 0;
    unsigned long long start = 0;
    if (read_task_stat(pid, tid, state, start) != 0) return false;  // cannot look closer
    if (state == 'Z' || state == 'X' || state == 'x') return true;
    const std::uint32_t stamp = stamp_of_token(owner);
    return stamp != 0 && stamp != stamp_of_start(start);
}
}  // namespace

std::error_code mutex_init(Mutex& m) noexcept {
    new (m.mem) MutexMem{};
    return {};
}

std::error_code mutex_lock(Mutex& m, double timeout_ms, LockStatus& st) noexcept {
    auto& w = word_of(m);
    const std::uint64_t self = thread_token();
    std::uint64_t s = 0;
    if (w.compare_exchange_strong(s, self)) {  // the uncontended path: no system call
        st = LockStatus::acquired;
        return {};
    }
    const bool forever = timeout_ms < 0;
    const timespec deadline = deadline_after(forever ? 0 : timeout_ms);
    bool looked = false;
    bool woken = false;  // a release's FUTEX_WAKE may have chosen this waiter
    for (;;) {
        s = w.load();
        if (s == 0) {
            // Taken from the slow path, the word keeps the waiters bit: others may still sleep.
            if (w.compare_exchange_strong(s, self | kWaiters)) {
                st = LockStatus::acquired;
                return {};
            }
            continue;
        }
        timespec left{};
        const bool may_wait = forever || time_left(deadline, left);
        if (may_wait) {
            if (!(s & kWaiters) && !w.compare_exchange_strong(s, s | kWaiters)) continue;
            s |= kWaiters;
            timespec slice{0, looked ? kLookNs : kFirstLookNs};
            if (!forever && left.tv_sec == 0 && left.tv_nsec < slice.tv_nsec) slice = left;
            // Sleeps only while the word is still the one seen; a release or a new owner
            // changes its futex half. Woken, changed (EAGAIN) or EINTR: look again.
            if (futex(futex_half(w), FUTEX_WAIT, static_cast<std::uint32_t>(s), &slice) == 0) {
                woken = true;
                continue;
            }
            if (errno != ETIMEDOUT) continue;
        }
        // The same owner kept the lock through a whole slice, or the time is up: is it alive?
        // Only the exact word seen can be taken over: a dead thread never changes it again.
        looked = true;
        if (owner_gone(s & ~kWaiters)) {
            if (w.compare_exchange_strong(s, self | kWaiters)) {
                st = LockStatus::owner_dead;
                return {};
            }
            continue;
        }
        if (!may_wait) {
            // Leaving without the lock: a wake-up this waiter took is passed on, or another
            // sleeper would wait for its next look although the lock may be free by then.
            if (woken) futex(futex_half(w), FUTEX_WAKE, 1, nullptr);
            st = LockStatus::timed_out;
            return {};
        }
    }
}

std::error_code mutex_unlock(Mutex& m) noexcept {
    auto& w = word_of(m);
    const std::uint64_t self = thread_token();
    std::uint64_t s = w.load(std::memory_order_relaxed);
    do {
        if ((s & ~kWaiters) != self) return std::make_error_code(std::errc::operation_not_permitted);
    } while (!w.compare_exchange_weak(s, 0));  // only the caller's own word is given back
    // A waiter set the bit: wake one, which takes the word with the bit again.
    if ((s & kWaiters) && futex(futex_half(w), FUTEX_WAKE, 1, nullptr) < 0) return last_error();
    return {};
}

bool mutex_try_uncontended(Mutex& m) noexcept {
    std::uint64_t s = 0;
    return word_of(m).compare_exchange_strong(s, thread_token());
}

bool mutex_unlock_uncontended(Mutex& m) noexcept {
    std::uint64_t s = thread_token();
    return word_of(m).compare_exchange_strong(s, 0);  // fails when the waiters bit is set
}

bool mutex_held_by_caller(Mutex& m) noexcept {
    return (word_of(m).load(std::memory_order_relaxed) & ~kWaiters) == thread_token();
}

// mutex_consistent: nothing to do on POSIX either; the owner word is simply the new owner's.
// (A pthread robust mutex would need pthread_mutex_consistent; common/ keeps that protocol.)
std::error_code mutex_consistent(Mutex&) noexcept { return {}; }

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
// (A thread that never locked has nothing to clear: a read costs no copy-on-write fault.)
void after_fork_in_child() noexcept {
    if (mp::detail::thread_token_cache != 0) mp::detail::thread_token_cache = 0;
}
struct ForkWatch {
    ForkWatch() noexcept { ::pthread_atfork(nullptr, nullptr, after_fork_in_child); }
} fork_watch;
}  // namespace

namespace {
// The token is the owner word's value: tid in bits 0-21, pid in bits 32-53, and 19 bits of the
// thread's start time in bits 22-30 and 54-63 (bit 31 is the waiters bit). Waiters can read
// from it which thread to look for under /proc, and a dead thread's reused tid gives a
// different token (the start time differs). Out of line: the lock paths only read the cache.
[[gnu::cold, gnu::noinline]] std::uint64_t compute_thread_token() noexcept {
    const int pid = static_cast<int>(::getpid());
    const int tid = static_cast<int>(::syscall(SYS_gettid));
    char state = 0;
    unsigned long long start = 0;
    const std::uint64_t stamp = read_task_stat(pid, tid, state, start) == 0 ? stamp_of_start(start) : 0;
    return mp::detail::thread_token_cache = (static_cast<std::uint64_t>(tid) & kIdBits) | ((stamp & 0x1ff) << 22) |
                                            ((static_cast<std::uint64_t>(pid) & kIdBits) << 32) | ((stamp >> 9) << 54);
}
}  // namespace

std::uint64_t thread_token() noexcept {
    const std::uint64_t c = mp::detail::thread_token_cache;
    return __builtin_expect(c != 0, 1) ? c : compute_thread_token();
}

}  // namespace mp::sys
