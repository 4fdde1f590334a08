// posix/ring.cpp - a queue's shared ring on POSIX: one memfd mapping holding everything, the
// lock and wait objects included.
//
// POSIX lets synchronisation objects live in shared memory. The locks are pthread mutexes with
// PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST placed in the mapping: an uncontended lock
// and unlock is an atomic instruction in user space (the kernel is entered only to sleep or
// wake), and a process killed while holding one makes the next locker get EOWNERDEAD (the
// kernel walks the dead thread's robust list); it marks the mutex consistent and repairs the
// state. The waits are NOT pthread condition variables: glibc's pshared condvar is not safe
// against a waiter that dies - its wait reference stays counted and the next broadcast waits
// for it for ever (seen here: a consumer killed in get froze the next put). On Linux a wait is
// a futex on a sequence number in the mapping instead: the waiter reads the number under the
// lock, releases the lock and sleeps while it is unchanged; notify_all increments it and wakes
// the sleepers, and clears the count of sleepers (a woken one that has not run yet is not
// woken twice). A dead sleeper holds nothing, so it costs nothing. The counts let a put or get
// skip the wake system call when nobody sleeps, so a put or get that finds room or data
// makes no system call at all. (Elsewhere a pshared condvar is used, without that guarantee.)
// The whole ring is one fd (memfd_create, close-on-exec, no name in any file system): under
// fork the child inherits the mapping, under spawn the fd travels.
// Windows differs: a mutex or a semaphore is a kernel object reached by HANDLE, not memory, so
// the mapping carries only the data and the counters, and the locks (mutexes, WAIT_ABANDONED
// for a dead owner) and waits (semaphores) travel as six extra handles; every lock is a kernel
// call.
#include "../common/sys/ring.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__linux__)
#include <climits>
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

namespace mp::sys {

namespace {

std::error_code errno_code(int e) noexcept { return {e, std::generic_category()}; }

#if defined(__linux__)
using Cond = std::uint32_t;  // a futex word: the wakeup sequence number
#else
using Cond = pthread_cond_t;
#endif

struct Control {
    pthread_mutex_t locks[3];
    Cond conds[3];
};

constexpr std::size_t round64(std::size_t n) noexcept { return (n + 63) & ~std::size_t{63}; }
constexpr std::size_t kStateOffset = round64(sizeof(Control));
constexpr std::size_t kDataOffset = kStateOffset + round64(sizeof(RingState));

Control* control(Ring& r) noexcept { return static_cast<Control*>(r.view); }

timespec to_timespec(std::chrono::steady_clock::time_point t) noexcept {
    // libstdc++'s steady_clock is CLOCK_MONOTONIC, the clock the waits below are told to use.
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    timespec ts{};
    if (ns > 0) {
        ts.tv_sec = static_cast<time_t>(ns / 1000000000);
        ts.tv_nsec = static_cast<long>(ns % 1000000000);
    }
    return ts;
}

std::error_code map_fd(int fd, std::size_t size, Ring& out) noexcept {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return errno_code(errno);
    out.view = p;
    out.view_size = size;
    out.state = reinterpret_cast<RingState*>(static_cast<unsigned char*>(p) + kStateOffset);
    out.data = static_cast<unsigned char*>(p) + kDataOffset;
    return {};
}

int make_fd() noexcept {
#if defined(__linux__)
    return ::memfd_create("mp-queue", MFD_CLOEXEC);
#else
    // Elsewhere: a shm_open name removed at once, so only the fd holds the memory.
    char name[64];
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::snprintf(name, sizeof name, "/mp-queue-%d-%ld-%d", static_cast<int>(::getpid()),
                      static_cast<long>(std::clock()), attempt);
        const int fd = ::shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ::shm_unlink(name);
            return fd;
        }
        if (errno != EEXIST) return -1;
    }
    return -1;
#endif
}

}  // namespace

Ring::~Ring() {
    if (view) ::munmap(view, view_size);
}

std::error_code ring_create(std::size_t capacity, Ring& out) noexcept {
    const int fd = make_fd();
    if (fd < 0) return errno_code(errno);
    out.mapping.reset(fd);
    const std::size_t size = kDataOffset + capacity;
    int rc;
    do rc = ::ftruncate(fd, static_cast<off_t>(size));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) return errno_code(errno);
    if (auto ec = map_fd(fd, size, out)) return ec;
    // A fresh memfd is zero-filled: only the pthread objects need initialising.
    Control* c = control(out);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    int err = 0;
    for (int i = 0; i < 3 && !err; ++i) err = pthread_mutex_init(&c->locks[i], &ma);
    pthread_mutexattr_destroy(&ma);
#if !defined(__linux__)
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (int i = 0; i < 3 && !err; ++i) err = pthread_cond_init(&c->conds[i], &ca);
    pthread_condattr_destroy(&ca);
#endif
    if (err) return errno_code(err);
    out.state->capacity = capacity;
    return {};
}

void ring_handles(const Ring& r, std::vector<native_handle>& out) noexcept { out.push_back(r.mapping.get()); }

std::error_code ring_open(std::vector<Handle>& handles, Ring& out) noexcept {
    if (handles.size() != 1) return errno_code(EINVAL);
    out.mapping = std::move(handles[0]);
    struct stat st {};
    if (::fstat(out.mapping.get(), &st) != 0) return errno_code(errno);
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size <= kDataOffset) return errno_code(EINVAL);
    if (auto ec = map_fd(out.mapping.get(), size, out)) return ec;
    if (out.state->capacity != size - kDataOffset) return errno_code(EINVAL);
    return {};
}

std::error_code ring_lock(Ring& r, RingLock which, const RingDeadline& deadline, bool& acquired,
                          bool& owner_died) noexcept {
    pthread_mutex_t* m = &control(r)->locks[static_cast<int>(which)];
    acquired = owner_died = false;
    int rc;
    if (!deadline) {
        rc = pthread_mutex_lock(m);
    } else {
        const timespec ts = to_timespec(*deadline);
        rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
    }
    if (rc == ETIMEDOUT) return {};
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(m);
        owner_died = true;
        rc = 0;
    }
    if (rc != 0) return errno_code(rc);
    acquired = true;
    return {};
}

std::error_code ring_unlock(Ring& r, RingLock which) noexcept {
    const int rc = pthread_mutex_unlock(&control(r)->locks[static_cast<int>(which)]);
    return rc ? errno_code(rc) : std::error_code{};
}

std::error_code ring_wait(Ring& r, RingCond cond, const RingDeadline& deadline, bool& owner_died) noexcept {
    const int i = static_cast<int>(cond);
    Control* c = control(r);
    owner_died = false;
    ++r.state->waiters[i];
#if defined(__linux__)
    std::uint32_t* seq = &c->conds[i];
    const std::uint32_t seen = __atomic_load_n(seq, __ATOMIC_RELAXED);
    if (const int rc = pthread_mutex_unlock(&c->locks[0])) {
        --r.state->waiters[i];
        return errno_code(rc);
    }
    // Sleeps while the number is still `seen` (a notify after the unlock changed it, so no
    // wakeup is lost). FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline; EINTR
    // and EAGAIN are spurious wakeups, which the caller's loop absorbs.
    timespec ts{};
    if (deadline) ts = to_timespec(*deadline);
    ::syscall(SYS_futex, seq, FUTEX_WAIT_BITSET, seen, deadline ? &ts : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
    int rc = pthread_mutex_lock(&c->locks[0]);
    // A notify since `seen` has already taken this waiter off the count (see ring_notify_all).
    const bool notified = __atomic_load_n(seq, __ATOMIC_RELAXED) != seen;
#else
    const bool notified = false;
    int rc;
    if (!deadline) {
        rc = pthread_cond_wait(&c->conds[i], &c->locks[0]);
    } else {
        const timespec ts = to_timespec(*deadline);
        rc = pthread_cond_timedwait(&c->conds[i], &c->locks[0], &ts);
    }
#endif
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&c->locks[0]);
        owner_died = true;
        rc = 0;
    }
    if (rc != 0 && rc != ETIMEDOUT) return errno_code(rc);  // the lock is not held
    if (!notified && r.state->waiters[i]) --r.state->waiters[i];
    return {};
}

std::error_code ring_notify_all(Ring& r, RingCond cond) noexcept {
    const int i = static_cast<int>(cond);
    if (r.state->waiters[i] == 0) return {};
#if defined(__linux__)
    std::uint32_t* seq = &control(r)->conds[i];
    __atomic_fetch_add(seq, 1, __ATOMIC_RELAXED);
    // Every sleeper is woken now: none is counted any more, so the puts that follow (before the
    // woken ones get the CPU back) make no more wake calls. A sleeper that died is forgotten
    // here too.
    r.state->waiters[i] = 0;
    if (::syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0) < 0) return errno_code(errno);
    return {};
#else
    const int rc = pthread_cond_broadcast(&control(r)->conds[i]);
    return rc ? errno_code(rc) : std::error_code{};
#endif
}

}  // namespace mp::sys
