// T21 - Barrier: worker processes doing phases in lockstep, an action run once per phase, and
// a barrier broken by a timeout; under every start method this platform has.
//
// Python:                                      C++ (mp):
//   b = Barrier(4, action=report, timeout=10)    mp::Barrier b(4, report, 10.0);
//   b.wait()   # blocks until 4 are waiting      b.wait();
//   except BrokenBarrierError                    catch (const mp::BrokenBarrierError&)
//
// No one starts phase 2 before everyone has finished phase 1. The action runs once per phase,
// in the last party to arrive, before anyone is let go. It is a function of this program:
// a fork child has a copy, a spawned child has none (code does not travel), so here the
// parent is a party too and arrives last on purpose, to run it whatever the start method.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

constexpr int kWorkers = 3;
constexpr int kPhases = 3;

// done[i]: the last phase worker i finished.
static int worker(int id, mp::Barrier b, mp::Array<int> done) {
    for (int phase = 1; phase <= kPhases; ++phase) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10 * (id + 1)));  // unequal work
        done[static_cast<std::size_t>(id)] = phase;
        std::printf("  worker %d finished phase %d\n", id, phase);
        std::fflush(stdout);
        b.wait();
    }
    return 0;
}
MP_TARGET(worker);

// Waits with a short timeout for a party that never comes.
static int impatient(mp::Barrier b) {
    try {
        b.wait(0.3);
        return 1;
    } catch (const mp::BrokenBarrierError&) {
        std::printf("  [child] BrokenBarrierError after its 0.3 s timeout\n");
        std::fflush(stdout);
        return 0;
    }
}
MP_TARGET(impatient);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        mp::Array<int> done(kWorkers, false);  // each worker writes only its own slot
        int phase = 0;
        bool lockstep = true;
        auto action = [&] {  // everyone is waiting: all must have finished this phase
            ++phase;
            for (int d : done) lockstep = lockstep && d == phase;
            std::printf("  -- action: all %d workers finished phase %d, all are let go --\n", kWorkers, phase);
            std::fflush(stdout);
        };
        mp::Barrier b(kWorkers + 1, action, 30.0);  // the workers and the parent; a 30 s bound
        std::vector<mp::Process> ps;
        for (int i = 0; i < kWorkers; ++i) ps.push_back(ctx.Process(worker, i, b, done));
        for (auto& p : ps) p.start();
        for (int i = 0; i < kPhases; ++i) {
            // Arrive only once all workers wait (a poll for the demonstration's sake, bounded in
            // case a worker died: then the barrier's own 30 s timeout breaks it).
            for (int ms = 0; b.n_waiting() < kWorkers && ms < 30000; ++ms)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            b.wait();  // the last arrival: runs the action here
        }
        for (auto& p : ps) p.join();
        std::printf("  [parent] %d phases, the action ran %d times, lockstep kept: %s\n", kPhases, phase,
                    lockstep ? "yes" : "NO");
        ok = ok && phase == kPhases && lockstep;

        // A party that never comes: the timeout breaks the barrier for everyone.
        mp::Barrier broken(3);
        mp::Process p = ctx.Process(impatient, broken);
        p.start();
        try {
            broken.wait(30.0);
            ok = false;
        } catch (const mp::BrokenBarrierError&) {
            std::printf("  [parent] BrokenBarrierError too: broken() = %s\n", broken.broken() ? "true" : "false");
        }
        p.join();
        ok = ok && p.exitcode() == 0;
        broken.reset();
        std::printf("  [parent] after reset(): broken() = %s, n_waiting() = %d\n", broken.broken() ? "true" : "false",
                    broken.n_waiting());
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
