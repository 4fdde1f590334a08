// win32/socket.cpp - stream sockets (Winsock) and the Listener's named pipes on Windows.
//
// Winsock is a library that must be started once per process (WSAStartup, done here on first
// use through a function-local static). A SOCKET is a kernel handle in practice but must be
// closed with closesocket() and reports errors through WSAGetLastError() (WSAE* codes, which
// live in the same number space as GetLastError and go through the Win32 error category, win32/error.cpp). Sockets are
// made with WSA_FLAG_NO_HANDLE_INHERIT; accepted ones come back inheritable (seen under Wine),
// so the flag is cleared at once. Waiting is select(), which has no EINTR. There is no SIGPIPE:
// a closed peer is an error code. A SOCKET handle inherited by a child is not usable there
// (only WSADuplicateSocketW with the child's pid passes a socket), so mp does not pass sockets
// to spawned children on Windows (common/socket.cpp explains the error). Randomness comes from
// RtlGenRandom.
// The Listener's default family on Windows is a named pipe (\\.\pipe\name): instances made
// with CreateNamedPipeW (overlapped, owner-only DACL, FILE_FLAG_FIRST_PIPE_INSTANCE for the
// first), a client waited for with an overlapped ConnectNamedPipe, the client end opened with
// CreateFileW (WaitNamedPipeW while every instance is busy).
// POSIX differs: a socket is an fd (close, poll, read/write all work on it, so a socket
// Connection is the ordinary pipe code), SOCK_CLOEXEC at birth, MSG_NOSIGNAL on sends, EINTR
// to retry, AF_UNIX paths as the Listener's default family, and fds pass to children freely.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <ntsecapi.h>

#include "../common/sys/socket.hpp"

#include <chrono>
#include <cstring>
#include <vector>

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

std::error_code socket_to_pipe_end(SocketHandle&& s, PipeEnd& out) noexcept {
    if (auto ec = set_nonblocking(to_sock(s.get()), false)) return ec;
    out.h.reset(s.release());
    out.is_socket = true;  // win32/pipe.cpp then uses send/recv/select, and closesocket
    return {};
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

std::error_code named_pipe_create(const std::string& name, bool first, Handle& out) noexcept {
    std::wstring wname;
    try {
        wname = widen(name);
    } catch (...) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    // A DACL that lets only this user (the token's user SID) open the pipe: the default DACL
    // would also admit Everyone for reading and other logon sessions' administrators.
    HANDLE token = nullptr;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return last_error();
    Handle token_owner(token);
    DWORD size = 0;
    GetTokenInformation(token, TokenUser, nullptr, 0, &size);
    std::vector<unsigned char> user(size ? size : 1);
    if (!GetTokenInformation(token, TokenUser, user.data(), size, &size)) return last_error();
    PSID sid = reinterpret_cast<TOKEN_USER*>(user.data())->User.Sid;
    const DWORD acl_size = sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + GetLengthSid(sid);
    std::vector<unsigned char> acl_buf(acl_size);
    auto* acl = reinterpret_cast<ACL*>(acl_buf.data());
    SECURITY_DESCRIPTOR sd;
    if (!InitializeAcl(acl, acl_size, ACL_REVISION) || !AddAccessAllowedAce(acl, ACL_REVISION, GENERIC_ALL, sid) ||
        !InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION) || !SetSecurityDescriptorDacl(&sd, TRUE, acl, FALSE))
        return last_error();
    SECURITY_ATTRIBUTES sa{sizeof sa, &sd, FALSE};  // not inheritable
    const DWORD buffer = 64 * 1024;
    const DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
    HANDLE h = CreateNamedPipeW(wname.c_str(), open_mode,
                                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                PIPE_UNLIMITED_INSTANCES, buffer, buffer, 0, &sa);
    if (h == INVALID_HANDLE_VALUE) return last_error();
    out.reset(h);
    return {};
}

std::error_code named_pipe_accept(Handle& instance, const Deadline& deadline, bool& connected) noexcept {
    connected = false;
    Handle ev(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    if (!ev) return last_error();
    OVERLAPPED ov{};
    ov.hEvent = ev.get();
    if (ConnectNamedPipe(instance.get(), &ov)) {
        connected = true;
        return {};
    }
    const DWORD e = GetLastError();
    // PIPE_CONNECTED: a client came between CreateNamedPipeW and now. NO_DATA: it came and
    // already went; the Connection then reads end of file, as for any closed peer.
    if (e == ERROR_PIPE_CONNECTED || e == ERROR_NO_DATA) {
        connected = true;
        return {};
    }
    if (e != ERROR_IO_PENDING) return os_error(e);
    bool ok = false;
    unsigned long r = 0, ignored = 0;
    if (auto ec = finish_overlapped(instance.get(), ov, deadline, ok, r, ignored)) return ec;
    // A client that won the race with the cancel is kept.
    if (ok || r == ERROR_PIPE_CONNECTED || r == ERROR_NO_DATA) {
        connected = true;
        return {};
    }
    if (r == ERROR_OPERATION_ABORTED) return {};  // timed out
    return os_error(static_cast<int>(r));
}

std::error_code named_pipe_connect(const std::string& name, const Deadline& deadline, PipeEnd& out) noexcept {
    std::wstring wname;
    try {
        wname = widen(name);
    } catch (...) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    for (;;) {
        // SECURITY_IDENTIFICATION: the server may learn who connected, never act as the
        // client (a squatter that made the pipe first could otherwise take the client's token
        // with ImpersonateNamedPipeClient before any authentication).
        HANDLE h = CreateFileW(wname.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                               FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
        if (h != INVALID_HANDLE_VALUE) {
            out.h.reset(h);
            return {};
        }
        const DWORD e = GetLastError();
        if (e != ERROR_PIPE_BUSY) return os_error(e);
        // Every instance is taken: wait for one (the Listener makes a new one per accept).
        if (deadline.passed()) return std::make_error_code(std::errc::timed_out);
        const long left = deadline.wait_ms();
        const DWORD wait = left < 0 ? NMPWAIT_WAIT_FOREVER : static_cast<DWORD>(left == 0 ? 1 : left);
        if (!WaitNamedPipeW(wname.c_str(), wait)) {
            const DWORD w = GetLastError();
            if (w == ERROR_SEM_TIMEOUT) continue;  // the loop checks the deadline
            return os_error(w);
        }
    }
}

}  // namespace mp::sys
