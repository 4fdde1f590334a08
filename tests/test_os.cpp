// tests/test_os.cpp - mp::os (identity, state, priority and scheduling of any pid) and the
// ManagedProcesses scope guard, run once for every start method this platform has.
#include "test_profile.hpp"  // MP_POSIX_PORTABLE in the portable POSIX profile
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "sys/forkserver.hpp"
#include "sys/process.hpp"
#include "test_util.hpp"

#if defined(_WIN32)
#include <windows.h>
#else
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>
#endif

using namespace std::chrono_literals;
using mp_test::MethodTest;
using mp_test::wait_for_file;
using mp_test::wait_reaped;
using mp_test::write_file;

// Their own suites of the shared MethodTest fixture (same per-method instantiation and the same
// no-child/no-descriptor checks), so that --gtest_filter='*Os*:*Managed*' selects them.
class OsTest : public MethodTest {};
class ManagedTest : public MethodTest {};
using mp::os::ProcessState;

namespace {

// Far above Linux's largest pid_max (2^22) and not a live Windows pid.
constexpr int kNoSuchPid = 2000000000;

// ---- helpers (copied from test_process.cpp) -------------------------------------------------




// Polls pid's state until it is `want` or `limit` passes; returns the last state seen.
ProcessState wait_state(int pid, ProcessState want, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    ProcessState s = mp::os::process_state(pid);
    while (s != want && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
        s = mp::os::process_state(pid);
    }
    return s;
}

#if defined(MP_POSIX_PORTABLE)
// The portable profile cannot tell running from sleeping: our own live child is "unknown"; a
// forkserver's child is the server's, whose record it cannot read at all.
void expect_portable_live_state(int pid, bool forkserver) {
    if (forkserver) {
        EXPECT_THROW(mp::os::process_state(pid), mp::NotImplementedError);
    } else {
        EXPECT_EQ(mp::os::process_state(pid), ProcessState::unknown);
    }
}
#endif

// ---- targets (registered, so that spawn can run them) ---------------------------------------

void noop() {}
MP_TARGET(noop);

void sleep_for_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
MP_TARGET(sleep_for_ms);

void busy_for_ms(int ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    volatile unsigned long spin = 0;
    while (std::chrono::steady_clock::now() < end) spin = spin + 1;
}
MP_TARGET(busy_for_ms);

// Lowers its own priority (always permitted), reports what it reads back, then waits.
void lower_own_priority_and_wait(std::string file) {
    mp::os::set_priority(0, 10);
    write_file(file, std::to_string(mp::os::get_priority(0)));
    std::this_thread::sleep_for(60s);
}
MP_TARGET(lower_own_priority_and_wait);

// Round trips on itself: 0 if every read-back matched.
int own_priority_round_trips() {
    for (int n : {5, 10, 19}) {
        mp::os::set_priority(0, n);
        const int got = mp::os::get_priority(0);
#if defined(_WIN32)
        const int want = n == 5 ? 10 : n;  // 5 falls in BELOW_NORMAL, read back as 10
#else
        const int want = n;
#endif
        if (got != want) return 10 + n;
    }
    return 0;
}
MP_TARGET(own_priority_round_trips);

// Raises its niceness, then tries to lower it again: 0 if that is a PermissionError.
int lower_niceness_back() {
    mp::os::set_priority(0, 10);
    try {
        mp::os::set_priority(0, 0);
        return 1;
    } catch (const mp::PermissionError&) {
        return 0;
    } catch (...) {
        return 2;
    }
}
MP_TARGET(lower_niceness_back);

// Ignores SIGTERM (POSIX), says so through a file, and sleeps: only SIGKILL ends it there.
void ignore_terminate_and_sleep(std::string file) {
#if !defined(_WIN32)
    std::signal(SIGTERM, SIG_IGN);
#endif
    write_file(file, "ready");
    std::this_thread::sleep_for(600s);
}
MP_TARGET(ignore_terminate_and_sleep);

// The orphan: waits until its parent (the middle process) has ended, then reports what it
// sees as its parent: "<parent_pid_of(self)> <getppid()>". Under forkserver its OS parent is
// the middle's server, not the middle, and that server ends only after the middle: on POSIX the
// orphan also waits (bounded) for the adoption by `adopter` (the test binary, a subreaper) and
// reports whatever its parent is by then.
void report_parent_after_orphaning(std::string file, int adopter) {
    auto parent = mp::parent_process();
    if (parent) parent->join(30.0);
#if !defined(_WIN32)
    for (auto until = std::chrono::steady_clock::now() + 20s;
         mp::getppid() != adopter && std::chrono::steady_clock::now() < until;)
        std::this_thread::sleep_for(1ms);
#else
    (void)adopter;
#endif
    write_file(file, std::to_string(mp::os::parent_pid_of(0)) + " " + std::to_string(mp::getppid()));
}
MP_TARGET(report_parent_after_orphaning);

// The middle process: starts the orphan, reports its pid, and ends at once without joining it
// (std::_Exit skips mp's at-exit join of children, which would otherwise wait for it).
void start_orphan_and_die(std::string method, std::string file, std::string pid_file) {
    mp::Process orphan = mp::get_context(method).Process(report_parent_after_orphaning, file, mp::parent_process()->pid());
    orphan.start();
    write_file(pid_file, std::to_string(*orphan.pid()));
    std::_Exit(0);
}
MP_TARGET(start_orphan_and_die);

}  // namespace

// ---- identity -------------------------------------------------------------------------------

TEST_P(OsTest, IdentityOfAChild) {
    mp_test::time_limit(30);
    mp::Process p = ctx().Process(sleep_for_ms, 60000);
    p.start();
    const int pid = *p.pid();
#if defined(MP_POSIX_PORTABLE)
    // No /proc: another process's record cannot be read (README, "Platforms").
    EXPECT_THROW(mp::os::parent_pid_of(pid), mp::NotImplementedError);
    EXPECT_THROW(mp::os::executable_of(pid), mp::NotImplementedError);
#else
    // A forkserver's child is its server's child (as in CPython).
    EXPECT_EQ(mp::os::parent_pid_of(pid), is_forkserver() ? mp::sys::forkserver_pid() : mp::getpid());
#endif
    EXPECT_EQ(mp::os::parent_pid_of(0), mp::getppid());
    std::string self;
    ASSERT_FALSE(mp::sys::current_executable(self));
    EXPECT_EQ(mp::os::executable_of(0), self);
#if !defined(MP_POSIX_PORTABLE)
    EXPECT_EQ(mp::os::executable_of(pid), self) << "fork and spawn both run this same program";
#endif
    p.terminate();
    p.join();
}

// ---- state ----------------------------------------------------------------------------------

TEST_P(OsTest, StateOfRunningChild) {
    mp_test::time_limit(40);
    mp::Process p = ctx().Process(busy_for_ms, 20000);
    p.start();
#if defined(MP_POSIX_PORTABLE)
    expect_portable_live_state(*p.pid(), is_forkserver());
#else
    EXPECT_EQ(wait_state(*p.pid(), ProcessState::running), ProcessState::running);
#endif
    p.terminate();
    p.join();
}

TEST_P(OsTest, StateOfSleepingChild) {
    mp_test::time_limit(40);
    mp::Process p = ctx().Process(sleep_for_ms, 60000);
    p.start();
#if defined(_WIN32)
    // Windows has no per-process sleeping state: a live process is "running" (mp/os.hpp).
    EXPECT_EQ(mp::os::process_state(*p.pid()), ProcessState::running);
#elif defined(MP_POSIX_PORTABLE)
    expect_portable_live_state(*p.pid(), is_forkserver());
#else
    EXPECT_EQ(wait_state(*p.pid(), ProcessState::sleeping), ProcessState::sleeping);
#endif
    p.terminate();
    p.join();
}

TEST_P(OsTest, StateOfStoppedChild) {
#if defined(_WIN32)
    GTEST_SKIP() << "Windows has no job control (no SIGSTOP) and mp reports no per-process "
                    "stopped/suspended state there: suspension is per thread (see mp/os.hpp)";
#else
    mp_test::time_limit(40);
    mp::Process p = ctx().Process(sleep_for_ms, 60000);
    p.start();
    const int pid = *p.pid();
    ASSERT_EQ(::kill(pid, SIGSTOP), 0);
#if defined(MP_POSIX_PORTABLE)
    // waitid(WSTOPPED | WNOWAIT) tells it of our own child only.
    if (is_forkserver()) {
        EXPECT_THROW(mp::os::process_state(pid), mp::NotImplementedError);
    } else {
        EXPECT_EQ(wait_state(pid, ProcessState::stopped), ProcessState::stopped);
        ASSERT_EQ(::kill(pid, SIGCONT), 0);
        EXPECT_EQ(wait_state(pid, ProcessState::unknown), ProcessState::unknown);
    }
    ::kill(pid, SIGCONT);
#else
    EXPECT_EQ(wait_state(pid, ProcessState::stopped), ProcessState::stopped);
    ASSERT_EQ(::kill(pid, SIGCONT), 0);
    EXPECT_NE(wait_state(pid, ProcessState::sleeping), ProcessState::stopped);
#endif
    p.terminate();
    p.join();
#endif
}

TEST_P(OsTest, StateOfUnjoinedChild) {
    mp_test::time_limit(40);
    mp::Process p = ctx().Process(noop);
    p.start();
    const int pid = *p.pid();
#if !defined(_WIN32)
    if (is_forkserver()) {
        // The server, not we, reaps it, at once: once its sentinel is ready the pid is gone.
        EXPECT_EQ(mp::wait({p}, 30.0), std::vector<std::size_t>{0});
        EXPECT_THROW(mp::os::process_state(pid), mp::ProcessLookupError);
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
        return;
    }
#endif
#if defined(_WIN32)
    // Our process HANDLE keeps the ended process's object (and pid) alive: "dead".
    EXPECT_EQ(wait_state(pid, ProcessState::dead), ProcessState::dead);
#else
    // Ended but not yet reaped by us: a zombie, which has no executable any more.
    EXPECT_EQ(wait_state(pid, ProcessState::zombie), ProcessState::zombie);
#if defined(MP_POSIX_PORTABLE)
    EXPECT_THROW(mp::os::executable_of(pid), mp::NotImplementedError);  // not this process
#else
    EXPECT_EQ(mp::os::executable_of(pid), "");
    EXPECT_EQ(mp::os::parent_pid_of(pid), mp::getpid());
#endif
#endif
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

// ---- priority -------------------------------------------------------------------------------

TEST_P(OsTest, PriorityRoundTripsInChild) {
    mp_test::time_limit(40);
    mp::Process p = ctx().Process(own_priority_round_trips);
    p.start();
    p.join(30.0);
    EXPECT_EQ(p.exitcode(), 0) << "10 + n: the niceness n did not read back";
}

TEST_P(OsTest, PriorityOfChildFromParent) {
    mp_test::time_limit(40);
    const std::string file = mp_test::temp_path("nice");
    mp::Process p = ctx().Process(lower_own_priority_and_wait, file);
    p.start();
    EXPECT_EQ(wait_for_file(file, 30s), "10") << "what the child read back of itself";
    EXPECT_EQ(mp::os::get_priority(*p.pid()), 10);
    mp::os::set_priority(*p.pid(), 19);  // the parent lowers it further: always permitted
    EXPECT_EQ(mp::os::get_priority(*p.pid()), 19);
    p.terminate();
    p.join();
    std::remove(file.c_str());
}

TEST_P(OsTest, LoweringNicenessNeedsPrivilege) {
#if defined(_WIN32)
    GTEST_SKIP() << "Windows lets a process raise its own priority class up to HIGH without "
                    "privilege; there is no such PermissionError to test";
#else
    if (::geteuid() == 0)
        GTEST_SKIP() << "running as root (CAP_SYS_NICE): lowering niceness is permitted here";
    mp_test::time_limit(30);
    mp::Process p = ctx().Process(lower_niceness_back);
    p.start();
    p.join(20.0);
    EXPECT_EQ(p.exitcode(), 0) << "1: lowering niceness succeeded; 2: another exception";
#endif
}

TEST(Os, PriorityErrors) {
    mp_test::time_limit(10);
    EXPECT_THROW(mp::os::set_priority(0, 20), mp::ValueError);
    EXPECT_THROW(mp::os::set_priority(0, -21), mp::ValueError);
    EXPECT_THROW(mp::os::set_priority(kNoSuchPid, 20), mp::ValueError) << "the range is checked first";
    EXPECT_THROW(mp::os::get_priority(kNoSuchPid), mp::ProcessLookupError);
    EXPECT_THROW(mp::os::set_priority(kNoSuchPid, 10), mp::ProcessLookupError);
    EXPECT_THROW(mp::os::get_priority(-5), mp::ValueError);
    EXPECT_NO_THROW(mp::os::get_priority());
}

TEST(Os, NoSuchPidIsProcessLookupError) {
    mp_test::time_limit(10);
    EXPECT_THROW(mp::os::parent_pid_of(kNoSuchPid), mp::ProcessLookupError);
    EXPECT_THROW(mp::os::executable_of(kNoSuchPid), mp::ProcessLookupError);
    EXPECT_THROW(mp::os::process_state(kNoSuchPid), mp::ProcessLookupError);
    EXPECT_THROW(mp::os::get_scheduling(kNoSuchPid), mp::ProcessLookupError);
    try {
        mp::os::process_state(kNoSuchPid);
    } catch (const mp::OSError& e) {
        EXPECT_NE(std::string(e.what()).find("process_state"), std::string::npos) << e.what();
    }
    EXPECT_EQ(mp::os::process_state(0), ProcessState::running);
    EXPECT_STREQ(mp::os::to_string(ProcessState::zombie), "zombie");
    EXPECT_STREQ(mp::os::to_string(mp::os::SchedPolicy::fifo), "fifo");
}

// ---- scheduling policy ----------------------------------------------------------------------

TEST_P(OsTest, SchedulingOfChild) {
    using mp::os::SchedPolicy;
    mp_test::time_limit(30);
    mp::Process p = ctx().Process(sleep_for_ms, 60000);
    p.start();
    const int pid = *p.pid();
    auto s = mp::os::get_scheduling(pid);
    EXPECT_EQ(s.policy, SchedPolicy::other);
    EXPECT_EQ(s.priority, 0);
    EXPECT_NO_THROW(mp::os::set_scheduling(pid, SchedPolicy::other, 0));
    EXPECT_THROW(mp::os::set_scheduling(pid, SchedPolicy::other, 5), mp::ValueError);
#if defined(_WIN32)
    EXPECT_THROW(mp::os::set_scheduling(pid, SchedPolicy::batch, 0), mp::NotImplementedError);
    EXPECT_THROW(mp::os::set_scheduling(pid, SchedPolicy::fifo, 1), mp::NotImplementedError);
#else
#if defined(MP_POSIX_PORTABLE)
    // batch and idle are Linux's own policies.
    EXPECT_THROW(mp::os::set_scheduling(pid, SchedPolicy::batch, 0), mp::NotImplementedError);
    EXPECT_THROW((void)mp::os::scheduling_priority_range(SchedPolicy::idle), mp::NotImplementedError);
#else
    mp::os::set_scheduling(pid, SchedPolicy::batch, 0);  // time-shared: always permitted
    s = mp::os::get_scheduling(pid);
    EXPECT_EQ(s.policy, SchedPolicy::batch);
#endif
    const auto range = mp::os::scheduling_priority_range(SchedPolicy::fifo);
    EXPECT_GE(range.min, 1);
    EXPECT_THROW(mp::os::set_scheduling(pid, SchedPolicy::fifo, range.max + 1), mp::ValueError);
    EXPECT_THROW(mp::os::set_scheduling(pid, SchedPolicy::rr, 0), mp::ValueError);
    try {
        mp::os::set_scheduling(pid, SchedPolicy::fifo, range.min);
        s = mp::os::get_scheduling(pid);
        EXPECT_EQ(s.policy, SchedPolicy::fifo);
        EXPECT_EQ(s.priority, range.min);
    } catch (const mp::PermissionError&) {
        // Without CAP_SYS_NICE (or RLIMIT_RTPRIO) a real-time policy is refused: also correct.
    }
#endif
    EXPECT_THROW(mp::os::set_scheduling(kNoSuchPid, SchedPolicy::other, 0), mp::ProcessLookupError);
    p.terminate();
    p.join();
}

// ---- orphans --------------------------------------------------------------------------------

TEST_P(OsTest, OrphanReportsItsNewParent) {
    mp_test::time_limit(60);
    const std::string file = mp_test::temp_path("orphan");
    const std::string pid_file = mp_test::temp_path("orphanpid");
    mp::Process middle = ctx().Process(start_orphan_and_die, GetParam(), file, pid_file);
    middle.start();
    const int middle_pid = *middle.pid();
    middle.join(30.0);
    ASSERT_EQ(middle.exitcode(), 0);
    const std::string orphan_pid = wait_for_file(pid_file, 10s);
    ASSERT_FALSE(orphan_pid.empty());
    const std::string seen = wait_for_file(file, 30s);
    ASSERT_FALSE(seen.empty()) << "the orphan did not report";
    int reported = 0, getppid_said = 0;
    ASSERT_EQ(std::sscanf(seen.c_str(), "%d %d", &reported, &getppid_said), 2) << seen;
#if defined(_WIN32)
    // No re-parenting: the orphan still names its dead parent.
    EXPECT_EQ(reported, middle_pid);
#else
    // The test binary is a child subreaper (test_main.cpp), so the orphan came to us.
    (void)middle_pid;
    EXPECT_EQ(reported, mp::getpid());
#endif
    EXPECT_EQ(getppid_said, reported);
    EXPECT_EQ(wait_reaped(std::stoi(orphan_pid), 10s), 0);
    std::remove(file.c_str());
    std::remove(pid_file.c_str());
    mp_test::reap_orphans(10s);  // under forkserver: the middle's server and tracker came to us
}

// ---- ManagedProcesses -----------------------------------------------------------------------

TEST_P(ManagedTest, LeavesNoChildBehind) {
    mp_test::time_limit(30);
    const std::string ready = mp_test::temp_path("stubborn");
    mp::Process quick = ctx().Process(sleep_for_ms, 200);  // ends by itself within join_timeout
    mp::ManagedProcesses::Outcome outcome;
    {
        mp::ManagedProcesses guard(1.5, mp::ManagedProcesses::Policy::join_first, 1.0);
        guard.add(quick);
        mp::Process& sleeper = guard.adopt(ctx().Process(sleep_for_ms, 600000));
        mp::Process& stubborn = guard.adopt(ctx().Process(ignore_terminate_and_sleep, ready));
        guard.adopt(ctx().Process(noop));  // never started: skipped
        EXPECT_EQ(guard.size(), 4u);
        sleeper.start();
        stubborn.start();
        ASSERT_EQ(wait_for_file(ready, 20s), "ready");
        quick.start();
        outcome = guard.finish();
        EXPECT_EQ(sleeper.exitcode(), -15);
#if defined(_WIN32)
        EXPECT_EQ(stubborn.exitcode(), -15) << "TerminateProcess cannot be ignored";
#else
        EXPECT_EQ(stubborn.exitcode(), -9) << "SIGTERM was ignored, so it took SIGKILL";
#endif
    }
    EXPECT_EQ(quick.exitcode(), 0);
    EXPECT_EQ(outcome.joined, 1u);
#if defined(_WIN32)
    EXPECT_EQ(outcome.terminated, 2u);
    EXPECT_EQ(outcome.killed, 0u);
#else
    EXPECT_EQ(outcome.terminated, 1u);
    EXPECT_EQ(outcome.killed, 1u);
#endif
    std::remove(ready.c_str());
}

TEST_P(ManagedTest, EndsChildrenWhenAnExceptionLeavesTheScope) {
    mp_test::time_limit(30);
    mp::Process a = ctx().Process(sleep_for_ms, 600000);
    mp::Process b = ctx().Process(sleep_for_ms, 600000);
    try {
        mp::ManagedProcesses guard(0.0, mp::ManagedProcesses::Policy::terminate_first);
        guard.add(a);
        guard.add(b);
        guard.start_all();
        throw std::runtime_error("leaving the scope");
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(a.exitcode(), -15);
    EXPECT_EQ(b.exitcode(), -15);
}

MP_INSTANTIATE_FOR_EACH_METHOD(OsTest);
MP_INSTANTIATE_FOR_EACH_METHOD(ManagedTest);
