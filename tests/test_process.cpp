// tests/test_process.cpp - mp::Process, contexts and the spawn bootstrap, run once for every
// start method this platform has.
#include "test_profile.hpp"  // MP_POSIX_PORTABLE in the portable POSIX profile
#include <algorithm>
#include <atomic>
#include <optional>
#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <map>
#include <memory>
#include <thread>

#include "sys/forkserver.hpp"
#include "sys/handle.hpp"
#include "sys/process.hpp"
#include "test_util.hpp"

#if defined(_WIN32)
#include <windows.h>
#else
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

using namespace std::chrono_literals;
using mp_test::MethodTest;
using mp_test::wait_for_file;
using mp_test::wait_reaped;
using mp_test::write_file;

namespace {

// ---- targets (registered, so that spawn can run them) ---------------------------------------

void noop() {}
MP_TARGET(noop);

int exit_with(int code) { return code; }
MP_TARGET(exit_with);

void throw_runtime_error() { throw std::runtime_error("boom"); }
MP_TARGET(throw_runtime_error);

void system_exit(int code) { throw mp::SystemExit(code); }
MP_TARGET(system_exit);

void sleep_for_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
MP_TARGET(sleep_for_ms);

// Says it is ready, then waits for an event it is never given: only a signal ends it.
void ready_then_wait(mp::Connection c, mp::Event never) {
    c.send(1);
    (void)never.wait(120);  // never set: the wait only bounds the child's life
}
MP_TARGET(ready_then_wait);

// Handles mp::sig::INT (on Windows it comes through mp's signal channel), says it is ready,
// and returns 7 once the handler has run.
int catch_interrupt(mp::Connection c) {
    bool got = false;
    mp::signals::handle(mp::sig::INT, [&got](int) { got = true; });
    c.send(1);
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
         !got && std::chrono::steady_clock::now() < until;)
        mp::signals::dispatch(1.0);
    return got ? 7 : 1;
}
MP_TARGET(catch_interrupt);

struct Record {
    int id = 0;
    std::string label;
    std::vector<double> values;
    MP_FIELDS(id, label, values)
};

int check_arguments(int i, const std::string& s, std::vector<double> v, std::map<std::string, int> m,
                    std::optional<Record> r, bool flag) {
    if (i != -42 || s != "caf\xc3\xa9 \"quoted\"" || v != std::vector<double>{1.5, -2.25} ||
        m != std::map<std::string, int>{{"a", 1}, {"b", 2}} || !r || r->id != 7 || r->label != "rec" ||
        r->values.size() != 3 || !flag)
        return 1;
    return 0;
}
MP_TARGET(check_arguments);

// Checks what the child sees of itself and its parent. expected_ppid: what getppid() says, the
// parent's pid, except in a forkserver's child, whose OS parent is the server (as in CPython).
int check_identity(int parent_pid, int expected_ppid, std::string expected_name, bool expected_daemon) {
    if (mp::current_process().name() != expected_name) return 10;
    if (mp::current_process().daemon() != expected_daemon) return 11;
    if (mp::current_process().pid() != mp::getpid()) return 12;
    auto parent = mp::parent_process();
    if (!parent || parent->pid() != parent_pid || !parent->is_alive()) return 13;
    if (parent->name() != "MainProcess") return 14;
    if (mp::getppid() != expected_ppid) return 15;
    return 0;
}
MP_TARGET(check_identity);

// A daemon tries to have a child of its own.
int daemon_tries_to_start(std::string method) {
    try {
        mp::Process p = mp::get_context(method).Process(noop);
        p.start();
        p.join();
        return 1;
    } catch (const mp::ProcessError&) {
        return 7;
    }
}
MP_TARGET(daemon_tries_to_start);



// A middle process: starts a daemonic child that sleeps "forever", reports its pid through a
// file, and then either returns at once or sleeps until it is killed.
int start_daemon_then(std::string method, std::string pid_file, bool linger) {
    mp::Process d = mp::get_context(method).Process(sleep_for_ms, 600000);
    d.set_daemon(true);
    d.start();
    write_file(pid_file, std::to_string(*d.pid()));
    if (linger) std::this_thread::sleep_for(600s);
    return 0;
}
MP_TARGET(start_daemon_then);

// Starts a daemon from a helper thread that ends at once (Linux's parent-death signal would
// follow that thread), checks that the daemon outlives the thread, then lingers. 3: it did not.
int start_daemon_from_thread(std::string method, std::string pid_file) {
    mp::Process d = mp::get_context(method).Process(sleep_for_ms, 600000);
    d.set_daemon(true);
    std::thread([&] {
        d.start();
        std::this_thread::sleep_for(300ms);  // the daemon is surely set up before this thread ends
    }).join();
    std::this_thread::sleep_for(300ms);
    if (!d.is_alive()) return 3;
    write_file(pid_file, std::to_string(*d.pid()));
    std::this_thread::sleep_for(600s);
    return 0;
}
MP_TARGET(start_daemon_from_thread);

// Whether the numbered descriptor a parent made (and did not pass) can be read in the child:
// the parent wrote "secret" into a pipe, so only a truly inherited descriptor yields it.
int probe_descriptor(std::int64_t value) {
    char buf[6] = {};
#if defined(_WIN32)
    HANDLE h = reinterpret_cast<HANDLE>(static_cast<std::intptr_t>(value));
    DWORD avail = 0, got = 0;
    if (!PeekNamedPipe(h, nullptr, 0, nullptr, &avail, nullptr) || avail < 6) return 0;
    if (!ReadFile(h, buf, 6, &got, nullptr) || got != 6) return 0;
#else
    const int fd = static_cast<int>(value);
    pollfd p{fd, POLLIN, 0};
    if (::fcntl(fd, F_GETFD) < 0 || ::poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) return 0;
    if (::read(fd, buf, 6) != 6) return 0;
#endif
    return std::string(buf, 6) == "secret" ? 1 : 0;
}
MP_TARGET(probe_descriptor);

// A pipe's read end that can be a Process argument: the smallest object of the kind that
// mp's Connection, Lock or SharedMemory are, shared by copies (fork) or re-created from an
// inherited handle (spawn).
class PipeReader {
public:
    PipeReader() = default;
    explicit PipeReader(mp::sys::Handle h) : h_(std::make_shared<mp::sys::Handle>(std::move(h))) {}
    std::string read(std::size_t n) const {
        std::string s(n, '\0');
        std::size_t got = 0;
        if (!h_ || mp::sys::read_full(h_->get(), s.data(), n, got)) return "";
        s.resize(got);
        return s;
    }
    void mp_encode(mp::Encoder& e) const { e.write_handle(mp::sys::handle_to_value(h_->get())); }
    void mp_decode(mp::Decoder& d) {
        h_ = std::make_shared<mp::sys::Handle>(mp::sys::handle_from_value(d.read_handle()));
    }

private:
    std::shared_ptr<mp::sys::Handle> h_;
};

int read_from(PipeReader r, std::string expected) { return r.read(expected.size()) == expected ? 0 : 1; }
MP_TARGET(read_from);

// The same object twice: each decoded copy must own its own handle (no double close).
int read_from_both(std::vector<PipeReader> readers) {
    if (readers.size() != 2) return 2;
    return readers[0].read(3) == "abc" && readers[1].read(3) == "def" ? 0 : 1;
}
MP_TARGET(read_from_both);

class Worker : public mp::Process {
public:
    Worker() = default;
    Worker(const mp::Context& ctx, int n, std::string label) : mp::Process(ctx), n_(n), label_(std::move(label)) {}
    void run() override {
        if (label_ != "w" || mp::current_process().name() != name()) throw mp::SystemExit(99);
        throw mp::SystemExit(n_);
    }
    MP_FIELDS(n_, label_)

private:
    int n_ = 0;
    std::string label_;
};
MP_REGISTER_PROCESS(Worker);

class UnregisteredWorker : public mp::Process {
public:
    using mp::Process::Process;
    void run() override {}
};

void unregistered_function() {}


}  // namespace

// ---- lifecycle and exit codes ----------------------------------------------------------------

TEST_P(MethodTest, ExitCodes) {
    struct Case {
        mp::Process p;
        int expected;
    };
    std::vector<Case> cases;
    cases.push_back({ctx().Process(noop), 0});
    cases.push_back({ctx().Process(exit_with, 0), 0});
    cases.push_back({ctx().Process(exit_with, 3), 3});
    cases.push_back({ctx().Process(exit_with, 255), 255});
    cases.push_back({ctx().Process(throw_runtime_error), 1});
    cases.push_back({ctx().Process(system_exit, 5), 5});
    for (auto& c : cases) {
        EXPECT_FALSE(c.p.pid());
        EXPECT_FALSE(c.p.exitcode());
        c.p.start();
        EXPECT_TRUE(c.p.pid());
    }
    for (auto& c : cases) {
        c.p.join();
        EXPECT_FALSE(c.p.is_alive());
        ASSERT_TRUE(c.p.exitcode());
        EXPECT_EQ(*c.p.exitcode(), c.expected) << c.p.name();
    }
}

TEST_P(MethodTest, UncaughtExceptionIsReportedOnStderr) {
    mp::Process p = ctx().Process(throw_runtime_error);
    p.set_name("thrower");
    const std::string err = mp_test::capture_stderr([&] {
        p.start();
        p.join();
    });
    EXPECT_EQ(p.exitcode(), 1);
    EXPECT_NE(err.find("Process thrower:\nstd::runtime_error: boom"), std::string::npos) << err;
}

TEST_P(MethodTest, TerminateAndKill) {
    mp::Process t = ctx().Process(sleep_for_ms, 60000);
    mp::Process k = ctx().Process(sleep_for_ms, 60000);
    t.start();
    k.start();
    EXPECT_TRUE(t.is_alive());
    EXPECT_FALSE(t.exitcode());
    t.terminate();
    k.kill();
    t.join();
    k.join();
    EXPECT_EQ(t.exitcode(), -15);
    EXPECT_EQ(k.exitcode(), -9);
    t.terminate();  // after the end: nothing happens, nothing is signalled
}

// interrupt() is SIGINT (CPython 3.14): its default action ends the child with -2 (also a
// forkserver's child, though the server itself ignores SIGINT), and a child that handles it
// lives on and runs its handler.
TEST_P(MethodTest, InterruptIsSigint) {
    mp_test::time_limit(120);
    {
        auto [r, w] = mp::Pipe(false);
        mp::Event never;
        mp::Process p = ctx().Process(ready_then_wait, w, never);
        p.start();
        ASSERT_TRUE(r.poll(60.0));
        EXPECT_EQ(r.recv<int>(), 1);
        p.interrupt();
        p.join(60);
        EXPECT_EQ(p.exitcode(), -2);
        p.interrupt();  // after the end: nothing happens
    }
    {
        auto [r, w] = mp::Pipe(false);
        mp::Process p = ctx().Process(catch_interrupt, w);
        p.start();
        ASSERT_TRUE(r.poll(60.0));
        EXPECT_EQ(r.recv<int>(), 1);
        p.interrupt();
        p.join(60);
        EXPECT_EQ(p.exitcode(), 7) << "1: the handler never ran";
    }
}

TEST_P(MethodTest, JoinTimeout) {
    mp::Process p = ctx().Process(sleep_for_ms, 60000);
    p.start();
    const auto t0 = std::chrono::steady_clock::now();
    p.join(0.2);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 190ms);  // never early
    EXPECT_TRUE(p.is_alive());
    p.join(0ms);  // a poll
    EXPECT_TRUE(p.is_alive());
    p.join(-5ms);  // a negative duration polls too (mp/duration.hpp)
    EXPECT_TRUE(p.is_alive());
    EXPECT_THROW(p.join(-1.0), mp::ValueError);  // negative seconds: most likely an old "-1 for ever"
    EXPECT_TRUE(p.is_alive());
    p.terminate();
    p.join(30.0);
    EXPECT_FALSE(p.is_alive());
    EXPECT_EQ(p.exitcode(), -15);
}

TEST_P(MethodTest, HundredStartedAndTerminatedAtOnce) {
    mp_test::time_limit(120);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 100; ++i) ps.push_back(ctx().Process(sleep_for_ms, 60000));
    for (auto& p : ps) p.start();
    EXPECT_EQ(mp::active_children().size(), 100u);
    for (auto& p : ps) p.terminate();
    for (auto& p : ps) {
        p.join();
        EXPECT_EQ(p.exitcode(), -15);
    }
    EXPECT_TRUE(mp::active_children().empty());
}

// Threads are users too: each of 16 threads starts and joins its own children, while the
// others do the same (start() reaps finished children of every thread, as Python's does).
// Every join gets its own child's exit code; none sees ECHILD or a closed handle.
TEST_P(MethodTest, SixteenThreadsStartAndJoinAtOnce) {
    mp_test::time_limit(240);
    const int rounds = mp_test::under_wine() ? 6 : 25;
    std::atomic<int> failures{0};
    std::atomic<int> wine_refusals{0};  // starts Wine refused, tried again (test_util.hpp)
    std::vector<std::string> errors(16);
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t) {
        threads.emplace_back([&, t] {
            try {
                for (int i = 0; i < rounds; ++i) {
                    mp::Process p = mp_test::start_retrying_wine_refusals(
                        [&] { return ctx().Process(exit_with, 1 + (t * 7 + i) % 100); }, wine_refusals);
                    p.join(60);
                    if (p.exitcode() != 1 + (t * 7 + i) % 100) {
                        ++failures;
                        errors[static_cast<std::size_t>(t)] = "round " + std::to_string(i) + ": exit code " +
                                                              std::to_string(p.exitcode().value_or(-999));
                        return;
                    }
                }
            } catch (const std::exception& e) {
                ++failures;
                errors[static_cast<std::size_t>(t)] = e.what();
            }
        });
    }
    for (auto& th : threads) th.join();
    for (std::size_t t = 0; t < errors.size(); ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
    EXPECT_EQ(failures.load(), 0);
    EXPECT_TRUE(mp::active_children().empty());
}

// One Process shared by threads: two join it at once while a third polls and one terminates;
// all see the same exit code.
TEST_P(MethodTest, OneProcessSharedByThreads) {
    mp_test::time_limit(120);
    mp::Process p = ctx().Process(sleep_for_ms, 60000);
    p.start();
    std::vector<std::optional<int>> seen(3);
    std::thread a([&] {
        p.join();
        seen[0] = p.exitcode();
    });
    std::thread b([&] {
        p.join(120);
        seen[1] = p.exitcode();
    });
    std::thread c([&] {
        while (p.is_alive()) std::this_thread::sleep_for(1ms);
        seen[2] = p.exitcode();
    });
    p.terminate();
    a.join();
    b.join();
    c.join();
    for (const auto& s : seen) EXPECT_EQ(s, -15);
}

TEST_P(MethodTest, ArgumentsOfManyTypes) {
    Record r{7, "rec", {1.0, 2.0, 3.0}};
    mp::Process p = ctx().Process(check_arguments, -42, "caf\xc3\xa9 \"quoted\"", std::vector<double>{1.5, -2.25},
                                  std::map<std::string, int>{{"a", 1}, {"b", 2}}, std::optional<Record>(r), true);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(MethodTest, IdentityOfChildAndParent) {
    mp::Process p = ctx().Process(check_identity, mp::getpid(), is_forkserver() ? mp::sys::forkserver_pid() : mp::getpid(),
                                  std::string("worker-x"), false);
    p.set_name("worker-x");
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(mp::current_process().name(), "MainProcess");
    EXPECT_FALSE(mp::parent_process());
    EXPECT_TRUE(mp::current_process().is_alive());
}

// Python's Process(name=..., daemon=...): the options come before the target.
int report_own_name(mp::Connection c) {
    c.send(mp::current_process().name());
    c.send(mp::current_process().daemon());
    return 0;
}
MP_TARGET(report_own_name);

TEST_P(MethodTest, NameAndDaemonInTheConstructor) {
    auto [r, w] = mp::Pipe(false);
    mp::Process p = ctx().Process(mp::ProcessOptions().name("worker-7").daemon(), report_own_name, w);
    EXPECT_EQ(p.name(), "worker-7");
    EXPECT_TRUE(p.daemon());
    p.start();
    w.close();
    EXPECT_EQ(r.recv<std::string>(), "worker-7");
    EXPECT_TRUE(r.recv<bool>());
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    mp::Process q(mp::ProcessOptions().name("plain"), exit_with, 3);
    EXPECT_EQ(q.name(), "plain");
    EXPECT_FALSE(q.daemon());
}

TEST_P(MethodTest, DefaultNamesCount) {
    mp::Process a = ctx().Process(noop);
    mp::Process b = ctx().Process(noop);
    ASSERT_EQ(a.name().rfind("Process-", 0), 0u);
    EXPECT_EQ(std::stoi(b.name().substr(8)), std::stoi(a.name().substr(8)) + 1);
}

TEST_P(MethodTest, SubclassOverridingRun) {
    Worker w(ctx(), 42, "w");
    w.start();
    w.join();
    EXPECT_EQ(w.exitcode(), 42);
}

TEST_P(MethodTest, ActiveChildrenReapsFinished) {
    mp::Process quick = ctx().Process(noop);
    mp::Process slow = ctx().Process(sleep_for_ms, 60000);
    quick.start();
    slow.start();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (mp::active_children().size() > 1 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    auto alive = mp::active_children();
    ASSERT_EQ(alive.size(), 1u);
    EXPECT_EQ(alive[0], &slow);
    EXPECT_EQ(quick.exitcode(), 0);  // reaped by active_children()
    slow.kill();
    slow.join();
}

// ---- misuse ---------------------------------------------------------------------------------

TEST_P(MethodTest, MisuseRaisesAsPythonDoes) {
    mp::Process p = ctx().Process(noop);
    EXPECT_THROW(p.join(), mp::ProcessError);  // can only join a started process
    EXPECT_THROW(p.terminate(), mp::ProcessError);
    EXPECT_FALSE(p.is_alive());
    p.start();
    EXPECT_THROW(p.start(), mp::ProcessError);  // cannot start a process twice
    EXPECT_THROW(p.set_daemon(true), mp::ProcessError);  // process has already started
    p.join();
    EXPECT_THROW(p.start(), mp::ProcessError);
    EXPECT_THROW(mp::current_process().start(), mp::ProcessError);
    EXPECT_THROW(mp::current_process().join(), mp::ProcessError);
}

TEST_P(MethodTest, CloseRules) {
    mp::Process p = ctx().Process(sleep_for_ms, 60000);
    p.start();
    EXPECT_THROW(p.close(), mp::ValueError);  // still running
    p.kill();
    p.join();
    p.close();
    p.close();  // closing twice is harmless
    EXPECT_THROW(p.pid(), mp::ValueError);
    EXPECT_THROW(p.exitcode(), mp::ValueError);
    EXPECT_THROW(p.is_alive(), mp::ValueError);
    EXPECT_THROW(p.join(), mp::ValueError);
    EXPECT_THROW(p.start(), mp::ValueError);
    EXPECT_THROW(p.terminate(), mp::ValueError);
    EXPECT_THROW(p.kill(), mp::ValueError);
    EXPECT_EQ(p.name().rfind("Process-", 0), 0u);  // the name stays readable

    mp::Process never = ctx().Process(noop);
    never.close();  // an unstarted process can be closed
    EXPECT_THROW(never.start(), mp::ValueError);
}

// ---- daemons --------------------------------------------------------------------------------

TEST_P(MethodTest, DaemonCannotHaveChildren) {
    mp::Process p = ctx().Process(daemon_tries_to_start, GetParam());
    p.set_daemon(true);
    EXPECT_TRUE(p.daemon());
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 7);
}

TEST_P(MethodTest, DaemonEndsWhenParentReturns) {
    const std::string pid_file = mp_test::temp_path("daemon");
    mp::Process middle = ctx().Process(start_daemon_then, GetParam(), pid_file, false);
    middle.start();
    middle.join(60.0);
    ASSERT_EQ(middle.exitcode(), 0);
    const std::string pid = wait_for_file(pid_file, 10s);
    ASSERT_FALSE(pid.empty());
    EXPECT_EQ(wait_reaped(std::stoi(pid), 10s), 0) << "the daemon outlived its parent";
    std::remove(pid_file.c_str());
    // Under forkserver the middle had a server and a tracker of its own, which end after it and
    // are re-parented to us (a child subreaper).
    mp_test::reap_orphans(10s);
}

TEST_P(MethodTest, DaemonStartedFromAThreadOutlivesTheThreadNotTheParent) {
    const std::string pid_file = mp_test::temp_path("daemon");
    mp::Process middle = ctx().Process(start_daemon_from_thread, GetParam(), pid_file);
    middle.start();
    const std::string pid = wait_for_file(pid_file, 30s);
    ASSERT_FALSE(pid.empty()) << "exit code " << middle.exitcode().value_or(-100) << " (3: the daemon died with its thread)";
    middle.kill();
    middle.join();
    EXPECT_EQ(wait_reaped(std::stoi(pid), 10s), 0) << "the daemon outlived its killed parent";
    std::remove(pid_file.c_str());
    mp_test::reap_orphans(10s);  // the killed middle's server and tracker, under forkserver
}

TEST_P(MethodTest, DaemonDiesWhenParentIsKilled) {
    const std::string pid_file = mp_test::temp_path("daemon");
    mp::Process middle = ctx().Process(start_daemon_then, GetParam(), pid_file, true);
    middle.start();
    const std::string pid = wait_for_file(pid_file, 30s);
    ASSERT_FALSE(pid.empty());
    middle.kill();  // SIGKILL / TerminateProcess: the middle process runs no cleanup at all
    middle.join();
    EXPECT_EQ(middle.exitcode(), -9);
    EXPECT_EQ(wait_reaped(std::stoi(pid), 10s), 0) << "the daemon outlived its killed parent";
    std::remove(pid_file.c_str());
    mp_test::reap_orphans(10s);  // the killed middle's server and tracker, under forkserver
}

// ---- spawn's rules --------------------------------------------------------------------------

TEST_P(MethodTest, UnregisteredTargetsNameTheFix) {
    int captured = 9;
    mp::Process lambda = ctx().Process([captured] { return captured; });
    mp::Process plain = ctx().Process(unregistered_function);
    if (is_fork()) {
        // Under fork any callable works: the child is a copy of this process.
        lambda.start();
        plain.start();
        lambda.join();
        plain.join();
        EXPECT_EQ(lambda.exitcode(), 9);
        EXPECT_EQ(plain.exitcode(), 0);
        return;
    }
    try {
        lambda.start();
        FAIL() << "a capturing lambda started under spawn";
    } catch (const mp::ValueError& e) {
        EXPECT_NE(std::string(e.what()).find("lambda"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("MP_TARGET"), std::string::npos) << e.what();
    }
    try {
        plain.start();
        FAIL() << "an unregistered function started under spawn";
    } catch (const mp::ValueError& e) {
        EXPECT_NE(std::string(e.what()).find("MP_TARGET"), std::string::npos) << e.what();
    }
    UnregisteredWorker w(ctx());
    try {
        w.start();
        FAIL() << "an unregistered subclass started under spawn";
    } catch (const mp::ValueError& e) {
        EXPECT_NE(std::string(e.what()).find("MP_REGISTER_PROCESS"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(lambda.pid());  // nothing was started
}

TEST_P(MethodTest, ChildGetsOnlyWhatItIsGiven) {
    // A descriptor made without close-on-exec (as careless code might make one), holding data.
#if defined(_WIN32)
    SECURITY_ATTRIBUTES sa{sizeof sa, nullptr, TRUE};
    HANDLE r = nullptr, w = nullptr;
    ASSERT_TRUE(CreatePipe(&r, &w, &sa, 0));
    DWORD put = 0;
    ASSERT_TRUE(WriteFile(w, "secret", 6, &put, nullptr));
    const auto value = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(r));
#else
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    ASSERT_EQ(::write(fds[1], "secret", 6), 6);
    const std::int64_t value = fds[0];
#endif
    mp::Process p = ctx().Process(probe_descriptor, value);
    p.start();
    p.join();
    // fork copies the whole descriptor table (that is what fork is); spawn passes nothing but
    // what mp itself hands over.
    EXPECT_EQ(p.exitcode(), is_fork() ? 1 : 0);
#if defined(_WIN32)
    CloseHandle(r);
    CloseHandle(w);
#else
    ::close(fds[0]);
    ::close(fds[1]);
#endif
}

TEST_P(MethodTest, ArgumentsCarryHandles) {
    mp::sys::PipeEnds pipe;
    ASSERT_FALSE(mp::sys::make_pipe(pipe));
    ASSERT_FALSE(mp::sys::write_all(pipe.write.get(), "helloabcdef", 11));
    PipeReader reader(std::move(pipe.read));
    {
        mp::Process p = ctx().Process(read_from, reader, std::string("hello"));
        p.start();
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    {
        mp::Process p = ctx().Process(read_from_both, std::vector<PipeReader>{reader, reader});
        p.start();
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    // Outside a Process there is no road for a handle: a clear error, not a dangling number.
    EXPECT_THROW(mp::encode(reader), mp::TypeError);
}

TEST_P(MethodTest, NoZombieNoLeakAfterManyCycles) {
    // Under Wine each spawn costs 10-35 ms (every call goes through wineserver), and under ASan
    // a fork or a spawn costs several times a native one: there 200 cycles, enough for a leak of
    // one handle in ten cycles to pass the count's allowance below.
    const int cycles = mp_test::under_wine() || mp_test::under_sanitizer() ? 200 : 1000;
    mp_test::time_limit(240);
    // Warm up once, so that lazily created state (the executable path) is not counted.
    {
        mp::Process p = ctx().Process(noop);
        p.start();
        p.join();
    }
    const std::size_t before = mp_test::count_handles();
    // A start Wine refuses is tried again (test_util.hpp); a handle or job-object leak of the
    // refused one would still show in the count below.
    std::atomic<int> wine_refusals{0};
    for (int i = 0; i < cycles; ++i) {
        mp::Process p = mp_test::start_retrying_wine_refusals([&] { return ctx().Process(noop); }, wine_refusals);
        p.join();
        ASSERT_EQ(p.exitcode(), 0);
    }
    if (wine_refusals) std::printf("Wine refused %d process creations with error 1359 (retried)\n", wine_refusals.load());
    EXPECT_EQ(mp_test::count_children(), 0);
    const std::size_t after = mp_test::count_handles();
    // Under Wine a handful of handles come and go inside Wine itself; growth would be ~cycles.
    EXPECT_LE(after, before + (mp_test::under_wine() ? 8 : 0)) << "before " << before << " after " << after;
}

MP_INSTANTIATE_FOR_EACH_METHOD(MethodTest);

#if !defined(_WIN32)
TEST(Fork, WarnsOnceInAMultithreadedParent) {
#if defined(MP_POSIX_PORTABLE)
    GTEST_SKIP() << "the portable POSIX profile cannot count a process's threads (no /proc, and POSIX has "
                    "no call for it), so it cannot warn (README, \"Platforms\")";
#endif
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    std::thread other([&] {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop; });
    });
    const std::string err = mp_test::capture_stderr([] {
        for (int i = 0; i < 2; ++i) {
            mp::Process p = mp::get_context("fork").Process(noop);
            p.start();
            p.join();
        }
    });
    {
        std::lock_guard<std::mutex> lock(mu);
        stop = true;
    }
    cv.notify_all();
    other.join();
    const auto first = err.find("has 2 threads, and the fork start method copies only the calling one");
    EXPECT_NE(first, std::string::npos) << err;
    EXPECT_EQ(err.find("threads", first + 30), std::string::npos) << "warned twice: " << err;
}
#endif

// ---- tests that do not depend on the start method ------------------------------------------

TEST(Context, StartMethods) {
    const auto all = mp::get_all_start_methods();
#if defined(_WIN32)
    EXPECT_EQ(all, std::vector<std::string>{"spawn"});
    EXPECT_THROW(mp::get_context("fork"), mp::ValueError);
    EXPECT_THROW(mp::get_context("forkserver"), mp::ValueError);  // as CPython raises
    EXPECT_THROW(mp::set_start_method("forkserver", true), mp::ValueError);
#else
    EXPECT_EQ(all, (std::vector<std::string>{"fork", "spawn", "forkserver"}));
    EXPECT_EQ(mp::get_context("forkserver").get_start_method(), "forkserver");
    EXPECT_EQ(mp::get_context("fork").get_start_method(), "fork");
#endif
    EXPECT_EQ(mp::get_context("spawn").get_start_method(), "spawn");
    EXPECT_THROW(mp::get_context("threads"), mp::ValueError);
    EXPECT_THROW(mp::set_start_method("threads", true), mp::ValueError);
    EXPECT_EQ(mp::get_start_method(), all.front());  // the platform default
    EXPECT_THROW(mp::set_start_method("spawn"), mp::RuntimeError);  // already set
    mp::set_start_method("spawn", true);
    EXPECT_EQ(mp::get_start_method(), "spawn");
    EXPECT_EQ(mp::Process(noop).start_method(), "spawn");
    mp::set_start_method(all.front(), true);
    EXPECT_GE(mp::cpu_count(), 1);
    EXPECT_GT(mp::getpid(), 0);
}

TEST(Spawn, ChildWithoutBootstrapStopsAtFirstUse) {
    auto r = mp_test::run_beside("mp_test_no_bootstrap", {"use"});
    EXPECT_EQ(r.exitcode, 0) << r.output;
    // main ran twice (parent, then the child re-running main, as in Python) and no more.
    std::size_t runs = 0;
    for (std::size_t at = 0; (at = r.output.find("main ran", at)) != std::string::npos; ++at) ++runs;
    EXPECT_EQ(runs, 2u) << r.output;
    EXPECT_NE(r.output.find("but main() used mp before calling mp::bootstrap(argc, argv)"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("child exitcode 1"), std::string::npos) << r.output;
}

TEST(Spawn, ChildWithoutBootstrapStopsWhenMainReturns) {
    auto r = mp_test::run_beside("mp_test_no_bootstrap", {"return"});
    EXPECT_EQ(r.exitcode, 0) << r.output;
    EXPECT_NE(r.output.find("but main() returned before calling mp::bootstrap(argc, argv)"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("child exitcode 1"), std::string::npos) << r.output;
}

TEST(Process, MovedFromObjectSaysSo) {
    mp::Process a(noop);
    mp::Process b(std::move(a));
    EXPECT_THROW(a.start(), mp::ValueError);  // NOLINT(bugprone-use-after-move): on purpose
    EXPECT_FALSE(b.pid());
}
