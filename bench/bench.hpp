// bench/bench.hpp - the C++ half of the benchmarks: each metric measures mp ("cpp") and the
// raw OS calls doing the same work ("raw"), interleaved sample by sample so that both see the
// same machine noise, and reports medians. bench/run adds the CPython side and the ratios.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#if !defined(_WIN32)
#include <unistd.h>
#endif

namespace bench {

struct Result {
    double cpp = -1;  // microseconds (or the metric's unit); < 0: no such side
    double raw = -1;
};

struct Metric {
    std::string id;
    std::string unit;    // "us", "MB/s" ...
    std::string better;  // "lower" or "higher"
    std::function<Result(int scale)> run;
};

std::vector<Metric>& registry();

// The child of subprocess.capture_64m (bench_main's --write-64m): 64 MiB to stdout.
int write_64m();

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

// Times `ours` and `raw` alternately, `samples` times each after `warmup` rounds, and returns
// the median duration of one call of each in microseconds.
inline Result interleaved(int samples, int warmup, const std::function<void()>& ours, const std::function<void()>& raw) {
    using clock = std::chrono::steady_clock;
    std::vector<double> a, b;
    for (int i = 0; i < warmup; ++i) {
        ours();
        raw();
    }
    for (int i = 0; i < samples; ++i) {
        auto t0 = clock::now();
        ours();
        auto t1 = clock::now();
        raw();
        auto t2 = clock::now();
        a.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        b.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
    }
    return {median(a), median(b)};
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
