// bench/bench_pool.cpp - pool.*: mp::Pool against CPython's multiprocessing.Pool (fork) and the
// raw floor of the same exchange.
//   pool.apply     apply() of a function returning its int argument, one worker; us per call
//                  (lower is better)
//     cpp: pool.apply(echo_int, i)
//     raw: a worker forked beforehand answering each request (a 4-byte count of 1 + the int)
//          with the int, on a pipe each way as a pool worker has (until issue 17 a
//          socketpair, which costs about twice as much as two pipes for a small exchange here:
//          a floor mp's pipes could beat)
//   pool.map_100k  map(square, 100000 ints below 2^15), two workers, the default chunksize; us per item,
//                  the workers already started (lower is better)
//     cpp: pool.map(square, items)
//     raw: two workers forked beforehand, a pipe each way; the parent sends them the items in
//          chunks of the pool's default size (4-byte count + the ints, one writev), each
//          worker squares its chunk and writes it back, the parent places the results in
//          order. (Until issue 17 this floor forked two children per sample that already
//          held their halves: it paid two forks the pool does not and sent no items, which
//          the pool must: not the same work.)
//   executor.submit  submit(echo_int, i).result() on a warm ProcessPoolExecutor, one worker; us per
//                  round trip (lower is better; issue 13: at least 20x CPython's)
//     cpp: ex.submit(echo_int, i).result()
//     raw: the pool.apply floor (a worker forked beforehand, a pipe each way)
// bench_main pins the whole run (and so every child) to one CPU, as pool.py does for CPython.
#include <cstdint>
#include <utility>
#include <vector>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
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

// A raw pool worker, started once as the pool's are, on the same OS objects as a pool worker:
// a pipe each way (pipe(2); a small exchange costs about twice as much on a socketpair here).
// It reads a task (a 4-byte count, then that many ints) and answers with fn of each, in one
// write; a count of 0 ends it.
struct RawWorker {
    int to = -1, from = -1;  // the parent's ends
    pid_t pid = -1;
    explicit RawWorker(int (*fn)(int)) {
        int task[2], result[2];
        bench::check(::pipe2(task, O_CLOEXEC) == 0 && ::pipe2(result, O_CLOEXEC) == 0, "pool (raw): pipe2 failed");
        pid = ::fork();
        if (pid == 0) {
            ::close(task[1]);
            ::close(result[0]);
            std::vector<int> chunk;
            for (std::uint32_t count = 0; bench::read_n(task[0], &count, sizeof count) && count > 0;) {
                chunk.resize(count);
                if (!bench::read_n(task[0], chunk.data(), count * sizeof(int))) break;
                for (int& x : chunk) x = fn(x);
                if (!write_all(result[1], chunk.data(), count * sizeof(int))) break;
            }
            ::_exit(0);
        }
        ::close(task[0]);
        ::close(result[1]);
        to = task[1];
        from = result[0];
    }
    RawWorker(const RawWorker&) = delete;
    RawWorker& operator=(const RawWorker&) = delete;
    void send(const int* items, std::uint32_t count) const {
        iovec iov[2] = {{&count, sizeof count}, {const_cast<int*>(items), count * sizeof(int)}};
        const std::size_t all = iov[0].iov_len + iov[1].iov_len;
        const ssize_t w = ::writev(to, iov, 2);  // a task fits the pipe: whole at once
        bench::check(w >= 0 && static_cast<std::size_t>(w) == all, "pool (raw): short write");
    }
    bool receive(int* out, std::uint32_t count) const { return bench::read_n(from, out, count * sizeof(int)); }
    ~RawWorker() {
        const std::uint32_t stop = 0;
        write_all(to, &stop, sizeof stop);
        ::close(to);
        ::close(from);
        int st = 0;
        ::waitpid(pid, &st, 0);
    }
};

bench::Result apply(int scale) {
    const int batch = 2000;
    mp::Pool pool(1, mp::PoolOptions().context(mp::get_context("fork")));
    RawWorker worker(echo_int);
    bench::Result r = bench::interleaved(
        std::max(5, 30 / scale), 2,
        [&] {
            for (int i = 0; i < batch; ++i)
                bench::check(pool.apply(echo_int, i) == i, "pool.apply (mp): wrong result");
        },
        [&] {
            for (int i = 0; i < batch; ++i) {
                int x = i;
                worker.send(&x, 1);
                bench::check(worker.receive(&x, 1) && x == i, "pool.apply (raw): wrong result");
            }
        });
    return {r.cpp / batch, r.raw / batch};
}

bench::Result executor_submit(int scale) {
    const int batch = 2000;
    mp::futures::ProcessPoolExecutor ex(1, mp::PoolOptions().context(mp::get_context("fork")));
    RawWorker worker(echo_int);
    bench::Result r = bench::interleaved(
        std::max(5, 30 / scale), 2,
        [&] {
            for (int i = 0; i < batch; ++i)
                bench::check(ex.submit(echo_int, i).result() == i, "executor.submit (mp): wrong result");
        },
        [&] {
            for (int i = 0; i < batch; ++i) {
                int x = i;
                worker.send(&x, 1);
                bench::check(worker.receive(&x, 1) && x == i, "executor.submit (raw): wrong result");
            }
        });
    return {r.cpp / batch, r.raw / batch};
}

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
    RawWorker workers[2] = {RawWorker(square_int), RawWorker(square_int)};
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
                bench::check(w.receive(out.data() + from, count), "pool.map_100k (raw): worker gone");
                if (k + 2 < chunks) w.send(items.data() + span(k + 2).first, span(k + 2).second);
            }
            bench::check(right(out), "pool.map_100k (raw): wrong results");
        });
    return {r.cpp / n, r.raw / n};
}

bench::Register apply_metric("pool.apply", "us", "lower", apply);
bench::Register map_metric("pool.map_100k", "us", "lower", map_100k);
bench::Register submit_metric("executor.submit", "us", "lower", executor_submit);
#endif

}  // namespace
