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
//     raw: two workers forked beforehand on socketpairs; the parent sends them the items in
//          chunks of the pool's default size (4-byte count + the ints, one writev), each
//          worker squares its chunk and writes it back, the parent places the results in
//          order. (Until issue 17 this floor forked two children per sample that already
//          held their halves: it paid two forks the pool does not and sent no items, which
//          the pool must: not the same work.)
// bench_main pins the whole run (and so every child) to one CPU, as pool.py does for CPython.
#include <cstdint>
#include <utility>
#include <vector>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <sys/socket.h>
#include <sys/uio.h>
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
                bench::check(pool.apply(echo_int, i) == i, "pool.apply (mp): wrong result");
        },
        [&] {
            for (int i = 0; i < batch; ++i) {
                int x = i;
                write_all(sv[0], &x, sizeof x);
                bench::read_n(sv[0], &x, sizeof x);
                bench::check(x == i, "pool.apply (raw): wrong result");
            }
        });
    ::close(sv[0]);
    int st = 0;
    ::waitpid(child, &st, 0);
    return {r.cpp / batch, r.raw / batch};
}

// A raw pool worker, started once like the pool's: reads a chunk (a 4-byte count, then that
// many ints), answers with their squares in one write; a count of 0 ends it.
struct RawWorker {
    int fd = -1;
    pid_t pid = -1;
    RawWorker() {
        int sv[2];
        bench::check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "pool.map_100k (raw): socketpair failed");
        pid = ::fork();
        if (pid == 0) {
            ::close(sv[0]);
            std::vector<int> chunk;
            for (std::uint32_t count = 0; bench::read_n(sv[1], &count, sizeof count) && count > 0;) {
                chunk.resize(count);
                if (!bench::read_n(sv[1], chunk.data(), count * sizeof(int))) break;
                for (int& x : chunk) x = square_int(x);
                if (!write_all(sv[1], chunk.data(), count * sizeof(int))) break;
            }
            ::_exit(0);
        }
        ::close(sv[1]);
        fd = sv[0];
    }
    RawWorker(const RawWorker&) = delete;
    RawWorker& operator=(const RawWorker&) = delete;
    void send(const int* items, std::uint32_t count) const {
        iovec iov[2] = {{&count, sizeof count}, {const_cast<int*>(items), count * sizeof(int)}};
        std::size_t left = iov[0].iov_len + iov[1].iov_len;
        const ssize_t w = ::writev(fd, iov, 2);  // a chunk fits the socket buffer: whole at once
        bench::check(w >= 0 && static_cast<std::size_t>(w) == left, "pool.map_100k (raw): short write");
    }
    ~RawWorker() {
        const std::uint32_t stop = 0;
        write_all(fd, &stop, sizeof stop);
        ::close(fd);
        int st = 0;
        ::waitpid(pid, &st, 0);
    }
};

bench::Result map_100k(int scale) {
    const int n = 100000 / scale;
    std::vector<int> items(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i & 0x7fff;  // squares fit an int
    // Each side's check: every 97th result and the last.
    auto right = [&](const std::vector<int>& out) {
        if (out.size() != items.size()) return false;
        for (std::size_t i = 0; i < out.size(); i += 97)
            if (out[i] != items[i] * items[i]) return false;
        return out.back() == items.back() * items.back();
    };
    mp::Pool pool(2, mp::PoolOptions().context(mp::get_context("fork")));
    // The raw floor does the pool's work: two workers started beforehand, the items sent to
    // them in chunks of the pool's default size (n / (4 x 2 workers), rounded up), each chunk
    // squared and sent back, the results placed in order. Two chunks are out at a time, one per
    // worker; a worker gets the next chunk once its last result is read.
    RawWorker workers[2];
    const std::size_t chunk = (items.size() + 7) / 8;
    bench::Result r = bench::interleaved(
        std::max(3, 15 / scale), 1,
        [&] {
            const std::vector<int> out = pool.map(square_int, items);
            bench::check(right(out), "pool.map_100k (mp): wrong results");
        },
        [&] {
            std::vector<int> out(items.size());
            const std::size_t chunks = (items.size() + chunk - 1) / chunk;
            auto span = [&](std::size_t k) {
                const std::size_t from = k * chunk;
                return std::pair<std::size_t, std::uint32_t>{from, static_cast<std::uint32_t>(std::min(chunk, items.size() - from))};
            };
            for (std::size_t k = 0; k < 2 && k < chunks; ++k) workers[k].send(items.data() + span(k).first, span(k).second);
            for (std::size_t k = 0; k < chunks; ++k) {
                const auto [from, count] = span(k);
                const RawWorker& w = workers[k % 2];
                bench::check(bench::read_n(w.fd, out.data() + from, count * sizeof(int)), "pool.map_100k (raw): worker gone");
                if (k + 2 < chunks) w.send(items.data() + span(k + 2).first, span(k + 2).second);
            }
            bench::check(right(out), "pool.map_100k (raw): wrong results");
        });
    return {r.cpp / n, r.raw / n};
}

bench::Register apply_metric("pool.apply", "us", "lower", apply);
bench::Register map_metric("pool.map_100k", "us", "lower", map_100k);
#endif

}  // namespace
