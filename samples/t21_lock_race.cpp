// T21 - a race between processes, then the same work made exact with a Lock; under every start
// method this platform has.
//
// Python:                                   C++ (mp):
//   counter = Value('i', 0, lock=False)       mp::Value<int> counter(0, false);
//   counter.value += 1   # a race              counter.set(counter.value() + 1);   // a race
//   counter = Value('i', 0, lock=Lock())      mp::Value<int, mp::Lock> counter(0, mp::Lock());
//   with counter.get_lock():                  std::lock_guard<mp::Lock> g(counter.get_lock());
//       counter.value += 1                        counter.set(counter.value() + 1);
//
// "+= 1" is three steps: read, add, write back. Two processes that read the same old value
// both write old+1, and one increment is lost. Holding a lock around all three steps makes
// them one step for everyone else.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

constexpr int kWorkers = 4;
constexpr int kRounds = 50;

// The pause between read and write stands for real work; it is what lets another process
// read the same old value in the meantime, so that the loss shows on every run.
static void pretend_to_work() { std::this_thread::sleep_for(std::chrono::milliseconds(1)); }

static void add_unlocked(mp::Value<int> counter, mp::Barrier start) {
    start.wait(30.0);
    for (int i = 0; i < kRounds; ++i) {
        const int seen = counter.value();  // read
        pretend_to_work();
        counter.set(seen + 1);  // write back, over whatever others wrote in between
    }
}
MP_TARGET(add_unlocked);

static void add_locked(mp::Value<int, mp::Lock> counter, mp::Barrier start) {
    start.wait(30.0);
    for (int i = 0; i < kRounds; ++i) {
        std::lock_guard<mp::Lock> g(counter.get_lock());  // read, pause, write: one step now
        const int seen = counter.get_obj();                // get_obj(): value() would lock again
        pretend_to_work();
        counter.get_obj() = seen + 1;
    }
}
MP_TARGET(add_locked);

// Starts kWorkers processes that begin counting together, at a barrier, so that they really
// overlap (spawned processes start one after the other, slowly under Wine: without the
// barrier the first could be done before the last begins, and nothing would be lost).
template <class F, class V>
static void run_workers(const mp::Context& ctx, F target, V counter) {
    mp::Barrier start(kWorkers);
    std::vector<mp::Process> ps;
    for (int i = 0; i < kWorkers; ++i) ps.push_back(ctx.Process(target, counter, start));
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join();
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    const int expected = kWorkers * kRounds;
    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        mp::Value<int> racy(0, false);  // no lock at all (RawValue)
        run_workers(ctx, add_unlocked, racy);
        const int lost = expected - racy.value();
        if (lost > 0)
            std::printf("  without a lock: total %d, expected %d: %d updates lost\n", racy.value(), expected, lost);
        else
            std::printf("  without a lock: total %d, expected %d: nothing lost this time (luck, not safety)\n",
                        racy.value(), expected);

        mp::Value<int, mp::Lock> safe(0, mp::Lock());
        run_workers(ctx, add_locked, safe);
        std::printf("  with get_lock() held: total %d, expected %d: %s\n", safe.value(), expected,
                    safe.value() == expected ? "exact" : "WRONG");
        ok = ok && safe.value() == expected;
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
