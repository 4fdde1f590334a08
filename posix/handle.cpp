// posix/handle.cpp - file descriptors and anonymous pipes on POSIX.
//
// A POSIX descriptor is a small integer, an index into the process's fd table. fork() copies
// the whole table into the child; execve() keeps every entry that lacks FD_CLOEXEC. So the
// rule that nothing leaks into children is kept at creation time: every fd mp makes is born
// with O_CLOEXEC/SOCK_CLOEXEC (never set afterwards, which races with a fork on another
// thread), and spawn additionally closes everything above the fds it passes.
// Counting the open fds reads /proc/self/fd; the portable profile (MP_POSIX_PORTABLE) asks
// poll() about every fd below the RLIMIT_NOFILE limit instead (POLLNVAL: not open).
// Windows differs: a HANDLE is an opaque kernel reference, the "inheritable" bit is chosen at
// creation, and CreateProcessW can be given the exact list of handles to pass.
#include "../common/sys/handle.hpp"
#include "../common/sys/error.hpp"

#include <cerrno>
#include <memory>
#include <new>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <csignal>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::sys {

std::error_code close_handle(native_handle h) noexcept {
    // Linux releases the fd even when close() reports EINTR, so it must not be retried.
    if (::close(h) != 0 && errno != EINTR) return last_error();
    return {};
}

std::error_code make_pipe(PipeEnds& out) noexcept {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return last_error();
    out.read.reset(fds[0]);
    out.write.reset(fds[1]);
    return {};
}

std::error_code open_null_device(Handle& out) noexcept {
    int fd;
    do {
        fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
}

std::error_code open_file(const std::string& path, FileMode mode, Handle& out) noexcept {
    int flags = O_CLOEXEC | O_NOCTTY;
    if (mode == FileMode::read) flags |= O_RDONLY;
    if (mode == FileMode::write) flags |= O_WRONLY | O_CREAT | O_TRUNC;
    if (mode == FileMode::append) flags |= O_WRONLY | O_CREAT | O_APPEND;
    int fd;
    do {
        fd = ::open(path.c_str(), flags, 0666);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
}

// write() to a pipe whose reader has gone raises SIGPIPE, which kills a process that has not
// chosen to ignore it. mp never changes that process-wide choice: on a socket it passes
// MSG_NOSIGNAL; on a pipe it blocks SIGPIPE for this thread around the write and consumes the
// signal if the write raised it, so EPIPE comes back as an error code instead. Two calls beside
// the write in the usual case: the block, whose old mask says whether SIGPIPE was blocked
// already, and the restore. Only a thread that blocks SIGPIPE itself can have one pending (in
// any other it is delivered at once), so only then is sigpending() asked, lest the signal the
// caller's own write left pending be consumed, and only then is no restore needed.
long writev_without_sigpipe(int fd, const iovec* iov, int count) noexcept {
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    const bool was_blocked = sigismember(&old, SIGPIPE) == 1;
    bool was_pending = false;
    if (was_blocked) {
        sigset_t pending;
        sigpending(&pending);
        was_pending = sigismember(&pending, SIGPIPE) == 1;
    }
    const ssize_t w = ::writev(fd, iov, count);
    const int saved = errno;
    if (w < 0 && saved == EPIPE && !was_pending) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    if (!was_blocked) pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = saved;
    return w;
}

static ssize_t write_no_sigpipe(int fd, const void* p, std::size_t n) noexcept {
    const iovec one{const_cast<void*>(p), n};
    return writev_without_sigpipe(fd, &one, 1);
}

std::error_code write_all(native_handle h, const void* data, std::size_t n) noexcept {
    const char* p = static_cast<const char*>(data);
    bool is_socket = true;
    while (n > 0) {
        ssize_t w = is_socket ? ::send(h, p, n, MSG_NOSIGNAL) : write_no_sigpipe(h, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOTSOCK && is_socket) {
                is_socket = false;
                continue;
            }
            return last_error();
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return {};
}

// owner_only_security_descriptor() is Windows-only: POSIX objects get file modes (0600).

std::error_code read_full(native_handle h, void* data, std::size_t n, std::size_t& got) noexcept {
    char* p = static_cast<char*>(data);
    got = 0;
    while (got < n) {
        ssize_t r = ::read(h, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    return {};
}

std::error_code duplicate_handle(native_handle h, Handle& out) noexcept {
    int d = ::fcntl(h, F_DUPFD_CLOEXEC, 3);
    if (d < 0) return last_error();
    out.reset(d);
    return {};
}

std::error_code make_private(native_handle h) noexcept {
    const int flags = ::fcntl(h, F_GETFD);
    if (flags < 0 || ::fcntl(h, F_SETFD, flags | FD_CLOEXEC) < 0) return last_error();
    return {};
}

#if defined(MP_POSIX_PORTABLE)
std::error_code count_open_handles(std::size_t& out) noexcept {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return last_error();
    const rlim_t limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t{1} << 20) ? (rlim_t{1} << 20) : rl.rlim_cur;
    pollfd batch[256];
    std::size_t n = 0;
    for (rlim_t first = 0; first < limit; first += 256) {
        const nfds_t k = static_cast<nfds_t>(limit - first < 256 ? limit - first : 256);
        for (nfds_t i = 0; i < k; ++i) batch[i] = pollfd{static_cast<int>(first + i), 0, 0};
        if (::poll(batch, k, 0) < 0) return last_error();
        for (nfds_t i = 0; i < k; ++i)
            if (!(batch[i].revents & POLLNVAL)) ++n;
    }
    out = n;
    return {};
}
#else
std::error_code count_open_handles(std::size_t& out) noexcept {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return last_error();
    std::size_t n = 0;
    while (const dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    out = n > 0 ? n - 1 : 0;  // the directory stream's own fd
    return {};
}
#endif


std::error_code wait_handles(const native_handle* hs, std::size_t n, const Deadline& deadline,
                             unsigned char* ready) noexcept try {
    // poll(2) takes any number of fds; the few mp::wait is usually given fit on the stack.
    pollfd few[16];
    std::unique_ptr<pollfd[]> many;
    pollfd* fds = few;
    if (n > 16) fds = (many = std::unique_ptr<pollfd[]>(new pollfd[n])).get();
    for (std::size_t i = 0; i < n; ++i) fds[i] = pollfd{hs[i], POLLIN, 0};
    int r = 0;
    if (auto ec = poll_until(fds, n, deadline, r)) return ec;
    for (std::size_t i = 0; i < n; ++i) {
        if (fds[i].revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
        ready[i] = (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
    }
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code poll_until(pollfd* fds, std::size_t n, const Deadline& deadline, int& ready) noexcept {
    ready = 0;
    for (;;) {
        const int r = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(deadline.wait_ms()));
        if (r > 0) {
            ready = r;
            return {};
        }
        if (r < 0 && errno != EINTR) return last_error();
        if (deadline.passed()) return {};  // r == 0 (or EINTR) with the time used up
    }
}

// wait_objects() and finish_overlapped() are Windows-only: POSIX waits on descriptors with poll_until.

}  // namespace mp::sys

namespace mp::sys {

std::uintptr_t inherited_value(native_handle, std::size_t index) noexcept { return 3 + index; }

native_handle handle_from_value(std::uintptr_t v) noexcept { return static_cast<native_handle>(v); }

std::uintptr_t handle_to_value(native_handle h) noexcept { return static_cast<std::uintptr_t>(h); }

}  // namespace mp::sys
