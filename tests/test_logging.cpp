// tests/test_logging.cpp - mp/logging.hpp: the library's messages reach the sink with their
// levels, the level filters them, log_to_stderr and an empty sink write to stderr, children
// take the parent's level, and the sink can be replaced while other threads log.
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "logging_internal.hpp"
#include "sys/handle.hpp"
#include "test_util.hpp"

#if defined(_WIN32)
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace {

struct Record {
    mp::LogLevel level;
    std::string text;
};

// What a sink received, from any thread.
class Collected {
public:
    mp::LogSink sink() {
        return [this](mp::LogLevel level, std::string_view text) {
            std::lock_guard<std::mutex> lk(mu_);
            records_.push_back({level, std::string(text)});
        };
    }
    std::vector<Record> records() const {
        std::lock_guard<std::mutex> lk(mu_);
        return records_;
    }

private:
    mutable std::mutex mu_;
    std::vector<Record> records_;
};

std::string without_cr(std::string s) {
    s.erase(std::remove(s.begin(), s.end(), '\r'), s.end());  // Windows' text-mode stderr writes \r\n
    return s;
}

int logging_twice(int x) { return 2 * x; }
MP_TARGET(logging_twice);

// A real message of the library: a Pool callback that throws is reported, at ERROR. A callback
// given after the result came runs at once, in this thread, so the report is made when this
// returns.
void pool_callback_throws() {
    mp::Pool pool(1);
    auto r = pool.apply_async(logging_twice, 21);
    ASSERT_TRUE(r.wait(60.0));
    r.then([](int) { throw std::runtime_error("boom in a callback"); });
    pool.close();
    pool.join();
}
const char* const kCallbackReport = "mp::Pool: a callback threw std::runtime_error: boom in a callback";

// Puts the level and the default sink back, whatever the test did.
class Logging : public ::testing::Test {
protected:
    void SetUp() override { saved_ = mp::get_log_level(); }
    void TearDown() override {
        mp::set_log_sink({});
        mp::set_log_level(saved_);
    }

private:
    mp::LogLevel saved_ = mp::LogLevel::warning;
};

TEST_F(Logging, DefaultIsWarningToStderr) {
    EXPECT_EQ(mp::get_log_level(), mp::LogLevel::warning);
    testing::internal::CaptureStderr();
    mp::detail::log(mp::detail::kLogWarning, "mp test: a warning %d", 1);
    mp::detail::log(mp::detail::kLogInfo, "mp test: information");
    EXPECT_EQ(without_cr(testing::internal::GetCapturedStderr()), "mp test: a warning 1\n");
}

TEST_F(Logging, SinkGetsTheLibrarysMessagesWithTheirLevels) {
    mp_test::time_limit(120);
    Collected got;
    mp::set_log_sink(got.sink());
    testing::internal::CaptureStderr();
    pool_callback_throws();
    const std::string err = testing::internal::GetCapturedStderr();
    const auto records = got.records();
    ASSERT_EQ(records.size(), 1u) << err;
    EXPECT_EQ(records[0].level, mp::LogLevel::error);
    EXPECT_EQ(records[0].text, kCallbackReport);  // no trailing newline
    EXPECT_EQ(err.find("callback threw"), std::string::npos) << "the sink replaces stderr: " << err;
}

TEST_F(Logging, LevelFilters) {
    mp_test::time_limit(120);
    Collected got;
    mp::set_log_sink(got.sink());
    mp::set_log_level(mp::LogLevel::critical);
    EXPECT_FALSE(mp::detail::log_enabled(mp::detail::kLogError));
    pool_callback_throws();
    EXPECT_TRUE(got.records().empty()) << got.records()[0].text;

    mp::set_log_level(mp::LogLevel::warning);
    EXPECT_EQ(mp::get_log_level(), mp::LogLevel::warning);
    mp::detail::log(mp::detail::kLogSubWarning, "below");
    mp::detail::log(mp::detail::kLogWarning, "at %s", "the level");
    mp::detail::log(35, "a level of its own");
    mp::detail::log(mp::detail::kLogDebug, "far below");
    mp::detail::log(mp::detail::kLogCritical, "critical\n");  // a trailing newline is dropped
    const auto records = got.records();
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[0].level, mp::LogLevel::warning);
    EXPECT_EQ(records[0].text, "at the level");
    EXPECT_EQ(static_cast<int>(records[1].level), 35);
    EXPECT_EQ(records[2].level, mp::LogLevel::critical);
    EXPECT_EQ(records[2].text, "critical");

    mp::set_log_level(mp::LogLevel::subdebug);
    mp::detail::log(mp::detail::kLogSubdebug, "everything now");
    EXPECT_EQ(got.records().size(), 4u);
}

TEST_F(Logging, LevelNamesArePythons) {
    EXPECT_EQ(mp::log_level_name(mp::LogLevel::subdebug), "SUBDEBUG");
    EXPECT_EQ(mp::log_level_name(mp::LogLevel::debug), "DEBUG");
    EXPECT_EQ(mp::log_level_name(mp::LogLevel::info), "INFO");
    EXPECT_EQ(mp::log_level_name(mp::LogLevel::sub_warning), "SUBWARNING");
    EXPECT_EQ(mp::log_level_name(mp::LogLevel::warning), "WARNING");
    EXPECT_EQ(mp::log_level_name(mp::LogLevel::error), "ERROR");
    EXPECT_EQ(mp::log_level_name(mp::LogLevel::critical), "CRITICAL");
    EXPECT_EQ(mp::log_level_name(static_cast<mp::LogLevel>(15)), "Level 15");
    EXPECT_EQ(static_cast<int>(mp::LogLevel::sub_warning), 25);
}

TEST_F(Logging, LogToStderrReplacesTheSinkAndSetsTheLevel) {
    mp_test::time_limit(120);
    Collected got;
    mp::set_log_sink(got.sink());
    mp::log_to_stderr(mp::LogLevel::info);
    EXPECT_EQ(mp::get_log_level(), mp::LogLevel::info);
    testing::internal::CaptureStderr();
    mp::detail::log(mp::detail::kLogInfo, "mp test: info %d", 7);
    mp::detail::log(mp::detail::kLogDebug, "mp test: debug");
    pool_callback_throws();
    const std::string err = without_cr(testing::internal::GetCapturedStderr());
    EXPECT_NE(err.find("mp test: info 7\n"), std::string::npos) << err;
    EXPECT_NE(err.find(std::string(kCallbackReport) + "\n"), std::string::npos) << err;
    EXPECT_EQ(err.find("debug"), std::string::npos) << err;
    EXPECT_TRUE(got.records().empty());

    mp::log_to_stderr();  // keeps the level
    EXPECT_EQ(mp::get_log_level(), mp::LogLevel::info);
}

TEST_F(Logging, EmptySinkRestoresStderr) {
    Collected got;
    mp::set_log_sink(got.sink());
    mp::detail::log(mp::detail::kLogError, "to the sink");
    mp::set_log_sink({});
    testing::internal::CaptureStderr();
    mp::detail::log(mp::detail::kLogError, "to stderr");
    EXPECT_EQ(without_cr(testing::internal::GetCapturedStderr()), "to stderr\n");
    ASSERT_EQ(got.records().size(), 1u);
    EXPECT_EQ(got.records()[0].text, "to the sink");
}

// A sink that throws loses nothing (the message goes to stderr), and one that logs does not
// call itself again.
TEST_F(Logging, ThrowingOrLoggingSinkFallsBackToStderr) {
    int calls = 0;
    mp::set_log_sink([&](mp::LogLevel, std::string_view text) {
        ++calls;
        if (text == "throw") throw std::runtime_error("the sink failed");
        mp::detail::log(mp::detail::kLogError, "from inside the sink");
    });
    testing::internal::CaptureStderr();
    mp::detail::log(mp::detail::kLogError, "throw");
    mp::detail::log(mp::detail::kLogError, "log");
    EXPECT_EQ(without_cr(testing::internal::GetCapturedStderr()), "throw\nfrom inside the sink\n");
    EXPECT_EQ(calls, 2);
}

// The sink is replaced again and again while threads log. set_log_sink promises that once it
// returns the old sink is neither running nor called again, and has been destroyed: each sink
// checks that it has not been retired, and its captured state says when it is destroyed.
TEST(LoggingThreads, SinkReplacedWhileOthersLog) {
    mp_test::time_limit(120);
    struct Tally {
        std::atomic<int> calls{0};
        std::atomic<bool> retired{false};
        std::atomic<int> late_calls{0};
    };
    struct Alive {
        Alive(std::shared_ptr<Tally> t, std::atomic<int>* d) : tally(std::move(t)), destroyed(d) {}
        Alive(const Alive&) = delete;
        Alive& operator=(const Alive&) = delete;
        ~Alive() { destroyed->fetch_add(1); }
        std::shared_ptr<Tally> tally;
        std::atomic<int>* destroyed;
    };
    const mp::LogLevel saved = mp::get_log_level();
    std::atomic<int> destroyed{0};
    auto make_sink = [&](const std::shared_ptr<Tally>& tally) {
        auto alive = std::make_shared<Alive>(tally, &destroyed);
        return [alive](mp::LogLevel, std::string_view) {
            // Retired at the start or at the end of the call (the yields widen the window):
            // set_log_sink returned while this call could still start or was still running.
            if (alive->tally->retired.load()) alive->tally->late_calls.fetch_add(1);
            for (int i = 0; i < 10; ++i) std::this_thread::yield();
            if (alive->tally->retired.load()) alive->tally->late_calls.fetch_add(1);
            alive->tally->calls.fetch_add(1);
        };
    };
    constexpr int kThreads = 4;
    constexpr int kSinks = 300;  // the loggers log until the last one is installed
    std::vector<std::shared_ptr<Tally>> tallies;
    tallies.push_back(std::make_shared<Tally>());
    mp::set_log_sink(make_sink(tallies.back()));
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::atomic<bool> done{false};
    std::atomic<int> logged{0};
    std::vector<std::thread> loggers;
    for (int t = 0; t < kThreads; ++t)
        loggers.emplace_back([&, t] {
            ready.fetch_add(1);
            while (!go.load()) std::this_thread::yield();
            // At least one message each, however the threads are scheduled.
            for (int i = 0; i == 0 || !done.load(); ++i) {
                mp::detail::log(mp::detail::kLogWarning, "thread %d message %d", t, i);
                logged.fetch_add(1);
            }
        });
    while (ready.load() != kThreads) std::this_thread::yield();
    go.store(true);
    for (int k = 1; k < kSinks; ++k) {
        auto next = std::make_shared<Tally>();
        mp::set_log_sink(make_sink(next));
        tallies.back()->retired.store(true);  // set_log_sink has returned: the old one is done
        EXPECT_EQ(destroyed.load(), k) << "the replaced sink is not destroyed yet";
        tallies.push_back(next);
    }
    done.store(true);
    for (auto& th : loggers) th.join();
    mp::set_log_sink({});
    tallies.back()->retired.store(true);
    EXPECT_EQ(destroyed.load(), kSinks);
    int total = 0, late = 0;
    for (const auto& t : tallies) {
        total += t->calls.load();
        late += t->late_calls.load();
    }
    EXPECT_EQ(late, 0) << "a sink was called after set_log_sink replaced it";
    EXPECT_EQ(total, logged.load()) << "every message reached exactly one sink";
    mp::set_log_level(saved);
}

// ---- children --------------------------------------------------------------------------------

int logging_child_level() { return static_cast<int>(mp::get_log_level()); }
MP_TARGET(logging_child_level);

void logging_child_throws() { throw std::runtime_error("boom from the child"); }
MP_TARGET(logging_child_throws);

class LoggingChildren : public mp_test::MethodTest {
protected:
    void SetUp() override {
        saved_ = mp::get_log_level();
        MethodTest::SetUp();
    }
    void TearDown() override {
        mp::set_log_sink({});
        mp::set_log_level(saved_);
        MethodTest::TearDown();
    }
    int child_level() {
        mp::Process p = ctx().Process(logging_child_level);
        p.start();
        p.join(60);
        return p.exitcode().value_or(-1);
    }

private:
    mp::LogLevel saved_ = mp::LogLevel::warning;
};

TEST_P(LoggingChildren, TakeTheParentsLevel) {
    mp_test::time_limit(120);
    EXPECT_EQ(child_level(), 30);
    mp::log_to_stderr(mp::LogLevel::debug);
    EXPECT_EQ(child_level(), 10);
    mp::set_log_level(mp::LogLevel::error);
    EXPECT_EQ(child_level(), 40);
}

// A child's uncaught exception is an ERROR of the child's log: silenced by a parent's level
// above it. A spawned child writes to stderr although the parent has a sink (a sink cannot
// cross); a fork child has a copy of the parent's sink (it calls it in its own memory).
TEST_P(LoggingChildren, ReportOfAChildsExceptionFollowsTheParentsLevel) {
    mp_test::time_limit(120);
    auto run_thrower = [&] {
        return mp_test::capture_stderr([&] {
            mp::Process p = ctx().Process(logging_child_throws);
            p.set_name("thrower");
            p.start();
            p.join(60);
            EXPECT_EQ(p.exitcode(), 1);
        });
    };
    const std::string report = "Process thrower:\nstd::runtime_error: boom from the child\n";
    EXPECT_NE(run_thrower().find(report), std::string::npos);
    mp::set_log_level(mp::LogLevel::critical);
    EXPECT_EQ(run_thrower().find("boom"), std::string::npos);
    mp::set_log_level(mp::LogLevel::warning);
    if (!is_fork()) {
        Collected got;
        mp::set_log_sink(got.sink());
        EXPECT_NE(run_thrower().find(report), std::string::npos);
        EXPECT_TRUE(got.records().empty());
    }
}

MP_INSTANTIATE_FOR_EACH_METHOD(LoggingChildren);

#if !defined(_WIN32)
// The resource tracker is a process of its own: it warns about leaked names at the level its
// creator had when it started it.
TEST_F(Logging, TrackerTakesTheLevelItStartedWith) {
    mp_test::time_limit(120);
    auto leak_one = [](const std::string& name) {
        return mp_test::capture_stderr([&] {
            mp::SharedMemory::stop_tracker();  // the next create starts one, with our stderr
            mp::SharedMemory shm = mp::SharedMemory::create(64, name);
            shm.close();                       // not unlinked: the tracker removes it, and says so
            mp::SharedMemory::stop_tracker();
        });
    };
    const std::string stem = "mp_test_log_" + std::to_string(mp::getpid()) + "_";
    const std::string loud = leak_one(stem + "loud");
    EXPECT_NE(loud.find("There appear to be 1 leaked shared_memory objects"), std::string::npos) << loud;
    mp::set_log_level(mp::LogLevel::error);
    const std::string quiet = leak_one(stem + "quiet");
    EXPECT_EQ(quiet.find("leaked"), std::string::npos) << quiet;
    EXPECT_THROW(mp::SharedMemory::attach(stem + "quiet"), mp::FileNotFoundError);  // removed all the same
}
#endif

}  // namespace
