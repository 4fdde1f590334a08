// T18 - Semaphore: at most 3 of 8 worker processes inside at once; and BoundedSemaphore
// refusing a release it never handed out; under every start method this platform has.
//
// Python:                                  C++ (mp):
//   sem = Semaphore(3)                       mp::Semaphore sem(3);
//   with sem:  # take a permit, or wait      std::lock_guard<mp::Semaphore> g(sem);
//       ...                                  ...
//   b = BoundedSemaphore(2); b.release()     mp::BoundedSemaphore b(2); b.release();
//   # ValueError                             // mp::ValueError
//
// A semaphore is a counter of permits: acquire takes one (waiting while there are none),
// release gives one back. It limits how many use a scarce thing at once (connections, files).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

constexpr int kWorkers = 8;
constexpr int kLimit = 3;

// stats[0]: workers inside now; stats[1]: the most ever inside at once.
static void worker(int id, mp::Semaphore sem, mp::Array<int> stats, mp::Event go) {
    if (!go.wait(30.0)) throw mp::TimeoutError("worker: the parent did not say go within 30 s");
    std::lock_guard<mp::Semaphore> permit(sem);
    int inside = 0;
    {
        std::lock_guard<mp::RLock> g(stats.get_lock());
        inside = ++stats[0];
        stats[1] = std::max(stats[1], inside);
    }
    std::printf("  worker %d in  (inside now: %d)\n", id, inside);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the work
    {
        std::lock_guard<mp::RLock> g(stats.get_lock());
        --stats[0];
    }
}  // the permit goes back here
MP_TARGET(worker);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        mp::Semaphore sem(kLimit);
        mp::Array<int> stats(2);  // with its own lock
        mp::Event go;             // all start together, so that they compete for the permits
        std::vector<mp::Process> ps;
        for (int i = 0; i < kWorkers; ++i) ps.push_back(ctx.Process(worker, i, sem, stats, go));
        for (auto& p : ps) p.start();
        go.set();
        for (auto& p : ps) p.join();
        std::printf("  %d workers done; the most inside at once: %d (the limit is %d); permits now: %d\n", kWorkers,
                    stats[1], kLimit, sem.get_value());
        ok = ok && stats[1] >= 1 && stats[1] <= kLimit && sem.get_value() == kLimit;

        // A plain Semaphore lets anyone add permits; a BoundedSemaphore catches the bug.
        mp::Semaphore loose(2);
        loose.release();
        std::printf("  Semaphore(2).release(): permits now %d (allowed)\n", loose.get_value());
        mp::BoundedSemaphore bounded(2);
        bounded.acquire();
        bounded.release();  // gives back the one it took: fine
        try {
            bounded.release();  // one more than ever taken
            std::printf("  BoundedSemaphore(2): over-release accepted (WRONG)\n");
            ok = false;
        } catch (const mp::ValueError& e) {
            std::printf("  BoundedSemaphore(2): over-release -> ValueError (%s)\n", e.what());
        }
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
