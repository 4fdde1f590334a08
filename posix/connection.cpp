// posix/connection.cpp - the ends of mp::Connection on POSIX: a socketpair or a pipe.
//
// A duplex Pipe is socketpair(AF_UNIX, SOCK_STREAM): one fd per end, each both readable and
// writable, a byte stream (Connection adds its own message framing). A one-way Pipe is a plain
// pipe(2), which is a little cheaper. Both are born close-on-exec. A Listener's or Client's
// socket is an end as it is: read(), poll() and close() work on any fd. Writing to an end whose
// peer has gone raises SIGPIPE, which kills a process that has not chosen otherwise; mp never
// changes that process-wide choice: a socket is written with sendmsg(MSG_NOSIGNAL), a pipe
// with SIGPIPE blocked for this thread around writev() (posix/handle.cpp), so the caller gets
// EPIPE. Which of the two an end is, is known when the pair is made and kept beside the fd
// (EndState), or learnt once with fstat() for an end that came another way, so that a write
// to a pipe never first tries sendmsg() only to get ENOTSOCK. An end whose process may die of
// a closed peer (a pool worker's result pipe: end_allow_sigpipe) is written with a bare
// writev(). Waiting for data is poll(2), which also wakes on a closed peer (POLLHUP), and mp::wait
// is one poll() over every end and sentinel. Every call is retried on EINTR.
// Windows differs: a pair is a uniquely named pipe opened from both sides, a closed peer is
// ERROR_BROKEN_PIPE / ERROR_NO_DATA with no signal at all, I/O is overlapped on an event the
// end keeps beside its handle, a socket end needs Winsock's own calls, and there is no poll()
// on pipes (a wait is a zero-byte overlapped read; mp::wait looks at the ends in slices).
// A child's standard streams are in posix/child_stdio.cpp, named pipes in posix/named_pipe.cpp.
#include "../common/sys/connection.hpp"
#include "../common/sys/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <memory>
#include <new>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::sys {

// What POSIX keeps beside an end's fd: whether it is a socket, so that each write is one
// call. Made with the pair (a duplex pair and a Listener's or Client's socket are sockets, a
// one-way pair is pipes) or on the first write of an end that came another way (rebuilt in a
// spawned child, a named pipe, a child's stream).
struct EndState {
    bool is_socket = false;
    bool sigpipe_ok = false;  // end_allow_sigpipe: no SIGPIPE guard around writes to a pipe
};

void EndStateDeleter::operator()(EndState* s) const noexcept { delete s; }

namespace {

// The end's state, made on first need; nullptr only when out of memory (the caller then
// treats the end as it did before the state existed: a socket first, a pipe on ENOTSOCK).
EndState* state_of(PipeEnd& end) noexcept {
    if (!end.os) {
        struct stat st {};
        if (::fstat(end.h.get(), &st) != 0) return nullptr;
        end.os.reset(new (std::nothrow) EndState);
        if (end.os) end.os->is_socket = S_ISSOCK(st.st_mode);
    }
    return end.os.get();
}

void mark(PipeEnd& end, bool is_socket) noexcept {
    end.os.reset(new (std::nothrow) EndState);  // out of memory: learnt on the first write instead
    if (end.os) end.os->is_socket = is_socket;
}

}  // namespace

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
    mark(first, duplex);
    mark(second, duplex);
    return {};
}

std::error_code end_from_socket(SocketHandle&& s, PipeEnd& out) noexcept {
    if (auto ec = socket_set_blocking(s.get(), true)) return ec;
    out.h.reset(s.release());  // the calls below work on a socket fd as they are
    mark(out, true);
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
    const EndState* st = state_of(end);
    bool is_socket = !st || st->is_socket;
    const bool guard = !st || !st->sigpipe_ok;
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
            w = guard ? writev_without_sigpipe(end.h.get(), cur, cnt) : ::writev(end.h.get(), cur, cnt);
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

std::error_code pipe_read_nowait(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept {
    // A pipe's fd stays blocking (its other readers may rely on it): preadv2(RWF_NOWAIT) makes
    // this one read non-blocking (Linux 5.x and later on pipes; EOPNOTSUPP before). A socket
    // has MSG_DONTWAIT. The portable profile has neither preadv2 nor a per-call flag for a
    // pipe, so there the caller waits first, as before.
    got = 0;
    const EndState* st = state_of(end);
    for (;;) {
        ssize_t r;
        if (st && st->is_socket) {
            r = ::recv(end.h.get(), data, n, MSG_DONTWAIT);
        } else {
#if defined(RWF_NOWAIT) && !defined(MP_POSIX_PORTABLE)
            iovec one{data, n};
            r = ::preadv2(end.h.get(), &one, 1, -1, RWF_NOWAIT);
#else
            return std::make_error_code(std::errc::operation_not_supported);
#endif
        }
        if (r >= 0) {
            got = static_cast<std::size_t>(r);
            return {};
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNRESET) return {};  // nothing yet / end of file
        if (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS || errno == ENOTSOCK)
            return std::make_error_code(std::errc::operation_not_supported);
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

void close_end(PipeEnd& end) noexcept {
    end.h.reset();  // a socket is an fd and closes like one
    end.os.reset();
}

std::error_code wait_ready(PipeEnd* const* ends, std::size_t n_ends, const native_handle* objects,
                           std::size_t n_objects, const Deadline& deadline, unsigned char* ready) noexcept try {
    // One poll(): an end's fd and a sentinel (a pidfd, or a pipe) are alike to it.
    native_handle few[16];
    std::unique_ptr<native_handle[]> many;
    native_handle* hs = few;
    const std::size_t n = n_ends + n_objects;
    if (n > 16) hs = (many = std::unique_ptr<native_handle[]>(new native_handle[n])).get();
    for (std::size_t i = 0; i < n_ends; ++i) hs[i] = ends[i]->h.get();
    for (std::size_t i = 0; i < n_objects; ++i) hs[n_ends + i] = objects[i];
    return wait_handles(hs, n, deadline, ready);
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

const char* end_inherit_problem(const PipeEnd&) noexcept { return nullptr; }  // every fd passes

void end_allow_sigpipe(PipeEnd& end) noexcept {
    if (EndState* st = state_of(end)) st->sigpipe_ok = true;  // out of memory: the guard stays
}

// end_event() and make_named_pair() are Windows-only: POSIX waits on an fd with poll(2) and
// pairs with socketpair() and pipe2().

}  // namespace mp::sys
