// bench/bench_sync.cpp - lock.* and value.*: mp's shared lock and Value against a raw
// process-shared pthread mutex (the floor any such lock has) in a MAP_SHARED page.
//   lock.uncontended  acquire + release of one lock, one process; us per pair (lower is better)
//     cpp: mp::Lock::acquire() + release() (owner word, futex under contention)
//     raw: pthread_mutex_lock + unlock of a PTHREAD_PROCESS_SHARED mutex
//   value.locked_incr  2 forked processes x 1M increments of a shared integer, each under the
//     lock; us per increment, start and join included (lower is better)
//     cpp: { std::lock_guard g(v.get_lock()); v = v.value() + 1; }  (the RLock re-entered, as
//          CPython's `with v.get_lock(): v.value += 1` does)
//     raw: pthread_mutex_lock; ++*p; pthread_mutex_unlock on a pshared mutex and a long long
// bench_main pins the whole run (and so every child) to one CPU, as sync.py does for CPython.
#include <mutex>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

#if !defined(_WIN32)
struct RawShared {
    pthread_mutex_t m;
    long long value;
};

RawShared* make_raw() {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    auto* r = static_cast<RawShared*>(p);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&r->m, &a);
    pthread_mutexattr_destroy(&a);
    r->value = 0;
    return r;
}

bench::Result uncontended(int scale) {
    const int batch = bench::work::kLockBatch;
    mp::Lock l;
    RawShared* raw = make_raw();
    bench::Result r = bench::interleaved(
        bench::work::lock(scale),
        [&] {
            for (int i = 0; i < batch; ++i) {
                l.acquire();
                l.release();
            }
        },
        [&] {
            for (int i = 0; i < batch; ++i) {
                pthread_mutex_lock(&raw->m);
                pthread_mutex_unlock(&raw->m);
            }
        });
    ::munmap(raw, 4096);
    return {r.cpp / batch, r.raw / batch};
}

int mp_incr(mp::Value<long long> v, int n) {
    for (int i = 0; i < n; ++i) {
        std::lock_guard<mp::RLock> g(v.get_lock());
        v = v.value() + 1;
    }
    return 0;
}
MP_TARGET(mp_incr);

bench::Result locked_incr(int scale) {
    const int n = bench::work::incr_count(scale);
    RawShared* raw = make_raw();
    bench::Result r = bench::interleaved(
        bench::work::incr(scale),
        [&] {
            mp::Value<long long> v(0);
            mp::Process a = mp::get_context("fork").Process(mp_incr, v, n);
            mp::Process b = mp::get_context("fork").Process(mp_incr, v, n);
            a.start();
            b.start();
            a.join();
            b.join();
            bench::check(v.value() == 2LL * n && a.exitcode() == 0 && b.exitcode() == 0, "value.locked_incr (mp): wrong count");
        },
        [&] {
            raw->value = 0;
            pid_t pids[2];
            for (pid_t& pid : pids) {
                pid = ::fork();
                if (pid == 0) {
                    for (int i = 0; i < n; ++i) {
                        pthread_mutex_lock(&raw->m);
                        ++raw->value;
                        pthread_mutex_unlock(&raw->m);
                    }
                    ::_exit(0);
                }
            }
            for (pid_t pid : pids) {
                int st = 0;
                ::waitpid(pid, &st, 0);
            }
            bench::check(raw->value == 2LL * n, "value.locked_incr (raw): wrong count");
        });
    ::munmap(raw, 4096);
    return {r.cpp / (2.0 * n), r.raw / (2.0 * n)};
}

bench::Register uncontended_metric("lock.uncontended", "us", "lower", uncontended);
bench::Register locked_incr_metric("value.locked_incr", "us", "lower", locked_incr);
#endif

}  // namespace
