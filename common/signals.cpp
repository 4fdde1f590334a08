// common/signals.cpp - mp::signals and mp::kill: the user's handlers, run on the dispatching
// thread, over the sys/signals.hpp contract.
#include "mp/signals.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>
#include <string>

#include "sys/signals.hpp"
#include "timeout.hpp"

namespace mp {

static_assert(sig::HUP == sys::signum::HUP && sig::INT == sys::signum::INT && sig::QUIT == sys::signum::QUIT &&
                  sig::KILL == sys::signum::KILL && sig::USR1 == sys::signum::USR1 && sig::USR2 == sys::signum::USR2 &&
                  sig::PIPE == sys::signum::PIPE && sig::ALRM == sys::signum::ALRM && sig::TERM == sys::signum::TERM &&
                  sig::CHLD == sys::signum::CHLD,
              "mp::sig and the platform contract number signals alike");

namespace {

std::mutex g_mu;
std::array<signals::Handler, 65> g_handlers;

void check_signal(int s, const char* what) {
    if (s < 1 || s > 64) throw ValueError(std::string(what) + ": signal number " + std::to_string(s) + " is not in 1..64");
}

void check_catchable(int s, const char* what) {
    check_signal(s, what);
    if (s == sig::KILL) throw ValueError(std::string(what) + ": SIGKILL cannot be caught or ignored");
    // SIGSTOP, in mp's (Linux's) numbering: not catchable on POSIX, and kept so on Windows,
    // where a "signal" is mp's own event, so that a program behaves the same on both.
    if (s == 19) throw ValueError(std::string(what) + ": SIGSTOP cannot be caught or ignored");
}

// A fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL) is raised again by the very instruction that caused
// it as soon as a handler returns: one that only records it would loop for ever.
void check_not_fault(int s, const char* what) {
    if (s == 4 || s == 7 || s == 8 || s == 11)
        throw ValueError(std::string(what) + ": signal " + std::to_string(s) +
                         " reports a fault in the running code; it cannot wait for dispatch()");
}

void raise_for(std::error_code ec, const char* what, int s) {
    if (ec == std::errc::invalid_argument)
        throw ValueError(std::string(what) + ": signal " + std::to_string(s) + " cannot be changed");
    raise_os_error(ec, std::string(what) + "(" + std::to_string(s) + ")");
}

}  // namespace

void kill(int pid, int s) {
    check_signal(s, "mp::kill");
    if (pid <= 0)
        throw ValueError("mp::kill: pid must be > 0 (" + std::to_string(pid) +
                         " would name a process group or every process)");
    if (auto ec = sys::signal_send(pid, s)) raise_os_error(ec, "mp::kill(" + std::to_string(pid) + ", " + std::to_string(s) + ")");
}

namespace signals {

void handle(int s, Handler handler) {
    check_catchable(s, "mp::signals::handle");
    check_not_fault(s, "mp::signals::handle");
    if (!handler) throw ValueError("mp::signals::handle: the handler is empty");
    {
        std::lock_guard<std::mutex> lock(g_mu);
        g_handlers[static_cast<std::size_t>(s)] = std::move(handler);
    }
    if (auto ec = sys::signal_catch(s)) raise_for(ec, "mp::signals::handle", s);
}

void ignore(int s) {
    check_catchable(s, "mp::signals::ignore");
    if (auto ec = sys::signal_ignore(s)) raise_for(ec, "mp::signals::ignore", s);
    std::lock_guard<std::mutex> lock(g_mu);
    g_handlers[static_cast<std::size_t>(s)] = nullptr;
}

void restore(int s) {
    check_catchable(s, "mp::signals::restore");
    if (auto ec = sys::signal_default(s)) raise_for(ec, "mp::signals::restore", s);
    std::lock_guard<std::mutex> lock(g_mu);
    g_handlers[static_cast<std::size_t>(s)] = nullptr;
}

std::vector<int> dispatch(std::optional<double> timeout_seconds) {
    const sys::Deadline deadline = detail::deadline_in_seconds(timeout_seconds, "mp::signals::dispatch");
    std::vector<int> ran;
    for (;;) {
        std::uint64_t fired = 0;
        if (auto ec = sys::signal_wait(deadline, fired)) raise_os_error(ec, "mp::signals::dispatch");
        for (int s = 1; s <= 64; ++s) {
            if (!(fired & sys::signal_bit(s))) continue;
            Handler h;
            {
                std::lock_guard<std::mutex> lock(g_mu);
                h = g_handlers[static_cast<std::size_t>(s)];
            }
            if (!h) continue;  // restored or ignored since it was recorded
            ran.push_back(s);
            h(s);
        }
        if (!ran.empty()) return ran;
        if (deadline.passed()) return ran;
    }
}

std::vector<int> pending() {
    const std::uint64_t p = sys::signal_pending();
    std::vector<int> out;
    for (int s = 1; s <= 64; ++s)
        if (p & sys::signal_bit(s)) out.push_back(s);
    return out;
}

}  // namespace signals
}  // namespace mp
