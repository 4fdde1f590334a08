// tests/test_wait.cpp - mp::wait over connections and process sentinels, and
// Process::sentinel, under every start method.
#include <chrono>
#include <string>
#include <thread>

#include "test_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Sends `text` after delay_ms, then lives on for linger_ms.
int say_later(mp::Connection c, std::string text, int delay_ms, int linger_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    c.send(text);
    std::this_thread::sleep_for(std::chrono::milliseconds(linger_ms));
    return 3;
}
MP_TARGET(say_later);

int exit_after(int delay_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    return 0;
}
MP_TARGET(exit_after);

class WaitTest : public mp_test::MethodTest {};

}  // namespace

TEST_P(WaitTest, ConnectionFirstThenProcess) {
    auto [r, w] = mp::Pipe(false);
    mp::Process p = ctx().Process(say_later, w, std::string("hello"), 100, 300);
    p.start();
    w.close();
    auto ready = mp::wait({r, p}, 30.0);
    ASSERT_EQ(ready, std::vector<std::size_t>{0});
    EXPECT_EQ(r.recv<std::string>(), "hello");
    // Nothing more will come but end of file, which also counts as ready once the child exits.
    ready = mp::wait({p}, 30.0);
    ASSERT_EQ(ready, std::vector<std::size_t>{0});
    p.join(10.0);
    EXPECT_EQ(p.exitcode(), 3);
    EXPECT_EQ(mp::wait({r, p}, 5.0), (std::vector<std::size_t>{0, 1}));
    EXPECT_THROW(r.recv<std::string>(), mp::EOFError);
}

TEST_P(WaitTest, TimeoutIsNeverEarly) {
    auto [r, w] = mp::Pipe(false);
    mp::Process p = ctx().Process(exit_after, 3000);
    p.start();
    auto t0 = Clock::now();
    EXPECT_TRUE(mp::wait({r, p}, 0.2).empty());
    EXPECT_GE(seconds_since(t0), 0.2);
    t0 = Clock::now();
    EXPECT_TRUE(mp::wait({r, p}, std::chrono::milliseconds(50)).empty());
    EXPECT_GE(seconds_since(t0), 0.05);
    EXPECT_TRUE(mp::wait({r, p}, 0).empty());
    EXPECT_TRUE(mp::wait({r, p}, std::chrono::milliseconds(-1)).empty());  // no time left, not no limit
    p.terminate();
    EXPECT_EQ(mp::wait({r, p}), std::vector<std::size_t>{1});
    p.join();
}

TEST_P(WaitTest, SentinelStaysReadyAndOutlivesTheReap) {
    mp::Process p = ctx().Process(exit_after, 0);
    EXPECT_THROW(p.sentinel(), mp::ProcessError);  // not started
    p.start();
    p.join();  // reaped before anyone asked for the sentinel
    const auto s = p.sentinel();
    EXPECT_EQ(p.sentinel(), s);  // one sentinel per process, owned by it
    for (int i = 0; i < 3; ++i) EXPECT_EQ(mp::wait({mp::WaitObject::sentinel(s)}, 5.0), std::vector<std::size_t>{0});

    mp::Process q = ctx().Process(exit_after, 50);
    q.start();
    const auto qs = q.sentinel();  // opened while it runs
    EXPECT_EQ(mp::wait({mp::WaitObject::sentinel(qs)}, 30.0), std::vector<std::size_t>{0});
    q.join();
    EXPECT_EQ(mp::wait({q}, 0), std::vector<std::size_t>{0});
    q.close();
    EXPECT_THROW(q.sentinel(), mp::ValueError);
    p.close();
}

TEST_P(WaitTest, ManyProcessesReportEveryOneThatEnded) {
    std::vector<mp::Process> ps;
    for (int i = 0; i < 6; ++i) ps.push_back(ctx().Process(exit_after, i % 2 ? 0 : 2000));
    for (auto& p : ps) p.start();
    for (int i = 1; i < 6; i += 2) ps[static_cast<std::size_t>(i)].join();
    std::vector<mp::WaitObject> objs(ps.begin(), ps.end());
    EXPECT_EQ(mp::wait(objs, 30.0), (std::vector<std::size_t>{1, 3, 5}));
    for (auto& p : ps) p.terminate();
    for (auto& p : ps) p.join();
}

MP_INSTANTIATE_FOR_EACH_METHOD(WaitTest);

TEST(Wait, ReadAheadCountsAsReady) {
    auto [a, b] = mp::Pipe();
    a.send(1);
    a.send(2);  // small: both arrive in b's first read
    ASSERT_TRUE(b.poll(5.0));
    EXPECT_EQ(b.recv<int>(), 1);
    // The second message is in b's read-ahead now, not in the OS: wait must still see it.
    EXPECT_EQ(mp::wait({b}, 0), std::vector<std::size_t>{0});
    EXPECT_EQ(b.recv<int>(), 2);
    EXPECT_TRUE(mp::wait({b}, 0).empty());
}

TEST(Wait, PeerClosedIsReadyAndClosedIsAnError) {
    auto [a, b] = mp::Pipe();
    auto [c, d] = mp::Pipe();
    a.close();
    EXPECT_EQ(mp::wait({d, b}, 5.0), std::vector<std::size_t>{1});
    EXPECT_THROW(b.recv_bytes(), mp::EOFError);
    d.close();
    EXPECT_THROW(mp::wait({d}, 0), mp::OSError);
    EXPECT_TRUE(mp::wait({}, 0.01).empty());
}

// CPython 3.15: wait([], timeout) sleeps for the timeout and returns an empty list.
TEST(Wait, NothingToWaitForSleepsForTheTimeout) {
    const auto t0 = Clock::now();
    EXPECT_TRUE(mp::wait({}, 0.2).empty());
    EXPECT_GE(seconds_since(t0), 0.2);
    EXPECT_THROW(mp::wait({}, -1.0), mp::ValueError);  // std::nullopt is "no limit" (mp/duration.hpp)
}

// Any number of objects: hundreds of connections (POSIX once refused more than 256; Windows
// waits for them in groups of 64).
TEST(Wait, HundredsOfObjects) {
    std::vector<mp::Connection> readers, writers;
    for (int i = 0; i < 300; ++i) {
        auto [r, w] = mp::Pipe(false);
        readers.push_back(std::move(r));
        writers.push_back(std::move(w));
    }
    std::vector<mp::WaitObject> objs(readers.begin(), readers.end());
    EXPECT_TRUE(mp::wait(objs, 0).empty());
    for (int i : {0, 63, 64, 150, 299}) writers[static_cast<std::size_t>(i)].send_bytes("x");
    EXPECT_EQ(mp::wait(objs, 30.0), (std::vector<std::size_t>{0, 63, 64, 150, 299}));
}

TEST(Wait, AThreadWritingWakesTheWait) {
    auto [r, w] = mp::Pipe(false);
    std::thread t([&w = w] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        w.send_bytes("x");
    });
    const auto t0 = Clock::now();
    EXPECT_EQ(mp::wait({r}, 30.0), std::vector<std::size_t>{0});
    EXPECT_GE(seconds_since(t0), 0.04);
    t.join();
    EXPECT_EQ(r.recv_bytes().size(), 1u);
}
