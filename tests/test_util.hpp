// tests/test_util.hpp - what every test file shares: the start methods to run each test body
// under, a fixture that proves a test left no child process and no descriptor behind, and a
// way to run a helper program and capture its output.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mp/mp.hpp"

namespace mp_test {

// Limits the running test to `seconds`, replacing the default limit set by test_main.cpp.
// A test that overruns is reported by name and the whole binary exits with failure: a hang is
// a failure, never a wait.
void time_limit(int seconds);

bool under_wine();

// Built with AddressSanitizer or ThreadSanitizer. There every fork and exec costs several times
// what it costs natively (ASan's shadow memory is part of every fork), so the tests that repeat
// a cycle many times to catch a rare leak or race run fewer rounds under a sanitizer, as they do
// under Wine: still enough that a leak or a lost wake-up per cycle would show.
constexpr bool under_sanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

// Starts the process make() returns, and returns it started. Wine's own process creation fails
// now and then on a loaded machine with ERROR_INTERNAL_ERROR (1359): a bare CreateProcessW loop
// with no mp code in it does too (WINE-NOTES.md). Under Wine such a start is tried again with a
// new process, at most 5 times over all the calls that share `refusals`; anything else throws.
mp::Process start_retrying_wine_refusals(const std::function<mp::Process()>& make, std::atomic<int>& refusals);

// An input that counts the items read from it: an item is read when its call is encoded, that
// is when its chunk is submitted. n < 0: endless (and without a size).
class CountingRange {
public:
    explicit CountingRange(int n) : n_(n) {}
    struct iterator {
        int i;
        int n;
        int* read;
        int operator*() const {
            ++*read;
            return i;
        }
        iterator& operator++() {
            ++i;
            return *this;
        }
        bool operator==(const iterator& o) const { return n >= 0 && i == o.i; }
        bool operator!=(const iterator& o) const { return !(*this == o); }
    };
    iterator begin() const { return {0, n_, read_.get()}; }
    iterator end() const { return {n_ < 0 ? 0 : n_, n_, read_.get()}; }
    int read() const { return *read_; }

private:
    int n_;
    std::shared_ptr<int> read_ = std::make_shared<int>(0);
};

// Processes of ours that are still children (running or unreaped): 0 after a clean test. The
// forkserver and the resource tracker, which live as long as the test binary, do not count.
int count_children();
// Starts the forkserver (POSIX) if it does not run, by starting and joining one child there.
void warm_up_forkserver();
std::size_t count_handles();

struct Captured {
    int exitcode = -1;
    std::string output;  // stdout and stderr, interleaved
};
// The path of a program built beside the test binary (".exe" added on Windows).
std::string path_beside(const std::string& program);
// Runs a program that lives beside the test binary, with arguments, and waits at most
// timeout_s for it.
Captured run_beside(const std::string& program, const std::vector<std::string>& args, int timeout_s = 60);

// Runs fn with this process's stderr (which children inherit) sent into a pipe, and returns
// what was written there, without the \r that Windows' text-mode stderr adds.
std::string capture_stderr(const std::function<void()>& fn);

std::string temp_path(const std::string& stem);

// Tests pass small facts between processes through files: written whole (write then rename),
// and waited for with a limit.
void write_file(const std::string& path, const std::string& text);
std::string wait_for_file(const std::string& path, std::chrono::seconds limit);

// Waits for a process that is not one of our mp::Process objects to end, and on POSIX reaps
// it (the test binary is a child subreaper, so orphans come back to it). 0 once it is gone.
int wait_reaped(int pid, std::chrono::seconds limit);

// Reaps the orphans re-parented to us (POSIX; the test binary is a child subreaper) until no
// child is left, waiting at most `limit` for the live ones to end (a failure if one does not).
void reap_orphans(std::chrono::seconds limit);

// A gate that tasks in other processes (pool workers, which take their tasks by value and so
// cannot be handed an Event) wait at until the test opens it, and that they can also raise
// themselves to say they have begun: a file that exists once the gate is open, looked at
// every millisecond. It stands for an event between processes, never for "enough time has
// passed".
class Gate {
public:
    Gate();
    ~Gate();
    Gate(const Gate&) = delete;
    Gate& operator=(const Gate&) = delete;
    const std::string& name() const { return name_; }
    void open();                       // lets every waiter through
    bool is_open() const;
    // Waits until some process raised the flag (wait_at_gate's "begun" flag); false after limit.
    bool wait_open(std::chrono::seconds limit) const;

private:
    std::string name_;
};

// Task/target side: waits until the gate named `gate` is open (at most 120 s), then returns v.
int wait_at_gate(std::string gate, int v);
// Raises the gate named `gate` (to say "I have begun"), then sleeps `ms`; returns ms.
int raise_gate_then_sleep(std::string gate, int ms);

// What the fixtures below check: before a test, that no child is left from an earlier one; after
// it, that it left no child and no extra fd/handle behind (counted with the forkserver and the
// tracker already up, since they live as long as the test binary).
class LeftoverCheck {
public:
    void before();  // fails fatally (in the caller's SetUp) if a child is still around
    void after();

private:
    std::size_t handles_before_ = 0;
};

// The fixture for tests that start processes: parameterised by start method, it checks in
// TearDown that no child and no extra fd/handle remain.
class MethodTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override { check_.before(); }
    void TearDown() override { check_.after(); }
    const mp::Context& ctx() const { return mp::get_context(GetParam()); }
    bool is_fork() const { return GetParam() == "fork"; }
    bool is_forkserver() const { return GetParam() == "forkserver"; }

private:
    LeftoverCheck check_;
};

// The same checks for tests that are not run per start method.
class NoLeftoversTest : public ::testing::Test {
protected:
    void SetUp() override { check_.before(); }
    void TearDown() override { check_.after(); }

private:
    LeftoverCheck check_;
};

std::string method_name(const ::testing::TestParamInfo<std::string>& info);

}  // namespace mp_test

#define MP_INSTANTIATE_FOR_EACH_METHOD(Suite)                                                    \
    INSTANTIATE_TEST_SUITE_P(, Suite, ::testing::ValuesIn(mp::get_all_start_methods()), \
                             ::mp_test::method_name)
