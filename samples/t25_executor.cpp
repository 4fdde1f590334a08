// T25 - ProcessPoolExecutor: submit, Future.result(timeout), as_completed with progress
// reporting, map, shutdown, and choosing the pool size by the kind of task. Under every start
// method this platform has.
//
// Python:                                          C++ (mp):
//   from concurrent.futures import (                 namespace fu = mp::futures;
//       ProcessPoolExecutor, as_completed)
//   with ProcessPoolExecutor(4) as ex:               fu::ProcessPoolExecutor ex(4);
//       f = ex.submit(fib, 25)                       auto f = ex.submit(fib, 25);
//       f.result(timeout=5)                          f.result(5.0);
//       for f in as_completed(fs):                   for (auto& f : fu::as_completed(fs))
//       list(ex.map(fib, range(20)))                 ex.map(fib, numbers);
//   # leaving `with` = shutdown(wait=True)           // the destructor = shutdown(true)
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

namespace fu = mp::futures;

static long long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
MP_TARGET(fib);

// An "I/O-bound" task: it mostly waits.
static int fetch(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
MP_TARGET(fetch);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child (an executor worker, too) runs here

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        // CPU-bound work: as many workers as CPUs; more would only take turns on them.
        const int cpus = mp::cpu_count();
        fu::ProcessPoolExecutor ex(cpus, mp::PoolOptions().context(ctx));
        std::printf("  CPU-bound: %d workers (cpu_count)\n", cpus);

        fu::Future<long long> f = ex.submit(fib, 25);
        std::printf("  submit(fib, 25).result(10 s) = %lld\n", f.result(10.0));

        // A timeout that passes leaves the future running; the result comes later.
        fu::Future<int> slow = ex.submit(fetch, 300);
        try {
            slow.result(0.05);
        } catch (const mp::TimeoutError&) {
            std::printf("  result(0.05 s) of a 300 ms task: TimeoutError; done() = %s\n", slow.done() ? "true" : "false");
        }
        std::printf("  ... and result() later = %d\n", slow.result());

        // as_completed: report progress as each task finishes, whatever the order.
        std::vector<fu::Future<long long>> fs;
        for (int n : {27, 20, 24, 15, 26}) fs.push_back(ex.submit(fib, n));
        int done = 0;
        for (const auto& g : fu::as_completed(fs, 60.0)) {
            ++done;
            std::printf("  progress %d/%zu: a fib finished with %lld\n", done, fs.size(), g.result());
        }
        ok = ok && done == 5;

        std::vector<int> ns;
        for (int i = 0; i < 15; ++i) ns.push_back(i);
        std::vector<long long> fibs = ex.map(fib, ns, 60.0, 4);
        std::printf("  map(fib, 0..14):");
        for (long long v : fibs) std::printf(" %lld", v);
        std::printf("\n");
        ok = ok && fibs.size() == 15 && fibs[14] == 377;
        ex.shutdown();  // waits for what is left, then the workers exit
        try {
            ex.submit(fib, 1);
        } catch (const mp::RuntimeError& e) {
            std::printf("  submit after shutdown: RuntimeError (%s)\n", e.what());
        }

        // Waiting tasks: more workers than CPUs pay off, since they mostly sleep.
        const int io_workers = 4 * cpus;
        fu::ProcessPoolExecutor io(io_workers, mp::PoolOptions().context(ctx));
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<fu::Future<int>> waits;
        for (int i = 0; i < io_workers; ++i) waits.push_back(io.submit(fetch, 100));
        fu::wait(waits, 60.0);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("  I/O-bound: %d waits of 100 ms on %d workers took %.0f ms (not %d x 100 ms)\n", io_workers, io_workers,
                    ms, io_workers);
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
