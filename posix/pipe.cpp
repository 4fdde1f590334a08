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
// A child's standard streams (mp::subprocess) are plain pipes too; the child's end stays
// blocking and ours, when we write, is non-blocking. communicate's pipe_exchange is one poll()
// loop over stdin (POLLOUT), stdout, stderr and the child's pidfd, so that no pipe fills up
// while we wait on another.
// Windows differs: there a pair is a uniquely named pipe opened from both sides, a closed peer
// is ERROR_BROKEN_PIPE / ERROR_NO_DATA with no signal at all, I/O is overlapped, and there is
// no poll() on pipes, so waiting is a zero-byte overlapped read (completes when bytes arrive);
// communicate keeps an overlapped read or write in flight on each pipe at once and waits for
// any of them, or the process, with WaitForMultipleObjects.
#include "../common/sys/pipe.hpp"
#include "../common/sys/error.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::sys {


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
static std::error_code wait_writable(int fd, const Deadline& deadline, bool& ok) noexcept {
    pollfd p{fd, POLLOUT, 0};
    int ready = 0;
    if (auto ec = poll_until(&p, 1, deadline, ready)) return ec;
    ok = ready > 0;  // room, or POLLERR/POLLHUP: the write that follows reports it
    return {};
}

std::error_code pipe_write(PipeEnd& end, const void* head, std::size_t head_n, const void* body,
                           std::size_t body_n, const Deadline& deadline, std::size_t* written) noexcept {
    const bool forever = deadline.is_never();
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
                if (auto ec = wait_writable(end.h.get(), deadline, room)) return ec;
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

std::error_code pipe_poll(PipeEnd& end, const Deadline& deadline, bool& ready) noexcept {
    pollfd p{end.h.get(), POLLIN, 0};
    int n = 0;
    if (auto ec = poll_until(&p, 1, deadline, n)) return ec;
    if (p.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
    ready = n > 0;  // data, or POLLHUP / POLLERR: a read will not block (it sees end of file)
    return {};
}

std::error_code make_child_pipe(bool parent_reads, PipeEnd& parent, Handle& child) noexcept {
    PipeEnds p;
    if (auto ec = make_pipe(p)) return ec;
    // Our writing end is non-blocking, so that pipe_exchange and timed writes write what fits
    // and wait in poll(); the flag belongs to our open file description only, the child's end
    // stays blocking. A reading end can stay blocking: we read only after poll() says so.
    if (!parent_reads && ::fcntl(p.write.get(), F_SETFL, ::fcntl(p.write.get(), F_GETFL) | O_NONBLOCK) != 0)
        return last_error();
    parent.h = std::move(parent_reads ? p.read : p.write);
    child = std::move(parent_reads ? p.write : p.read);
    return {};
}

namespace {
constexpr std::size_t kExchangeChunk = 64 * 1024;
}

std::error_code pipe_exchange(PipeExchange& x, native_handle watch, const Deadline& deadline, bool& watch_ready) noexcept try {
    watch_ready = false;
    if (!x.scratch) x.scratch.reset(new char[kExchangeChunk]);
    if (x.input && x.sent == x.size) {
        x.input->h.reset();
        x.input = nullptr;
    }
    for (;;) {
        // Slots: 0 input, 1 and 2 the outputs, 3 the watch; fd -1 makes poll() skip a slot.
        pollfd fds[4] = {{x.input ? x.input->h.get() : -1, POLLOUT, 0},
                         {x.output[0] ? x.output[0]->h.get() : -1, POLLIN, 0},
                         {x.output[1] ? x.output[1]->h.get() : -1, POLLIN, 0},
                         {watch, POLLIN, 0}};
        if (!x.input && !x.output[0] && !x.output[1]) return {};
        int r = 0;
        if (auto ec = poll_until(fds, 4, deadline, r)) return ec;
        if (r > 0) {
            if (fds[0].revents) {
                // All that is left at once: a non-blocking pipe takes what fits and says how much.
                const iovec rest{const_cast<char*>(x.data + x.sent), x.size - x.sent};
                const long w = writev_without_sigpipe(fds[0].fd, &rest, 1);
                if (w >= 0) x.sent += static_cast<std::size_t>(w);
                // All written, or EPIPE: the child closed its stdin and wants no more.
                if (x.sent == x.size || (w < 0 && errno == EPIPE)) {
                    x.input->h.reset();
                    x.input = nullptr;
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    return last_error();
                }
            }
            for (int i = 0; i < 2; ++i) {
                if (!fds[1 + i].revents) continue;
                if (fds[1 + i].revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
                const ssize_t n = ::read(fds[1 + i].fd, x.scratch.get(), kExchangeChunk);
                if (n > 0) {
                    append_captured(*x.sink[i], x.scratch.get(), static_cast<std::size_t>(n));
                } else if (n == 0) {
                    x.output[i] = nullptr;  // end of file
                } else if (errno != EINTR && errno != EAGAIN) {
                    return last_error();
                }
            }
            if (fds[3].revents) {
                watch_ready = true;
                return {};
            }
        }
        if (r == 0 || deadline.passed()) return {};  // out of time (a zero deadline: one round)
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

// close_socket_end() is Windows-only: a POSIX socket is an fd and closes like a pipe.

}  // namespace mp::sys
