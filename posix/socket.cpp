// posix/socket.cpp - stream sockets on POSIX (BSD sockets).
//
// A socket is an fd like any other: close() releases it, poll() waits on it, read()/write()
// work on a connected one, and fork/exec pass it like a pipe (so a Connection over a socket is
// the ordinary posix/connection.cpp code). Sockets are born non-blocking and close-on-exec
// (SOCK_NONBLOCK | SOCK_CLOEXEC, and accept4 for accepted ones) so that no fork on another
// thread can leak them. Sends pass MSG_NOSIGNAL: a closed peer is EPIPE, never SIGPIPE.
// AF_UNIX sockets are named by a filesystem path. Every call is retried on EINTR; a connect
// interrupted by a signal goes on in the background, so it is finished with a wait for
// writability like a non-blocking one. A Listener's TCP port gets SO_REUSEADDR, so that a
// restarted server can bind it again while it is in TIME_WAIT. Randomness comes from getrandom().
// Windows differs: Winsock must be started (WSAStartup), a SOCKET is closed with closesocket()
// and waited on with select(), errors come from WSAGetLastError(), a connected socket is not a
// pipe (a Connection's end that is a socket goes through socket_end_write/read_some there),
// SO_REUSEADDR means something else (a Listener binds without it), sockets cannot be
// inherited usefully (only WSADuplicateSocketW passes one), and the Listener's default family
// is a named pipe (win32/named_pipe.cpp).
#include "../common/sys/socket.hpp"
#include "../common/sys/error.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

namespace mp::sys {


void SocketHandle::reset(native_handle h) noexcept {
    if (h_ != invalid_handle()) socket_close(h_);
    h_ = h;
}

static int native_family(SockFamily f) noexcept {
    switch (f) {
        case SockFamily::inet: return AF_INET;
        case SockFamily::inet6: return AF_INET6;
        case SockFamily::unix_path: return AF_UNIX;
    }
    return AF_UNSPEC;
}

// Fills ss from a portable address: a path, or a host resolved with getaddrinfo (numeric
// hosts need no lookup; "" is the wildcard address, as in Python).
static std::error_code to_native(const SockAddress& a, sockaddr_storage& ss, socklen_t& len) noexcept {
    std::memset(&ss, 0, sizeof ss);
    if (a.family == SockFamily::unix_path) {
        auto* un = reinterpret_cast<sockaddr_un*>(&ss);
        if (a.path.empty() || a.path.size() >= sizeof un->sun_path) return std::make_error_code(std::errc::filename_too_long);
        un->sun_family = AF_UNIX;
        std::memcpy(un->sun_path, a.path.data(), a.path.size());
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + a.path.size() + 1);
        return {};
    }
    if (a.port < 0 || a.port > 65535) return std::make_error_code(std::errc::invalid_argument);
    addrinfo hints{};
    hints.ai_family = native_family(a.family);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = a.host.empty() ? AI_PASSIVE : 0;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(a.host.empty() ? nullptr : a.host.c_str(), "0", &hints, &res);
    if (rc != 0 || !res) {
        if (rc == EAI_SYSTEM) return last_error();
        return std::make_error_code(std::errc::address_not_available);
    }
    std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    ::freeaddrinfo(res);
    const auto port = htons(static_cast<std::uint16_t>(a.port));
    if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = port;
    else reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = port;
    return {};
}

static void from_native(const sockaddr_storage& ss, socklen_t len, SockAddress& out) noexcept {
    out = SockAddress{};
    char text[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        out.family = SockFamily::inet;
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        out.host = text;
        out.port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        out.family = SockFamily::inet6;
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        out.host = text;
        out.port = ntohs(in6->sin6_port);
    } else if (ss.ss_family == AF_UNIX) {
        const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
        out.family = SockFamily::unix_path;
        const std::size_t max = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
        out.path.assign(un->sun_path, strnlen(un->sun_path, max));  // an unnamed peer is ""
    }
}

std::error_code socket_create(SockFamily family, SocketHandle& out) noexcept {
    const int fd = ::socket(native_family(family), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return last_socket_error();
    out.reset(fd);
    return {};
}

std::error_code socket_close(native_handle s) noexcept {
    if (::close(s) != 0 && errno != EINTR) return last_socket_error();  // never retried: the fd is gone
    return {};
}

std::error_code socket_set_blocking(native_handle s, bool blocking) noexcept {
    const int flags = ::fcntl(s, F_GETFL);
    if (flags < 0 || ::fcntl(s, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK) != 0)
        return last_socket_error();
    return {};
}

std::error_code socket_set_reuseaddr(native_handle s, bool on) noexcept {
    const int v = on ? 1 : 0;
    if (::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, sizeof v) != 0) return last_socket_error();
    return {};
}

std::error_code socket_bind(native_handle s, const SockAddress& a) noexcept {
    sockaddr_storage ss;
    socklen_t len = 0;
    if (auto ec = to_native(a, ss, len)) return ec;
    if (::bind(s, reinterpret_cast<const sockaddr*>(&ss), len) != 0) return last_socket_error();
    return {};
}

std::error_code socket_bind_listener(native_handle s, const SockAddress& a) noexcept {
    // A restarted server can rebind a port still in TIME_WAIT (as CPython does). POSIX's
    // SO_REUSEADDR lets no one take a port that is listening; a Unix socket has no port.
    if (a.family != SockFamily::unix_path) {
        if (auto ec = socket_set_reuseaddr(s, true)) return ec;
    }
    return socket_bind(s, a);
}

std::error_code socket_listen(native_handle s, int backlog) noexcept {
    if (::listen(s, backlog) != 0) return last_socket_error();
    return {};
}

std::error_code socket_wait(native_handle s, bool for_write, const Deadline& deadline, bool& ready) noexcept {
    pollfd p{s, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    int n = 0;
    if (auto ec = poll_until(&p, 1, deadline, n)) return ec;
    if (p.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
    ready = n > 0;
    return {};
}

std::error_code socket_accept(native_handle s, SocketHandle& out, SockAddress& peer) noexcept {
    sockaddr_storage ss{};
    for (;;) {
        socklen_t len = sizeof ss;
        const int fd = ::accept4(s, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            // Linux reports a connection that died in the backlog as an error of accept():
            // POSIX says to try again, so it is reported as "nothing there yet".
            if (errno == ECONNABORTED) return std::make_error_code(std::errc::operation_would_block);
            return last_socket_error();
        }
        out.reset(fd);
        from_native(ss, len, peer);
        return {};
    }
}

// A non-blocking connect to a Unix socket whose listener's backlog is full fails with EAGAIN:
// Linux queues only what fits. A blocking connect waits for room, up to SO_SNDTIMEO, so the
// socket is made blocking with that timeout for as long as the backlog stays full.
static std::error_code connect_unix_waiting(native_handle s, const sockaddr* sa, socklen_t len,
                                            const Deadline& deadline) noexcept {
    const int flags = ::fcntl(s, F_GETFL);
    if (flags < 0 || ::fcntl(s, F_SETFL, flags & ~O_NONBLOCK) != 0) return last_socket_error();
    std::error_code result;
    for (;;) {
        timeval tv{};  // zero: no limit
        if (!deadline.is_never()) {
            if (deadline.passed()) {
                result = std::make_error_code(std::errc::timed_out);
                break;
            }
            const auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline.left()).count() + 1;
            tv.tv_sec = static_cast<time_t>(us / 1000000);
            tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
        }
        if (::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
            result = last_socket_error();
            break;
        }
        if (::connect(s, sa, len) == 0) break;
        if (errno == EINTR) continue;  // not connected: try again with the time left
        if (errno == EAGAIN) continue;  // SO_SNDTIMEO ran out: the deadline check above decides
        result = last_socket_error();
        break;
    }
    const timeval none{};
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    ::fcntl(s, F_SETFL, flags);
    return result;
}

std::error_code socket_connect_start(native_handle s, const SockAddress& a, const Deadline& deadline,
                                     bool& in_progress) noexcept {
    in_progress = false;
    sockaddr_storage ss;
    socklen_t len = 0;
    if (auto ec = to_native(a, ss, len)) return ec;
    if (::connect(s, reinterpret_cast<const sockaddr*>(&ss), len) == 0) return {};
    // EINTR: the connect goes on asynchronously, and is finished like a non-blocking one.
    if (errno == EINPROGRESS || errno == EINTR) {
        in_progress = true;
        return {};
    }
    if (errno == EAGAIN && a.family == SockFamily::unix_path) {
        if (deadline.passed()) return std::make_error_code(std::errc::operation_would_block);
        return connect_unix_waiting(s, reinterpret_cast<const sockaddr*>(&ss), len, deadline);
    }
    return last_socket_error();
}

std::error_code socket_connect_result(native_handle s) noexcept {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return last_socket_error();
    if (err) return os_error(err);
    return {};
}

std::error_code socket_send(native_handle s, const void* data, std::size_t n, std::size_t& sent) noexcept {
    sent = 0;
    for (;;) {
        const ssize_t w = ::send(s, data, n, MSG_NOSIGNAL);
        if (w >= 0) {
            sent = static_cast<std::size_t>(w);
            return {};
        }
        if (errno == EINTR) continue;
        return last_socket_error();
    }
}

std::error_code socket_recv(native_handle s, void* data, std::size_t n, std::size_t& got) noexcept {
    got = 0;
    for (;;) {
        const ssize_t r = ::recv(s, data, n, 0);
        if (r >= 0) {
            got = static_cast<std::size_t>(r);
            return {};
        }
        if (errno == EINTR) continue;
        return last_socket_error();
    }
}

std::error_code socket_shutdown(native_handle s, int how) noexcept {
    const int native = how == 0 ? SHUT_RD : how == 1 ? SHUT_WR : SHUT_RDWR;
    if (::shutdown(s, native) != 0) return last_socket_error();
    return {};
}

std::error_code socket_name(native_handle s, bool peer, SockAddress& out) noexcept {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int r = peer ? ::getpeername(s, reinterpret_cast<sockaddr*>(&ss), &len)
                       : ::getsockname(s, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r != 0) return last_socket_error();
    from_native(ss, len, out);
    return {};
}

const char* socket_inherit_problem() noexcept { return nullptr; }  // an fd passes like any other

std::error_code random_bytes(void* data, std::size_t n) noexcept {
    auto* p = static_cast<unsigned char*>(data);
    while (n > 0) {
        const ssize_t r = ::getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return last_socket_error();
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return {};
}

// socket_end_write() and socket_end_read_some() are Windows-only: a POSIX socket end is an fd,
// which posix/connection.cpp reads and writes as it is.

}  // namespace mp::sys
