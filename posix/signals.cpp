// posix/signals.cpp - catching signals on POSIX: sigaction(2) with a handler that only
// records, and a self-pipe to wake whoever waits.
//
// A signal handler interrupts whatever the thread was doing, between any two instructions, so
// it may call only async-signal-safe functions: no malloc, no locks, no std::function. So
// mp's handler does two safe things: it sets the signal's bit in a lock-free atomic mask and
// writes one byte to a non-blocking pipe (the "self-pipe"); errno is saved and restored
// around it. The user's handler runs later, on a normal thread, when that thread calls
// mp::signals::dispatch(), which polls the pipe's read end. SA_RESTART is not set (and not
// relied upon): a blocking call interrupted by the signal fails with EINTR, and every call in
// mp retries it. kill(2) sends; standard signals do not queue, so two sends before a dispatch
// may run the handler once (the same holds for the Windows events).
// After fork() the child has a copy of the mask and the same pipe as its parent: a
// pthread_atfork child hook gives the child a pipe of its own and clears its mask, since
// POSIX does not pass pending signals to a child either. The handlers stay installed, as
// sigaction handlers do across fork; exec resets them, so a spawned child starts clean.
// Windows differs: there are no signals to deliver between processes (only console control
// events, which need a shared console, and Wine lacks CTRL_BREAK). mp gives each caught signal
// a named event Local\mp-signal-<pid>-<sig>; mp::kill sets it, and dispatch waits on the
// events. Nothing interrupts a thread there, so there is no EINTR, and no handler context.
#include "../common/sys/signals.hpp"
#include "../common/sys/handle.hpp"
#include "../common/sys/error.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

namespace mp::sys {

static_assert(signum::HUP == SIGHUP && signum::INT == SIGINT && signum::QUIT == SIGQUIT && signum::KILL == SIGKILL &&
                  signum::USR1 == SIGUSR1 && signum::USR2 == SIGUSR2 && signum::PIPE == SIGPIPE &&
                  signum::ALRM == SIGALRM && signum::TERM == SIGTERM && signum::CHLD == SIGCHLD,
              "mp's signal numbers are Linux's; this system numbers its signals differently");

namespace {

std::atomic<std::uint64_t> g_recorded{0};
std::atomic<int> g_wake_read{-1};
std::atomic<int> g_wake_write{-1};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "the signal handler needs lock-free atomics");


void record(int sig) {
    const int saved = errno;
    g_recorded.fetch_or(signal_bit(sig));
    const int fd = g_wake_write.load();
    if (fd >= 0) {
        const char byte = static_cast<char>(sig);
        // A full pipe already holds a wakeup: losing this byte loses nothing.
        [[maybe_unused]] const ssize_t w = ::write(fd, &byte, 1);
    }
    errno = saved;
}

std::error_code make_wake_pipe() noexcept {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return last_error();
    const int old_r = g_wake_read.exchange(fds[0]);
    const int old_w = g_wake_write.exchange(fds[1]);
    if (old_r >= 0) ::close(old_r);
    if (old_w >= 0) ::close(old_w);
    return {};
}

// Signals are blocked across fork(): one that reached the child before its handler below
// replaced the record and the pipe would be recorded in the parent's copies and then cleared.
// Blocked, it stays pending, and arrives once the child has its own.
thread_local sigset_t t_mask_before_fork;

void before_fork() {
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &t_mask_before_fork);
}

void after_fork_in_parent() { ::pthread_sigmask(SIG_SETMASK, &t_mask_before_fork, nullptr); }

void after_fork_in_child() {
    g_recorded.store(0);
    if (g_wake_read.load() >= 0) make_wake_pipe();  // on failure the child's waits see no signals
    ::pthread_sigmask(SIG_SETMASK, &t_mask_before_fork, nullptr);
}

std::error_code ensure_wake_pipe() noexcept {
    static std::error_code made = [] {
        if (auto ec = make_wake_pipe()) return ec;
        if (int e = ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child))
            return os_error(e);
        return std::error_code{};
    }();
    return made;
}

std::error_code set_action(int sig, void (*fn)(int)) noexcept {
    struct sigaction sa{};
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: interrupted calls say EINTR, and mp retries them
    if (::sigaction(sig, &sa, nullptr) != 0) return last_error();
    return {};
}

}  // namespace

std::error_code signal_catch(int sig) noexcept {
    if (auto ec = ensure_wake_pipe()) return ec;
    return set_action(sig, record);
}

std::error_code signal_ignore(int sig) noexcept {
    if (auto ec = set_action(sig, SIG_IGN)) return ec;
    g_recorded.fetch_and(~signal_bit(sig));
    return {};
}

std::error_code signal_default(int sig) noexcept {
    if (auto ec = set_action(sig, SIG_DFL)) return ec;
    g_recorded.fetch_and(~signal_bit(sig));
    return {};
}

std::error_code signal_wait(const Deadline& deadline, std::uint64_t& fired) noexcept {
    fired = 0;
    if (auto ec = ensure_wake_pipe()) return ec;
    for (;;) {
        // Drain the wakeups first, then take the mask: a signal that lands between the two
        // leaves its byte for the next wait, which then finds an empty mask and waits again.
        char buf[64];
        const int rfd = g_wake_read.load();
        while (::read(rfd, buf, sizeof buf) > 0) {
        }
        fired = g_recorded.exchange(0);
        if (fired) return {};
        if (deadline.passed()) return {};
        // A wakeup, or EINTR (likely our own handler ran on this thread): look at the mask
        // again. poll_until restarts an EINTR by itself, but the handler's byte is then
        // already in the pipe, so that costs nothing.
        pollfd p{rfd, POLLIN, 0};
        int ready = 0;
        if (auto ec = poll_until(&p, 1, deadline, ready)) return ec;
    }
}

std::uint64_t signal_pending() noexcept { return g_recorded.load(); }

std::error_code signal_send(int pid, int sig) noexcept {
    if (::kill(pid, sig) != 0) return last_error();
    return {};
}

}  // namespace mp::sys
