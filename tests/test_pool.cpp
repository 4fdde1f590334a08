// tests/test_pool.cpp - mp::Pool under every start method: map, starmap, apply(_async) with
// callbacks, imap(_unordered) (and their buffersize), chunksize, initializer, maxtasksperchild, errors from tasks,
// workers killed in the middle of a task, close/join/terminate, and misuse.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

#include <cstdlib>
#include <memory>

namespace {

using Clock = std::chrono::steady_clock;

int square(int x) { return x * x; }
MP_TARGET(square);

std::string join_words(std::string a, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += a;
    return out;
}
MP_TARGET(join_words);

int worker_pid(int) { return mp::getpid(); }
MP_TARGET(worker_pid);

// Which worker ran a task: its name, which the pool never gives twice (Windows reuses an ended
// process's pid at once, so pids cannot tell workers apart).
std::string worker_name(int) { return mp::current_process().name(); }
MP_TARGET(worker_name);

int fail_on_three(int x) {
    if (x == 3) throw mp::ValueError("three is not allowed");
    return x;
}
MP_TARGET(fail_on_three);

void do_nothing() {}
MP_TARGET(do_nothing);

// Waits at the gate named by the pair's first half, if any, then returns its second.
int gated(std::pair<std::string, int> p) { return p.first.empty() ? p.second : mp_test::wait_at_gate(p.first, p.second); }
MP_TARGET(gated);

int sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
MP_TARGET(sleep_ms);

// Ends its own worker in the middle of the task (as a crash would).
int die_in_task(int code) { std::_Exit(code); }
MP_TARGET(die_in_task);

// The initializer stores a value that tasks then read: a worker's own global.
int g_initialized = 0;
void set_initialized(int v) { g_initialized = v; }
MP_TARGET(set_initialized);
int read_initialized(int) { return g_initialized; }
MP_TARGET(read_initialized);

void failing_initializer(int) { throw mp::RuntimeError("the initializer failed on purpose"); }
MP_TARGET(failing_initializer);

int not_registered(int x) { return x; }

int system_exit_task(int code) { throw mp::SystemExit(code); }
MP_TARGET(system_exit_task);

void exit_in_initializer(int) { std::_Exit(5); }
MP_TARGET(exit_in_initializer);

std::vector<int> range(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
}

}  // namespace

class PoolTest : public mp_test::MethodTest {
protected:
    mp::PoolOptions options() const { return mp::PoolOptions().context(ctx()); }
};

TEST_P(PoolTest, MapStarmapApplyInOrder) {
    mp_test::time_limit(120);
    mp::Pool pool(3, options());
    EXPECT_EQ(pool.processes(), 3);
    const std::vector<int> xs = range(1000);
    const std::vector<int> squares = pool.map(square, xs);
    ASSERT_EQ(squares.size(), xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(squares[i], xs[i] * xs[i]);
    for (std::size_t chunk : {1u, 7u, 5000u}) EXPECT_EQ(pool.map(square, xs, chunk), squares) << "chunksize " << chunk;
    EXPECT_TRUE(pool.map(square, std::vector<int>{}).empty());
    EXPECT_EQ(pool.apply(square, 12), 144);
    const std::vector<std::pair<std::string, int>> args = {{"ab", 3}, {"", 5}, {"x", 1}};
    EXPECT_EQ(pool.starmap(join_words, args), (std::vector<std::string>{"ababab", "", "x"}));
    auto a = pool.apply_async(join_words, std::string("z"), 4);
    EXPECT_EQ(a.get(30.0), "zzzz");
    EXPECT_TRUE(a.ready());
    EXPECT_TRUE(a.successful());
    pool.apply(do_nothing);
    pool.close();
    pool.join();
}

// A Pool of more than 128 workers: its result handler waits on every worker at once (on POSIX
// mp::wait once refused more than 256 objects; Windows waits in groups of 64 handles).
TEST_P(PoolTest, MoreThan128Workers) {
    mp_test::time_limit(240);
    const int n = mp_test::under_wine() ? 70 : 130;
    mp::Pool pool(n, options());
    EXPECT_EQ(pool.processes(), n);
    const std::vector<int> xs = range(4 * n);
    const std::vector<int> squares = pool.map(square, xs, 1);
    ASSERT_EQ(squares.size(), xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(squares[i], xs[i] * xs[i]);
    pool.close();
    pool.join();
}

TEST_P(PoolTest, WorkIsSpreadOverTheWorkers) {
    mp_test::time_limit(120);
    mp::Pool pool(3, options());
    const std::vector<int> pids = pool.map(worker_pid, range(60), 1);
    EXPECT_EQ(std::count(pids.begin(), pids.end(), mp::getpid()), 0);
    const std::vector<std::string> names = pool.map(worker_name, range(60), 1);
    const std::set<std::string> distinct(names.begin(), names.end());
    EXPECT_GE(distinct.size(), 2u) << "60 one-item tasks all ran in one worker";
    EXPECT_LE(distinct.size(), 3u);
}

TEST_P(PoolTest, ImapInOrderAndUnorderedAsTheyComplete) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    std::vector<int> got;
    for (int v : pool.imap(square, range(50), 3)) got.push_back(v);
    std::vector<int> expect;
    for (int i : range(50)) expect.push_back(i * i);
    EXPECT_EQ(got, expect);
    // The first task waits at a gate the test opens only after the others came back:
    // imap_unordered hands those out before it.
    mp_test::Gate gate;
    auto it = pool.imap_unordered(gated, std::vector<std::pair<std::string, int>>{{gate.name(), 600}, {"", 1}, {"", 2}});
    std::vector<int> order;
    for (int i = 0; i < 2; ++i) order.push_back(it.next(30.0).value_or(-1));
    gate.open();
    while (auto v = it.next(30.0)) order.push_back(*v);
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order.back(), 600);
    mp_test::Gate closed;
    auto slow = pool.imap(gated, std::vector<std::pair<std::string, int>>{{closed.name(), 400}});
    const auto t0 = Clock::now();
    EXPECT_THROW(slow.next(0.05), mp::TimeoutError);
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(50));
    closed.open();
    EXPECT_EQ(slow.next(30.0), 400);
    EXPECT_EQ(slow.next(30.0), std::nullopt);
}

// buffersize (Python 3.16): at most that many chunks are submitted and not yet taken, so an
// endless input can be mapped; an input given as a temporary lives in the iterator.
TEST_P(PoolTest, ImapBuffersizeBoundsTheChunksInFlight) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    mp_test::CountingRange input(100);
    auto it = pool.imap(square, input, 2, 3);  // chunks of 2, at most 3 of them open
    EXPECT_EQ(input.read(), 6);                // 3 chunks submitted, nothing more
    std::vector<int> got;
    for (int k = 0; k < 5; ++k) got.push_back(it.next(60.0).value_or(-1));
    // Each chunk taken was first topped up to 3 open: 5 chunks submitted, 3 taken (the third's
    // second result still in the iterator).
    EXPECT_EQ(input.read(), 10);
    while (auto v = it.next(60.0)) got.push_back(*v);
    EXPECT_EQ(input.read(), 100);
    ASSERT_EQ(got.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);

    mp_test::CountingRange endless(-1);
    auto unordered = pool.imap_unordered(square, endless, 1, 4);
    std::set<int> seen;
    for (int k = 0; k < 200; ++k) seen.insert(unordered.next(60.0).value_or(-1));
    EXPECT_EQ(seen.size(), 200u);
    EXPECT_EQ(endless.read(), 200 + 3);  // 4 open before each take, 3 after the last

    std::vector<int> from_temporary;
    for (int v : pool.imap(square, range(20), 1, 2)) from_temporary.push_back(v);
    ASSERT_EQ(from_temporary.size(), 20u);
    EXPECT_EQ(from_temporary[19], 361);
    EXPECT_THROW(pool.imap(square, range(3), 0, 2), mp::ValueError);
    EXPECT_THROW(pool.imap(square, endless, 0), mp::ValueError);  // no size: no default chunksize
    pool.close();  // the endless iteration's open chunks finish; nothing more is fed
    EXPECT_TRUE(pool.join(60.0));
}

// close() and join() after a partly consumed buffered imap do not deadlock (CPython
// gh-155477): the chunks submitted finish, and the iteration then reports that the rest will
// never run.
TEST_P(PoolTest, CloseAndJoinAfterAPartlyConsumedBufferedImap) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    auto it = pool.imap(square, range(100), 1, 4);
    EXPECT_EQ(it.next(60.0), 0);
    EXPECT_EQ(it.next(60.0), 1);  // 5 submitted: 2 taken, 3 open
    pool.close();
    EXPECT_TRUE(pool.join(60.0));
    for (int i = 2; i < 5; ++i) EXPECT_EQ(it.next(60.0), i * i);
    EXPECT_THROW(it.next(60.0), mp::ValueError);  // the pool refused the rest
    EXPECT_EQ(it.next(60.0), std::nullopt);
}

TEST_P(PoolTest, ErrorCallbackCanReadTheRemoteError) {
    mp_test::time_limit(120);
    mp::Pool pool(1, options());
    std::string type, message, what;
    auto r = pool.apply_async(fail_on_three, 3).then([](int) {}, [&](const std::exception& e) {
        what = e.what();
        if (auto* remote = dynamic_cast<const mp::RemoteError*>(&e)) {
            type = remote->type_name();
            message = remote->message();
        }
    });
    r.wait(60.0);
    pool.close();
    pool.join();
    EXPECT_NE(type.find("ValueError"), std::string::npos) << type;
    EXPECT_FALSE(message.empty());
    EXPECT_NE(what.find(message), std::string::npos) << what;
}

TEST_P(PoolTest, CallbacksRunOnceInTheCollectingThread) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    int ok = 0, errors = 0;
    std::string error_text;
    std::vector<mp::AsyncResult<int>> rs;
    for (int i = 0; i < 6; ++i)
        rs.push_back(pool.apply_async(fail_on_three, i).then([&](int v) { ok += v; }, [&](std::exception_ptr e) {
            ++errors;
            try {
                std::rethrow_exception(e);
            } catch (const mp::RemoteError& r) {
                error_text = r.what();
            }
        }));
    for (auto& r : rs) r.wait(30.0);
    EXPECT_EQ(ok, 0 + 1 + 2 + 4 + 5);
    EXPECT_EQ(errors, 1);
    EXPECT_NE(error_text.find("three is not allowed"), std::string::npos) << error_text;
    // A callback given after the result came runs at once.
    int late = 0;
    rs[0].then([&](int) { ++late; });
    EXPECT_EQ(late, 1);
}

TEST_P(PoolTest, TaskExceptionsComeBackWithTypeAndMessage) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    auto r = pool.apply_async(fail_on_three, 3);
    try {
        r.get(30.0);
        ADD_FAILURE() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_EQ(e.type_name(), "mp::ValueError");
        EXPECT_EQ(e.message(), "three is not allowed");
    }
    EXPECT_FALSE(r.successful());
    // map raises the first failure in order; the pool is still good afterwards.
    EXPECT_THROW(pool.map(fail_on_three, range(8), 2), mp::RemoteError);
    EXPECT_EQ(pool.map(fail_on_three, std::vector<int>{4, 5}), (std::vector<int>{4, 5}));
    // imap hands out the results before the failure, throws it in its turn, and goes on.
    auto it = pool.imap(fail_on_three, range(6));
    std::vector<int> before;
    for (int i = 0; i < 3; ++i) before.push_back(*it.next(30.0));
    EXPECT_EQ(before, (std::vector<int>{0, 1, 2}));
    EXPECT_THROW(it.next(30.0), mp::RemoteError);
    EXPECT_EQ(it.next(30.0), 4);
}

TEST_P(PoolTest, AWorkerKilledMidTaskFailsOnlyThatTask) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    auto doomed = pool.apply_async(die_in_task, 7);
    std::vector<mp::AsyncResult<int>> others;
    for (int i = 0; i < 20; ++i) others.push_back(pool.apply_async(square, i));
    try {
        doomed.get(60.0);
        ADD_FAILURE() << "the task whose worker died succeeded";
    } catch (const mp::WorkerLostError& e) {
        EXPECT_EQ(e.exitcode(), 7);
    }
    for (int i = 0; i < 20; ++i) EXPECT_EQ(others[static_cast<std::size_t>(i)].get(60.0), i * i);
    // The pool replaced the worker and goes on with its full size.
    const std::vector<std::string> names = pool.map(worker_name, range(40), 1);
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 2u);
    EXPECT_EQ(pool.map(square, range(10)).size(), 10u);
    pool.close();
    pool.join();
}

TEST_P(PoolTest, AWorkerKilledFromOutsideIsReplaced) {
    mp_test::time_limit(120);
    mp::Pool pool(1, options());
    const int first = pool.apply(worker_pid, 0);
    const std::string first_name = pool.apply(worker_name, 0);
    mp_test::Gate begun;
    auto busy = pool.apply_async(mp_test::raise_gate_then_sleep, begun.name(), 20000);
    ASSERT_TRUE(begun.wait_open(std::chrono::seconds(60))) << "the task never began";  // it is running now
    mp::kill(first, mp::sig::KILL);
    EXPECT_THROW(busy.get(60.0), mp::WorkerLostError);
    EXPECT_NE(pool.apply(worker_name, 0), first_name);
}

TEST_P(PoolTest, InitializerRunsOnceInEachWorker) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options().initializer(set_initialized, 41));
    for (int v : pool.map(read_initialized, range(20), 1)) EXPECT_EQ(v, 41);
    EXPECT_EQ(g_initialized, 0);  // the parent's own copy is untouched
}

TEST_P(PoolTest, AFailingInitializerBreaksThePool) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options().initializer(failing_initializer, 0));
    auto r = pool.apply_async(square, 2);
    try {
        r.get(60.0);
        ADD_FAILURE() << "a task ran without its initializer";
    } catch (const mp::BrokenProcessPool& e) {
        EXPECT_NE(std::string(e.what()).find("the initializer failed on purpose"), std::string::npos) << e.what();
    }
    EXPECT_THROW(pool.apply_async(square, 3), mp::BrokenProcessPool);
}

TEST_P(PoolTest, MaxTasksPerChildReplacesWorkers) {
    mp_test::time_limit(120);
    mp::Pool pool(1, options().maxtasksperchild(2));
    const std::vector<std::string> names = pool.map(worker_name, range(6), 1);
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 3u) << "6 tasks, 2 per worker";
    EXPECT_EQ(names[0], names[1]);
    EXPECT_NE(names[1], names[2]);
}

// get / wait / next / join with std::chrono durations: never early, and a negative duration
// is no time left (a TimeoutError or false at once, never a wait without limit).
TEST_P(PoolTest, DurationTimeouts) {
    mp_test::time_limit(120);
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    mp::Pool pool(2, options());
    mp_test::Gate gate;
    auto r = pool.apply_async(mp_test::wait_at_gate, gate.name(), 5);
    auto m = pool.map_async(gated, std::vector<std::pair<std::string, int>>{{gate.name(), 6}});
    const auto t0 = Clock::now();
    EXPECT_THROW(r.get(milliseconds(100)), mp::TimeoutError);
    EXPECT_GE(Clock::now() - t0, milliseconds(100));
    EXPECT_FALSE(r.wait(milliseconds(-1)));
    EXPECT_THROW(r.get(seconds(-1)), mp::TimeoutError);
    EXPECT_FALSE(m.wait(milliseconds(-1)));
    EXPECT_THROW(m.get(milliseconds(-1)), mp::TimeoutError);
    auto it = pool.imap(gated, std::vector<std::pair<std::string, int>>{{gate.name(), 7}});
    EXPECT_THROW(it.next(milliseconds(-1)), mp::TimeoutError);
    gate.open();
    EXPECT_TRUE(r.wait(seconds(60)));
    EXPECT_EQ(r.get(seconds(60)), 5);
    EXPECT_EQ(m.get(seconds(60)), std::vector<int>{6});
    EXPECT_EQ(it.next(seconds(60)), 7);
    EXPECT_EQ(it.next(seconds(60)), std::nullopt);
    pool.close();
    EXPECT_TRUE(pool.join(seconds(60)));
}

TEST_P(PoolTest, CloseJoinTerminateAndMisuse) {
    mp_test::time_limit(120);
    {
        mp::Pool pool(2, options());
        EXPECT_THROW(pool.join(), mp::ValueError);  // still running
        auto r = pool.apply_async(sleep_ms, 100);
        pool.close();
        EXPECT_THROW(pool.apply_async(square, 1), mp::ValueError);
        pool.join();  // waits for the task
        EXPECT_TRUE(r.ready());
        EXPECT_EQ(r.get(0), 100);
    }
    {
        mp::Pool pool(2, options());
        auto r = pool.apply_async(sleep_ms, 20000);
        const auto t0 = Clock::now();
        EXPECT_THROW(r.get(0.1), mp::TimeoutError);
        EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(100));
        EXPECT_THROW(r.successful(), mp::ValueError);
        pool.terminate();
        EXPECT_TRUE(r.ready());
        try {
            r.get(1.0);
            ADD_FAILURE() << "a terminated task succeeded";
        } catch (const mp::TimeoutError&) {
            ADD_FAILURE() << "terminate left the task unfinished";
        } catch (const mp::ProcessError& e) {
            EXPECT_NE(std::string(e.what()).find("terminated"), std::string::npos) << e.what();
        }
        pool.join();  // nothing left to wait for
    }
    {
        mp::Pool pool(1, options());
        EXPECT_THROW(pool.apply(not_registered, 1), mp::ValueError);
        auto r = pool.apply_async(sleep_ms, 20000);
        // Leaving the scope terminates, as leaving Python's `with Pool() as p:` does.
    }
    EXPECT_EQ(mp_test::count_children(), 0);
}

TEST_P(PoolTest, SeveralThreadsShareOnePool) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    std::atomic<int> good{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([&, t] {
            const std::vector<int> r = pool.map(square, range(200 + t), 5);
            if (r.size() == static_cast<std::size_t>(200 + t) && r.back() == (199 + t) * (199 + t)) ++good;
        });
    for (auto& th : ts) th.join();
    EXPECT_EQ(good.load(), 4);
}

TEST_P(PoolTest, ACallbackMayTerminateThePool) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    bool stopped = false;
    auto slow = pool.apply_async(sleep_ms, 20000);
    pool.apply_async(fail_on_three, 3).then([](int) {}, [&](std::exception_ptr) {
        pool.terminate();  // Python's fail-fast idiom: from the callback itself
        stopped = true;
    });
    EXPECT_THROW(slow.get(60.0), mp::ProcessError);
    EXPECT_TRUE(stopped);
}

TEST_P(PoolTest, TerminateFromAnotherThreadEndsAWaitingGet) {
    mp_test::time_limit(120);
    mp::Pool pool(1, options());
    auto slow = pool.apply_async(sleep_ms, 20000);
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        pool.terminate();
    });
    const auto t0 = Clock::now();
    EXPECT_THROW(slow.get(), mp::ProcessError);  // without limit: only terminate can end it
    stopper.join();
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(15)) << "terminate waited for the task";
}

TEST_P(PoolTest, PollingWithAZeroTimeoutSeesResults) {
    mp_test::time_limit(120);
    mp::Pool pool(1, options());
    auto r = pool.apply_async(square, 9);
    int polls = 0;
    while (!r.ready()) {  // nobody else collects: ready() itself must
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ASSERT_LT(++polls, 20000) << "ready() never saw the result";
    }
    EXPECT_EQ(r.get(0), 81);
    // Arrives while nobody waits: only get(0) itself can collect it, and does.
    auto s = pool.apply_async(square, 4);
    std::optional<int> got;
    for (polls = 0; !got; ++polls) {
        try {
            got = s.get(0);
        } catch (const mp::TimeoutError&) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            ASSERT_LT(polls, 20000) << "get(0) never collected the result";
        }
    }
    EXPECT_EQ(got, 16);
}

TEST_P(PoolTest, APoolMadeInAThreadThatEndsKeepsItsWorkers) {
    mp_test::time_limit(120);
    std::unique_ptr<mp::Pool> pool;
    std::thread([&] {
        pool = std::make_unique<mp::Pool>(2, options());
        pool->map(square, range(10));  // the workers are set up
    }).join();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(pool->map(square, range(10)).back(), 81);
    const std::vector<std::string> names = pool->map(worker_name, range(20), 1);
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 2u) << "workers died with the thread";
}

TEST_P(PoolTest, SystemExitInATaskEndsItsWorker) {
    mp_test::time_limit(120);
    mp::Pool pool(1, options());
    try {
        pool.apply(system_exit_task, 4);
        ADD_FAILURE() << "no error";
    } catch (const mp::WorkerLostError& e) {
        EXPECT_EQ(e.exitcode(), 4);
    }
    EXPECT_EQ(pool.apply(square, 3), 9);
}

TEST_P(PoolTest, AnInitializerThatEndsItsProcessBreaksThePool) {
    mp_test::time_limit(120);
    mp::Pool pool(1, options().initializer(exit_in_initializer, 0));
    auto r = pool.apply_async(square, 2);
    try {
        r.get(60.0);
        ADD_FAILURE() << "no error";
    } catch (const mp::BrokenProcessPool& e) {
        EXPECT_NE(std::string(e.what()).find("before they are ready"), std::string::npos) << e.what();
    }
}

MP_INSTANTIATE_FOR_EACH_METHOD(PoolTest);
