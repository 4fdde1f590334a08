// T11 - sizing for the machine: how many CPUs, which platform, and how many workers to start.
//
// Python:                                  C++ (mp):
//   os.cpu_count(), platform.system()        mp::cpu_count(), #ifdef _WIN32 / __linux__ ...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "mp/mp.hpp"

static const char* platform_name() {
#if defined(_WIN32)
    return "Windows";
#elif defined(__linux__)
    return "Linux";
#elif defined(__APPLE__)
    return "macOS";
#else
    return "another POSIX system";
#endif
}

static void busy(int index, long n) {
    volatile unsigned long sum = 0;  // volatile: the loop is the point, keep the compiler from folding it
    for (long i = 0; i < n; ++i) sum = sum + static_cast<unsigned long>(i % 7);
    std::printf("  [worker %d pid %d] summed %ld numbers\n", index, mp::getpid(), n);
    std::fflush(stdout);
}
MP_TARGET(busy);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    const int cpus = mp::cpu_count();
    std::printf("platform: %s, cpu_count: %d, default start method: %s (available:", platform_name(), cpus,
                mp::get_start_method().c_str());
    for (const auto& m : mp::get_all_start_methods()) std::printf(" %s", m.c_str());
    std::printf(")\n");

    // CPU-bound work gains nothing from more processes than CPUs: they only take turns.
    const int cpu_workers = cpus;
    // IO-bound work mostly waits, so more workers than CPUs keep the CPUs busy
    // (Python's ThreadPoolExecutor uses min(32, cpu_count + 4) for the same reason).
    const int io_workers = std::min(32, cpus + 4);
    std::printf("workers for CPU-bound work: %d; for IO-bound work: %d\n", cpu_workers, io_workers);
#if defined(_WIN32)
    std::printf("(Windows: one process waits on at most 64 handles at once, so very large pools need care)\n");
#endif

    const int started = std::min(cpu_workers, 8);  // bounded so that the sample stays quick
    std::printf("starting %d CPU-bound workers:\n", started);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<mp::Process> workers;
    for (int i = 0; i < started; ++i) workers.emplace_back(busy, i, 20'000'000L);
    for (auto& w : workers) w.start();
    for (auto& w : workers) w.join();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%d workers finished in %.0f ms (in parallel: about the time of one)\n", started, ms);
    return 0;
}
