// common/logging.cpp - mp's messages: the level, the sink, and detail::log (mp/logging.hpp,
// logging_internal.hpp).
//
// The level is one atomic int, constant-initialised, so that code running before main (the
// resource tracker) and a filtered-out message never touch anything else. The sink lives in a
// State made on first use and never destroyed (exit handlers log too). A call takes a copy of
// the installed sink under the lock and counts itself as running on it, calls it outside the
// lock, then uncounts itself and drops its copy under the lock; set_log_sink swaps the sink
// under the lock and waits until the old one has no running call, and so holds its last copy,
// which it destroys outside the lock. A thread inside a sink is marked (thread_local): what it
// logs goes to stderr, and its set_log_sink does not wait for itself.
//
// A fork child inherits the lock and the counts as they were at fork(), possibly held by a
// thread the child does not have: the child renews them, but only when some thread was inside
// (the fork start method writes as few pages as it can in the child).
#include "mp/logging.hpp"

#include "logging_internal.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <utility>

#include "sys/os.hpp"

namespace mp {

static_assert(static_cast<int>(LogLevel::subdebug) == detail::kLogSubdebug);
static_assert(static_cast<int>(LogLevel::debug) == detail::kLogDebug);
static_assert(static_cast<int>(LogLevel::info) == detail::kLogInfo);
static_assert(static_cast<int>(LogLevel::sub_warning) == detail::kLogSubWarning);
static_assert(static_cast<int>(LogLevel::warning) == detail::kLogWarning);
static_assert(static_cast<int>(LogLevel::error) == detail::kLogError);
static_assert(static_cast<int>(LogLevel::critical) == detail::kLogCritical);

namespace detail {
namespace {

std::atomic<int> g_level{kLogWarning};

struct Installed {
    LogSink fn;
    int calls = 0;  // calls running on this sink (State::mu)
};

struct State {
    std::mutex mu;
    std::condition_variable idle;       // a call of a replaced sink has ended
    std::shared_ptr<Installed> sink;    // empty: stderr
    std::atomic<int> inside{0};         // threads holding mu or waiting on idle
};

std::atomic<State*> g_state{nullptr};
thread_local int t_in_sink = 0;

// Counts a thread in the lock's sections, for the fork child.
class Inside {
public:
    explicit Inside(State& s) noexcept : s_(s) { s_.inside.fetch_add(1); }
    ~Inside() { s_.inside.fetch_sub(1); }
    Inside(const Inside&) = delete;
    Inside& operator=(const Inside&) = delete;

private:
    State& s_;
};

void after_fork_in_child() {
    State* s = g_state.load();
    if (!s) return;
    if (s->inside.load() != 0) {  // another thread held the lock, or waited: it is not here
        new (&s->mu) std::mutex;
        new (&s->idle) std::condition_variable;
        s->inside.store(0);
    }
    // A call that another thread was running cannot end here; this thread's own (a sink
    // that started a process) ends on its own, and its uncounting stops at zero.
    if (s->sink && s->sink->calls != t_in_sink) s->sink->calls = t_in_sink;
}

State& state() {
    static State* s = [] {
        auto* made = new State;
        g_state.store(made);
        sys::at_fork_in_child(after_fork_in_child);  // nothing to do on Windows
        return made;
    }();
    return *s;
}

// The default sink: the text and a newline, in one write where it fits (stderr is unbuffered).
void to_stderr(std::string_view text) noexcept {
    char line[1024];
    if (text.size() < sizeof line) {
        text.copy(line, text.size());
        line[text.size()] = '\n';
        std::fwrite(line, 1, text.size() + 1, stderr);
    } else {
        std::fwrite(text.data(), 1, text.size(), stderr);
        std::fputc('\n', stderr);
    }
    std::fflush(stderr);
}

void deliver(int level, std::string_view text) noexcept {
    if (t_in_sink > 0) return to_stderr(text);  // a sink's own call into mp: not back into it
    State* s = nullptr;
    try {
        s = &state();
    } catch (...) {
        return to_stderr(text);  // out of memory for the state: stderr still works
    }
    std::shared_ptr<Installed> sink;
    {
        Inside in(*s);
        std::lock_guard<std::mutex> lk(s->mu);
        sink = s->sink;
        if (sink) ++sink->calls;
    }
    if (!sink) return to_stderr(text);
    bool delivered = true;
    ++t_in_sink;
    try {
        sink->fn(static_cast<LogLevel>(level), text);
    } catch (...) {
        delivered = false;
    }
    --t_in_sink;
    {
        Inside in(*s);
        std::lock_guard<std::mutex> lk(s->mu);
        if (sink->calls > 0) --sink->calls;
        if (sink->calls == 0 && sink != s->sink) s->idle.notify_all();
        // Our copy goes with our count, so that a set_log_sink that sees no call left holds
        // the last copy and destroys the sink before it returns. Unless ours is the last (a
        // sink replaced from inside itself): that one goes below, outside the lock.
        if (sink.use_count() > 1) sink.reset();
    }
    if (!delivered) to_stderr(text);
}

}  // namespace

bool log_enabled(int level) noexcept { return level >= g_level.load(std::memory_order_relaxed); }

void log(int level, const char* format, ...) noexcept {
    if (!log_enabled(level)) return;
    char small[1024];
    std::string big;
    std::string_view text;
    va_list args, again;
    va_start(args, format);
    va_copy(again, args);
    const int n = std::vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < 0) {
        text = "mp: a log message could not be formatted";
    } else if (static_cast<std::size_t>(n) < sizeof small) {
        text = std::string_view(small, static_cast<std::size_t>(n));
    } else {
        try {
            big.resize(static_cast<std::size_t>(n));
            std::vsnprintf(big.data(), big.size() + 1, format, again);  // its '\0' lands on big's own
            text = big;
        } catch (...) {
            text = std::string_view(small, sizeof small - 1);  // out of memory: what fitted
        }
    }
    va_end(again);
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    deliver(level, text);
}

int log_level_number() noexcept { return g_level.load(std::memory_order_relaxed); }
void set_log_level_number(int level) noexcept { g_level.store(level, std::memory_order_relaxed); }

}  // namespace detail

std::string log_level_name(LogLevel level) {
    switch (level) {
        case LogLevel::subdebug: return "SUBDEBUG";
        case LogLevel::debug: return "DEBUG";
        case LogLevel::info: return "INFO";
        case LogLevel::sub_warning: return "SUBWARNING";
        case LogLevel::warning: return "WARNING";
        case LogLevel::error: return "ERROR";
        case LogLevel::critical: return "CRITICAL";
    }
    return "Level " + std::to_string(static_cast<int>(level));
}

void set_log_level(LogLevel level) noexcept { detail::set_log_level_number(static_cast<int>(level)); }
LogLevel get_log_level() noexcept { return static_cast<LogLevel>(detail::log_level_number()); }

void set_log_sink(LogSink sink) {
    using namespace detail;
    std::shared_ptr<Installed> next;
    if (sink) {
        next = std::make_shared<Installed>();
        next->fn = std::move(sink);
    }
    State& s = state();
    std::shared_ptr<Installed> old;
    {
        Inside in(s);
        std::unique_lock<std::mutex> lk(s.mu);
        old = std::exchange(s.sink, std::move(next));
        // From inside a sink this thread's own call is still running: no waiting for it.
        if (old && t_in_sink == 0) s.idle.wait(lk, [&] { return old->calls == 0; });
    }
    // `old` goes here, outside the lock: its destructor may log.
}

void log_to_stderr() { set_log_sink({}); }

void log_to_stderr(LogLevel level) {
    set_log_sink({});
    set_log_level(level);
}

}  // namespace mp
