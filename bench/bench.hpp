// bench/bench.hpp - the C++ half of the benchmarks: each metric measures mp ("cpp") and the
// raw OS calls doing the same work ("raw"), interleaved sample by sample so that both see the
// same machine noise, and reports medians. bench/run adds the CPython side, the peers
// (bench/peers/, a separate program: the only code that may use Boost or Poco) and the ratios.
// The amount of work of each metric (counts, sizes, samples) is in namespace bench::work below,
// shared by mp_bench and mp_bench_peers so that every side of a row does the same work.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if !defined(_WIN32)
#include <unistd.h>
#endif

namespace bench {

struct Result {
    double cpp = -1;  // microseconds (or the metric's unit); < 0: no such side
    double raw = -1;
    // A metric's further figures, printed as more fields of its JSON line (pool.imap_buffered's
    // peak RSS: "cpp_rss_peak_kb" ...); bench/run shows the ones it knows.
    std::vector<std::pair<std::string, double>> extra = {};
};

// A side's own check of its result failed (a wrong count, wrong bytes): its figure must not
// count. mp_bench stops with the message (mp or its floor is wrong); mp_bench_peers reports
// the peer as not measured, with the message.
struct WrongResult : std::runtime_error {
    using std::runtime_error::runtime_error;
};
inline void check(bool ok, const char* what) {
    if (!ok) throw WrongResult(what);
}

// How many samples (after how many warm-up rounds) a metric takes, and how much work each one
// does: the same on every side of the row, mp's, the raw floor's and each peer's.
struct Plan {
    int samples;
    int warmup;
};
namespace work {
// pipe.pingpong: kPingpongBatch round trips of kPingpongBytes per sample.
constexpr int kPingpongBatch = 2000;
constexpr std::size_t kPingpongBytes = 64;
inline Plan pingpong(int scale) { return {std::max(5, 40 / scale), 3}; }
// pipe.bulk_*: kBulkBytes one way in messages of the metric's size, then a 1-byte ack.
constexpr std::size_t kBulkBytes = std::size_t{64} << 20;
inline Plan bulk(int scale) { return {std::max(3, 20 / scale), 2}; }
// subprocess.run: /bin/true, started and waited for.
inline Plan run(int scale) { return {std::max(20, 400 / scale), 20}; }
// subprocess.capture_64m: the child (mp_bench --write-64m) writes kCaptureBytes to stdout in
// 64 KiB writes; each side holds all of it in memory and checks its size.
constexpr std::size_t kCaptureBytes = std::size_t{64} << 20;
inline Plan capture(int scale) { return {std::max(3, 15 / scale), 2}; }
// subprocess.pipeline_256m: producer | consumer, both mp_bench: the producer (--produce-256m)
// writes kPipelineBytes to stdout in 64 KiB writes, the consumer (--consume-256m) reads its
// stdin in 64 KiB reads to end of file, discards the bytes and exits 0 only if it got exactly
// kPipelineBytes. Issue 15.
constexpr std::size_t kPipelineBytes = std::size_t{256} << 20;
inline Plan pipeline(int scale) { return {std::max(3, 15 / scale), 2}; }
// shm.cycle: a 4096-byte named segment created, attached by name, both closed, unlinked.
constexpr std::size_t kShmBytes = 4096;
inline Plan shm(int scale) { return {20000 / scale, 2000 / scale + 1}; }
// lock.uncontended: kLockBatch acquire + release pairs per sample, one process.
constexpr int kLockBatch = 100000;
inline Plan lock(int scale) { return {std::max(5, 30 / scale), 2}; }
// value.locked_incr: 2 forked processes x incr_count(scale) locked increments each.
inline int incr_count(int scale) { return 1000000 / scale; }
inline Plan incr(int scale) { return {std::max(3, 7 / scale), 1}; }
// queue.*: queue_items(scale) records of (int, kQueuePayload bytes) in all, shared among the
// producers; a stop record per consumer. kQueueRingBytes: mp::Queue's default ring, the
// buffer size a peer's queue gets too.
constexpr std::size_t kQueuePayload = 64;
constexpr std::size_t kQueueRecord = 4 + kQueuePayload;
constexpr std::size_t kQueueRingBytes = std::size_t{4} << 20;
inline int queue_items(int scale) { return 400000 / scale; }
inline Plan queue(int scale) { return {std::max(3, 9 / scale), 1}; }
}  // namespace work

struct Metric {
    std::string id;
    std::string unit;    // "us", "MB/s" ...
    std::string better;  // "lower" or "higher"
    std::function<Result(int scale)> run;
};

std::vector<Metric>& registry();

// The child of subprocess.capture_64m (bench_main's --write-64m): 64 MiB to stdout.
int write_64m();
// The two children of subprocess.pipeline_256m (bench_main's --produce-256m, --consume-256m;
// defined in bench_subprocess.cpp): 256 MiB to stdout; stdin read to its end and counted.
int pipeline_produce();
int pipeline_consume();

struct Register {
    Register(std::string id, std::string unit, std::string better, std::function<Result(int)> run) {
        registry().push_back({std::move(id), std::move(unit), std::move(better), std::move(run)});
    }
};

inline double median(std::vector<double> v) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Times the sides in turn, `samples` rounds after `warmup` rounds, and returns the median
// duration of one call of each side in microseconds, in the order given.
inline std::vector<double> interleaved(int samples, int warmup, const std::vector<std::function<void()>>& sides) {
    using clock = std::chrono::steady_clock;
    std::vector<std::vector<double>> times(sides.size());
    for (int i = 0; i < warmup; ++i)
        for (const auto& side : sides) side();
    for (int i = 0; i < samples; ++i) {
        for (std::size_t k = 0; k < sides.size(); ++k) {
            const auto t0 = clock::now();
            sides[k]();
            times[k].push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
        }
    }
    std::vector<double> out;
    for (auto& t : times) out.push_back(median(std::move(t)));
    return out;
}

// Times `ours` and `raw` alternately, `samples` times each after `warmup` rounds, and returns
// the median duration of one call of each in microseconds.
inline Result interleaved(int samples, int warmup, const std::function<void()>& ours, const std::function<void()>& raw) {
    const std::vector<double> m = interleaved(samples, warmup, {ours, raw});
    return {m[0], m[1]};
}
inline Result interleaved(Plan plan, const std::function<void()>& ours, const std::function<void()>& raw) {
    return interleaved(plan.samples, plan.warmup, ours, raw);
}
// One side alone (a peer), with the plan of its metric: the median of one call, in us.
inline double timed(Plan plan, const std::function<void()>& side) {
    return interleaved(plan.samples, plan.warmup, {side})[0];
}

#if !defined(_WIN32)
// The raw floors' own reads: exactly n bytes from a pipe or socket, false at end of file.
inline bool read_n(int fd, void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
        const ssize_t r = ::read(fd, c, n);
        if (r <= 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}
#endif

}  // namespace bench
