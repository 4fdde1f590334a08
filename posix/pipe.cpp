// posix/pipe.cpp - the ends of mp::Pipe on POSIX: a socketpair or a pipe.
//
// A duplex Pipe is socketpair(AF_UNIX, SOCK_STREAM): one fd per end, each both readable and
// writable, a byte stream (Connection adds its own message framing). A one-way Pipe is a plain
// pipe(2), which is a little cheaper. Both are born close-on-exec. Writing to an end whose peer
// has gone raises SIGPIPE, which kills a process that has not chosen otherwise; mp never
// changes that process-wide choice: a socket is written with sendmsg(MSG_NOSIGNAL), a pipe with
// SIGPIPE blocked for this thread around writev() (and a raised SIGPIPE consumed), so the
// caller gets EPIPE. Waiting for data is poll(2), which also wakes on a closed peer (POLLHUP).
// Every call is retried on EINTR.
// Windows differs: there a pair is a uniquely named pipe opened from both sides, a closed peer
// is ERROR_BROKEN_PIPE / ERROR_NO_DATA with no signal at all, I/O is overlapped, and there is
// no poll() on pipes, so waiting is a zero-byte overlapped read (completes when bytes arrive).
#include "../common/sys/pipe.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::sys {

static std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

std::error_code make_connection_pair(bool duplex, PipeEnd& first, PipeEnd& second) noexcept {
    int fds[2];
    if (duplex) {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return last_error();
    } else {
        if (::pipe2(fds, O_CLOEXEC) != 0) return last_error();
        // The writer is non-blocking so that a send with a timeout can stop waiting for room
        // (a socket gets MSG_DONTWAIT per call instead; a pipe has no such flag). Untimed sends
        // wait in poll() instead of inside write(). Only the write side's open file
        // description carries the flag: the reader stays blocking.
        if (::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK) != 0) {
            const auto ec = last_error();
            ::close(fds[0]);
            ::close(fds[1]);
            return ec;
        }
    }
    first.h.reset(fds[0]);
    second.h.reset(fds[1]);
    return {};
}

// Waits for room to write; false when the deadline passed first.
static std::error_code wait_writable(int fd, bool forever, std::chrono::steady_clock::time_point deadline,
                                     bool& ok) noexcept {
    using clock = std::chrono::steady_clock;
    for (;;) {
        int wait_ms = -1;
        if (!forever) {
            const double left = std::chrono::duration<double, std::milli>(deadline - clock::now()).count();
            if (left <= 0) {
                ok = false;
                return {};
            }
            wait_ms = static_cast<int>(std::min(std::ceil(left), 2.0e9));
        }
        pollfd p{fd, POLLOUT, 0};
        const int r = ::poll(&p, 1, wait_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return last_error();
        if (r > 0) {
            ok = true;  // room, or POLLERR/POLLHUP: the write that follows reports it
            return {};
        }
    }
}

std::error_code pipe_write(PipeEnd& end, const void* head, std::size_t head_n, const void* body,
                           std::size_t body_n, double timeout_ms, std::size_t* written) noexcept {
    using clock = std::chrono::steady_clock;
    const bool forever = timeout_ms < 0;
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(
                                             std::chrono::duration<double, std::milli>(forever ? 0 : timeout_ms));
    iovec iov[2] = {{const_cast<void*>(head), head_n}, {const_cast<void*>(body), body_n}};
    iovec* cur = iov;
    int cnt = 2;
    if (body_n == 0) cnt = 1;
    bool is_socket = true;
    std::size_t total = 0;
    if (written) *written = 0;
    while (cnt > 0) {
        ssize_t w;
        if (is_socket) {
            msghdr msg{};
            msg.msg_iov = cur;
            msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(cnt);
            w = ::sendmsg(end.h.get(), &msg, MSG_NOSIGNAL | (forever ? 0 : MSG_DONTWAIT));
        } else {
            w = writev_without_sigpipe(end.h.get(), cur, cnt);
        }
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOTSOCK && is_socket) {
                is_socket = false;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                bool room = false;
                if (auto ec = wait_writable(end.h.get(), forever, deadline, room)) return ec;
                if (!room) return std::make_error_code(std::errc::timed_out);
                continue;
            }
            return last_error();
        }
        auto left = static_cast<std::size_t>(w);
        total += left;
        if (written) *written = total;
        while (cnt > 0 && left >= cur[0].iov_len) {  // drop the parts fully written
            left -= cur[0].iov_len;
            ++cur;
            --cnt;
        }
        if (cnt > 0) {
            cur[0].iov_base = static_cast<char*>(cur[0].iov_base) + left;
            cur[0].iov_len -= left;
        }
    }
    return {};
}

std::error_code pipe_read(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept {
    char* p = static_cast<char*>(data);
    got = 0;
    while (got < n) {
        const ssize_t r = ::read(end.h.get(), p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == ECONNRESET) break;  // a socket peer that closed with unread data: end of file
            return last_error();
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    return {};
}

std::error_code pipe_read_some(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept {
    got = 0;
    for (;;) {
        const ssize_t r = ::read(end.h.get(), data, n);
        if (r >= 0) {
            got = static_cast<std::size_t>(r);
            return {};
        }
        if (errno == EINTR) continue;
        if (errno == ECONNRESET) return {};
        return last_error();
    }
}

std::error_code pipe_poll(PipeEnd& end, double timeout_ms, bool& ready) noexcept {
    using clock = std::chrono::steady_clock;
    ready = false;
    const bool forever = timeout_ms < 0;
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(
                                             std::chrono::duration<double, std::milli>(forever ? 0 : timeout_ms));
    for (;;) {
        int wait_ms = -1;
        if (!forever) {
            const double left = std::chrono::duration<double, std::milli>(deadline - clock::now()).count();
            // Rounded up, so that the wait is never shorter than asked.
            wait_ms = left <= 0 ? 0 : static_cast<int>(std::min(std::ceil(left), 2.0e9));
        }
        pollfd p{end.h.get(), POLLIN, 0};
        const int r = ::poll(&p, 1, wait_ms);
        if (r < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (r > 0) {
            if (p.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
            ready = true;  // data, or POLLHUP / POLLERR: a read will not block (it sees end of file)
            return {};
        }
        if (!forever && clock::now() >= deadline) return {};
    }
}

// close_socket_end() is Windows-only: a POSIX socket is an fd and closes like a pipe.

}  // namespace mp::sys
