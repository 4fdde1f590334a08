// common/sys/socket.hpp - the internal contract for stream sockets, the Listener's named pipes
// (Windows) and the OS random source used by the authentication handshake.
//
// posix/socket.cpp and win32/socket.cpp implement these functions, in this order. Everything
// here is noexcept and reports std::error_code; common/socket.cpp and common/listener.cpp add
// timeouts, Python's exception types and the handshake.
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
#include "pipe.hpp"

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
std::error_code socket_set_reuseaddr(native_handle s, bool on) noexcept;
std::error_code socket_bind(native_handle s, const SockAddress& a) noexcept;
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

// Hands a connected socket over to a Connection end: made blocking again (Connection's reads
// and writes block) and marked as a socket where the platform needs to know.
std::error_code socket_to_pipe_end(SocketHandle&& s, PipeEnd& out) noexcept;

// Fills data with n bytes from the OS's cryptographic random source.
std::error_code random_bytes(void* data, std::size_t n) noexcept;

// Named-pipe Listener instances (Windows only; POSIX has placeholders that report
// not_supported). name is UTF-8 (\\.\pipe\...). first: the first instance, made with
// FILE_FLAG_FIRST_PIPE_INSTANCE so that a squatter who made the name first is an error.
std::error_code named_pipe_create(const std::string& name, bool first, Handle& out) noexcept;
// Waits until the deadline for a client to connect to the instance; connected says whether
// one did (false: timed out, the instance is still usable).
std::error_code named_pipe_accept(Handle& instance, const Deadline& deadline, bool& connected) noexcept;
// Opens the client end, waiting until the deadline while every instance is busy.
std::error_code named_pipe_connect(const std::string& name, const Deadline& deadline, PipeEnd& out) noexcept;

}  // namespace mp::sys
