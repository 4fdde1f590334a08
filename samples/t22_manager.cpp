// T22 - Manager: a shared dict and list across processes; the tutorials' bank deposit reaching
// 4000; a progress monitor; the task-manager pattern (workers take tasks from a shared list and
// put results in a shared dict); a Lock and a Condition made by the manager. Under every start
// method this platform has.
//
// Python:                                          C++ (mp):
//   with Manager() as m:                             mp::Manager m;
//       d = m.dict(); l = m.list()                   auto d = m.dict<std::string, int>();
//                                                    auto l = m.list<std::string>();
//       lock = m.Lock()                              auto lock = m.Lock();   // AcquirerProxy
//       d['bank'] = d['bank'] + 100                  d["bank"] = d["bank"] + 100;
//       l.append(x); len(l); l.pop()                 l.append(x); l.size(); l.pop();
//
// The containers live in a server process; each operation is one request to it, atomic on its
// own. A read and a write together are two requests: another process can come between them,
// so the deposit holds a lock around both (without it, deposits get lost). The manager's Lock
// and Condition live in the server too, so that any client of the manager can use them (see
// t22_remote_client); for processes of one program, mp::Lock (shared memory) is the faster one.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

static void deposit(mp::DictProxy<std::string, int> accounts, mp::AcquirerProxy lock) {
    for (int i = 0; i < 10; ++i) {
        std::lock_guard<mp::AcquirerProxy> g(lock);
        accounts["bank"] = accounts["bank"] + 100;
    }
}
MP_TARGET(deposit);

static void unsafe_deposit(mp::DictProxy<std::string, int> accounts) {
    for (int i = 0; i < 200; ++i) accounts["bank"] = accounts["bank"] + 1;
}
MP_TARGET(unsafe_deposit);

static void worker_with_progress(mp::DictProxy<int, int> progress, int id) {
    for (int pct = 25; pct <= 100; pct += 25) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20 * (id + 1)));
        progress[id] = pct;
    }
}
MP_TARGET(worker_with_progress);

// The task-manager pattern: take a task while there is one; put the result where all can see.
static void task_worker(mp::ListProxy<int> tasks, mp::DictProxy<int, long long> results, mp::AcquirerProxy lock, int id,
                        mp::DictProxy<int, int> done_by) {
    for (;;) {
        int n = 0;
        {
            std::lock_guard<mp::AcquirerProxy> g(lock);  // "is there one? take it" must be one step
            if (tasks.size() == 0) return;
            n = tasks.pop();
        }
        long long f = 1;
        for (int i = 2; i <= n; ++i) f *= i;
        results[n] = f;
        done_by[n] = id;
    }
}
MP_TARGET(task_worker);

static int wait_for_ready(mp::ConditionProxy cond, mp::ValueProxy<int> ready) {
    std::lock_guard<mp::ConditionProxy> g(cond);
    return cond.wait_for([&] { return ready.get() == 1; }, 30.0) ? 0 : 1;  // the exit code
}
MP_TARGET(wait_for_ready);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child (the manager's server, too) runs here

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());
        mp::Manager m(ctx);

        // The bank: 4 processes x 10 deposits of 100, each read-and-write under the lock.
        auto accounts = m.dict<std::string, int>({{"bank", 0}});
        auto lock = m.Lock();
        std::vector<mp::Process> ps;
        for (int i = 0; i < 4; ++i) ps.push_back(ctx.Process(deposit, accounts, lock));
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        std::printf("  bank after 4 x 10 deposits of 100, with the lock: %d\n", accounts.at("bank"));
        ok = ok && accounts.at("bank") == 4000;
        accounts.set("bank", 0);
        ps.clear();
        for (int i = 0; i < 4; ++i) ps.push_back(ctx.Process(unsafe_deposit, accounts));
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        std::printf("  without the lock, 4 x 200 deposits of 1 gave %d (800 only by luck: each step is two requests)\n",
                    accounts.at("bank"));

        // A progress monitor: workers report into a shared dict; the parent watches it.
        auto progress = m.dict<int, int>();
        ps.clear();
        for (int i = 0; i < 3; ++i) ps.push_back(ctx.Process(worker_with_progress, progress, i));
        for (auto& p : ps) p.start();
        int total = 0;
        while (total < 300) {
            total = 0;
            for (int v : progress.values()) total += v;
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
        }
        for (auto& p : ps) p.join();
        std::printf("  progress monitor: every worker reached 100%% (%zu workers)\n", progress.size());

        // Tasks in a shared list, results in a shared dict.
        auto tasks = m.list<int>({5, 10, 15, 20});
        auto results = m.dict<int, long long>();
        auto done_by = m.dict<int, int>();
        ps.clear();
        for (int i = 0; i < 2; ++i) ps.push_back(ctx.Process(task_worker, tasks, results, lock, i, done_by));
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        std::printf("  task manager: %zu results, 20! = %lld, tasks left %zu\n", results.size(), results.at(20), tasks.size());
        ok = ok && results.size() == 4 && results.at(20) == 2432902008176640000LL;

        // A Condition from the manager: the child waits until the parent says ready.
        auto cond = m.Condition();
        auto ready = m.Value<int>(0);
        mp::Process waiter = ctx.Process(wait_for_ready, cond, ready);
        waiter.start();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        {
            std::lock_guard<mp::ConditionProxy> g(cond);
            ready.set(1);
            cond.notify_all();
        }
        waiter.join(30.0);
        std::printf("  condition: the waiting child saw ready and exited with %d\n", waiter.exitcode().value_or(-1));
        ok = ok && waiter.exitcode() == 0;
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
