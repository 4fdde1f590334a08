// tests/test_subprocess.cpp - mp::subprocess: run and friends, Popen, its pipes, communicate
// (no deadlock, continuing after a timeout, not waiting for grandchildren), errors, and the
// Windows command-line quoting. The child is tests/helper_subprocess.cpp, built beside the
// test binary on both systems.
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "hmac_sha256.hpp"
#include "sys/child_stdio.hpp"
#include "sys/connection.hpp"
#include "sys/handle.hpp"
#include "sys/os.hpp"
#include "sys/process.hpp"
#include "test_util.hpp"

#if defined(_WIN32)
#include <windows.h>
#else
#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace sp = mp::subprocess;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const std::string& helper() {
    static const std::string path = mp_test::path_beside("mp_test_subprocess_child");
    return path;
}

// The helper with these commands (see tests/helper_subprocess.cpp).
std::vector<std::string> child(std::vector<std::string> commands = {}) {
    commands.insert(commands.begin(), helper());
    return commands;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string bytes_pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 65536) & 0xff);
    return s;
}

void set_env(const char* name, const char* value) {
#if defined(_WIN32)
    _putenv_s(name, value ? value : "");
    SetEnvironmentVariableA(name, value);
#else
    if (value)
        ::setenv(name, value, 1);
    else
        ::unsetenv(name);
#endif
}

// Every test starts from no child and must leave none, and no fd or handle.
class Subprocess : public mp_test::NoLeftoversTest {
protected:
    void SetUp() override {
        mp_test::time_limit(60);
        NoLeftoversTest::SetUp();
    }
};

}  // namespace

// ---- run and friends -----------------------------------------------------------------------

TEST_F(Subprocess, RunCapturesOutputsAndReturncode) {
    const auto args = child({"out", "hello\n", "err", "oops\n", "exit", "3"});
    const sp::CompletedProcess r = sp::run(args, sp::Options().capture_output());
    EXPECT_EQ(r.returncode, 3);
    EXPECT_EQ(r.std_out, "hello\n");
    EXPECT_EQ(r.std_err, "oops\n");
    EXPECT_EQ(r.args, args);
    EXPECT_THROW(r.check_returncode(), sp::CalledProcessError);
    // Nothing captured: the child wrote to our streams, the result holds nothing.
    const sp::CompletedProcess quiet = sp::run(child({"exit", "0"}));
    EXPECT_EQ(quiet.returncode, 0);
    EXPECT_EQ(quiet.std_out, "");
    EXPECT_NO_THROW(quiet.check_returncode());
}

TEST_F(Subprocess, TextModeGivesUniversalNewlines) {
    const auto args = child({"out", "a\r\nb\rc\n\r\r\nend\r"});
    EXPECT_EQ(sp::run(args, sp::Options().capture_output()).std_out, "a\r\nb\rc\n\r\r\nend\r") << "bytes are exact";
    EXPECT_EQ(sp::run(args, sp::Options().capture_output().text()).std_out, "a\nb\nc\n\n\nend\n");
    // Input is written as given.
    EXPECT_EQ(sp::run(child({"cat"}), sp::Options().input("x\r\ny").capture_output()).std_out, "x\r\ny");
}

TEST_F(Subprocess, CheckRaisesCalledProcessErrorWithReturncodeAndStderr) {
    const auto args = child({"out", "partial\n", "err", "bad thing\n", "exit", "3"});
    try {
        sp::run(args, sp::Options().capture_output().text().check());
        FAIL() << "no CalledProcessError";
    } catch (const sp::CalledProcessError& e) {
        EXPECT_EQ(e.returncode(), 3);
        EXPECT_EQ(e.std_err(), "bad thing\n");
        EXPECT_EQ(e.output(), "partial\n");
        EXPECT_EQ(e.cmd(), args);
        const std::string what = e.what();
        EXPECT_EQ(what.rfind("Command '['", 0), 0u) << what;
        EXPECT_NE(what.find("', 'out', 'partial\\n', 'err'"), std::string::npos) << what;
        EXPECT_NE(what.find("' returned non-zero exit status 3."), std::string::npos) << what;
    }
    EXPECT_NO_THROW(sp::run(child({"exit", "0"}), sp::Options().check()));
}

TEST_F(Subprocess, ErrorTextsArePythons) {
    EXPECT_STREQ(sp::CalledProcessError(1, {"false"}).what(), "Command '['false']' returned non-zero exit status 1.");
    EXPECT_STREQ(sp::CalledProcessError(-9, {"sleep", "9"}).what(), "Command '['sleep', '9']' died with <Signals.SIGKILL: 9>.");
    EXPECT_STREQ(sp::CalledProcessError(-15, {"x"}).what(), "Command '['x']' died with <Signals.SIGTERM: 15>.");
    EXPECT_STREQ(sp::CalledProcessError(-99, {"x"}).what(), "Command '['x']' died with unknown signal 99.");
    EXPECT_STREQ(sp::TimeoutExpired({"sleep", "5"}, 2.0).what(), "Command '['sleep', '5']' timed out after 2.0 seconds");
    EXPECT_STREQ(sp::TimeoutExpired({"x"}, 0.1).what(), "Command '['x']' timed out after 0.1 seconds");
    EXPECT_STREQ(sp::TimeoutExpired({"x"}, 1e20).what(), "Command '['x']' timed out after 1e+20 seconds");
    EXPECT_STREQ(sp::TimeoutExpired({"x"}, 1.5e-7).what(), "Command '['x']' timed out after 1.5e-07 seconds");
    // repr() of each argument, as Python's str() of a list shows it.
    EXPECT_STREQ(sp::CalledProcessError(2, {"it's", "a\\b", "q\"", "n\nl", "'\"", "\x01"}).what(),
                 "Command '[\"it's\", 'a\\\\b', 'q\"', 'n\\nl', '\\'\"', '\\x01']' returned non-zero exit status 2.");
}

TEST_F(Subprocess, TimeoutKillsTheChildAndKeepsWhatItWrote) {
    const std::string marker = mp_test::temp_path("wrote");
    const auto t0 = Clock::now();
    try {
        sp::run(child({"out", "started\n", "touch", marker, "sleep", "30000"}), sp::Options().capture_output().timeout(0.5));
        FAIL() << "no TimeoutExpired";
    } catch (const sp::TimeoutExpired& e) {
        EXPECT_GE(since(t0), 0.5) << "never earlier than the timeout";
        EXPECT_EQ(e.timeout(), 0.5);
        // Whatever the child wrote before it was killed is in the exception.
        if (fs::exists(marker)) {
            EXPECT_EQ(e.output(), "started\n");
        }
        EXPECT_EQ(e.std_err(), "");
    }
    fs::remove(marker);
    // Without capture, the same: killed, reaped, TimeoutExpired.
    const auto t1 = Clock::now();
    EXPECT_THROW(sp::run(child({"sleep", "30000"}), sp::Options().timeout(0.3)), sp::TimeoutExpired);
    EXPECT_GE(since(t1), 0.3);
    EXPECT_THROW(sp::call(child({"sleep", "30000"}), sp::Options().timeout(0.2)), sp::TimeoutExpired);
}

TEST_F(Subprocess, CheckOutputCallAndCheckCall) {
    EXPECT_EQ(sp::check_output(child({"out", "x y\n"})), "x y\n");
    EXPECT_EQ(sp::check_output(child({"out", "a\r\n"}), sp::Options().text()), "a\n");
    EXPECT_THROW((void)sp::check_output(child({"exit", "2"})), sp::CalledProcessError);
    EXPECT_THROW((void)sp::check_output(child(), sp::Options().std_out(sp::PIPE)), mp::ValueError);
    EXPECT_THROW((void)sp::check_output(child(), sp::Options().capture_output()), mp::ValueError);
    EXPECT_EQ(sp::call(child({"exit", "7"})), 7);
    EXPECT_NO_THROW(sp::check_call(child({"exit", "0"})));
    try {
        sp::check_call(child({"exit", "4"}));
        FAIL() << "no CalledProcessError";
    } catch (const sp::CalledProcessError& e) {
        EXPECT_EQ(e.returncode(), 4);
    }
    // call serves the pipes, so capturing cannot fill one up.
    EXPECT_EQ(sp::call(child({"spew", "1", "1", "exit", "5"}), sp::Options().capture_output()), 5);
}

TEST_F(Subprocess, InputReachesStdinExactly) {
    const std::string data = bytes_pattern(1 << 20);  // NUL bytes included
    const auto r = sp::run(child({"cat"}), sp::Options().input(data).capture_output());
    EXPECT_EQ(r.returncode, 0);
    EXPECT_EQ(r.std_out.size(), data.size());
    EXPECT_TRUE(r.std_out == data);
    EXPECT_EQ(sp::run(child({"cat"}), sp::Options().input("").capture_output()).std_out, "");
    // A child that reads none of it and exits: the rest is dropped (as CPython ignores the
    // BrokenPipeError), with no SIGPIPE and no error.
    const auto ignored = sp::run(child({"out", "bye", "exit", "0"}), sp::Options().input(data).capture_output());
    EXPECT_EQ(ignored.returncode, 0);
    EXPECT_EQ(ignored.std_out, "bye");
}

TEST_F(Subprocess, DevnullAndStderrIntoStdout) {
    EXPECT_EQ(sp::run(child({"cat", "out", "done"}), sp::Options().std_in(sp::DEVNULL).capture_output()).std_out, "done");
    const auto merged = sp::run(child({"out", "1", "err", "2", "out", "3"}),
                                sp::Options().std_out(sp::PIPE).std_err(sp::STDOUT));
    EXPECT_EQ(merged.std_out, "123");
    EXPECT_EQ(merged.std_err, "");
    const auto dropped = sp::run(child({"out", "x", "err", "y"}), sp::Options().std_out(sp::DEVNULL).std_err(sp::PIPE));
    EXPECT_EQ(dropped.std_out, "");
    EXPECT_EQ(dropped.std_err, "y");
}

// ---- communicate -----------------------------------------------------------------------------

TEST_F(Subprocess, CommunicateServesAllThreePipesAtOnce) {
    mp_test::time_limit(120);
    // The child copies stdin to stdout and stderr as it reads: written in order (all input,
    // then reading), any of the three pipes would fill and both sides would wait forever.
    const std::size_t n = (mp_test::under_wine() ? 2u : 16u) << 20;
    const std::string data = bytes_pattern(n);
    sp::Popen p(child({"tee"}), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE).std_err(sp::PIPE));
    const auto [out, err] = p.communicate(data, 100);
    EXPECT_EQ(out.size(), n);
    EXPECT_EQ(err.size(), n);
    EXPECT_TRUE(out == data);
    EXPECT_TRUE(err == data);
    EXPECT_EQ(p.returncode(), 0);
    // And both outputs large at once, with no input.
    const auto r = sp::run(child({"spew", "8", "8"}), sp::Options().capture_output().timeout(100));
    EXPECT_EQ(r.std_out.size(), std::size_t{8} << 20);
    EXPECT_EQ(r.std_err.size(), std::size_t{8} << 20);
}

TEST_F(Subprocess, CommunicateContinuesAfterATimeout) {
    sp::Popen p(child({"out", "first", "sleep", "1500", "out", "second"}), sp::Options().std_out(sp::PIPE));
    int timeouts = 0;
    std::string seen;
    std::pair<std::string, std::string> r;
    for (;;) {
        const auto t0 = Clock::now();
        try {
            r = p.communicate(0.2);
            break;
        } catch (const sp::TimeoutExpired& e) {
            EXPECT_GE(since(t0), 0.2);
            ++timeouts;
            seen = e.output();
        }
    }
    EXPECT_GE(timeouts, 1) << "the child sleeps 1.5 s, so a 0.2 s communicate must have run out";
    EXPECT_EQ(r.first, "firstsecond") << "nothing lost, nothing twice";
    EXPECT_EQ(std::string("firstsecond").compare(0, seen.size(), seen), 0) << "the partial output was " << seen;
    EXPECT_EQ(p.returncode(), 0);

    // Input too is continued where it stopped.
    const std::string data = bytes_pattern(1 << 20);
    sp::Popen q(child({"sleep", "500", "cat"}), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE));
    EXPECT_THROW(q.communicate(data, 0.1), sp::TimeoutExpired);  // it reads nothing for 0.5 s
    EXPECT_THROW(q.communicate("more", 1), mp::ValueError);
    const auto all = q.communicate(60);
    EXPECT_TRUE(all.first == data);
}

TEST_F(Subprocess, CommunicateDoesNotWaitForAGrandchildHoldingThePipes) {
    mp_test::time_limit(150);
    // The grandchild inherits stdout and stderr and sleeps 2 minutes. CPython's communicate
    // reads to end of file and so would raise TimeoutExpired after 60 s here.
    sp::Popen p(child({"out", "child says hi\n", "grandchild", "120000"}),
                sp::Options().std_out(sp::PIPE).std_err(sp::PIPE));
    const auto [out, err] = p.communicate(60);
    EXPECT_EQ(p.returncode(), 0);
    EXPECT_EQ(err, "");
    const std::string head = "child says hi\ngrandchild ";
    ASSERT_EQ(out.compare(0, head.size(), head), 0) << out;
    const int grandchild = std::atoi(out.c_str() + head.size());
    ASSERT_GT(grandchild, 0) << out;
    EXPECT_TRUE(mp::sys::pid_exists(grandchild)) << "the grandchild should still be holding the pipes";
    mp::kill(grandchild, mp::sig::KILL);
    EXPECT_EQ(mp_test::wait_reaped(grandchild, std::chrono::seconds(30)), 0);
}

TEST_F(Subprocess, RunDoesNotWaitForAGrandchildHoldingThePipes) {
    mp_test::time_limit(150);
    const auto r = sp::run(child({"grandchild", "120000", "err", "bye"}), sp::Options().capture_output().timeout(60));
    EXPECT_EQ(r.std_err, "bye");
    const int grandchild = std::atoi(r.std_out.c_str() + std::string("grandchild ").size());
    ASSERT_GT(grandchild, 0) << r.std_out;
    EXPECT_TRUE(mp::sys::pid_exists(grandchild));
    mp::kill(grandchild, mp::sig::KILL);
    EXPECT_EQ(mp_test::wait_reaped(grandchild, std::chrono::seconds(30)), 0);
}

// ---- Popen and its pipes -----------------------------------------------------------------------

TEST_F(Subprocess, PopenStreamsLinesWithPollAndWait) {
    // Three lines, then the child waits for our go-ahead: until then it cannot have ended.
    sp::Popen p(child({"lines", "3", "0", "readline", "lines", "2", "0"}),
                sp::Options().std_in(sp::PIPE).std_out(sp::PIPE).text());
    EXPECT_GT(p.pid(), 0);
    EXPECT_EQ(p.stdout_pipe().readline(30), "line 1\n");
    EXPECT_EQ(p.stdout_pipe().readline(30), "line 2\n");
    EXPECT_EQ(p.stdout_pipe().readline(30), "line 3\n");
    EXPECT_EQ(p.poll(), std::nullopt);
    EXPECT_EQ(p.returncode(), std::nullopt);
    EXPECT_EQ(p.stdin_pipe().write("go\n"), 3u);
    p.stdin_pipe().close();
    EXPECT_TRUE(p.stdin_pipe().closed());
    std::vector<std::string> rest;
    for (const std::string& line : p.stdout_pipe()) rest.push_back(line);
    EXPECT_EQ(rest, (std::vector<std::string>{"line 1\n", "line 2\n"}));
    EXPECT_EQ(p.wait(30), 0);
    EXPECT_EQ(p.poll(), 0);
    EXPECT_EQ(p.returncode(), 0);
}

TEST_F(Subprocess, TheTutorialsReadlineAndPollLoop) {
    sp::Popen p(child({"lines", "5", "20"}), sp::Options().std_out(sp::PIPE).std_err(sp::PIPE).text());
    std::vector<std::string> got;
    for (;;) {
        const std::string line = p.stdout_pipe().readline(30);
        if (line.empty() && p.poll()) break;
        if (!line.empty()) got.push_back(line);
    }
    const auto [out, err] = p.communicate(30);
    EXPECT_EQ(got.size(), 5u);
    EXPECT_EQ(got.back(), "line 5\n");
    EXPECT_EQ(out, "");
    EXPECT_EQ(err, "");
    EXPECT_EQ(p.returncode(), 0);
}

TEST_F(Subprocess, ATimedOutReadLosesNothing) {
    sp::Popen p(child({"out", "partial", "readline", "out", " rest\n", "readline"}),
                sp::Options().std_in(sp::PIPE).std_out(sp::PIPE));
    auto t0 = Clock::now();
    EXPECT_THROW(p.stdout_pipe().readline(0.3), sp::TimeoutExpired);  // no newline until we say so
    EXPECT_GE(since(t0), 0.3);
    ASSERT_EQ(p.stdin_pipe().write("\n"), 1u);
    EXPECT_EQ(p.stdout_pipe().readline(30), "partial rest\n");
    t0 = Clock::now();
    EXPECT_THROW(p.stdout_pipe().read_some(10, 0.2), sp::TimeoutExpired);
    EXPECT_GE(since(t0), 0.2);
    EXPECT_THROW(p.stdout_pipe().read(-1, 0.2), sp::TimeoutExpired);
    p.stdin_pipe().close();
    EXPECT_EQ(p.stdout_pipe().read(-1, 30), "");
    EXPECT_EQ(p.stdout_pipe().readline(), "");
    EXPECT_EQ(p.wait(30), 0);
}

TEST_F(Subprocess, ReadSizesAndACarriageReturnSplitAcrossReads) {
    sp::Popen p(child({"out", "0123456789"}), sp::Options().std_out(sp::PIPE));
    EXPECT_EQ(p.stdout_pipe().read(4, 30), "0123");
    EXPECT_EQ(p.stdout_pipe().read(100, 30), "456789");  // fewer only at end of file
    EXPECT_EQ(p.stdout_pipe().read_some(), "");
    EXPECT_EQ(p.wait(30), 0);
    // "\r" ends one write and "\n" begins the next: still one newline.
    sp::Popen t(child({"out", "a\r", "sleep", "50", "out", "\nb\r"}), sp::Options().std_out(sp::PIPE).text());
    EXPECT_EQ(t.stdout_pipe().readline(30), "a\n");
    EXPECT_EQ(t.stdout_pipe().readline(30), "b\n");
    EXPECT_EQ(t.stdout_pipe().readline(30), "");
    EXPECT_EQ(t.wait(30), 0);
}

TEST_F(Subprocess, StdinWritesTimeoutsAndABrokenPipe) {
    sp::Popen p(child({"exit", "0"}), sp::Options().std_in(sp::PIPE));
    EXPECT_EQ(p.wait(30), 0);
    EXPECT_THROW(p.stdin_pipe().write(std::string(65536, 'x')), mp::BrokenPipeError);

    sp::Popen q(child({"sleep", "30000"}), sp::Options().std_in(sp::PIPE));
    const std::string big(std::size_t{4} << 20, 'x');
    const auto t0 = Clock::now();
    EXPECT_LT(q.stdin_pipe().write(big, 0.3), big.size()) << "nobody reads: the pipe holds far less than 4 MiB";
    EXPECT_GE(since(t0), 0.3);
    q.stdin_pipe().close();
    EXPECT_THROW(q.stdin_pipe().write("x"), mp::ValueError);
    q.kill();
    EXPECT_EQ(q.wait(30), -9);
}

TEST_F(Subprocess, WaitWithATimeout) {
    sp::Popen p(child({"sleep", "30000"}));
    const auto t0 = Clock::now();
    EXPECT_THROW(p.wait(0.3), sp::TimeoutExpired);
    EXPECT_GE(since(t0), 0.3);
    EXPECT_EQ(p.returncode(), std::nullopt);
    EXPECT_EQ(p.poll(), std::nullopt);
    EXPECT_THROW(p.wait(std::nan("")), mp::ValueError);
    EXPECT_THROW(p.wait(-1.0), mp::ValueError);  // std::nullopt is "no limit" (mp/duration.hpp)
    EXPECT_THROW(sp::Options().timeout(-1.0), mp::ValueError);
    p.kill();
    EXPECT_EQ(p.wait(), -9);
    EXPECT_EQ(p.returncode(), -9);
    EXPECT_NO_THROW(p.kill()) << "a reaped child is not signalled again";
}

// The std::error_code forms: a wait or communicate that runs out of time is
// std::errc::timed_out, without TimeoutExpired; success clears ec; bad timeouts still throw.
TEST_F(Subprocess, WaitAndCommunicateWithErrorCode) {
    sp::Popen p(child({"sleep", "30000"}));
    std::error_code ec;
    EXPECT_EQ(p.wait(0.2, ec), std::nullopt);
    EXPECT_EQ(ec, std::errc::timed_out) << ec.message();
    ec.clear();
    EXPECT_EQ(p.wait(std::chrono::milliseconds(50), ec), std::nullopt);
    EXPECT_EQ(ec, std::errc::timed_out);
    EXPECT_EQ(p.returncode(), std::nullopt);
    EXPECT_THROW((void)p.wait(-1.0, ec), mp::ValueError);
    EXPECT_THROW((void)p.wait(std::nan(""), ec), mp::ValueError);
    p.kill();
    ec = mp::errc::queue_full;
    EXPECT_EQ(p.wait(30.0, ec), -9);
    EXPECT_FALSE(ec) << "a wait that succeeds clears ec";
    ec = mp::errc::queue_full;
    EXPECT_EQ(p.wait(std::nullopt, ec), -9) << "and again, once reaped";
    EXPECT_FALSE(ec);

    // communicate: the output so far (what TimeoutExpired would carry), then all of it.
    sp::Popen q(child({"out", "first", "sleep", "1500", "out", "second"}), sp::Options().std_out(sp::PIPE));
    int timeouts = 0;
    std::pair<std::string, std::string> r;
    for (;;) {
        r = q.communicate(0.2, ec);
        if (ec != std::errc::timed_out) break;
        ++timeouts;
        EXPECT_EQ(std::string("firstsecond").compare(0, r.first.size(), r.first), 0) << "the output so far was " << r.first;
    }
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_GE(timeouts, 1) << "the child sleeps 1.5 s, so a 0.2 s communicate must have run out";
    EXPECT_EQ(r.first, "firstsecond") << "nothing lost, nothing twice";
    EXPECT_EQ(q.returncode(), 0);

    // Input too, with the duration forms; bad input still throws.
    sp::Popen c(child({"sleep", "300", "cat"}), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE));
    r = c.communicate("data", std::chrono::milliseconds(50), ec);
    EXPECT_EQ(ec, std::errc::timed_out);
    EXPECT_THROW((void)c.communicate("more", 1.0, ec), mp::ValueError);
    EXPECT_THROW((void)c.communicate(std::optional<double>(-1.0), ec), mp::ValueError);
    ec = mp::errc::queue_full;
    r = c.communicate(std::chrono::seconds(60), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(r.first, "data");
    EXPECT_EQ(c.returncode(), 0);
}

// The std::error_code form of communicate kills the tree on a timeout as the throwing form does.
TEST_F(Subprocess, ErrorCodeCommunicateTimeoutCanKillTheTree) {
    mp_test::time_limit(120);
    sp::Popen p(child({"grandchild", "120000", "sleep", "120000"}),
                sp::Options().std_out(sp::PIPE).process_group().timeout_kills_tree());
    std::error_code ec;
    const auto r = p.communicate(0.5, ec);
    EXPECT_EQ(ec, std::errc::timed_out) << ec.message();
    EXPECT_EQ(r.first.rfind("grandchild ", 0), 0u) << r.first;
    // The tree is gone, so the pipe the grandchild held ends: the next communicate finishes,
    // with all the output again.
    const auto all = p.communicate(30.0, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(all.first, r.first);
    EXPECT_NE(p.returncode(), std::optional<int>(0)) << "the tree was killed";
    mp_test::reap_orphans(std::chrono::seconds(30));
}

// CPython's test_threadsafe_wait: threads waiting on one Popen all get its return code, and
// the child is reaped once (no ECHILD, no wait on a closed handle).
TEST_F(Subprocess, ThreadsWaitingOnOnePopenAllGetTheReturnCode) {
    for (int round = 0; round < 20; ++round) {
        sp::Popen p(child({"sleep", "20", "exit", "7"}));
        std::vector<int> got(4, -1000);
        std::vector<std::string> errors(4);
        std::vector<std::thread> ts;
        for (int i = 0; i < 4; ++i) {
            ts.emplace_back([&, i] {
                try {
                    got[static_cast<std::size_t>(i)] = i % 2 ? p.wait() : p.wait(60);
                } catch (const std::exception& e) {
                    errors[static_cast<std::size_t>(i)] = e.what();
                }
            });
        }
        for (auto& t : ts) t.join();
        for (int i = 0; i < 4; ++i) {
            EXPECT_EQ(errors[static_cast<std::size_t>(i)], "") << "round " << round << ", thread " << i;
            EXPECT_EQ(got[static_cast<std::size_t>(i)], 7) << "round " << round << ", thread " << i;
        }
        EXPECT_EQ(p.poll(), 7);
    }
}

TEST_F(Subprocess, SignalsAndReturncodes) {
    sp::Popen t(child({"sleep", "30000"}));
    t.terminate();
    EXPECT_EQ(t.wait(30), -15);
    sp::Popen k(child({"sleep", "30000"}));
    k.kill();
    EXPECT_EQ(k.wait(30), -9);
    sp::Popen u(child({"sleep", "30000"}));
#if defined(_WIN32)
    EXPECT_THROW(u.send_signal(mp::sig::USR1), mp::ValueError);
    u.kill();
    EXPECT_EQ(u.wait(30), -9);
#else
    u.send_signal(mp::sig::USR1);
    EXPECT_EQ(u.wait(30), -mp::sig::USR1);
#endif
}

TEST_F(Subprocess, ADestroyedPopenClosesItsPipesAndWaits) {
    {
        // cat ends when its stdin closes; the destructor must close it, then reap cat.
        sp::Popen p(child({"cat"}), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE));
        p.stdin_pipe().write("abc");
    }
    EXPECT_EQ(mp_test::count_children(), 0) << "~Popen left its child running or unreaped";
    sp::Popen a(child({"exit", "0"}));
    sp::Popen b(std::move(a));
    EXPECT_THROW(a.poll(), mp::ValueError);  // NOLINT(bugprone-use-after-move): on purpose
    sp::Popen c(child({"exit", "1"}));
    c = std::move(b);  // c's own child is finished first
    EXPECT_EQ(c.wait(30), 0);
}

// ---- starting: programs, arguments, environment, errors --------------------------------------

TEST_F(Subprocess, MissingProgramIsFileNotFoundError) {
#if defined(_WIN32)
    const std::string missing = "C:\\mp-no-such-dir\\mp-no-such-program.exe";
#else
    const std::string missing = "/mp-no-such-dir/mp-no-such-program";
#endif
    EXPECT_THROW(sp::run({missing}), mp::FileNotFoundError);
    try {
        sp::Popen p({"mp-no-such-program-on-path", "x"});
        FAIL() << "started a program that does not exist";
    } catch (const mp::FileNotFoundError& e) {
        EXPECT_NE(std::string(e.what()).find("'mp-no-such-program-on-path'"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)sp::check_output({"mp-no-such-program-on-path"}), mp::FileNotFoundError);
    // The message names the call the user made, not the Popen it made underneath.
    const std::vector<std::pair<std::string, std::function<void()>>> calls = {
        {"mp::subprocess::run", [&] { sp::run({missing}); }},
        {"mp::subprocess::call", [&] { sp::call({missing}); }},
        {"mp::subprocess::check_call", [&] { sp::check_call({missing}); }},
        {"mp::subprocess::check_output", [&] { (void)sp::check_output({missing}); }},
        {"mp::subprocess::Popen", [&] { sp::Popen p({missing}); }},
    };
    for (const auto& [name, call] : calls) {
        try {
            call();
            ADD_FAILURE() << name << " ran a missing program";
        } catch (const mp::FileNotFoundError& e) {
            EXPECT_EQ(std::string(e.what()).rfind(name + ": cannot run", 0), 0u) << e.what();
        }
    }
}

TEST_F(Subprocess, ProgramThatMayNotBeRunIsPermissionError) {
#if defined(_WIN32)
    // A directory is not a program: CreateProcessW refuses it with ERROR_ACCESS_DENIED.
    const std::string dir = mp_test::temp_path("not-a-program");
    fs::create_directory(dir);
    try {
        sp::run({dir});
        ADD_FAILURE() << "ran a directory";
    } catch (const mp::PermissionError&) {
    } catch (const mp::OSError& e) {
        if (!mp_test::under_wine()) ADD_FAILURE() << "not a PermissionError: " << e.what();
        else std::printf("[ SKIPPED  ] only under Wine: CreateProcessW on a directory gives %s, not ERROR_ACCESS_DENIED\n",
                         e.code().message().c_str());
    }
    fs::remove(dir);
#else
    const std::string file = mp_test::temp_path("not-executable");
    std::ofstream(file) << "#!/bin/sh\nexit 0\n";
    ::chmod(file.c_str(), 0644);
    EXPECT_THROW(sp::run({file}), mp::PermissionError);
    fs::remove(file);
#endif
}

TEST_F(Subprocess, BadCwdIsFileNotFoundErrorNamingIt) {
    const std::string dir = mp_test::temp_path("no-such-dir");
    try {
        sp::Popen p(child({"exit", "0"}), sp::Options().cwd(dir));
        FAIL() << "started in a directory that does not exist";
    } catch (const mp::FileNotFoundError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(fs::path(dir).filename().string()), std::string::npos) << what;
        EXPECT_NE(what.find("working directory"), std::string::npos) << what;
    }
}

TEST_F(Subprocess, CwdAndEnvironment) {
    const std::string dir = mp_test::temp_path("cwd");
    fs::create_directory(dir);
    std::string shown = sp::run(child({"cwd"}), sp::Options().cwd(dir).capture_output()).std_out;
    if (!shown.empty() && shown.back() == '\n') shown.pop_back();
    EXPECT_TRUE(fs::equivalent(fs::u8path(shown), fs::u8path(dir))) << shown << " vs " << dir;
    fs::remove(dir);
#if !defined(_WIN32)
    // POSIX: a relative program path is found from the new directory, as in Python (Windows
    // resolves it from ours).
    const std::string helper_dir = fs::path(helper()).parent_path().string();
    EXPECT_EQ(sp::call({"./mp_test_subprocess_child", "exit", "6"}, sp::Options().cwd(helper_dir)), 6);
#endif

    set_env("MP_SUB_PARENT", "yes");
    const auto inherited = sp::run(child({"env", "MP_SUB_PARENT", "env", "MP_SUB_EXTRA"}),
                                   sp::Options().add_env("MP_SUB_EXTRA", "x y").capture_output());
    EXPECT_EQ(inherited.std_out, "yes\nx y\n");
    const auto replaced = sp::run(child({"env", "MP_SUB_PARENT", "env", "MP_SUB_EXTRA", "env", "MP_SUB_ONLY"}),
                                  sp::Options().env({{"MP_SUB_ONLY", "1"}}).add_env("MP_SUB_EXTRA", "z").capture_output());
    EXPECT_EQ(replaced.std_out, "<unset>\nz\n1\n");
    set_env("MP_SUB_PARENT", nullptr);
    EXPECT_THROW(sp::run(child(), sp::Options().env({{"A=B", "1"}})), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().add_env("", "1")), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().add_env("A", std::string("a\0b", 3))), mp::ValueError);
}

TEST_F(Subprocess, BadArgumentsAreValueErrors) {
    EXPECT_THROW(sp::Popen({}), mp::ValueError);
    EXPECT_THROW(sp::run({}), mp::ValueError);
    EXPECT_THROW(sp::run({helper(), std::string("a\0b", 3)}), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().capture_output().std_out(sp::PIPE)), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().input("x").std_in(sp::PIPE)), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().std_in(sp::STDOUT)), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().std_out(sp::STDOUT)), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().timeout(std::nan(""))), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().cwd(std::string("a\0b", 3))), mp::ValueError);
    EXPECT_THROW(sp::Popen(child(), sp::Options().timeout(1)), mp::ValueError);
    EXPECT_THROW(sp::Popen(child(), sp::Options().check()), mp::ValueError);
    EXPECT_THROW(sp::Popen(child(), sp::Options().input("x")), mp::ValueError);
    sp::Popen p(child({"exit", "0"}));
    EXPECT_THROW(p.stdout_pipe(), mp::ValueError);
    EXPECT_THROW(p.stdin_pipe(), mp::ValueError);
    EXPECT_THROW(p.communicate("input without a stdin pipe"), mp::ValueError);
    EXPECT_EQ(p.communicate(30), (std::pair<std::string, std::string>{}));
    EXPECT_EQ(p.returncode(), 0);
}

TEST_F(Subprocess, ArgumentsRoundTripThroughTheChildsArgv) {
    // Windows passes one command-line string, which the child's C runtime splits by the
    // CommandLineToArgvW rules: mp must quote so that every one of these comes back as it was.
    const std::vector<std::string> hostile = {
        "", " ", "plain", "two words", "\"", "\"\"", "\\", "\\\\", "a\\", "a\\\\", "a\\\"b", "a\\\\\"b",
        "\\\"", "trailing\\\\", "  leading", "tab\there", "new\nline", "cr\rhere", "%PATH%", "^&|<>()",
        "x\"y\\\"z", "caf\xc3\xa9", "\xe4\xb8\xad\xe6\x96\x87", "\xf0\x9f\x98\x80", "'single'", "a b\\ c\\\\",
        "\\\\server\\share\\", "-flag=\"quoted value\"", "*?", "semi;colon"};
    auto args = child({"hexargs"});
    args.insert(args.end(), hostile.begin(), hostile.end());
    const auto r = sp::run(args, sp::Options().capture_output());
    ASSERT_EQ(r.returncode, 0) << r.std_err;
    std::vector<std::string> back;
    std::string line;
    for (char c : r.std_out) {
        if (c != '\n') {
            line += c;
            continue;
        }
        std::string decoded;
        for (std::size_t i = 0; i + 1 < line.size(); i += 2) decoded += static_cast<char>(std::stoi(line.substr(i, 2), nullptr, 16));
        back.push_back(decoded);
        line.clear();
    }
    ASSERT_EQ(back.size(), hostile.size()) << r.std_out;
    for (std::size_t i = 0; i < hostile.size(); ++i) EXPECT_EQ(back[i], hostile[i]) << "argument " << i;
}

TEST_F(Subprocess, ExecutableAndPathLookup) {
    EXPECT_EQ(sp::run({"shown-name", "argv0"}, sp::Options().executable(helper()).capture_output()).std_out, "shown-name\n");
    // A name without a directory is looked up in PATH.
    const std::string dir = fs::u8path(helper()).parent_path().u8string();
    std::string old_path;
    const bool had_path = mp::sys::get_env("PATH", old_path);
#if defined(_WIN32)
    set_env("PATH", (dir + ";" + old_path).c_str());
#else
    set_env("PATH", (dir + ":" + old_path).c_str());
#endif
    const int rc = sp::call({"mp_test_subprocess_child", "exit", "5"});
    set_env("PATH", had_path ? old_path.c_str() : nullptr);
    EXPECT_EQ(rc, 5);
#if defined(_WIN32)
    // A path without ".exe" finds the .exe, as CreateProcessW does for a command-line name.
    EXPECT_EQ(sp::call({helper().substr(0, helper().size() - 4), "exit", "3"}), 3);
#endif
}

TEST_F(Subprocess, StartNewSession) {
    const auto own = sp::run(child({"session"}), sp::Options().capture_output().start_new_session());
    const auto shared = sp::run(child({"session"}), sp::Options().capture_output());
    EXPECT_EQ(own.returncode, 0);
#if defined(_WIN32)
    // CREATE_NEW_PROCESS_GROUP is accepted, but a process group is not visible from inside.
    EXPECT_EQ(own.std_out, "n/a\n");
#else
    EXPECT_EQ(own.std_out, "leader\n");
    EXPECT_EQ(shared.std_out, "member\n");
#endif
}

TEST_F(Subprocess, TheChildGetsOnlyItsStandardStreams) {
#if !defined(_WIN32)
    EXPECT_EQ(sp::run(child({"fds"}), sp::Options().capture_output()).std_out, "0 1 2\n");
#endif
    // A pipe of ours holding "secret": if the child could read it by our number, it leaked.
    mp::sys::PipeEnds secret;
    ASSERT_FALSE(mp::sys::make_pipe(secret));
    ASSERT_FALSE(mp::sys::write_all(secret.write.get(), "secret", 6));
    const std::string value = std::to_string(mp::sys::handle_to_value(secret.read.get()));
    EXPECT_EQ(sp::run(child({"probe", value}), sp::Options().capture_output()).std_out, "clean\n");
    EXPECT_EQ(sp::run(child({"probe", value}), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE).std_err(sp::DEVNULL)).std_out,
              "clean\n");
}

// ---- redirects, pass_fds, pipelines, shell, trees, signals, credentials (issue 15) ---------

namespace {

// A fresh directory for a test's files, removed with them at the end.
struct TempDir {
    fs::path dir;
    TempDir() {
        dir = fs::temp_directory_path() / ("mp-subprocess-" + std::to_string(mp::sys::current_pid()) + "-" +
                                          std::to_string(Clock::now().time_since_epoch().count()));
        fs::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string file(const std::string& name) const { return (dir / name).u8string(); }
};

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::intptr_t value_of(const mp::sys::Handle& h) { return static_cast<std::intptr_t>(mp::sys::handle_to_value(h.get())); }

// Reads a pipe of ours to end of file, or until the time is up: whether end of file came.
bool reaches_eof(mp::sys::PipeEnd& end, std::chrono::seconds within) {
    const auto until = mp::sys::Deadline::after(within);
    char buf[4096];
    for (;;) {
        bool ready = false;
        if (mp::sys::pipe_poll(end, until, ready) || !ready) return false;
        std::size_t got = 0;
        if (mp::sys::pipe_read_some(end, buf, sizeof buf, got)) return true;  // a broken pipe is its end too
        if (got == 0) return true;
    }
}

}  // namespace

TEST_F(Subprocess, RedirectsToFilesByPath) {
    TempDir t;
    const std::string out = t.file("out.txt"), log = t.file("log.txt"), both = t.file("both.txt"), in = t.file("in.txt");
    // write: created, then truncated on the next run
    sp::run(child({"out", "first run, a long line\n"}), sp::Options().std_out(sp::File(out)));
    sp::run(child({"out", "second\n", "err", "to the log\n"}), sp::Options().std_out(sp::File(out)).std_err(sp::File(log)));
    EXPECT_EQ(slurp(out), "second\n");
    EXPECT_EQ(slurp(log), "to the log\n");
    // append: every write lands at the end
    sp::run(child({"err", "more\n"}), sp::Options().std_err(sp::File(log, sp::FileMode::append)));
    EXPECT_EQ(slurp(log), "to the log\nmore\n");
    // stdout and stderr to one path share one file: the order is kept, nothing overwritten
    sp::run(child({"out", "1 out\n", "err", "2 err\n", "out", "3 out\n", "err", "4 err\n"}),
            sp::Options().std_out(sp::File(both)).std_err(sp::File(both)));
    EXPECT_EQ(slurp(both), "1 out\n2 err\n3 out\n4 err\n");
    // stdin from a file (read: the default for stdin)
    { std::ofstream(in, std::ios::binary) << "from a file\n"; }
    EXPECT_EQ(sp::run(child({"cat"}), sp::Options().std_in(sp::File(in)).std_out(sp::PIPE)).std_out, "from a file\n");
    // bad ones: clear errors, nothing started
    EXPECT_THROW(sp::run(child({"cat"}), sp::Options().std_in(sp::File(t.file("missing")))), mp::FileNotFoundError);
    EXPECT_THROW(sp::run(child(), sp::Options().std_in(sp::File(in, sp::FileMode::write))), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().std_out(sp::File(out, sp::FileMode::read))), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().std_out(sp::File(std::string("a\0b", 3)))), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().std_out(sp::File(""))), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().std_out(sp::File(t.dir.u8string()))), mp::OSError);
}

TEST_F(Subprocess, RedirectToADescriptorTheCallerKeeps) {
    TempDir t;
    const std::string path = t.file("mine.txt");
    mp::sys::Handle mine;
    ASSERT_FALSE(mp::sys::open_file(path, mp::sys::FileMode::write, mine));
    sp::run(child({"out", "child\n"}), sp::Options().std_out(sp::Descriptor(value_of(mine))));
    // Ours is still open, and writes after the child's, at the shared offset.
    ASSERT_FALSE(mp::sys::write_all(mine.get(), "parent\n", 7));
    mine.reset();
    EXPECT_EQ(slurp(path), "child\nparent\n");
    EXPECT_THROW(sp::run(child(), sp::Options().std_out(sp::Descriptor(-1))), mp::ValueError);
}

TEST_F(Subprocess, PassFdsReachTheChildAndNothingElseDoes) {
    mp::sys::PipeEnds secret;
    ASSERT_FALSE(mp::sys::make_pipe(secret));
    ASSERT_FALSE(mp::sys::write_all(secret.write.get(), "secretsecret", 12));
    const std::intptr_t v = value_of(secret.read);
    EXPECT_EQ(sp::run(child({"probe", std::to_string(v)}), sp::Options().capture_output()).std_out, "clean\n");
    EXPECT_EQ(sp::run(child({"probe", std::to_string(v)}), sp::Options().capture_output().pass_fds({v})).std_out,
              "leaked\n");
#if !defined(_WIN32)
    EXPECT_EQ(sp::run(child({"fds"}), sp::Options().capture_output().pass_fds({v})).std_out,
              "0 1 2 " + std::to_string(v) + "\n");
    EXPECT_THROW(sp::run(child(), sp::Options().pass_fds({1000000})), mp::OSError);
#endif
    EXPECT_THROW(sp::run(child(), sp::Options().pass_fds({-3})), mp::ValueError);
}

#if !defined(_WIN32)
// CPython's test_swap_fds and test_close_fds_0_1_2: in a copy of this process whose own
// standard fds are shuffled or closed, a child still gets exactly the streams it is given.
TEST_F(Subprocess, SwappedOrClosedStdioInTheParentStillRemapCorrectly) {
    TempDir t;
    const int perms[][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (const auto& perm : perms) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            // Three files become this process's fds 0, 1 and 2, in the order of perm; the
            // child is given fd perm[0] as stdin ("input"), perm[1] as stdout, perm[2] as stderr.
            const char* names[3] = {"a", "b", "c"};
            for (int i = 0; i < 3; ++i) {
                const int fd = ::open((t.dir / names[i]).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
                if (fd < 0 || ::dup2(fd, perm[i]) < 0) ::_exit(10);
                if (fd != perm[i]) ::close(fd);
            }
            if (::write(perm[0], "input", 5) != 5 || ::lseek(perm[0], 0, SEEK_SET) != 0) ::_exit(11);
            try {
                sp::run(child({"cat", "err", "E"}), sp::Options()
                                                        .std_in(sp::Descriptor(perm[0]))
                                                        .std_out(sp::Descriptor(perm[1]))
                                                        .std_err(sp::Descriptor(perm[2])));
            } catch (...) {
                ::_exit(12);
            }
            ::_exit(0);
        }
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "permutation " << perm[0] << perm[1] << perm[2];
        EXPECT_EQ(slurp(t.file("b")), "input") << "permutation " << perm[0] << perm[1] << perm[2];
        EXPECT_EQ(slurp(t.file("c")), "E") << "permutation " << perm[0] << perm[1] << perm[2];
    }
    for (int closed = 0; closed < 3; ++closed) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(closed);
            try {
                const auto r = sp::run(child({"cat", "err", "E"}), sp::Options().input("in").capture_output());
                ::_exit(r.std_out == "in" && r.std_err == "E" ? 0 : 13);
            } catch (...) {
                ::_exit(14);
            }
        }
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "with fd " << closed << " closed: " << status;
    }
}
#endif

TEST_F(Subprocess, PipelinesFlowFromChildToChild) {
    mp_test::time_limit(120);
    // producer | cat | count, with the bytes never passing through this process
    const int mib = mp_test::under_wine() ? 16 : 256;
    sp::Popen a(child({"spew", std::to_string(mib), "0"}), sp::Options().std_out(sp::PIPE));
    sp::Popen b(child({"cat"}), sp::Options().std_in(a.stdout_pipe()).std_out(sp::PIPE));
    EXPECT_TRUE(a.stdout_pipe().closed()) << "our copy of a's stdout must close once b has it";
    sp::Popen c(child({"count"}), sp::Options().std_in(b.stdout_pipe()).std_out(sp::PIPE));
    EXPECT_EQ(c.communicate(60).first, std::to_string(static_cast<unsigned long long>(mib) << 20) + "\n");
    EXPECT_EQ(a.wait(60), 0);
    EXPECT_EQ(b.wait(60), 0);
    EXPECT_EQ(c.returncode(), 0);
    // A pipe whose bytes sit in our buffer (they would be lost), or a closed one, cannot be
    // handed on.
    sp::Popen d(child({"out", "xy"}), sp::Options().std_out(sp::PIPE));
    EXPECT_EQ(d.stdout_pipe().read(1, 30), "x");
    EXPECT_THROW(sp::Popen(child({"cat"}), sp::Options().std_in(d.stdout_pipe())), mp::ValueError);
    d.stdout_pipe().close();
    EXPECT_THROW(sp::Popen(child({"cat"}), sp::Options().std_in(d.stdout_pipe())), mp::ValueError);
    d.wait(30);
}

TEST_F(Subprocess, APipelineWriterLearnsThatItsReaderEnded) {
    mp_test::time_limit(120);
    // The reader ends at once; since our copy of the pipe is closed, the endless writer gets
    // SIGPIPE (POSIX) or a broken pipe (Windows: the helper exits 120) instead of blocking.
    sp::Popen a(child({"spew", "100000", "0"}), sp::Options().std_out(sp::PIPE));
    sp::Popen b(child({"exit", "0"}), sp::Options().std_in(a.stdout_pipe()));
    EXPECT_EQ(b.wait(30), 0);
    const int code = a.wait(60);
    EXPECT_TRUE(code == -13 || code == 120) << code;
}

TEST_F(Subprocess, AStdinPipeCanBeTheNextChildsStdout) {
    // b writes into a's stdin pipe: b | a, built from the reading side first.
    sp::Popen a(child({"count"}), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE));
    sp::Popen b(child({"spew", "1", "0"}), sp::Options().std_out(a.stdin_pipe()));
    EXPECT_TRUE(a.stdin_pipe().closed());
    EXPECT_EQ(b.wait(30), 0);
    EXPECT_EQ(a.communicate(30).first, std::to_string(1 << 20) + "\n");
}

TEST_F(Subprocess, ShellCommandsAndGetoutput) {
    EXPECT_EQ(sp::run({"echo hi"}, sp::Options().shell().capture_output().text()).std_out, "hi\n");
    EXPECT_EQ(sp::getoutput("echo hi"), "hi");
    EXPECT_EQ(sp::getstatusoutput("exit 3"), std::make_pair(3, std::string()));
#if !defined(_WIN32)
    // args[1..] are the shell's $0, $1 ...: data that the shell does not parse as code
    EXPECT_EQ(sp::run({"printf '%s|' \"$0\" \"$1\"", "name", "a b; echo INJECTED"}, sp::Options().shell().capture_output())
                  .std_out,
              "name|a b; echo INJECTED|");
    EXPECT_EQ(sp::run({"echo $0"}, sp::Options().shell().executable("/bin/bash").capture_output()).std_out, "/bin/bash\n");
#endif
    EXPECT_THROW(sp::run({}, sp::Options().shell()), mp::ValueError);
}

TEST_F(Subprocess, ProcessGroupAndKillTreeEndTheGrandchildren) {
    mp_test::time_limit(120);
#if !defined(_WIN32)
    EXPECT_EQ(sp::run(child({"pgroup"}), sp::Options().capture_output().process_group()).std_out, "leader\n");
    EXPECT_EQ(sp::run(child({"pgroup"}), sp::Options().capture_output()).std_out, "member\n");
#endif
    // The child starts a grandchild that holds its stdout and would sleep 2 minutes.
    sp::Popen p(child({"grandchild", "120000"}), sp::Options().std_out(sp::PIPE).process_group());
    const std::string line = p.stdout_pipe().readline(30);
    ASSERT_EQ(line.rfind("grandchild ", 0), 0u) << line;
    EXPECT_EQ(p.wait(30), 0);  // the child itself has ended; its grandchild lives on
    p.kill_tree(30);
    // The grandchild is gone: the pipe it held reaches end of file.
    EXPECT_EQ(p.stdout_pipe().read(-1, 30), "");
    p.kill_tree(1);  // nothing left: not an error
    mp_test::reap_orphans(std::chrono::seconds(30));  // the grandchild came back to us (a subreaper)

    sp::Popen q(child({"sleep", "60000"}));
    EXPECT_THROW(q.kill_tree(), mp::ValueError) << "no tree without process_group() or start_new_session()";
    EXPECT_THROW(sp::Popen(child(), sp::Options().timeout_kills_tree()), mp::ValueError);
    q.kill();
    q.wait(30);
}

TEST_F(Subprocess, ATimeoutCanKillTheTree) {
    mp_test::time_limit(120);
    // The grandchild's only link to us is our own pipe, given as the child's stderr: when the
    // tree is killed on the timeout, that pipe reaches end of file.
    mp::sys::PipeEnd watch;
    mp::sys::Handle watch_write;
    ASSERT_FALSE(mp::sys::make_child_pipe(true, watch, watch_write));
    try {
        sp::run(child({"grandchild", "120000", "sleep", "120000"}),
                sp::Options().std_out(sp::PIPE).std_err(sp::Descriptor(value_of(watch_write))).process_group()
                    .timeout_kills_tree().timeout(0.5));
        ADD_FAILURE() << "no TimeoutExpired";
    } catch (const sp::TimeoutExpired& e) {
        EXPECT_EQ(e.output().rfind("grandchild ", 0), 0u) << e.output();
    }
    watch_write.reset();
    EXPECT_TRUE(reaches_eof(watch, std::chrono::seconds(30))) << "the grandchild outlived the tree kill";
    mp_test::reap_orphans(std::chrono::seconds(30));
}

TEST_F(Subprocess, SignalsAfterTheChildEndedReachNobody) {
    sp::Popen p(child({"exit", "4"}), sp::Options().process_group());
    EXPECT_EQ(p.wait(30), 4);
    // Reaped: its pid may be someone else's now. None of these may signal anything.
    p.send_signal(9);
    p.terminate();
    p.kill();
    p.interrupt();
    EXPECT_EQ(p.returncode(), 4);
}

#if !defined(_WIN32)
TEST_F(Subprocess, InterruptSendsSigint) {
    sp::Popen p(child({"readline"}), sp::Options().std_in(sp::PIPE));
    p.interrupt();
    EXPECT_EQ(p.wait(30), -2);
    // Every signal POSIX has can be sent, real-time ones too.
    sp::Popen q(child({"readline"}), sp::Options().std_in(sp::PIPE));
    q.send_signal(SIGRTMIN + 3);
    EXPECT_EQ(q.wait(30), -(SIGRTMIN + 3));
}
#endif

TEST_F(Subprocess, AReplacedEnvironmentsPathFindsTheProgram) {
    const fs::path exe = fs::u8path(helper());
    const std::string name = exe.filename().u8string(), dir = exe.parent_path().u8string();
    // Our PATH lacks the helper's directory; the child's has it.
    auto r = sp::run({name, "out", "found"}, sp::Options().env({{"PATH", dir}}).capture_output());
    EXPECT_EQ(r.std_out, "found");
    // And the other way round: ours has it, the child's does not.
    const char* old = std::getenv("PATH");
    const std::string saved = old ? old : "";
    set_env("PATH", (dir + (mp_test::under_wine() ? ";" : ":") + saved).c_str());
    EXPECT_THROW(sp::run({name}, sp::Options().env({{"PATH", (fs::temp_directory_path() / "no-such-dir").u8string()}})),
                 mp::FileNotFoundError);
    EXPECT_EQ(sp::run({name, "out", "ours"}, sp::Options().capture_output()).std_out, "ours");
    set_env("PATH", saved.c_str());
}

#if !defined(_WIN32)
TEST_F(Subprocess, PosixCredentialsUmaskAndSignals) {
    EXPECT_EQ(sp::run(child({"umask"}), sp::Options().capture_output().umask(027)).std_out, "027\n");
    EXPECT_THROW(sp::run(child(), sp::Options().umask(01000)), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().user("no-such-user-of-mp")), mp::KeyError);
    EXPECT_THROW(sp::run(child(), sp::Options().group("no-such-group-of-mp")), mp::KeyError);
    if (::geteuid() == 0) {
        const auto r = sp::run(child({"ids"}), sp::Options().capture_output().user(65534).group(65534).extra_groups({"65534"}));
        EXPECT_EQ(r.std_out, "65534 65534 65534\n");
        // by name: Debian's nobody and nogroup are 65534 too
        EXPECT_EQ(sp::run(child({"ids"}), sp::Options().capture_output().user("nobody").group("nogroup").extra_groups({}))
                      .std_out,
                  "65534 65534\n");
    } else {
        EXPECT_THROW(sp::run(child({"ids"}), sp::Options().user(0)), mp::PermissionError);
    }
    // restore_signals: SIGPIPE back at its default unless told otherwise.
    struct sigaction ignore{}, old{};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old);
    const std::string restored = sp::run(child({"sigpipe"}), sp::Options().capture_output()).std_out;
    const std::string kept = sp::run(child({"sigpipe"}), sp::Options().capture_output().restore_signals(false)).std_out;
    ::sigaction(SIGPIPE, &old, nullptr);
    EXPECT_EQ(restored, "default\n");
    EXPECT_EQ(kept, "ignored\n");
    // close_fds(false): an fd without close-on-exec reaches the child; by default it does not.
    const int careless = ::dup(0);
    ASSERT_GE(careless, 3);
    EXPECT_EQ(sp::run(child({"fds"}), sp::Options().capture_output()).std_out, "0 1 2\n");
    // (what else this process inherited without close-on-exec, from whoever started it, goes
    // along too: that is what close_fds(false) means)
    std::string all = " " + sp::run(child({"fds"}), sp::Options().capture_output().close_fds(false)).std_out;
    all.back() = ' ';
    EXPECT_NE(all.find(" " + std::to_string(careless) + " "), std::string::npos) << all;
    ::close(careless);
}
#else
TEST_F(Subprocess, PosixOnlyOptionsAreRefusedOnWindows) {
    EXPECT_THROW(sp::run(child(), sp::Options().umask(022)), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().user("nobody")), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().restore_signals(false)), mp::ValueError);
    EXPECT_THROW(sp::run(child(), sp::Options().close_fds(false)), mp::ValueError);
}
#endif

// std::chrono durations wherever a timeout is taken (a negative one is "no time left", never
// "no limit"), std::filesystem paths wherever a path is.
TEST_F(Subprocess, ChronoDurationsAndFilesystemPaths) {
    using namespace std::chrono_literals;
    TempDir t;
    const fs::path out = t.dir / "out.txt";
    const auto r = sp::run(child({"cwd", "out", "x"}), sp::Options().cwd(t.dir).std_out(sp::File(out)).timeout(30s));
    EXPECT_EQ(r.returncode, 0);
    EXPECT_EQ(fs::equivalent(fs::u8path(slurp(out.u8string()).substr(0, slurp(out.u8string()).find('\n'))), t.dir), true);
    sp::Popen p(child({"readline"}), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE));
    EXPECT_THROW(p.wait(-5s), sp::TimeoutExpired);
    EXPECT_THROW(p.wait(20ms), sp::TimeoutExpired);
    EXPECT_THROW(p.stdout_pipe().readline(10ms), sp::TimeoutExpired);
    EXPECT_EQ(p.stdin_pipe().write("go\n", 30s), 3u);
    EXPECT_EQ(p.communicate(30s).first, "");
    EXPECT_EQ(p.returncode(), 0);
    sp::Popen q(child({"sleep", "60000"}), sp::Options().std_out(sp::PIPE).process_group());
    EXPECT_THROW(q.communicate(20ms), sp::TimeoutExpired);
    q.kill_tree(30s);
    EXPECT_EQ(sp::run(child({"argv0"}), sp::Options().executable(fs::u8path(helper())).capture_output()).returncode, 0);
}

TEST_F(Subprocess, AThousandFailedStartsLeakNothing) {
    mp_test::time_limit(120);
    TempDir t;
    const int n = mp_test::under_wine() ? 100 : 1000;
    auto attempt = [&](int i) {
        switch (i % 4) {
        case 0:
            EXPECT_THROW(sp::run({t.file("missing-program")}, sp::Options().capture_output()), mp::FileNotFoundError);
            break;
        case 1:
            EXPECT_THROW(sp::run(child(), sp::Options().cwd(t.file("missing-dir")).capture_output()), mp::FileNotFoundError);
            break;
        case 2:
            EXPECT_THROW(sp::run({t.dir.u8string()}, sp::Options().capture_output()), mp::OSError);
            break;
        default:
            EXPECT_THROW(sp::run(child(), sp::Options().std_in(sp::File(t.file("missing"))).capture_output()),
                         mp::FileNotFoundError);
        }
    };
    for (int i = 0; i < 8; ++i) attempt(i);
    const std::size_t before = mp_test::count_handles();
    for (int i = 0; i < n; ++i) attempt(i);
    EXPECT_LE(mp_test::count_handles(), before + (mp_test::under_wine() ? 8 : 0));
}

TEST_F(Subprocess, ManyRunsLeakNothing) {
    mp_test::time_limit(120);
    const int cycles = mp_test::under_wine() ? 40 : 300;
    sp::run(child({"out", "warm"}), sp::Options().capture_output());
    const std::size_t before = mp_test::count_handles();
    for (int i = 0; i < cycles; ++i) {
        const auto r = sp::run(child({"out", "x", "err", "y"}), sp::Options().capture_output().std_in(sp::DEVNULL));
        ASSERT_EQ(r.std_out, "x");
        ASSERT_EQ(r.std_err, "y");
    }
    const std::size_t after = mp_test::count_handles();
    EXPECT_LE(after, before + (mp_test::under_wine() ? 8 : 0)) << "before " << before << " after " << after;
}

// ---- Windows: batch files, cmd.exe, job trees (issue 15) ----------------------------------
// A batch file runs through cmd.exe, which parses its command line again by rules of its own
// (CVE-2024-24576, "BatBadBut"): win32/process.cpp quotes every argument for it and refuses the
// ones that cannot be quoted. The hostile arguments below would each run a command, write a
// file or expand a variable if they were passed as a C runtime expects them.

namespace {

#if defined(_WIN32)
// What a child wrote to stdout and stderr (one pipe), and how it ended.
struct SysRun {
    std::error_code ec;
    std::string out;
    int code = -1;
};

SysRun sys_run(mp::sys::SpawnRequest req) {
    SysRun r;
    mp::sys::PipeEnds p;
    r.ec = mp::sys::make_pipe(p);
    if (r.ec) return r;
    req.stdout_handle = p.write.get();
    req.stderr_to_stdout = true;
    mp::sys::Child c;
    r.ec = mp::sys::spawn_process(req, c);
    p.write.reset();
    if (r.ec) return r;
    char buf[4096];
    for (;;) {
        std::size_t got = 0;
        if (mp::sys::read_full(p.read.get(), buf, sizeof buf, got) || got == 0) break;
        r.out.append(buf, got);
    }
    bool exited = false;
    EXPECT_FALSE(mp::sys::wait_process(c, mp::sys::Deadline::after_seconds(30), exited, r.code));
    EXPECT_TRUE(exited);
    return r;
}

std::string hex_of(const std::string& s) { return mp::detail::to_hex(s.data(), s.size()); }
#endif

// A folder of its own for a batch test, removed at the end: the batch files live there and it
// is their cwd, so that a payload's ">marker" would land in it.
struct BatchDir {
    std::string dir = mp_test::temp_path("bat");
    BatchDir() { fs::create_directories(dir); }
    ~BatchDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        const std::string path = (fs::path(dir) / name).string();
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }
    bool marked() const { return fs::exists(fs::path(dir) / "marker"); }
};

#if defined(_WIN32)
// Each would run a command, write ./marker or expand a variable if cmd.exe parsed it bare.
const std::vector<std::string>& hostile_batch_arguments() {
    static const std::vector<std::string> args = {
        "a b", "", "\"", " \"", "\\", "trail\\", "two\\\\", "\\\"", "\"&calc.exe", "&echo INJECTED",
        "\"&echo INJECTED>marker", "&type nul>marker", "abc\"&echo INJECTED", "123\">marker", ">marker",
        "\"&echo hello&type nul>marker", "hello^\"world", "hello &echo oh no >marker", "%PATH%", "%%cd:~,%",
        "%PATH%PATH%", "%hello", "^", "^&echo INJECTED", "|", "a|echo INJECTED", "<>", "<marker", "!TMP!",
        "key=value", "key=\"&type nul>marker\"", "a,b;c", "(x)", ")&echo INJECTED&(", "tab\there",
        "\xc3\xbcn\xc3\xaf", "\\\"&echo INJECTED>marker\\"};
    return args;
}
#endif

}  // namespace

#if defined(_WIN32)
namespace {
// Runs each argument through a batch file that passes %* on to the helper (hexargs), whose C
// runtime splits the line again, under the batch file's name given as `name`: what arrives
// must be what we sent, and nothing else may run. `exact` false: only "nothing ran" is checked.
void round_trip_through_batch(const BatchDir& d, const std::string& name, const std::vector<std::string>& args,
                              bool exact) {
    d.write("fwd.bat", "@\"" + helper() + "\" hexargs %*\r\n");
    d.write("fwd2.cmd", "@\"" + helper() + "\" hexargs %*\r\n");
    for (const std::string& arg : args) {
        mp::sys::SpawnRequest req;
        req.program = (fs::path(d.dir) / name).string();
        req.args = {name, "first", arg, "last"};
        req.cwd = d.dir;
        const SysRun r = sys_run(req);
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.code, 0) << arg;
        EXPECT_FALSE(d.marked()) << "the payload ran: " << arg;
        if (exact) {
            EXPECT_EQ(r.out, hex_of("first") + "\n" + hex_of(arg) + "\n" + hex_of("last") + "\n") << "[" << arg << "]";
        }
        std::error_code ec;
        fs::remove(fs::path(d.dir) / "marker", ec);
    }
}
}  // namespace
#endif

TEST_F(Subprocess, WindowsBatchFileArgumentsRoundTripAndNeverRun) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: POSIX runs no program through cmd.exe";
#else
    BatchDir d;
    std::vector<std::string> args;
    for (const std::string& a : hostile_batch_arguments())
        if (a.find('%') == std::string::npos) args.push_back(a);
    round_trip_through_batch(d, "fwd.bat", args, true);
    // .cmd in any case, and a name with the trailing dots and spaces Windows drops from it,
    // are batch files too, and must get the same quoting.
    round_trip_through_batch(d, "FWD2.CMD", {"\"&type nul>marker", "a b"}, true);
    round_trip_through_batch(d, "fwd.bat. .", {"\"&type nul>marker", "a b"}, true);
#endif
}

TEST_F(Subprocess, WindowsBatchFileArgumentsExpandNoVariable) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: POSIX runs no program through cmd.exe";
#else
    BatchDir d;
    std::vector<std::string> args;
    for (const std::string& a : hostile_batch_arguments())
        if (a.find('%') != std::string::npos) args.push_back(a);
    args.push_back("%cd%&type nul>marker");
    // Under Wine, cmd.exe expands %NAME% again in the text that replaces a batch file's %* (or
    // %1), which Windows does not: nothing runs, but the text arrives changed.
    round_trip_through_batch(d, "fwd.bat", args, !mp_test::under_wine());
    if (mp_test::under_wine())
        GTEST_SKIP() << "Wine's cmd.exe expands %variables% inside a batch file's substituted parameters "
                        "(Windows does not); only \"no payload ran\" was checked for the % arguments";
#endif
}

TEST_F(Subprocess, WindowsBatchFileShowsEachArgumentQuotedAndRefusesLineBreaks) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: POSIX runs no program through cmd.exe";
#else
    BatchDir d;
    // A batch file that uses its arguments in a command line of its own: each stays one
    // quoted word, so its & | < > run nothing.
    const std::string echo = d.write("echo.bat", "@echo off\r\necho [%1] [%2] [%3] [%4]\r\n");
    mp::sys::SpawnRequest req;
    req.program = echo;
    req.args = {"echo.bat", "\"&echo INJECTED", "&type nul>marker", "a|echo INJECTED", "x\"<>\"^"};
    req.cwd = d.dir;
    SysRun r = sys_run(req);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.out, "[\"\"\"&echo INJECTED\"] [\"&type nul>marker\"] [\"a|echo INJECTED\"] [\"x\"\"<>\"\"^\"]\r\n");
    EXPECT_FALSE(d.marked());
    // A line break ends cmd.exe's command line wherever it stands, quoted or not: refused.
    for (const std::string& bad : {std::string("\n"), std::string("\r"), std::string("a\nb"),
                                   std::string("\r\n&type nul>marker"), std::string("\"\n&type nul>marker")}) {
        req.args = {"echo.bat", "fine", bad};
        r = sys_run(req);
        EXPECT_EQ(r.ec, std::errc::invalid_argument) << hex_of(bad);
        EXPECT_FALSE(d.marked());
    }
#endif
}

TEST_F(Subprocess, WindowsBatchFileThroughPopenQuotesOrRaisesValueError) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: POSIX runs no program through cmd.exe";
#else
    BatchDir d;
    const std::string echo = d.write("echo.bat", "@echo off\r\necho [%1] [%2]\r\n");
    const auto r = sp::run({echo, "\"&type nul>marker", "%PATH%|echo INJECTED"}, sp::Options().capture_output().cwd(d.dir));
    EXPECT_EQ(r.returncode, 0);
    EXPECT_EQ(r.std_out.find("INJECTED\r\n"), std::string::npos) << r.std_out;
    EXPECT_EQ(r.std_out.rfind("[\"\"\"&type nul>marker\"] [\"", 0), 0u) << r.std_out;
    EXPECT_FALSE(d.marked());
    // A line break cannot be quoted for cmd.exe: a ValueError, raised before anything runs.
    for (const std::string& bad : {std::string("a\nb"), std::string("\r&type nul>marker")}) {
        try {
            sp::run({echo, "ok", bad}, sp::Options().capture_output().cwd(d.dir));
            ADD_FAILURE() << "no ValueError for " << hex_of(bad);
        } catch (const mp::ValueError& e) {
            EXPECT_NE(std::string(e.what()).find("batch"), std::string::npos) << e.what();
        }
    }
    EXPECT_FALSE(d.marked());
    // The same text through an .exe is only an argument: nothing to refuse.
    EXPECT_EQ(sp::run(child({"echo", "a\nb"}), sp::Options().capture_output()).std_out, "a\nb\n");
#endif
}

TEST_F(Subprocess, WindowsShellRunsTheCommandThroughCmdExe) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only (cmd.exe)";
#else
    EXPECT_EQ(sp::run({"echo hi"}, sp::Options().shell().capture_output()).std_out, "hi\r\n");
    // The command is cmd.exe's to parse: & runs a second command (that is what shell means).
    EXPECT_EQ(sp::run({"echo one& echo two"}, sp::Options().shell().capture_output().text()).std_out, "one\ntwo\n");
    // args[1..] are appended quoted for a C runtime, as list2cmdline quotes them.
    EXPECT_EQ(sp::run({"echo", "a b"}, sp::Options().shell().capture_output()).std_out, "\"a b\"\r\n");
    EXPECT_EQ(sp::run({"exit 7"}, sp::Options().shell()).returncode, 7);
    EXPECT_EQ(sp::getoutput("echo hi"), "hi");
    EXPECT_EQ(sp::getstatusoutput("echo out& exit 3"), std::make_pair(3, std::string("out")));
    // executable() names the shell to run instead of %ComSpec%.
    std::string cmd_exe(MAX_PATH, '\0');
    cmd_exe.resize(GetSystemDirectoryA(cmd_exe.data(), MAX_PATH));
    cmd_exe += "\\cmd.exe";
    EXPECT_EQ(sp::run({"echo via executable"}, sp::Options().shell().executable(cmd_exe).capture_output()).std_out,
              "via executable\r\n");
#endif
}

#if defined(_WIN32)
namespace {
bool process_alive(int pid) { return mp::sys::pid_exists(pid); }
int grandchild_pid(sp::Popen& p) {
    const std::string line = p.stdout_pipe().readline(30);
    EXPECT_EQ(line.rfind("grandchild ", 0), 0u) << line;
    return line.size() > 11 ? std::atoi(line.c_str() + 11) : 0;
}
}  // namespace
#endif

TEST_F(Subprocess, WindowsKillTreeEndsAGrandchildHoldingThePipes) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: the job object half of process_group";
#else
    // The child waits for a line on stdin, its grandchild sleeps a minute holding stdout.
    sp::Popen p(child({"grandchild", "60000", "readline"}), sp::Options().process_group().std_in(sp::PIPE).std_out(sp::PIPE));
    const int gc = grandchild_pid(p);
    ASSERT_GT(gc, 0);
    EXPECT_TRUE(process_alive(gc));
    p.kill_tree(10);
    EXPECT_EQ(p.returncode(), -9);
    // Nobody holds the pipe any more: end of file, not a 60 s wait.
    EXPECT_EQ(p.stdout_pipe().read(-1, 10), "");
    EXPECT_EQ(mp_test::wait_reaped(gc, std::chrono::seconds(10)), 0);
    // terminate_tree reports -SIGTERM.
    sp::Popen q(child({"grandchild", "60000", "readline"}), sp::Options().start_new_session().std_in(sp::PIPE).std_out(sp::PIPE));
    const int gc2 = grandchild_pid(q);
    q.terminate_tree(10);
    EXPECT_EQ(q.returncode(), -15);
    EXPECT_EQ(mp_test::wait_reaped(gc2, std::chrono::seconds(10)), 0);
    // Without a tree there is nothing to end: ValueError.
    sp::Popen r(child({"exit", "0"}));
    EXPECT_THROW(r.kill_tree(), mp::ValueError);
    r.wait(30);
#endif
}

TEST_F(Subprocess, WindowsTreeOutlivesItsChildAndItsPopen) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: the job object half of process_group";
#else
    int gc = 0;
    {
        // The child ends at once; its grandchild lives on in the job.
        sp::Popen p(child({"grandchild", "60000"}), sp::Options().process_group().std_out(sp::PIPE));
        gc = grandchild_pid(p);
        ASSERT_GT(gc, 0);
        EXPECT_EQ(p.wait(30), 0);
        EXPECT_TRUE(process_alive(gc));
        // kill_tree after the child was reaped still reaches the grandchild.
        p.kill_tree(10);
        EXPECT_EQ(p.returncode(), 0) << "the child's own return code stays";
        EXPECT_EQ(mp_test::wait_reaped(gc, std::chrono::seconds(10)), 0);
        EXPECT_EQ(p.stdout_pipe().read(-1, 10), "");
    }
    {
        // Dropping a Popen does not kill a tree nobody asked to kill (no KILL_ON_JOB_CLOSE).
        std::unique_ptr<sp::Popen> p(
            new sp::Popen(child({"grandchild", "60000"}), sp::Options().process_group().std_out(sp::PIPE)));
        gc = grandchild_pid(*p);
        ASSERT_GT(gc, 0);
        p.reset();
        EXPECT_TRUE(process_alive(gc)) << "closing the Popen ended its tree";
        HANDLE h = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, static_cast<DWORD>(gc));
        ASSERT_NE(h, nullptr);
        TerminateProcess(h, 1);
        WaitForSingleObject(h, 10000);
        CloseHandle(h);
    }
#endif
}

TEST_F(Subprocess, WindowsInterruptSendsCtrlBreakToTheChildsGroup) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: CTRL_BREAK_EVENT";
#else
    // No group of its own: CTRL_BREAK would reach us too. ValueError.
    sp::Popen lone(child({"readline"}), sp::Options().std_in(sp::PIPE));
    EXPECT_THROW(lone.interrupt(), mp::ValueError);
    lone.stdin_pipe().close();
    EXPECT_EQ(lone.wait(30), 0);

    sp::Popen p(child({"sleep", "60000"}), sp::Options().process_group());
    try {
        p.interrupt();
    } catch (const mp::OSError& e) {
        p.kill();
        p.wait(30);
        if (mp_test::under_wine())
            GTEST_SKIP() << "Wine 8 does not implement GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) and fails every "
                            "console control event without a console (error 12): " << e.what();
        FAIL() << e.what();
    }
    // The default handler ends the process as Ctrl+Break does: STATUS_CONTROL_C_EXIT.
    EXPECT_EQ(static_cast<unsigned>(p.wait(30)), 0xC000013Au);
#endif
}

TEST_F(Subprocess, WindowsPassFdsAndTheChildsPath) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: the handle list and SearchPathW";
#else
    // pass_fds: the handle reaches the child at its own value, and is ours alone again after.
    mp::sys::PipeEnds secret;
    ASSERT_FALSE(mp::sys::make_pipe(secret));
    ASSERT_FALSE(mp::sys::write_all(secret.write.get(), "secret", 6));
    const auto value = static_cast<std::intptr_t>(mp::sys::handle_to_value(secret.read.get()));
    EXPECT_EQ(sp::run(child({"probe", std::to_string(value)}), sp::Options().capture_output().pass_fds({value})).std_out,
              "leaked\n");
    DWORD flags = 0;
    ASSERT_TRUE(GetHandleInformation(secret.read.get(), &flags));
    EXPECT_EQ(flags & HANDLE_FLAG_INHERIT, 0u) << "the handle stayed inheritable";
    // env(): a bare name is looked up in that environment's PATH, not in ours (nor beside us).
    const std::string dir = fs::path(helper()).parent_path().string();
    const std::map<std::string, std::string> with_dir = {{"Path", dir}};
    EXPECT_EQ(sp::run({"mp_test_subprocess_child", "out", "found"}, sp::Options().env(with_dir).capture_output()).std_out,
              "found");
    BatchDir empty;
    EXPECT_THROW(sp::run({"mp_test_subprocess_child"}, sp::Options().env({{"PATH", empty.dir}})), mp::FileNotFoundError);
    // POSIX-only steps are refused by the platform layer too, never ignored.
    mp::sys::SpawnRequest req;
    req.program = helper();
    req.args = {helper()};
    req.umask = 022;
    mp::sys::Child c;
    EXPECT_EQ(mp::sys::spawn_process(req, c), std::errc::function_not_supported);
    EXPECT_THROW(sp::run(child(), sp::Options().umask(022)), mp::ValueError);
#endif
}

TEST_F(Subprocess, WindowsAppendedFileTakesEveryWriteAtItsEnd) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: FILE_APPEND_DATA";
#else
    BatchDir d;
    const std::string path = (fs::path(d.dir) / "log.txt").string();
    mp::sys::Handle w, a1, a2;
    ASSERT_FALSE(mp::sys::open_file(path, mp::sys::FileMode::write, w));
    ASSERT_FALSE(mp::sys::write_all(w.get(), "0123456789", 10));
    w.reset();
    ASSERT_FALSE(mp::sys::open_file(path, mp::sys::FileMode::append, a1));
    ASSERT_FALSE(mp::sys::open_file(path, mp::sys::FileMode::append, a2));
    ASSERT_FALSE(mp::sys::write_all(a1.get(), "AA", 2));
    ASSERT_FALSE(mp::sys::write_all(a2.get(), "BB", 2));
    ASSERT_FALSE(mp::sys::write_all(a1.get(), "CC", 2));
    DWORD flags = 0;
    ASSERT_TRUE(GetHandleInformation(a1.get(), &flags));
    EXPECT_EQ(flags & HANDLE_FLAG_INHERIT, 0u);
    a1.reset();
    a2.reset();
    std::ifstream in(path, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "0123456789AABBCC");
    in.close();
    mp::sys::Handle r;
    EXPECT_EQ(mp::sys::open_file((fs::path(d.dir) / "missing").string(), mp::sys::FileMode::read, r),
              std::errc::no_such_file_or_directory);
    // Through Popen: stdout and stderr to one appended file keep their order.
    sp::run(child({"out", "1", "err", "2", "out", "3"}),
            sp::Options().std_out(sp::File(path, sp::FileMode::append)).std_err(sp::File(path, sp::FileMode::append)));
    std::ifstream again(path, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(again), {}), "0123456789AABBCC123");
#endif
}

TEST_F(Subprocess, WindowsDaemonChildInATreeIsInBothJobs) {
#if !defined(_WIN32)
    GTEST_SKIP() << "Windows only: job objects";
#else
    // kill_with_parent puts the child in the daemon job first; its tree then nests in that one.
    mp::sys::SpawnRequest req;
    req.program = helper();
    req.args = {helper(), "sleep", "60000"};
    req.kill_with_parent = true;
    req.process_group = true;
    mp::sys::Child c;
    ASSERT_FALSE(mp::sys::spawn_process(req, c));
    ASSERT_TRUE(c.tree.valid());
    // (spawn_process fails when either job refuses it; the daemon job's own test is test_process.)
    BOOL in_tree = FALSE;
    EXPECT_TRUE(IsProcessInJob(c.process.get(), c.tree.get(), &in_tree));
    EXPECT_TRUE(in_tree);
    EXPECT_EQ(mp::sys::signal_process_tree(c, 2), std::errc::invalid_argument) << "only TERM and KILL";
    EXPECT_FALSE(mp::sys::signal_process_tree(c, 9));
    bool exited = false;
    int code = 0;
    ASSERT_FALSE(mp::sys::wait_process(c, mp::sys::Deadline::after_seconds(30), exited, code));
    EXPECT_TRUE(exited);
    EXPECT_EQ(code, -9);
    EXPECT_FALSE(mp::sys::signal_process_tree(c, 15)) << "an empty tree is no error";
    mp::sys::Child none;
    EXPECT_EQ(mp::sys::signal_process_tree(none, 9), std::errc::invalid_argument);
    EXPECT_EQ(mp::sys::interrupt_process(none), std::errc::invalid_argument);
#endif
}
