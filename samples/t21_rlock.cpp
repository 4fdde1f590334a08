// T21 - RLock: a lock its owner may take again (re-entry), shared between processes; and a
// plain Lock refusing the same re-entry; under every start method this platform has.
//
// Python:                                  C++ (mp):
//   lock = RLock()                           mp::RLock lock;
//   with lock:                               std::lock_guard<mp::RLock> g(lock);
//       with lock: ...   # fine                  { std::lock_guard<mp::RLock> g2(lock); ... }
//   lock2 = Lock()                           mp::Lock lock2;  lock2.acquire();
//   lock2.acquire(False)  # False            lock2.acquire(false)  // false
//   with lock2: with lock2: # hangs          lock2.lock()          // RuntimeError, never a hang
//
// Why re-entry: transfer() holds the lock for its two steps and calls add(), which takes the
// lock too, because add() is also called on its own. With an RLock the inner take only counts
// one more level; the lock is free again once released as many times as it was taken.
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "mp/mp.hpp"

struct Accounts {
    int a;
    int b;
};

static void add(mp::RLock& lock, mp::Value<Accounts>& acc, int to_a, int to_b) {
    std::lock_guard<mp::RLock> g(lock);  // second level when called from transfer()
    acc.get_obj().a += to_a;
    acc.get_obj().b += to_b;
}

static void transfer(mp::RLock& lock, mp::Value<Accounts>& acc, int amount) {
    std::lock_guard<mp::RLock> g(lock);  // first level
    add(lock, acc, -amount, 0);
    add(lock, acc, 0, amount);  // nobody saw the money in neither account
}

static void mover(mp::RLock lock, mp::Value<Accounts> acc, int times) {
    for (int i = 0; i < times; ++i) transfer(lock, acc, 1);
}
MP_TARGET(mover);

// Exits 0 if it could take the lock at once, 1 if someone holds it.
static int try_take(mp::RLock lock) {
    if (!lock.acquire(false)) return 1;
    lock.release();
    return 0;
}
MP_TARGET(try_take);

static int probe(const mp::Context& ctx, const mp::RLock& lock) {
    mp::Process p = ctx.Process(try_take, lock);
    p.start();
    p.join();
    return p.exitcode().value_or(-1);
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        // 1. Re-entry, in 3 processes at once.
        mp::RLock lock;
        mp::Value<Accounts> acc(Accounts{300, 0}, false);  // guarded by `lock`
        std::vector<mp::Process> ps;
        for (int i = 0; i < 3; ++i) ps.push_back(ctx.Process(mover, lock, acc, 100));
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        const Accounts end = acc.get_obj();
        std::printf("  3 processes made 100 nested-lock transfers each: a=%d b=%d\n", end.a, end.b);
        ok = ok && end.a == 0 && end.b == 300;

        // 2. Taken twice, released once: still held, as another process sees.
        lock.acquire();
        lock.acquire();
        lock.release();
        const int busy = probe(ctx, lock);
        std::printf("  taken twice, released once: another process %s\n",
                    busy == 1 ? "cannot take it (still held)" : "took it (WRONG)");
        lock.release();
        const int free_now = probe(ctx, lock);
        std::printf("  released twice: another process %s\n", free_now == 0 ? "takes it" : "cannot (WRONG)");
        ok = ok && busy == 1 && free_now == 0;

        // 3. A plain Lock refuses a second take by its own holder.
        mp::Lock plain;
        plain.acquire();
        const bool again = plain.acquire(false);
        std::printf("  plain Lock, held, acquire(false) again: %s\n", again ? "true (WRONG)" : "false");
        const bool timed = plain.acquire(true, 0.2);
        std::printf("  plain Lock, held, acquire(true, 0.2) again: %s after the timeout\n", timed ? "true" : "false");
        try {
            plain.lock();  // Python would wait for ever here
            std::printf("  plain Lock, held, lock() again: returned (WRONG)\n");
            ok = false;
        } catch (const mp::RuntimeError& e) {
            std::printf("  plain Lock, held, lock() again: RuntimeError (%s)\n", e.what());
        }
        plain.release();
        ok = ok && !again && !timed;
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
