// tests/test_eintr.cpp - EINTR never surfaces: while a timer interrupts the test thread every
// millisecond with a signal whose handler was installed without SA_RESTART, blocking library
// calls (Connection send/recv, poll, Process join, NamedPipe open/read/write, bulk Pipe
// transfers) still complete with the right results, and timed waits are never cut short.
#include "test_util.hpp"

#if defined(_WIN32)

TEST(Eintr, NotOnWindows) { GTEST_SKIP() << "no EINTR on Windows: nothing interrupts a blocked Win32 call"; }

#else

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<long> g_hits{0};
void count_hit(int) { g_hits.fetch_add(1, std::memory_order_relaxed); }

// A POSIX timer that sends SIGUSR2 to the calling thread every millisecond. Not SIGALRM (the
// test watchdog's) and not setitimer (ITIMER_REAL is SIGALRM). The handler is installed
// without SA_RESTART, so every blocking system call the thread is in fails with EINTR.
class Storm {
public:
    Storm() {
        struct sigaction sa{};
        sa.sa_handler = count_hit;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        EXPECT_EQ(::sigaction(SIGUSR2, &sa, &old_), 0);
        sigevent sev{};
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = SIGUSR2;
        sev._sigev_un._tid = ::gettid();
        EXPECT_EQ(::timer_create(CLOCK_MONOTONIC, &sev, &timer_), 0);
        itimerspec its{};
        its.it_interval.tv_nsec = 1000000;
        its.it_value.tv_nsec = 1000000;
        EXPECT_EQ(::timer_settime(timer_, 0, &its, nullptr), 0);
        start_hits_ = g_hits.load();
    }
    ~Storm() {
        ::timer_delete(timer_);
        // A signal still queued would meet the old action (SIG_DFL ends the process): ignoring
        // first discards it.
        struct sigaction ign{};
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        ::sigaction(SIGUSR2, &ign, nullptr);
        ::sigaction(SIGUSR2, &old_, nullptr);
    }
    long hits() const { return g_hits.load() - start_hits_; }

private:
    struct sigaction old_{};
    timer_t timer_{};
    long start_hits_ = 0;
};

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed + i / 4096) & 0xff);
    return s;
}

// Child: echoes every message back until an empty one.
int eintr_echo(mp::Connection c) {
    for (;;) {
        const mp::bytes b = c.recv_bytes();
        if (b.empty()) return 0;
        c.send_bytes(b.data(), b.size());
    }
}
MP_TARGET(eintr_echo);

// Child: sends `count` messages of `size` bytes, then an empty one.
int eintr_flood(mp::Connection w, int count, int size) {
    const std::string block = pattern(static_cast<std::size_t>(size), 3);
    for (int i = 0; i < count; ++i) w.send_bytes(block);
    w.send_bytes("");
    return 0;
}
MP_TARGET(eintr_flood);

int eintr_sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return 7;
}
MP_TARGET(eintr_sleep_ms);

// Child: after a pause (so that the parent is blocked in its open), opens the FIFO opposite
// to the parent's mode and moves n bytes of pattern(n, 5).
int eintr_fifo_peer(std::string name, bool parent_reads, int n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (parent_reads) {
        mp::NamedPipe w = mp::NamedPipe::open(name, "w", 30);
        w.write(pattern(static_cast<std::size_t>(n), 5));
        return 0;
    }
    mp::NamedPipe r = mp::NamedPipe::open(name, "r", 30);
    return r.read_exact(static_cast<std::size_t>(n)) == pattern(static_cast<std::size_t>(n), 5) && r.read(1).empty() ? 0 : 2;
}
MP_TARGET(eintr_fifo_peer);

// Child: how many SIGUSR2 reached it in 100 ms. A fork child inherits the handler but not the
// parent's timer; a spawned child has neither.
int eintr_count_hits() {
    const long before = g_hits.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return g_hits.load() == before ? 0 : 1;
}
MP_TARGET(eintr_count_hits);

class EintrTest : public mp_test::MethodTest {};

}  // namespace

TEST_P(EintrTest, ConnectionLargeMessagesBetweenProcesses) {
    mp_test::time_limit(120);
    Storm storm;
    auto [mine, theirs] = mp::Pipe();
    mp::Process p = ctx().Process(eintr_echo, theirs);
    p.start();
    theirs.close();
    // At least 6 round trips, and more until the storm has interrupted us a fair number of
    // times (a fast machine moves 2 MiB in well under a millisecond).
    for (unsigned i = 0; i < 6 || (storm.hits() < 30 && i < 400); ++i) {
        const std::string msg = pattern((std::size_t{2} << 20) + i, i);
        mine.send_bytes(msg);
        const mp::bytes back = mine.recv_bytes();
        ASSERT_EQ(back.size(), msg.size());
        EXPECT_EQ(std::memcmp(back.data(), msg.data(), msg.size()), 0);
    }
    mine.send_bytes("");
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_GT(storm.hits(), 5) << "the storm did not interrupt anything";
}

TEST_P(EintrTest, PipeBulkTransfer) {
    mp_test::time_limit(120);
    Storm storm;
    const std::string expect = pattern(65536, 3);
    mp::bytes buf(65536);
    // 16 MiB per child; more children until the storm has interrupted us a fair number of times.
    for (int round = 0; round < 1 || (storm.hits() < 30 && round < 40); ++round) {
        auto [r, w] = mp::Pipe(false);
        mp::Process p = ctx().Process(eintr_flood, w, 256, 65536);
        p.start();
        w.close();
        int n = 0;
        for (;;) {
            const std::size_t got = r.recv_bytes_into(buf.data(), buf.size());
            if (got == 0) break;
            ASSERT_EQ(got, expect.size());
            ASSERT_EQ(std::memcmp(buf.data(), expect.data(), got), 0);
            ++n;
        }
        EXPECT_EQ(n, 256);
        EXPECT_THROW(r.recv_bytes(), mp::EOFError);
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_GT(storm.hits(), 5);
}

TEST_P(EintrTest, ProcessJoinWithAndWithoutTimeout) {
    Storm storm;
    mp::Process p = ctx().Process(eintr_sleep_ms, 400);
    p.start();
    const auto t0 = Clock::now();
    p.join(0.1);
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(100));
    EXPECT_TRUE(p.is_alive());
    p.join();
    EXPECT_FALSE(p.is_alive());
    EXPECT_EQ(p.exitcode(), 7);
    EXPECT_GT(storm.hits(), 50);
}

TEST_P(EintrTest, NamedPipeOpenReadWrite) {
    mp_test::time_limit(120);
    Storm storm;
    const int n = 2 << 20;
    for (bool parent_reads : {true, false}) {
        // a timed open (poll / retry loop) and a blocking one
        for (std::optional<double> timeout : {std::optional<double>(30.0), std::optional<double>()}) {
            const std::string name = "mptest-eintr-" + std::to_string(mp::getpid()) + (parent_reads ? "-r" : "-w") +
                                     (timeout ? "-timed" : "-block");
            mp::NamedPipe c = mp::NamedPipe::create(name, parent_reads ? "r" : "w");
            mp::Process p = ctx().Process(eintr_fifo_peer, name, parent_reads, n);
            p.start();
            c.accept(timeout);
            if (parent_reads) {
                EXPECT_TRUE(c.read_exact(n) == pattern(n, 5));
                EXPECT_TRUE(c.read(1).empty());
            } else {
                c.write(pattern(n, 5));
                c.close();
            }
            p.join();
            EXPECT_EQ(p.exitcode(), 0) << (parent_reads ? "parent reads" : "parent writes") << (timeout ? " timed" : " blocking");
        }
    }
    EXPECT_GT(storm.hits(), 50);
}

TEST_P(EintrTest, ChildrenDoNotInheritTheTimer) {
    Storm storm;
    mp::Process p = ctx().Process(eintr_count_hits);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0) << "the child received SIGUSR2: it inherited the timer";
}

MP_INSTANTIATE_FOR_EACH_METHOD(EintrTest);

TEST(Eintr, PollWithTimeoutNeverEarly) {
    Storm storm;
    auto [a, b] = mp::Pipe();
    const auto t0 = Clock::now();
    EXPECT_FALSE(b.poll(0.2));
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(200));
    auto [r, w] = mp::Pipe(false);
    const auto t1 = Clock::now();
    EXPECT_FALSE(r.poll(0.1));
    EXPECT_GE(Clock::now() - t1, std::chrono::milliseconds(100));
    a.send_bytes("x");
    EXPECT_TRUE(b.poll(5));
    EXPECT_GT(storm.hits(), 50);
    // mp::signals::dispatch with a timeout, under the same storm.
    const auto t2 = Clock::now();
    EXPECT_TRUE(mp::signals::dispatch(0.1).empty());
    EXPECT_GE(Clock::now() - t2, std::chrono::milliseconds(100));
}

TEST(Eintr, SubprocessCommunicateWaitAndTimedReads) {
    namespace sp = mp::subprocess;
    const std::string child = mp_test::path_beside("mp_test_subprocess_child");
    Storm storm;
    const std::string data = pattern(std::size_t{4} << 20, 9);
    const auto r = sp::run({child, "tee"}, sp::Options().input(data).capture_output().timeout(60));
    EXPECT_TRUE(r.std_out == data);
    EXPECT_TRUE(r.std_err == data);
    sp::Popen p({child, "sleep", "30000"}, sp::Options().std_out(sp::PIPE));
    auto t0 = Clock::now();
    EXPECT_THROW(p.wait(0.2), sp::TimeoutExpired);
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(200));
    t0 = Clock::now();
    EXPECT_THROW(p.stdout_pipe().readline(0.2), sp::TimeoutExpired);
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(200));
    t0 = Clock::now();
    EXPECT_THROW(p.communicate(0.2), sp::TimeoutExpired);
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(200));
    p.kill();
    EXPECT_EQ(p.wait(), -9);
    EXPECT_GT(storm.hits(), 50);
}

#endif
