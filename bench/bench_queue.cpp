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
//     Each consumer adds the number of items it got to a shared total at its end; each side
//     checks that the total is the number of items put.
// bench_main pins the whole run (and so every child) to one CPU, as queue.py does for CPython.
#include <string>
#include <utility>
#include <vector>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <atomic>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <new>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

#if !defined(_WIN32)
using Item = std::pair<int, mp::bytes>;
constexpr std::size_t kPayload = bench::work::kQueuePayload;
constexpr std::size_t kRecord = bench::work::kQueueRecord;

int q_produce(mp::Queue q, int id, int n) {
    Item item{id, mp::bytes(kPayload, std::byte{'x'})};
    for (int i = 0; i < n; ++i) {
        item.first = i;
        q.put(item);
    }
    return 0;
}
MP_TARGET(q_produce);

int q_consume(mp::Queue q, mp::Value<long long> total) {
    long long got = 0;
    for (;;) {
        const Item item = q.get<Item>();
        if (item.first < 0) break;
        if (item.second.size() != kPayload) return 1;
        ++got;
    }
    std::lock_guard<mp::RLock> g(total.get_lock());
    total = total.value() + got;
    return 0;
}
MP_TARGET(q_consume);

using bench::read_n;

void write_record(int fd, int v) {
    char rec[kRecord];
    std::memcpy(rec, &v, 4);
    std::memset(rec + 4, 'x', kPayload);
    (void)!::write(fd, rec, sizeof rec);  // one write: atomic up to PIPE_BUF
}

void run_ours(int producers, int consumers, int per_producer) {
    mp::Queue q;
    mp::Value<long long> total(0);
    const mp::Context& ctx = mp::get_context("fork");
    std::vector<mp::Process> cons, prods;
    for (int c = 0; c < consumers; ++c) cons.push_back(ctx.Process(q_consume, q, total));
    for (int p = 0; p < producers; ++p) prods.push_back(ctx.Process(q_produce, q, p, per_producer));
    for (auto& p : cons) p.start();
    for (auto& p : prods) p.start();
    for (auto& p : prods) p.join();
    for (int c = 0; c < consumers; ++c) q.put(Item{-1, {}});
    for (auto& p : cons) p.join();
    bench::check(total.value() == static_cast<long long>(producers) * per_producer, "queue (mp): wrong item count");
}

void run_raw(int producers, int consumers, int per_producer, std::atomic<long long>* total) {
    total->store(0);
    int fds[2];
    bench::check(::pipe2(fds, O_CLOEXEC) == 0, "queue (raw): pipe2 failed");
    std::vector<pid_t> cons, prods;
    for (int c = 0; c < consumers; ++c) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::close(fds[1]);
            char rec[kRecord];
            int v = 0;
            long long got = 0;
            while (read_n(fds[0], rec, sizeof rec)) {
                std::memcpy(&v, rec, 4);
                if (v < 0) break;
                ++got;
            }
            total->fetch_add(got);
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
    bench::check(total->load() == static_cast<long long>(producers) * per_producer, "queue (raw): wrong item count");
}

bench::Result exchange(int scale, int producers, int consumers) {
    const int total = bench::work::queue_items(scale);
    const int per = total / producers;
    // The raw consumers' shared total, in a MAP_SHARED page that fork children share.
    void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    bench::check(page != MAP_FAILED, "queue (raw): mmap failed");
    auto* raw_total = new (page) std::atomic<long long>(0);
    bench::Result r = bench::interleaved(
        bench::work::queue(scale), [&] { run_ours(producers, consumers, per); },
        [&] { run_raw(producers, consumers, per, raw_total); });
    ::munmap(page, 4096);
    const double items = static_cast<double>(per) * producers;
    return {r.cpp / items, r.raw / items};
}

bench::Register q11_metric("queue.1to1", "us", "lower", [](int scale) { return exchange(scale, 1, 1); });
bench::Register q22_metric("queue.2to2", "us", "lower", [](int scale) { return exchange(scale, 2, 2); });
#endif

}  // namespace
