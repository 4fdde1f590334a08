// T21 (crash safety) - a process killed while it holds a Lock, and the next owner recovering
// it; under every start method this platform has.
//
// Python's multiprocessing.Lock is a bare semaphore: when its holder is killed, the permit is
// never given back and every later acquire() waits for ever. mp's Lock knows its owner:
//
// Python:                                  C++ (mp):
//   lock = Lock()                            mp::Lock lock;
//   lock.acquire()  # hangs for ever         try { lock.acquire(); }
//                                            catch (const mp::OwnerDeadError&) {
//                                                // we hold the lock now: repair, then
//                                                lock.make_consistent(); }
//                                            lock.release();
//
// POSIX: a robust pthread mutex (EOWNERDEAD). Windows: an owner word whose waiter watches the
// owner's thread handle. The sample also shows what happens if the new owner skips
// make_consistent(): the lock is then broken for good (state_not_recoverable).
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "mp/mp.hpp"

// The state the lock guards: a balance moved in two steps, so that a death in the middle
// leaves it visibly half-done.
struct Account {
    int from;
    int to;
};

// Runs in the child: takes the lock, does half of a transfer, announces it, and waits to be
// killed (it never finishes the transfer).
static int half_transfer(mp::Lock lock, mp::Value<Account> acct, mp::Event holding) {
    lock.acquire();
    acct.get_obj().from -= 10;  // step 1 of 2 ...
    std::printf("  [child %d] holds the lock, moved 10 out of 'from', and now hangs\n", mp::getpid());
    std::fflush(stdout);
    holding.set();
    std::this_thread::sleep_for(std::chrono::seconds(60));
    acct.get_obj().to += 10;  // ... step 2, never reached
    lock.release();
    return 0;
}
MP_TARGET(half_transfer);

// Kills a child while it holds `lock` in the middle of a transfer.
static void kill_holder(const mp::Context& ctx, mp::Lock& lock, mp::Value<Account>& acct) {
    mp::Event holding;
    mp::Process p = ctx.Process(half_transfer, lock, acct, holding);
    p.start();
    if (!holding.wait(60.0)) throw mp::TimeoutError("the holder did not take the lock within 60 s");
    p.kill();
    p.join();
    std::printf("  [parent] killed the holder (exitcode %d)\n", p.exitcode().value_or(0));
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        // 1. The recovery path.
        mp::Lock lock;
        mp::Value<Account> acct(Account{100, 0}, false);  // guarded by `lock`, so no lock of its own
        kill_holder(ctx, lock, acct);
        try {
            if (!lock.acquire(true, 10.0)) throw mp::TimeoutError("the lock was not acquired within 10 s");
            std::printf("  [parent] acquired normally (unexpected)\n");
        } catch (const mp::OwnerDeadError& e) {
            // (Printed by name: Windows' C runtime has no text for EOWNERDEAD.)
            std::printf("  [parent] OwnerDeadError (%s)\n", e.code() == std::errc::owner_dead ? "owner_dead" : "other");
            const Account a = acct.get_obj();
            std::printf("  [parent] we hold the lock; state is half-done: from=%d to=%d (sum %d)\n", a.from, a.to,
                        a.from + a.to);
            acct.get_obj().to = 100 - acct.get_obj().from;  // repair: finish the transfer
            lock.make_consistent();
            std::printf("  [parent] repaired: from=%d to=%d, make_consistent()\n", acct.get_obj().from, acct.get_obj().to);
        }
        lock.release();
        {
            std::lock_guard<mp::Lock> g(lock);  // a normal lock again
            std::printf("  [parent] the lock works normally again\n");
        }

        // 2. The new owner releases without make_consistent(): the lock is lost for good.
        mp::Lock lost;
        kill_holder(ctx, lost, acct);
        try {
            lost.acquire();
        } catch (const mp::OwnerDeadError&) {
            std::printf("  [parent] OwnerDeadError again; this time release() without repair\n");
        }
        lost.release();
        try {
            const bool got = lost.acquire(true, 1.0);
            std::printf("  [parent] next acquire: %s (unexpected)\n", got ? "acquired" : "timed out");
        } catch (const mp::OSError& e) {
            std::printf("  [parent] next acquire: OSError (%s)\n",
                        e.code() == std::errc::state_not_recoverable ? "state_not_recoverable" : "other");
        }
    }
    return 0;
}
