// bench/bench_pool.cpp - pool.*: mp::Pool against CPython's multiprocessing.Pool (fork) and the
// raw floor of the same exchange.
//   pool.apply     apply() of a function returning its int argument, one worker; us per call
//                  (lower is better)
//     cpp: pool.apply(echo_int, i)
//     raw: a forked child on a socketpair answering each 4-byte request with 4 bytes: the
//          floor of any request/response between two processes
//   pool.map_100k  map(square, 100000 ints below 2^15), two workers, the default chunksize; us per item,
//                  the workers already started (lower is better)
//     cpp: pool.map(square, items)
//     raw: two forked children that already hold their halves (fork copied them), each
//          squaring its half and writing the results to a socketpair the parent reads whole
// bench_main pins the whole run (and so every child) to one CPU, as pool.py does for CPython.
#include <vector>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

int echo_int(int x) { return x; }
MP_TARGET(echo_int);

int square_int(int x) { return x * x; }
MP_TARGET(square_int);

#if !defined(_WIN32)
bool write_all(int fd, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = ::write(fd, c, n);
        if (w <= 0) return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bench::Result apply(int scale) {
    const int batch = 2000;
    mp::Pool pool(1, mp::PoolOptions().context(mp::get_context("fork")));
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(sv[0]);
        int x = 0;
        while (bench::read_n(sv[1], &x, sizeof x) && write_all(sv[1], &x, sizeof x)) {
        }
        ::_exit(0);
    }
    ::close(sv[1]);
    bench::Result r = bench::interleaved(
        std::max(5, 30 / scale), 2,
        [&] {
            for (int i = 0; i < batch; ++i)
                if (pool.apply(echo_int, i) != i) std::abort();
        },
        [&] {
            for (int i = 0; i < batch; ++i) {
                int x = i;
                write_all(sv[0], &x, sizeof x);
                bench::read_n(sv[0], &x, sizeof x);
                if (x != i) std::abort();
            }
        });
    ::close(sv[0]);
    int st = 0;
    ::waitpid(child, &st, 0);
    return {r.cpp / batch, r.raw / batch};
}

bench::Result map_100k(int scale) {
    const int n = 100000 / scale;
    std::vector<int> items(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i & 0x7fff;  // squares fit an int
    mp::Pool pool(2, mp::PoolOptions().context(mp::get_context("fork")));
    bench::Result r = bench::interleaved(
        std::max(3, 15 / scale), 1,
        [&] {
            const std::vector<int> out = pool.map(square_int, items);
            if (out.size() != items.size() || out.back() != items.back() * items.back()) std::abort();
        },
        [&] {
            std::vector<int> out(items.size());
            int fds[2][2];
            pid_t pids[2];
            const int half = n / 2;
            for (int k = 0; k < 2; ++k) {
                ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[k]);
                pids[k] = ::fork();
                if (pids[k] == 0) {
                    const int from = k * half, to = k ? n : half;
                    std::vector<int> mine(static_cast<std::size_t>(to - from));
                    for (int i = from; i < to; ++i) mine[static_cast<std::size_t>(i - from)] = items[static_cast<std::size_t>(i)] * items[static_cast<std::size_t>(i)];
                    write_all(fds[k][1], mine.data(), mine.size() * sizeof(int));
                    ::_exit(0);
                }
                ::close(fds[k][1]);
            }
            for (int k = 0; k < 2; ++k) {
                const int from = k * half, to = k ? n : half;
                bench::read_n(fds[k][0], out.data() + from, static_cast<std::size_t>(to - from) * sizeof(int));
                ::close(fds[k][0]);
                int st = 0;
                ::waitpid(pids[k], &st, 0);
            }
            if (out.back() != items.back() * items.back()) std::abort();
        });
    return {r.cpp / n, r.raw / n};
}

bench::Register apply_metric("pool.apply", "us", "lower", apply);
bench::Register map_metric("pool.map_100k", "us", "lower", map_100k);
#endif

}  // namespace
