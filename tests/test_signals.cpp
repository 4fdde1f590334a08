// tests/test_signals.cpp - mp::signals and mp::kill: a child signals its parent and the parent
// its child under every start method, handlers run on the dispatching thread, timeouts, the
// default action, ignore, bad input, and what a fork child inherits.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Puts the signals a test touched back to their default action, whatever happens.
struct Restore {
    std::vector<int> sigs;
    ~Restore() {
        for (int s : sigs) mp::signals::restore(s);
    }
};

int sig_send(int pid, int s) {
    mp::kill(pid, s);
    return 0;
}
MP_TARGET(sig_send);

// Child: catches USR1, says it is ready, and exits with 42 once the handler has run.
int sig_wait_for_usr1(mp::Connection ready) {
    int got = 0;
    mp::signals::handle(mp::sig::USR1, [&](int s) { got = s; });
    ready.send(1);
    const std::vector<int> ran = mp::signals::dispatch(30);
    return got == mp::sig::USR1 && ran == std::vector<int>{mp::sig::USR1} ? 42 : 1;
}
MP_TARGET(sig_wait_for_usr1);

// Child: restores the default of USR1 (which a fork child may have inherited a handler for),
// says it is ready, then sleeps: the default action of USR1 ends it.
int sig_default_usr1(mp::Connection ready) {
    mp::signals::restore(mp::sig::USR1);
    ready.send(1);
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return 0;
}
MP_TARGET(sig_default_usr1);

// Child: catches TERM, restores the default, then sends TERM to itself.
int sig_restore_then_term() {
    mp::signals::handle(mp::sig::TERM, [](int) {});
    mp::signals::restore(mp::sig::TERM);
    mp::kill(mp::getpid(), mp::sig::TERM);
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return 0;
}
MP_TARGET(sig_restore_then_term);

class SignalsTest : public mp_test::MethodTest {
protected:
    void SetUp() override {
        mp::signals::dispatch(0);  // the POSIX self-pipe lives as long as the process: make it before counting
        MethodTest::SetUp();
    }
};

}  // namespace

TEST_P(SignalsTest, ChildSignalsParent) {
    Restore guard{{mp::sig::USR1}};
    std::vector<std::thread::id> ran_on;
    mp::signals::handle(mp::sig::USR1, [&](int s) {
        EXPECT_EQ(s, mp::sig::USR1);
        ran_on.push_back(std::this_thread::get_id());
    });
    mp::Process p = ctx().Process(sig_send, mp::getpid(), mp::sig::USR1);
    p.start();
    const std::vector<int> ran = mp::signals::dispatch(30);
    EXPECT_EQ(ran, std::vector<int>{mp::sig::USR1});
    ASSERT_EQ(ran_on.size(), 1u);
    EXPECT_EQ(ran_on[0], std::this_thread::get_id());
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(SignalsTest, ParentSignalsChild) {
    auto [mine, theirs] = mp::Pipe();
    mp::Process p = ctx().Process(sig_wait_for_usr1, theirs);
    p.start();
    theirs.close();
    ASSERT_TRUE(mine.poll(30));
    EXPECT_EQ(mine.recv<int>(), 1);
    mp::kill(*p.pid(), mp::sig::USR1);
    p.join(30);
    EXPECT_EQ(p.exitcode(), 42);
}

TEST_P(SignalsTest, DefaultActionEndsTheChild) {
    {
        auto [mine, theirs] = mp::Pipe();
        mp::Process p = ctx().Process(sig_default_usr1, theirs);
        p.start();
        theirs.close();
        ASSERT_TRUE(mine.poll(30));
        mp::kill(*p.pid(), mp::sig::USR1);  // Windows: no event, so TerminateProcess, as POSIX's default
        p.join(30);
        EXPECT_EQ(p.exitcode(), -mp::sig::USR1);
    }
    mp::Process q = ctx().Process(sig_restore_then_term);
    q.start();
    q.join(30);
    EXPECT_EQ(q.exitcode(), -mp::sig::TERM);
}

MP_INSTANTIATE_FOR_EACH_METHOD(SignalsTest);

TEST(Signals, HandlerRunsOnTheDispatchingThreadAndPending) {
    Restore guard{{mp::sig::USR2}};
    std::thread::id where;
    mp::signals::handle(mp::sig::USR2, [&](int) { where = std::this_thread::get_id(); });
    mp::kill(mp::getpid(), mp::sig::USR2);  // to ourselves: recorded before kill returns
    EXPECT_EQ(mp::signals::pending(), std::vector<int>{mp::sig::USR2});
    EXPECT_EQ(where, std::thread::id()) << "the handler must not run before dispatch";
    EXPECT_EQ(mp::signals::dispatch(5), std::vector<int>{mp::sig::USR2});
    EXPECT_EQ(where, std::this_thread::get_id());
    EXPECT_TRUE(mp::signals::pending().empty());
    // Sent from another thread, dispatched here.
    where = {};
    std::thread t([] { mp::kill(mp::getpid(), mp::sig::USR2); });
    EXPECT_EQ(mp::signals::dispatch(10), std::vector<int>{mp::sig::USR2});
    t.join();
    EXPECT_EQ(where, std::this_thread::get_id());
    // A handler may throw: the exception leaves dispatch.
    mp::signals::handle(mp::sig::USR2, [](int) { throw mp::ValueError("from a handler"); });
    mp::kill(mp::getpid(), mp::sig::USR2);
    EXPECT_THROW(mp::signals::dispatch(5), mp::ValueError);
}

TEST(Signals, DispatchTimeoutNeverEarly) {
    Restore guard{{mp::sig::USR1}};
    mp::signals::handle(mp::sig::USR1, [](int) {});
    const auto t0 = Clock::now();
    EXPECT_TRUE(mp::signals::dispatch(0).empty());
    const auto t1 = Clock::now();
    EXPECT_TRUE(mp::signals::dispatch(0.15).empty());
    EXPECT_GE(Clock::now() - t1, std::chrono::milliseconds(150));
    (void)t0;
}

// dispatch/wait with a std::chrono duration; a negative one only looks (never "no limit").
TEST(Signals, DispatchTakesADuration) {
    Restore guard{{mp::sig::USR1}};
    mp::signals::handle(mp::sig::USR1, [](int) {});
    EXPECT_TRUE(mp::signals::dispatch(std::chrono::milliseconds(-1)).empty());
    EXPECT_THROW(mp::signals::dispatch(-1.0), mp::ValueError);  // std::nullopt is "no limit"
    EXPECT_TRUE(mp::signals::wait(std::chrono::seconds(-10)).empty());
    const auto t1 = Clock::now();
    EXPECT_TRUE(mp::signals::wait(std::chrono::milliseconds(100)).empty());
    EXPECT_GE(Clock::now() - t1, std::chrono::milliseconds(100));
    mp::kill(mp::getpid(), mp::sig::USR1);
    EXPECT_EQ(mp::signals::dispatch(std::chrono::milliseconds(-1)), std::vector<int>{mp::sig::USR1});
    mp::kill(mp::getpid(), mp::sig::USR1);
    EXPECT_EQ(mp::signals::wait(std::chrono::seconds(10)), std::vector<int>{mp::sig::USR1});
}

TEST(Signals, IgnoreAndRestore) {
    Restore guard{{mp::sig::USR2}};
    int runs = 0;
    mp::signals::handle(mp::sig::USR2, [&](int) { ++runs; });
    mp::signals::ignore(mp::sig::USR2);
    mp::kill(mp::getpid(), mp::sig::USR2);  // ignored: we are still here
    EXPECT_TRUE(mp::signals::dispatch(0.05).empty());
    EXPECT_EQ(runs, 0);
    // Recorded, then restored before dispatch: dropped.
    mp::signals::handle(mp::sig::USR2, [&](int) { ++runs; });
    mp::kill(mp::getpid(), mp::sig::USR2);
    mp::signals::restore(mp::sig::USR2);
    EXPECT_TRUE(mp::signals::pending().empty());
    EXPECT_TRUE(mp::signals::dispatch(0).empty());
    EXPECT_EQ(runs, 0);
}

TEST(Signals, BadInputAndMissingProcess) {
    EXPECT_THROW(mp::signals::handle(mp::sig::KILL, [](int) {}), mp::ValueError);
    EXPECT_THROW(mp::signals::ignore(mp::sig::KILL), mp::ValueError);
    EXPECT_THROW(mp::signals::handle(11, [](int) {}), mp::ValueError);  // SIGSEGV: a fault cannot wait
    EXPECT_THROW(mp::signals::handle(0, [](int) {}), mp::ValueError);
    EXPECT_THROW(mp::signals::handle(65, [](int) {}), mp::ValueError);
    EXPECT_THROW(mp::signals::handle(mp::sig::USR1, nullptr), mp::ValueError);
    EXPECT_THROW(mp::kill(0, mp::sig::TERM), mp::ValueError);
    EXPECT_THROW(mp::kill(-1, mp::sig::TERM), mp::ValueError);
    EXPECT_THROW(mp::kill(mp::getpid(), 99), mp::ValueError);
    // A child that has ended and been joined: its pid names no process (pid reuse aside).
    mp::Process p(sig_send, 0 + mp::getpid(), 0 + mp::sig::CHLD);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);  // CHLD: harmless to us everywhere
    EXPECT_THROW(mp::kill(*p.pid(), mp::sig::TERM), mp::ProcessLookupError);
#if !defined(_WIN32)
    EXPECT_THROW(mp::kill(0x3ffffff0, mp::sig::TERM), mp::ProcessLookupError);  // above Linux's pid_max
#endif
    EXPECT_EQ(mp_test::count_children(), 0);
}

#if !defined(_WIN32)
TEST(Signals, ForkChildHasItsOwnRecordAndPipe) {
    Restore guard{{mp::sig::USR1}};
    int runs = 0;
    mp::signals::handle(mp::sig::USR1, [&](int) { ++runs; });
    mp::kill(mp::getpid(), mp::sig::USR1);  // recorded in the parent, not dispatched yet
    mp::Process p = mp::get_context("fork").Process([&] {
        // Not inherited: POSIX does not pass pending signals to a child either.
        if (!mp::signals::pending().empty()) return 2;
        // The handler is inherited, and the child's wakeups go to its own pipe.
        mp::kill(mp::getpid(), mp::sig::USR1);
        if (mp::signals::dispatch(5) != std::vector<int>{mp::sig::USR1} || runs != 1) return 3;
        return 0;
    });
    p.start();
    p.join(30);
    EXPECT_EQ(p.exitcode(), 0) << "2: the record was inherited, 3: the child's signal was not dispatched";
    EXPECT_EQ(mp::signals::dispatch(0), std::vector<int>{mp::sig::USR1});  // ours is still here, once
    EXPECT_EQ(runs, 1);
}
#endif
