// T21 - Event: a start signal that several processes wait for, and a wait with a timeout;
// under every start method this platform has.
//
// Python:                                  C++ (mp):
//   go = Event()                             mp::Event go;
//   go.wait()          # in each worker      go.wait();
//   go.set()           # wakes them all      go.set();
//   go.wait(0.2)       # False on timeout    go.wait(0.2)   // false on timeout
//   go.clear(); go.is_set()                  go.clear(); go.is_set();
//
// An Event is a flag: set() raises it and wakes every waiter at once, and it stays up (a
// late waiter passes straight through) until clear().
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "mp/mp.hpp"

constexpr int kWorkers = 3;

static int worker(int id, mp::Event go, mp::Semaphore ready) {
    std::printf("  worker %d waits for the signal\n", id);
    std::fflush(stdout);
    ready.release();  // "I am about to wait": lets the parent signal only once all wait
    if (!go.wait(30.0)) return 1;  // a bound, in case the parent died
    std::printf("  worker %d got the signal and starts\n", id);
    std::fflush(stdout);
    return 0;
}
MP_TARGET(worker);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        mp::Event go;
        mp::Semaphore ready(0);
        std::vector<mp::Process> ps;
        for (int i = 0; i < kWorkers; ++i) ps.push_back(ctx.Process(worker, i, go, ready));
        for (auto& p : ps) p.start();
        for (int i = 0; i < kWorkers; ++i)
            if (!ready.acquire(true, 30.0)) throw mp::TimeoutError("a worker did not say ready within 30 s");
        std::printf("  [parent] all %d wait; is_set() = %s; set()\n", kWorkers, go.is_set() ? "true" : "false");
        std::fflush(stdout);
        go.set();
        int started = 0;
        for (auto& p : ps) {
            p.join();
            started += p.exitcode() == 0 ? 1 : 0;
        }
        std::printf("  [parent] %d of %d workers started after one set()\n", started, kWorkers);
        ok = ok && started == kWorkers;

        // A set flag stays set: a wait returns at once. Cleared, a wait lasts its timeout.
        std::printf("  [parent] wait(0.2) while set: %s\n", go.wait(0.2) ? "true at once" : "false (WRONG)");
        go.clear();
        const auto t0 = std::chrono::steady_clock::now();
        const bool got = go.wait(0.2);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("  [parent] after clear(), wait(0.2): %s after %.0f ms (no one sets it)\n",
                    got ? "true (WRONG)" : "false", ms);
        ok = ok && !got;
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
