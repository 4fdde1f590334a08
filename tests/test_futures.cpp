// tests/test_futures.cpp - mp::futures::ProcessPoolExecutor under every start method: submit,
// result(timeout), exception, map, as_completed, wait(return_when), cancel, done callbacks,
// shutdown, a worker dying in a task, a failing initializer, terminate_workers and
// kill_workers, and max_tasks_per_child.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace fu = mp::futures;

int triple(int x) { return 3 * x; }
MP_TARGET(triple);

int nap(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
MP_TARGET(nap);

std::string shout(std::string s) {
    if (s.empty()) throw mp::ValueError("nothing to shout");
    for (char& c : s) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    return s;
}
MP_TARGET(shout);

int exit_now(int code) { std::_Exit(code); }
MP_TARGET(exit_now);

void refuse_to_start() { throw mp::RuntimeError("no start today"); }
MP_TARGET(refuse_to_start);

int worker_pid(int) { return mp::getpid(); }
MP_TARGET(worker_pid);

// Which worker ran a task: its name, which the pool never gives twice (Windows reuses an ended
// process's pid at once, so pids cannot tell workers apart).
std::string worker_name(int) { return mp::current_process().name(); }
MP_TARGET(worker_name);

}  // namespace

class FuturesTest : public mp_test::MethodTest {
protected:
    mp::PoolOptions options() const { return mp::PoolOptions().context(ctx()); }
};

TEST_P(FuturesTest, SubmitResultExceptionAndMap) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(2, options());
    fu::Future<int> f = ex.submit(triple, 14);
    EXPECT_EQ(f.result(30.0), 42);
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.running());
    EXPECT_EQ(f.exception(), nullptr);
    fu::Future<std::string> bad = ex.submit(shout, std::string());
    EXPECT_NE(bad.exception(30.0), nullptr);
    EXPECT_THROW(bad.result(), mp::RemoteError);
    EXPECT_EQ(ex.submit(shout, std::string("quiet")).result(30.0), "QUIET");
    std::vector<int> in;
    for (int i = 0; i < 100; ++i) in.push_back(i);
    const std::vector<int> out = ex.map(triple, in, 60.0, 8);
    ASSERT_EQ(out.size(), in.size());
    for (int i = 0; i < 100; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], 3 * i);
    EXPECT_THROW(ex.map(triple, in, 60.0, 0), mp::ValueError);
}

// Above 128 workers (CPython 3.14 lifted its Windows limit of 61): the executor waits on every
// worker's sentinel and connection at once, more than one poll() set or one
// WaitForMultipleObjects (64) had held before.
TEST_P(FuturesTest, MoreThan128Workers) {
    mp_test::time_limit(240);
    const int n = mp_test::under_wine() ? 70 : 130;
    fu::ProcessPoolExecutor ex(n, options());
    std::vector<int> in;
    for (int i = 0; i < 4 * n; ++i) in.push_back(i);
    const std::vector<int> out = ex.map(triple, in, 180.0, 1);
    ASSERT_EQ(out.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], 3 * in[i]);
    ex.shutdown();
}

TEST_P(FuturesTest, ResultTimeoutIsNeverEarly) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(1, options());
    fu::Future<int> slow = ex.submit(nap, 400);
    const auto t0 = Clock::now();
    EXPECT_THROW(slow.result(0.1), mp::TimeoutError);
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(100));
    EXPECT_EQ(slow.result(30.0), 400);
}

// result / exception / wait / as_completed / map with std::chrono durations: never early,
// and a negative duration is no time left (never a wait without limit).
TEST_P(FuturesTest, DurationTimeouts) {
    mp_test::time_limit(120);
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    fu::ProcessPoolExecutor ex(2, options());
    mp_test::Gate gate;
    fu::Future<int> held = ex.submit(mp_test::wait_at_gate, gate.name(), 4);
    const auto t0 = Clock::now();
    EXPECT_THROW(held.result(milliseconds(100)), mp::TimeoutError);
    EXPECT_GE(Clock::now() - t0, milliseconds(100));
    EXPECT_THROW(held.result(seconds(-1)), mp::TimeoutError);
    EXPECT_THROW(held.exception(milliseconds(-1)), mp::TimeoutError);
    const std::vector<fu::Future<int>> fs = {held};
    EXPECT_EQ(fu::wait(fs, milliseconds(-1)).not_done.size(), 1u);
    auto it = fu::as_completed(fs, milliseconds(-1));
    EXPECT_THROW(it.next(), mp::TimeoutError);
    gate.open();
    EXPECT_EQ(fu::wait(fs, seconds(60), fu::ReturnWhen::FIRST_COMPLETED).done.size(), 1u);
    EXPECT_EQ(held.result(seconds(60)), 4);
    EXPECT_EQ(held.exception(seconds(60)), nullptr);
    for (const auto& f : fu::as_completed(fs, seconds(60))) EXPECT_EQ(f.result(), 4);
    EXPECT_EQ(ex.map(nap, std::vector<int>{1, 2}, seconds(60)), (std::vector<int>{1, 2}));
}

TEST_P(FuturesTest, AsCompletedYieldsInFinishingOrder) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(3, options());
    std::vector<fu::Future<int>> fs = {ex.submit(nap, 500), ex.submit(nap, 1), ex.submit(nap, 100)};
    std::vector<int> order;
    for (const auto& f : fu::as_completed(fs, 60.0)) order.push_back(f.result());
    EXPECT_EQ(order, (std::vector<int>{1, 100, 500}));
    // An overall timeout that passes with futures unfinished is a TimeoutError.
    std::vector<fu::Future<int>> late = {ex.submit(nap, 1), ex.submit(nap, 3000)};
    auto it = fu::as_completed(late, 0.5);
    EXPECT_EQ(it.next()->result(), 1);
    EXPECT_THROW(it.next(), mp::TimeoutError);
}

TEST_P(FuturesTest, WaitReturnWhen) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(2, options());
    // The second task waits for the test to open its gate: it is still running when the first
    // one is done, however slow the machine.
    mp_test::Gate gate;
    std::vector<fu::Future<int>> fs = {ex.submit(nap, 1), ex.submit(mp_test::wait_at_gate, gate.name(), 2)};
    auto first = fu::wait(fs, 60.0, fu::ReturnWhen::FIRST_COMPLETED);
    EXPECT_EQ(first.done.size(), 1u);
    EXPECT_EQ(first.not_done.size(), 1u);
    gate.open();
    auto all = fu::wait(fs, 60.0);
    EXPECT_EQ(all.done.size(), 2u);
    std::vector<fu::Future<std::string>> gs = {ex.submit(shout, std::string()), ex.submit(shout, std::string("x"))};
    auto failed = fu::wait(gs, 60.0, fu::ReturnWhen::FIRST_EXCEPTION);
    bool failure_done = false;
    for (const auto& f : failed.done) failure_done = failure_done || f.exception() != nullptr;
    EXPECT_TRUE(failure_done) << "FIRST_EXCEPTION returned before the failing future was done";
    mp_test::Gate closed;
    std::vector<fu::Future<int>> held = {ex.submit(mp_test::wait_at_gate, closed.name(), 3)};
    auto none = fu::wait(held, 0.05);
    EXPECT_EQ(none.not_done.size(), 1u);
    closed.open();
    EXPECT_EQ(held[0].result(60.0), 3);
}

TEST_P(FuturesTest, CancelCallbacksAndShutdown) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(1, options());
    mp_test::Gate gate;
    fu::Future<int> busy = ex.submit(mp_test::wait_at_gate, gate.name(), 300);
    fu::Future<int> queued = ex.submit(nap, 1);
    EXPECT_TRUE(queued.cancel());  // no worker has it: the only worker is busy (at the gate)
    EXPECT_TRUE(queued.cancelled());
    EXPECT_TRUE(queued.done());
    EXPECT_THROW(queued.result(), mp::CancelledError);
    EXPECT_THROW(queued.exception(), mp::CancelledError);
    EXPECT_FALSE(busy.cancel());
    int called = 0;
    busy.add_done_callback([&](const fu::Future<int>& f) { called += f.result(); });
    gate.open();
    EXPECT_EQ(busy.result(30.0), 300);
    EXPECT_EQ(called, 300);
    fu::Future<int> pending = ex.submit(nap, 200);
    fu::Future<int> dropped = ex.submit(nap, 200);
    ex.shutdown(true, true);  // the one not yet received is cancelled, the running one ends
    EXPECT_TRUE(pending.done());
    EXPECT_TRUE(dropped.cancelled());
    EXPECT_THROW(ex.submit(triple, 1), mp::RuntimeError);
}

TEST_P(FuturesTest, AWorkerDyingFailsOneFutureAndTheExecutorGoesOn) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(2, options());
    fu::Future<int> doomed = ex.submit(exit_now, 5);
    try {
        doomed.result(60.0);
        ADD_FAILURE() << "no error";
    } catch (const mp::WorkerLostError& e) {
        EXPECT_EQ(e.exitcode(), 5);
    }
    EXPECT_EQ(ex.submit(triple, 2).result(60.0), 6);
}

TEST_P(FuturesTest, WorkerLostErrorNamesThePidAndTheExitCode) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(1, options());
    const int pid = ex.submit(worker_pid, 0).result(60.0);
    fu::Future<int> doomed = ex.submit(exit_now, 7);
    try {
        doomed.result(60.0);
        ADD_FAILURE() << "no error";
    } catch (const mp::WorkerLostError& e) {
        EXPECT_EQ(e.pid(), pid);
        EXPECT_EQ(e.exitcode(), 7);
        EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(pid)), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("exit code 7"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ex.submit(triple, 2).result(60.0), 6);  // a new worker took the slot
}

TEST_P(FuturesTest, AFailingInitializerIsABrokenPool) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(2, options().initializer(refuse_to_start));
    fu::Future<int> f = ex.submit(triple, 1);
    fu::Future<int> g = ex.submit(triple, 2);
    EXPECT_THROW(f.result(60.0), mp::BrokenProcessPool);
    // The worker whose initializer failed is named, with its exit code (1: it returned).
    try {
        f.result();
    } catch (const mp::BrokenProcessPool& e) {
        ASSERT_TRUE(e.pid().has_value());
        EXPECT_GT(*e.pid(), 0);
        EXPECT_EQ(e.exitcode(), std::optional<int>(1));
        EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(*e.pid())), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("no start today"), std::string::npos) << e.what();
    }
    // Each failed future has its own exception object.
    ASSERT_NE(g.exception(60.0), nullptr);
    EXPECT_NE(f.exception(), g.exception());
    EXPECT_THROW(ex.submit(triple, 3), mp::BrokenProcessPool);
}

// terminate_workers() and kill_workers() (Python 3.14): the workers end at once, the futures
// they ran fail with BrokenProcessPool naming them, the queued ones are cancelled, no worker is
// left, and the executor is shut down.
class EndWorkersTest : public FuturesTest {
protected:
    void run(bool kill) {
        mp_test::time_limit(120);
        fu::ProcessPoolExecutor ex(2, options());
        const fu::Future<int> done = ex.submit(triple, 5);
        EXPECT_EQ(done.result(60.0), 15);
        mp_test::Gate gate;  // never opened: the two tasks wait in their workers (120 s at most)
        std::vector<fu::Future<int>> running = {ex.submit(mp_test::wait_at_gate, gate.name(), 1),
                                                ex.submit(mp_test::wait_at_gate, gate.name(), 2)};
        fu::Future<int> queued = ex.submit(triple, 3);  // both workers are busy: no one has it
        EXPECT_TRUE(running[0].running());
        EXPECT_TRUE(running[1].running());
        EXPECT_FALSE(queued.running());
        if (kill) ex.kill_workers();
        else ex.terminate_workers();
        EXPECT_EQ(mp_test::count_children(), 0) << "a worker survived";
        const int signal_code = kill ? -9 : -15;
        std::set<int> pids;
        for (const auto& f : running) {
            ASSERT_TRUE(f.done());
            try {
                f.result();
                ADD_FAILURE() << "a future the workers were running did not fail";
            } catch (const mp::BrokenProcessPool& e) {
                ASSERT_TRUE(e.pid().has_value()) << e.what();
                pids.insert(*e.pid());
                EXPECT_EQ(e.exitcode(), std::optional<int>(signal_code)) << e.what();
                EXPECT_NE(std::string(e.what()).find(kill ? "kill_workers" : "terminate_workers"), std::string::npos);
                EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(*e.pid())), std::string::npos) << e.what();
            }
        }
        EXPECT_EQ(pids.size(), 2u) << "each future names the worker that ran it";
        EXPECT_NE(running[0].exception(), running[1].exception()) << "one exception object per future";
        EXPECT_TRUE(queued.cancelled());
        EXPECT_THROW(queued.result(), mp::CancelledError);
        EXPECT_EQ(done.result(), 15);
        EXPECT_THROW(ex.submit(triple, 1), mp::RuntimeError);
        ex.shutdown();  // does nothing more, and does not hang
        if (kill) ex.kill_workers();  // again: nothing left to end
        else ex.terminate_workers();
    }
};

TEST_P(EndWorkersTest, TerminateWorkers) { run(false); }
TEST_P(EndWorkersTest, KillWorkers) { run(true); }

TEST_P(EndWorkersTest, OnAnIdleOrShutDownExecutor) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor idle(2, options());
    EXPECT_EQ(idle.submit(triple, 1).result(60.0), 3);
    idle.terminate_workers();
    EXPECT_EQ(mp_test::count_children(), 0);
    EXPECT_THROW(idle.submit(triple, 1), mp::RuntimeError);
    fu::ProcessPoolExecutor shut(1, options());
    shut.shutdown();
    shut.kill_workers();
    EXPECT_EQ(mp_test::count_children(), 0);
}

// max_tasks_per_child: every retiring worker is replaced, with no stall however many retire
// (CPython gh-115634), and work in flight when shutdown(wait = false) meets retiring workers
// still completes (CPython gh-119592 loses it; Python 3.14 fails it with BrokenProcessPool).
TEST_P(FuturesTest, MaxTasksPerChildReplacesEachRetiringWorker) {
    mp_test::time_limit(180);
    fu::ProcessPoolExecutor ex(2, options().maxtasksperchild(1));
    std::vector<fu::Future<std::string>> fs;
    for (int i = 0; i < 12; ++i) fs.push_back(ex.submit(worker_name, i));
    std::set<std::string> names;
    for (const auto& f : fs) names.insert(f.result(60.0));
    EXPECT_EQ(names.size(), fs.size()) << "a worker ran more than its one task";
    const std::vector<int> tripled = ex.map(triple, std::vector<int>{1, 2, 3, 4, 5}, 60.0);
    EXPECT_EQ(tripled, (std::vector<int>{3, 6, 9, 12, 15}));
}

TEST_P(FuturesTest, ShutdownWithoutWaitMeetingRetiringWorkersLosesNothing) {
    mp_test::time_limit(180);
    std::vector<fu::Future<int>> fs;
    {
        fu::ProcessPoolExecutor ex(2, options().maxtasksperchild(2));
        for (int i = 0; i < 9; ++i) fs.push_back(ex.submit(triple, i));
        ex.shutdown(false);
        EXPECT_THROW(ex.submit(triple, 1), mp::RuntimeError);
        for (int i = 0; i < 9; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(60.0), 3 * i);
    }
    EXPECT_EQ(mp_test::count_children(), 0);
}

MP_INSTANTIATE_FOR_EACH_METHOD(FuturesTest);
MP_INSTANTIATE_FOR_EACH_METHOD(EndWorkersTest);
