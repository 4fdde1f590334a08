// common/sys/socket.hpp - the internal contract for stream sockets (mp::Socket, and the socket
// families of Listener and Client) and the OS random source used by the authentication
// handshake. The Listener's named pipes (Windows) are in sys/named_pipe.hpp.
//
// posix/socket.cpp and win32/socket.cpp implement these functions, in this order. Everything
// here is noexcept and reports std::error_code; common/socket.cpp and common/listener.cpp add
// timeouts, Python's exception types and the handshake. A connected socket becomes a
// Connection's end through end_from_socket (sys/connection.hpp).
// Sockets made here are non-blocking (the timeouts of mp::Socket are a wait for readiness
// followed by one non-blocking call, as CPython does), close-on-exec / non-inheritable, and
// never raise SIGPIPE. A call that would block returns std::errc::operation_would_block, on
// both platforms.
#pragma once

#include <cstddef>
#include <string>
#include <system_error>
#include <utility>

#include "handle.hpp"

namespace mp::sys {

// The families mp::Socket knows (the same values as mp::AddressFamily).
enum class SockFamily : int { inet = 0, inet6 = 1, unix_path = 2 };

// An address in portable form: host (numeric or a name to resolve) and port for inet/inet6,
// path for unix_path.
struct SockAddress {
    SockFamily family = SockFamily::inet;
    std::string host;
    int port = 0;
    std::string path;
};

// Owns a socket. Windows closes a SOCKET with closesocket(), never CloseHandle(), which is why
// this is not a sys::Handle.
class SocketHandle {
public:
    SocketHandle() noexcept = default;
    explicit SocketHandle(native_handle h) noexcept : h_(h) {}
    SocketHandle(SocketHandle&& o) noexcept : h_(o.release()) {}
    SocketHandle& operator=(SocketHandle&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    SocketHandle(const SocketHandle&) = delete;
    SocketHandle& operator=(const SocketHandle&) = delete;
    ~SocketHandle() { reset(); }
    native_handle get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != invalid_handle(); }
    native_handle release() noexcept { return std::exchange(h_, invalid_handle()); }
    void reset(native_handle h = invalid_handle()) noexcept;

private:
    native_handle h_ = invalid_handle();
};

// Creates a non-blocking SOCK_STREAM socket. unix_path on Windows: address_family_not_supported.
std::error_code socket_create(SockFamily family, SocketHandle& out) noexcept;
std::error_code socket_close(native_handle s) noexcept;
// Sockets are born non-blocking; a Connection's end is made blocking (end_from_socket).
std::error_code socket_set_blocking(native_handle s, bool blocking) noexcept;
std::error_code socket_set_reuseaddr(native_handle s, bool on) noexcept;
std::error_code socket_bind(native_handle s, const SockAddress& a) noexcept;
// Binds a Listener's socket. POSIX first sets SO_REUSEADDR on an inet socket, so that a
// restarted server can rebind a port still in TIME_WAIT (as CPython does); Windows binds
// without it, because there the option lets another socket steal a port in use (and a port in
// TIME_WAIT can be rebound anyway).
std::error_code socket_bind_listener(native_handle s, const SockAddress& a) noexcept;
std::error_code socket_listen(native_handle s, int backlog) noexcept;

// Waits until a read (or accept), or a write (or a connect's completion), would not block, or
// the deadline passes (ready false); an error or hang-up state counts as ready (the call that
// follows reports it).
std::error_code socket_wait(native_handle s, bool for_write, const Deadline& deadline, bool& ready) noexcept;

// One non-blocking accept. The new socket is non-blocking, close-on-exec / non-inheritable.
std::error_code socket_accept(native_handle s, SocketHandle& out, SockAddress& peer) noexcept;
// Starts a non-blocking connect: in_progress says that completion must be waited for
// (socket_wait for write), then read with socket_connect_result. The deadline bounds the one
// case that cannot go on asynchronously: a Unix socket whose listener's backlog is full
// (Linux fails such a connect with EAGAIN rather than queueing it), which is then waited out
// here; timed_out when it stays full, operation_would_block for a deadline already passed.
std::error_code socket_connect_start(native_handle s, const SockAddress& a, const Deadline& deadline,
                                     bool& in_progress) noexcept;
std::error_code socket_connect_result(native_handle s) noexcept;
// One non-blocking send / recv. A closed peer: send gives broken_pipe (no SIGPIPE), recv
// gives got = 0.
std::error_code socket_send(native_handle s, const void* data, std::size_t n, std::size_t& sent) noexcept;
std::error_code socket_recv(native_handle s, void* data, std::size_t n, std::size_t& got) noexcept;
// how: 0 read, 1 write, 2 both (SHUT_RD/WR/RDWR, SD_RECEIVE/SEND/BOTH).
std::error_code socket_shutdown(native_handle s, int how) noexcept;
std::error_code socket_name(native_handle s, bool peer, SockAddress& out) noexcept;

// Why a socket cannot be passed to a spawned child, or nullptr when it can. POSIX: it can (an
// fd passes like any other). Windows: an inherited SOCKET is not usable in the child.
const char* socket_inherit_problem() noexcept;

// Fills data with n bytes from the OS's cryptographic random source.
std::error_code random_bytes(void* data, std::size_t n) noexcept;

#if defined(_WIN32)
// ---- Windows only: a Connection's end that is a SOCKET (for win32/connection.cpp) -----------
// A SOCKET is no pipe, so the end's writes and reads go through Winsock. The end is blocking
// (end_from_socket); a peer that reset or shut down reads as end of file and is broken_pipe to
// a write, as on a pipe.

// Sends p[0..n) completely; with a deadline, waits in select() for room until it passes
// (timed_out). total counts what went out either way.
std::error_code socket_end_write(native_handle s, const char* p, std::size_t n, const Deadline& deadline,
                                 std::size_t& total) noexcept;
// One blocking recv of at most n bytes: got = 0 at end of file.
std::error_code socket_end_read_some(native_handle s, void* data, std::size_t n, std::size_t& got) noexcept;
#endif

}  // namespace mp::sys
