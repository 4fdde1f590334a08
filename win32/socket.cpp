// win32/socket.cpp - stream sockets on Windows (Winsock).
//
// Winsock is a library that must be started once per process (WSAStartup, done here on first
// use through a function-local static). A SOCKET is a kernel handle in practice but must be
// closed with closesocket() and reports errors through WSAGetLastError() (WSAE* codes, which
// live in the same number space as GetLastError and go through the Win32 error category,
// win32/error.cpp). Sockets are made with WSA_FLAG_NO_HANDLE_INHERIT; accepted ones come back
// inheritable (seen under Wine), so the flag is cleared at once. Waiting is select(), which has
// no EINTR. There is no SIGPIPE: a closed peer is an error code. A SOCKET inherited by a child
// is not usable there (only WSADuplicateSocketW with the child's pid passes one), so mp passes
// no socket to a spawned child (socket_inherit_problem says why). SO_REUSEADDR would let
// another socket steal a port in use, so a Listener binds without it. Randomness comes from
// RtlGenRandom. A Connection's end that is a SOCKET (a Listener or Client connection over TCP)
// is no pipe either: win32/connection.cpp hands its writes and reads to socket_end_write and
// socket_end_read_some at the end of this file (blocking send/recv, select() for a timed
// write). The Listener's default family is a named pipe (win32/named_pipe.cpp).
// POSIX differs: a socket is an fd (close, poll, read/write all work on it, so a socket
// Connection is the ordinary posix/connection.cpp code), SOCK_CLOEXEC at birth, MSG_NOSIGNAL on
// sends, EINTR to retry, SO_REUSEADDR on a Listener's port, AF_UNIX paths as the Listener's
// default family, and fds pass to children freely.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <ntsecapi.h>

#include "../common/sys/socket.hpp"

#include <chrono>
#include <cstring>

#include "../common/sys/os.hpp"
#include "../common/sys/error.hpp"

namespace mp::sys {

namespace {

SOCKET to_sock(native_handle h) noexcept { return static_cast<SOCKET>(reinterpret_cast<std::uintptr_t>(h)); }
native_handle from_sock(SOCKET s) noexcept { return reinterpret_cast<native_handle>(static_cast<std::uintptr_t>(s)); }


// WSAStartup once per process; its result is kept, so a failure is reported by every call.
int winsock() noexcept {
    static const int rc = [] {
        WSADATA data;
        return WSAStartup(MAKEWORD(2, 2), &data);
    }();
    return rc;
}

int native_family(SockFamily f) noexcept { return f == SockFamily::inet6 ? AF_INET6 : AF_INET; }

std::error_code to_native(const SockAddress& a, sockaddr_storage& ss, int& len) noexcept {
    std::memset(&ss, 0, sizeof ss);
    if (a.family == SockFamily::unix_path) return std::make_error_code(std::errc::address_family_not_supported);
    if (a.port < 0 || a.port > 65535) return std::make_error_code(std::errc::invalid_argument);
    addrinfo hints{};
    hints.ai_family = native_family(a.family);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = a.host.empty() ? AI_PASSIVE : 0;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(a.host.empty() ? nullptr : a.host.c_str(), "0", &hints, &res);
    if (rc != 0 || !res) return std::make_error_code(std::errc::address_not_available);
    std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
    len = static_cast<int>(res->ai_addrlen);
    ::freeaddrinfo(res);
    const auto port = htons(static_cast<u_short>(a.port));
    if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = port;
    else reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = port;
    return {};
}

void from_native(const sockaddr_storage& ss, SockAddress& out) noexcept {
    out = SockAddress{};
    char text[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        out.host = text;
        out.port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        out.family = SockFamily::inet6;
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        out.host = text;
        out.port = ntohs(in6->sin6_port);
    }
}

std::error_code set_nonblocking(SOCKET s, bool on) noexcept {
    u_long v = on ? 1 : 0;
    if (::ioctlsocket(s, FIONBIO, &v) != 0) return last_socket_error();
    return {};
}

}  // namespace

void SocketHandle::reset(native_handle h) noexcept {
    if (h_ != invalid_handle()) socket_close(h_);
    h_ = h;
}

std::error_code socket_create(SockFamily family, SocketHandle& out) noexcept {
    if (family == SockFamily::unix_path) return std::make_error_code(std::errc::address_family_not_supported);
    if (const int rc = winsock()) return os_error(rc);
    const SOCKET s = ::WSASocketW(native_family(family), SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                                  WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) return last_socket_error();
    SocketHandle owned(from_sock(s));
    if (auto ec = set_nonblocking(s, true)) return ec;
    out = std::move(owned);
    return {};
}

std::error_code socket_close(native_handle s) noexcept {
    if (::closesocket(to_sock(s)) != 0) return last_socket_error();
    return {};
}

std::error_code socket_set_blocking(native_handle s, bool blocking) noexcept {
    return set_nonblocking(to_sock(s), !blocking);
}

std::error_code socket_set_reuseaddr(native_handle s, bool on) noexcept {
    // Windows' SO_REUSEADDR lets another socket steal a port in use (POSIX's does not); a
    // listening port stays exclusive through SO_EXCLUSIVEADDRUSE, which is left alone here, and
    // a port in TIME_WAIT can be rebound on Windows without any option. So the flag is set as
    // asked, as CPython does.
    const BOOL v = on ? TRUE : FALSE;
    if (::setsockopt(to_sock(s), SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const char*>(&v), sizeof v) != 0)
        return last_socket_error();
    return {};
}

std::error_code socket_bind(native_handle s, const SockAddress& a) noexcept {
    sockaddr_storage ss;
    int len = 0;
    if (auto ec = to_native(a, ss, len)) return ec;
    if (::bind(to_sock(s), reinterpret_cast<const sockaddr*>(&ss), len) != 0) return last_socket_error();
    return {};
}

// SO_REUSEADDR stays off: on Windows it would let another socket steal the port while we
// listen, and a port in TIME_WAIT can be rebound without it.
std::error_code socket_bind_listener(native_handle s, const SockAddress& a) noexcept { return socket_bind(s, a); }

std::error_code socket_listen(native_handle s, int backlog) noexcept {
    if (::listen(to_sock(s), backlog) != 0) return last_socket_error();
    return {};
}

std::error_code socket_wait(native_handle s, bool for_write, const Deadline& deadline, bool& ready) noexcept {
    ready = false;
    const SOCKET sock = to_sock(s);
    for (;;) {
        fd_set main_set, error_set;
        FD_ZERO(&main_set);
        FD_ZERO(&error_set);
        FD_SET(sock, &main_set);
        FD_SET(sock, &error_set);  // a failed connect shows here, not as writable
        timeval tv{};
        timeval* ptv = nullptr;
        if (!deadline.is_never()) {
            // select() takes microseconds: rounded up, so that it never ends early by rounding.
            const auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline.left()).count() +
                            (deadline.passed() ? 0 : 1);
            const long long capped = us > 2000000000000LL ? 2000000000000LL : us;
            tv.tv_sec = static_cast<long>(capped / 1000000);
            tv.tv_usec = static_cast<long>(capped % 1000000);
            ptv = &tv;
        }
        const int r = ::select(0, for_write ? nullptr : &main_set, for_write ? &main_set : nullptr, &error_set, ptv);
        if (r == SOCKET_ERROR) return last_socket_error();
        if (r > 0) {
            ready = true;
            return {};
        }
        if (deadline.passed()) return {};  // select can end a little early
    }
}

std::error_code socket_accept(native_handle s, SocketHandle& out, SockAddress& peer) noexcept {
    sockaddr_storage ss{};
    int len = sizeof ss;
    const SOCKET c = ::accept(to_sock(s), reinterpret_cast<sockaddr*>(&ss), &len);
    if (c == INVALID_SOCKET) {
        const int e = WSAGetLastError();
        if (e == WSAECONNRESET) return std::make_error_code(std::errc::operation_would_block);  // died in the backlog
        return os_error(e);
    }
    SocketHandle owned(from_sock(c));
    // The accepted socket does not take the listener's non-inheritable flag (seen under Wine).
    if (!SetHandleInformation(reinterpret_cast<HANDLE>(c), HANDLE_FLAG_INHERIT, 0)) return last_error();
    if (auto ec = set_nonblocking(c, true)) return ec;
    from_native(ss, peer);
    out = std::move(owned);
    return {};
}

// The deadline bounds only a full Unix-socket backlog on POSIX; Windows has no Unix sockets
// here, and a TCP connect to a full backlog goes on asynchronously (or is refused).
std::error_code socket_connect_start(native_handle s, const SockAddress& a, const Deadline& /*deadline*/,
                                     bool& in_progress) noexcept {
    in_progress = false;
    sockaddr_storage ss;
    int len = 0;
    if (auto ec = to_native(a, ss, len)) return ec;
    if (::connect(to_sock(s), reinterpret_cast<const sockaddr*>(&ss), len) == 0) return {};
    const int e = WSAGetLastError();
    if (e == WSAEWOULDBLOCK || e == WSAEINPROGRESS) {
        in_progress = true;
        return {};
    }
    return os_error(e);
}

std::error_code socket_connect_result(native_handle s) noexcept {
    int err = 0;
    int len = sizeof err;
    if (::getsockopt(to_sock(s), SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&err), &len) != 0) return last_socket_error();
    if (err) return os_error(err);
    return {};
}

std::error_code socket_send(native_handle s, const void* data, std::size_t n, std::size_t& sent) noexcept {
    sent = 0;
    const int chunk = n > 0x40000000 ? 0x40000000 : static_cast<int>(n);
    const int w = ::send(to_sock(s), static_cast<const char*>(data), chunk, 0);
    if (w == SOCKET_ERROR) {
        const int e = WSAGetLastError();
        if (e == WSAESHUTDOWN) return std::make_error_code(std::errc::broken_pipe);
        return os_error(e);
    }
    sent = static_cast<std::size_t>(w);
    return {};
}

std::error_code socket_recv(native_handle s, void* data, std::size_t n, std::size_t& got) noexcept {
    got = 0;
    const int chunk = n > 0x40000000 ? 0x40000000 : static_cast<int>(n);
    const int r = ::recv(to_sock(s), static_cast<char*>(data), chunk, 0);
    if (r == SOCKET_ERROR) return last_socket_error();
    got = static_cast<std::size_t>(r);
    return {};
}

std::error_code socket_shutdown(native_handle s, int how) noexcept {
    const int native = how == 0 ? SD_RECEIVE : how == 1 ? SD_SEND : SD_BOTH;
    if (::shutdown(to_sock(s), native) != 0) return last_socket_error();
    return {};
}

std::error_code socket_name(native_handle s, bool peer, SockAddress& out) noexcept {
    sockaddr_storage ss{};
    int len = sizeof ss;
    const int r = peer ? ::getpeername(to_sock(s), reinterpret_cast<sockaddr*>(&ss), &len)
                       : ::getsockname(to_sock(s), reinterpret_cast<sockaddr*>(&ss), &len);
    if (r != 0) return last_socket_error();
    from_native(ss, out);
    return {};
}

const char* socket_inherit_problem() noexcept {
    return "an inherited SOCKET is not usable in a child on Windows (only WSADuplicateSocketW aimed at the "
           "child's pid passes one, and the child does not exist yet when its arguments are encoded)";
}

std::error_code random_bytes(void* data, std::size_t n) noexcept {
    auto* p = static_cast<unsigned char*>(data);
    while (n > 0) {
        const ULONG chunk = n > 0x10000 ? 0x10000 : static_cast<ULONG>(n);
        if (!RtlGenRandom(p, chunk)) return last_error();
        p += chunk;
        n -= chunk;
    }
    return {};
}

namespace {

bool is_peer_gone(int e) noexcept {
    return e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAESHUTDOWN || e == WSAENOTCONN;
}

}  // namespace

std::error_code socket_end_write(native_handle s, const char* p, std::size_t n, const Deadline& deadline,
                                 std::size_t& total) noexcept {
    // With a deadline the socket is switched to non-blocking for the call (a Windows socket end
    // never leaves this process, so no one else sees the mode change), and select() waits for
    // room until the deadline.
    const bool forever = deadline.is_never();
    const SOCKET sock = to_sock(s);
    if (!forever) {
        if (auto ec = set_nonblocking(sock, true)) return ec;
    }
    std::error_code ec;
    while (n > 0) {
        const int chunk = n > 0x40000000 ? 0x40000000 : static_cast<int>(n);
        const int w = ::send(sock, p, chunk, 0);
        if (w == SOCKET_ERROR) {
            const int e = WSAGetLastError();
            if (e == WSAEWOULDBLOCK) {
                bool room = false;
                if ((ec = socket_wait(s, true, deadline, room))) break;
                if (!room) {
                    ec = std::make_error_code(std::errc::timed_out);
                    break;
                }
                continue;
            }
            ec = is_peer_gone(e) ? std::make_error_code(std::errc::broken_pipe) : os_error(e);
            break;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
        total += static_cast<std::size_t>(w);
    }
    if (!forever) set_nonblocking(sock, false);
    return ec;
}

std::error_code socket_end_read_some(native_handle s, void* data, std::size_t n, std::size_t& got) noexcept {
    got = 0;
    const int chunk = n > 0x40000000 ? 0x40000000 : static_cast<int>(n);
    const int r = ::recv(to_sock(s), static_cast<char*>(data), chunk, 0);
    if (r == SOCKET_ERROR) {
        const int e = WSAGetLastError();
        if (is_peer_gone(e)) return {};  // a peer that reset or shut down: end of file, as on POSIX
        return os_error(e);
    }
    got = static_cast<std::size_t>(r);
    return {};
}

}  // namespace mp::sys
