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
//   pool.imap_buffered  imap(square, 1M ints below 2^15, chunksize 64, buffersize 64), two
//                  workers, the input made lazily one int at a time (no vector behind it), the
//                  results consumed one by one and each checked; us per item, the workers
//                  already started (lower is better; issue 13). Also the peak RSS of this
//                  (parent) process during one whole imap of each side, in a fresh process (the
//                  metric's first run; bench/run starts mp_bench per metric), the peak reset by
//                  /proc/self/clear_refs: printed by bench/run beside CPython's, no target.
//     cpp: for (int v : pool.imap(square_int, LazyInts(n), 64, 64)) check v
//     raw: the two RawWorkers of pool.map_100k, the same lazily made chunks of 64 ints sent
//          round robin, at most 64 chunks sent and not yet read back (as imap's buffersize);
//          the chunks read back in order and consumed one int at a time, each chunk read
//          followed by the next chunk sent
//   executor.submit  submit(echo_int, i).result() on a warm ProcessPoolExecutor, one worker; us per
//                  round trip (lower is better; issue 13: at least 20x CPython's)
//     cpp: ex.submit(echo_int, i).result()
//     raw: the pool.apply floor (a worker forked beforehand, a pipe each way)
// bench_main pins the whole run (and so every child) to one CPU, as pool.py does for CPython.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
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

// The input of pool.imap_buffered: the ints i & 0x7fff for i below n (their squares fit an
// int), each made as the iteration reads it.
class LazyInts {
public:
    explicit LazyInts(int n) : n_(n) {}
    struct iterator {
        int i;
        int operator*() const { return i & 0x7fff; }
        iterator& operator++() {
            ++i;
            return *this;
        }
        bool operator==(const iterator& o) const { return i == o.i; }
        bool operator!=(const iterator& o) const { return i != o.i; }
    };
    iterator begin() const { return {0}; }
    iterator end() const { return {n_}; }

private:
    int n_;
};

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"); -1 if absent.
double status_kb(const char* field) {
    std::FILE* f = std::fopen("/proc/self/status", "re");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    const std::size_t len = std::strlen(field);
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, field, len) == 0 && line[len] == ':') kb = std::atof(line + len + 1);
    std::fclose(f);
    return kb;
}

// The resident memory of this process before `side` and its peak during it, in kB: the peak
// (VmHWM) reset to the current RSS first (Linux 4.0+: "5" to /proc/self/clear_refs). Both -1
// if the reset is refused.
std::pair<double, double> rss_during(const std::function<void()>& side) {
    const int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    const bool reset = fd >= 0 && ::write(fd, "5", 1) == 1;
    if (fd >= 0) ::close(fd);
    const double before = reset ? status_kb("VmRSS") : -1;
    side();
    return {before, reset ? status_kb("VmHWM") : -1};
}

bench::Result imap_buffered(int scale) {
    constexpr std::size_t kChunk = 64, kBuffer = 64;  // ints per chunk, chunks in flight
    const int n = 1000000 / scale;
    auto square_of = [](int i) { return (i & 0x7fff) * (i & 0x7fff); };
    mp::Pool pool(2, mp::PoolOptions().context(mp::get_context("fork")));
    RawWorker workers[2] = {RawWorker(square_int), RawWorker(square_int)};
    auto mp_side = [&] {
        int i = 0;
        bool ok = true;
        for (int v : pool.imap(square_int, LazyInts(n), kChunk, kBuffer)) ok = ok && v == square_of(i++);
        bench::check(ok && i == n, "pool.imap_buffered (mp): wrong results");
    };
    auto raw_side = [&] {
        const std::size_t items = static_cast<std::size_t>(n);
        const std::size_t chunks = (items + kChunk - 1) / kChunk;
        auto count_of = [&](std::size_t k) { return static_cast<std::uint32_t>(std::min(kChunk, items - k * kChunk)); };
        int in[kChunk], out[kChunk];
        std::size_t sent = 0;
        auto send_next = [&] {  // chunk `sent`, its ints made now, to worker sent % 2
            const std::uint32_t count = count_of(sent);
            for (std::uint32_t j = 0; j < count; ++j) in[j] = static_cast<int>((sent * kChunk + j) & 0x7fff);
            workers[sent % 2].send(in, count);
            ++sent;
        };
        while (sent < chunks && sent < kBuffer) send_next();
        int i = 0;
        bool ok = true;
        for (std::size_t k = 0; k < chunks; ++k) {
            const std::uint32_t count = count_of(k);
            bench::check(workers[k % 2].receive(out, count), "pool.imap_buffered (raw): worker gone");
            for (std::uint32_t j = 0; j < count; ++j) ok = ok && out[j] == square_of(i++);
            if (sent < chunks) send_next();
        }
        bench::check(ok && i == n, "pool.imap_buffered (raw): wrong results");
    };
    // The first run of each side, in this fresh process, measures its RSS (and warms it up).
    const auto [cpp_before, cpp_peak] = rss_during(mp_side);
    const auto [raw_before, raw_peak] = rss_during(raw_side);
    bench::Result r = bench::interleaved(std::max(3, 7 / scale), 0, mp_side, raw_side);
    return {r.cpp / n, r.raw / n,
            {{"cpp_rss_before_kb", cpp_before},
             {"cpp_rss_peak_kb", cpp_peak},
             {"raw_rss_before_kb", raw_before},
             {"raw_rss_peak_kb", raw_peak}}};
}

bench::Register apply_metric("pool.apply", "us", "lower", apply);
bench::Register map_metric("pool.map_100k", "us", "lower", map_100k);
bench::Register imap_metric("pool.imap_buffered", "us", "lower", imap_buffered);
bench::Register submit_metric("executor.submit", "us", "lower", executor_submit);
#endif

}  // namespace
