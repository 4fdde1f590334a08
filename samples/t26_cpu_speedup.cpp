// T26 - CPU-bound speed-up: the same work done serially, then split over a Pool, timed.
//
// Python:                                          C++ (mp):
//   def work(n): return sum(i*i for i in range(n))   long long work(int n) { ... }  MP_TARGET(work);
//   t = time.time(); [work(n) for n in jobs]         for (int n : jobs) work(n);
//   with Pool() as p: p.map(work, jobs)              mp::Pool(0).map(work, jobs);  // 0: cpu_count()
//
// Processes help with CPU-bound work because each runs on its own CPU; the speed-up is at most
// the number of CPUs (minus the cost of starting workers and moving arguments and results), and
// nothing for a machine with one. Python has one more reason to use them: its GIL lets only one
// thread run Python code at a time, which C++ threads do not suffer from; see T29 for threads.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "mp/mp.hpp"

// Deliberately plain arithmetic the compiler cannot fold away.
static long long work(int n) {
    unsigned long long x = static_cast<unsigned long long>(n);
    long long s = 0;
    for (int i = 0; i < n; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s += static_cast<long long>(x >> 60);
    }
    return s;
}
MP_TARGET(work);

static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    const int cpus = mp::cpu_count();
    const std::vector<int> jobs(16, 4000000);
    bool ok = true;
    auto t0 = std::chrono::steady_clock::now();
    long long serial_total = 0;
    for (int n : jobs) serial_total += work(n);
    const double serial_s = seconds_since(t0);
    std::printf("serial: %zu jobs in %.0f ms (checksum %lld)\n", jobs.size(), serial_s * 1000, serial_total);

    for (const std::string& method : mp::get_all_start_methods()) {
        t0 = std::chrono::steady_clock::now();
        mp::Pool pool(cpus, mp::PoolOptions().context(mp::get_context(method)));
        long long total = 0;
        for (long long v : pool.map(work, jobs)) total += v;
        const double parallel_s = seconds_since(t0);
        std::printf("%s pool of %d: %zu jobs in %.0f ms (checksum %lld): %.2fx the serial speed on %d CPUs\n",
                    method.c_str(), cpus, jobs.size(), parallel_s * 1000, total, serial_s / parallel_s, cpus);
        ok = ok && total == serial_total;
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
