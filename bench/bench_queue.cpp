// bench/bench_queue.cpp - queue.*: mp::Queue between forked producer and consumer processes,
// against a bare pipe carrying the same records one write each (the floor a pipe-based queue
// such as CPython's cannot beat). Items are (int, 64 bytes); us per item (lower is better).
//   queue.1to1  one producer process, one consumer process
//   queue.2to2  two producers, two consumers on the same queue
// Each sample starts the processes, the producers put their share, the parent then puts one
// stop item per consumer and waits for everyone: the time over the item count.
//     cpp: Queue::put of std::pair<int, mp::bytes> / get of the same
//     raw: write() of a 68-byte record / read() of 68 bytes (writes up to PIPE_BUF are atomic,
//          so two readers of one pipe always get whole records)
// bench_main pins the whole run (and so every child) to one CPU, as queue.py does for CPython.
#include <string>
#include <utility>
#include <vector>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

#if !defined(_WIN32)
using Item = std::pair<int, mp::bytes>;
constexpr std::size_t kPayload = 64;
constexpr std::size_t kRecord = 4 + kPayload;

int q_produce(mp::Queue q, int id, int n) {
    Item item{id, mp::bytes(kPayload, std::byte{'x'})};
    for (int i = 0; i < n; ++i) {
        item.first = i;
        q.put(item);
    }
    return 0;
}
MP_TARGET(q_produce);

int q_consume(mp::Queue q) {
    long got = 0;
    for (;;) {
        const Item item = q.get<Item>();
        if (item.first < 0) return got > 0 ? 0 : 1;
        ++got;
    }
}
MP_TARGET(q_consume);

using bench::read_n;

void write_record(int fd, int v) {
    char rec[kRecord];
    std::memcpy(rec, &v, 4);
    std::memset(rec + 4, 'x', kPayload);
    (void)!::write(fd, rec, sizeof rec);  // one write: atomic up to PIPE_BUF
}

double run_ours(int producers, int consumers, int per_producer) {
    const auto t0 = std::chrono::steady_clock::now();
    mp::Queue q;
    const mp::Context& ctx = mp::get_context("fork");
    std::vector<mp::Process> cons, prods;
    for (int c = 0; c < consumers; ++c) cons.push_back(ctx.Process(q_consume, q));
    for (int p = 0; p < producers; ++p) prods.push_back(ctx.Process(q_produce, q, p, per_producer));
    for (auto& p : cons) p.start();
    for (auto& p : prods) p.start();
    for (auto& p : prods) p.join();
    for (int c = 0; c < consumers; ++c) q.put(Item{-1, {}});
    for (auto& p : cons) p.join();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

double run_raw(int producers, int consumers, int per_producer) {
    const auto t0 = std::chrono::steady_clock::now();
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
    std::vector<pid_t> cons, prods;
    for (int c = 0; c < consumers; ++c) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::close(fds[1]);
            char rec[kRecord];
            int v = 0;
            while (read_n(fds[0], rec, sizeof rec)) {
                std::memcpy(&v, rec, 4);
                if (v < 0) break;
            }
            ::_exit(0);
        }
        cons.push_back(pid);
    }
    for (int p = 0; p < producers; ++p) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::close(fds[0]);
            for (int i = 0; i < per_producer; ++i) write_record(fds[1], i);
            ::_exit(0);
        }
        prods.push_back(pid);
    }
    int st = 0;
    for (pid_t p : prods) ::waitpid(p, &st, 0);
    for (int c = 0; c < consumers; ++c) write_record(fds[1], -1);
    for (pid_t p : cons) ::waitpid(p, &st, 0);
    ::close(fds[0]);
    ::close(fds[1]);
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

bench::Result exchange(int scale, int producers, int consumers) {
    const int total = 400000 / scale;
    const int per = total / producers;
    bench::Result r = bench::interleaved(
        std::max(3, 9 / scale), 1, [&] { run_ours(producers, consumers, per); },
        [&] { run_raw(producers, consumers, per); });
    const double items = static_cast<double>(per) * producers;
    return {r.cpp / items, r.raw / items};
}

bench::Register q11_metric("queue.1to1", "us", "lower", [](int scale) { return exchange(scale, 1, 1); });
bench::Register q22_metric("queue.2to2", "us", "lower", [](int scale) { return exchange(scale, 2, 2); });
#endif

}  // namespace
