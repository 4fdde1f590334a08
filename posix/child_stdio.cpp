// posix/child_stdio.cpp - a child's standard streams on POSIX: plain pipes and one poll() loop.
//
// A child's stdin, stdout or stderr that we talk to is a pipe(2): the child's end is an
// ordinary blocking fd (the child's runtime reads and writes it with plain calls) and is dup2'd
// onto 0, 1 or 2 by spawn_process; ours is close-on-exec, and non-blocking when we write, so
// that a write takes what fits and a timed write waits in poll().
// communicate's pipe_exchange is one poll() loop over stdin (POLLOUT), stdout, stderr (POLLIN)
// and the child's pidfd, so that no pipe fills up while we wait on another, with SIGPIPE held
// off around the writes (posix/handle.cpp). Every call is retried on EINTR.
// Windows differs: a child's stream is a named-pipe pair with an overlapped end for us and a
// synchronous one for the child, and the exchange keeps one overlapped read or write in flight
// per pipe and waits for the first to finish, or the process, with one WaitForMultipleObjects.
// The ends' own reads and writes are posix/connection.cpp's; DEVNULL is open_null_device
// (posix/handle.cpp).
#include "../common/sys/child_stdio.hpp"
#include "../common/sys/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <new>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::sys {

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

std::error_code ready_end_for_child(PipeEnd& ours) noexcept {
    const int flags = ::fcntl(ours.h.get(), F_GETFL);
    if (flags < 0 || ::fcntl(ours.h.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) return last_error();
    return {};
}

namespace {
constexpr std::size_t kExchangeChunk = 64 * 1024;
}

std::error_code pipe_exchange(PipeExchange& x, native_handle watch, const Deadline& deadline, bool& watch_ready) noexcept try {
    watch_ready = false;
    if (!x.scratch) x.scratch.reset(new char[kExchangeChunk]);
    if (x.input && x.sent == x.size) {
        close_end(*x.input);
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
                    close_end(*x.input);
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

}  // namespace mp::sys
