// T24 - Pool: a fixed set of worker processes running many tasks; map, starmap, apply,
// apply_async with callbacks, imap, imap_unordered, chunksize, an initializer and
// maxtasksperchild; a worker killed in the middle of a task; and a pool against one process
// per task. Under every start method this platform has.
//
// Python:                                      C++ (mp):
//   def square(x): return x * x                  int square(int x) { return x * x; }
//                                                MP_TARGET(square);   // tasks travel by name
//   with Pool(4) as pool:                        mp::Pool pool(4);
//       pool.map(square, range(10))              pool.map(square, numbers);
//       pool.apply_async(square, (7,),           pool.apply_async(square, 7)
//                        callback=show)              .then(show);
//       for r in pool.imap_unordered(f, xs):     for (int r : pool.imap_unordered(f, xs))
//   Pool(2, initializer=init, initargs=(5,))     mp::Pool(2, mp::PoolOptions().initializer(init, 5))
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

static int square(int x) { return x * x; }
MP_TARGET(square);

static int power(int base, int exp) {
    int r = 1;
    for (int i = 0; i < exp; ++i) r *= base;
    return r;
}
MP_TARGET(power);

// The worker's name, not its pid: Windows gives a new process an ended one's pid at once.
static std::string which_worker(int) { return mp::current_process().name(); }
MP_TARGET(which_worker);

static int nap_then(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
MP_TARGET(nap_then);

// The tutorial's task: a sum of squares, enough work to be worth a process.
static long long sum_squares(int n) {
    long long s = 0;
    for (int i = 0; i < n; ++i) s += static_cast<long long>(i) * i;
    return s;
}
MP_TARGET(sum_squares);

static void one_task(int n) { sum_squares(n); }
MP_TARGET(one_task);

// A worker's own global, set by the initializer before its first task.
static int g_offset = 0;
static void set_offset(int v) { g_offset = v; }
MP_TARGET(set_offset);
static int plus_offset(int x) { return x + g_offset; }
MP_TARGET(plus_offset);

static int crash(int code) { std::_Exit(code); }  // as a segfault or a kill would end it
MP_TARGET(crash);

static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child (a pool worker, too) runs here and never returns

    std::vector<int> numbers;
    for (int i = 0; i < 10; ++i) numbers.push_back(i);
    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());
        mp::Pool pool(4, mp::PoolOptions().context(ctx));

        std::vector<int> squares = pool.map(square, numbers);
        std::printf("  map(square, 0..9):");
        for (int s : squares) std::printf(" %d", s);
        std::printf("\n");
        ok = ok && squares.size() == 10 && squares[9] == 81;

        const std::vector<std::pair<int, int>> pairs = {{2, 10}, {3, 4}, {10, 3}};
        std::vector<int> powers = pool.starmap(power, pairs);
        std::printf("  starmap(power, [(2,10) (3,4) (10,3)]): %d %d %d\n", powers[0], powers[1], powers[2]);
        std::printf("  apply(square, 12) = %d\n", pool.apply(square, 12));

        // A callback runs in the thread that waits on the pool (here: get()).
        auto r = pool.apply_async(square, 7).then([](int v) { std::printf("  callback: apply_async(square, 7) gave %d\n", v); });
        r.get(30.0);

        // imap hands results out in order, imap_unordered as they finish.
        std::printf("  imap(square, 0..4, chunksize 2):");
        for (int v : pool.imap(square, std::vector<int>{0, 1, 2, 3, 4}, 2)) std::printf(" %d", v);
        std::printf("\n  imap_unordered(nap_then, [300 1 100]):");
        for (int v : pool.imap_unordered(nap_then, std::vector<int>{300, 1, 100})) std::printf(" %d", v);
        std::printf("   (the short naps come back first)\n");

        // A worker killed in the middle of a task fails that task alone; the pool replaces it.
        auto doomed = pool.apply_async(crash, 3);
        try {
            doomed.get(30.0);
            ok = false;
        } catch (const mp::WorkerLostError& e) {
            std::printf("  a worker died in its task: WorkerLostError (exit code %d); the pool goes on: "
                        "apply(square, 5) = %d\n",
                        e.exitcode(), pool.apply(square, 5));
        }
        pool.close();
        pool.join();

        // An initializer runs once in each worker; maxtasksperchild renews the workers.
        mp::Pool init_pool(2, mp::PoolOptions().context(ctx).initializer(set_offset, 100));
        std::printf("  with initializer set_offset(100): plus_offset(1) = %d (the parent's offset stays %d)\n",
                    init_pool.apply(plus_offset, 1), g_offset);
        mp::Pool renewing(1, mp::PoolOptions().context(ctx).maxtasksperchild(2));
        std::vector<std::string> who = renewing.map(which_worker, std::vector<int>{0, 0, 0, 0}, 1);
        std::printf("  maxtasksperchild 2: 4 tasks ran in %s workers (%s, %s)\n",
                    who[0] == who[1] && who[1] != who[2] && who[2] == who[3] ? "2" : "an unexpected number of",
                    who[0].c_str(), who[2].c_str());

        // The tutorial's comparison: 20 tasks in a pool of 4, against one process per task.
        const int n_tasks = 20, work = 200000;
        auto t0 = std::chrono::steady_clock::now();
        mp::Pool timing(4, mp::PoolOptions().context(ctx));
        timing.map(sum_squares, std::vector<int>(n_tasks, work));
        const double pool_s = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        std::vector<mp::Process> ps;
        for (int i = 0; i < n_tasks; ++i) ps.push_back(ctx.Process(one_task, work));
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        const double procs_s = seconds_since(t0);
        std::printf("  %d tasks: a pool of 4 took %.1f ms (workers started once), one process per task %.1f ms\n", n_tasks,
                    pool_s * 1000, procs_s * 1000);
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
