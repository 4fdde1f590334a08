// mp/socket.hpp - mp::Socket, a small portable stream socket (Python's socket.socket for
// SOCK_STREAM), and mp::Address, the address form that mp::Socket and mp::Listener share.
//
//     mp::Socket srv(mp::AddressFamily::inet);          // socket.socket(AF_INET, SOCK_STREAM)
//     srv.setsockopt(mp::SocketOption::reuseaddr, 1);
//     srv.bind(mp::Address::tcp("127.0.0.1", 0));       // port 0: the OS picks a free one
//     srv.listen();
//     int port = srv.getsockname().port;
//     auto [conn, peer] = srv.accept();                  // waits as settimeout() says
//     conn.sendall("OK"); mp::bytes b = conn.recv(1024);
//
// Families: inet (IPv4), inet6, and unix_socket (a filesystem path; POSIX only, Windows gives
// OSError "address family not supported"). named_pipe is a Listener-only family (Windows).
// Timeouts, as in Python: settimeout(std::nullopt) blocks without limit (the default),
// settimeout(t > 0) makes accept/connect/send/sendall/recv raise mp::TimeoutError after t
// seconds (never earlier), settimeout(0) makes them raise BlockingIOError instead of waiting.
// A timeout of sendall bounds the whole call; after it, how much was sent is unknown.
// Errors: ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError
// (a send to a closed peer; never SIGPIPE), TimeoutError, OSError for the rest; a bad address
// (a port outside 0..65535, an empty or too long path) is ValueError.
// Every socket is close-on-exec / non-inheritable. Passing to a child: under fork the child has
// its own copy of the fd; under spawn on POSIX the socket travels as an fd through the codec's
// HandleList (mp_encode); under spawn on Windows it cannot (an inherited SOCKET is unusable in
// the child; only WSADuplicateSocketW with the child's pid passes one, and the codec does not
// know the pid): that is NotImplementedError, and the portable way is to accept or connect in
// the child itself.
// Copies share one socket (shared_ptr), as Python references do; the socket closes with the
// last copy, or at close().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "codec.hpp"
#include "duration.hpp"
#include "errors.hpp"
#include "utf8_path.hpp"

namespace mp {

enum class AddressFamily {
    inet = 0,         // AF_INET: host and port
    inet6 = 1,        // AF_INET6: host and port
    unix_socket = 2,  // AF_UNIX: a filesystem path (POSIX)
    named_pipe = 3,   // Python's AF_PIPE: \\.\pipe\name (Windows, Listener/Client only)
};

struct Address {
    AddressFamily family = AddressFamily::inet;
    std::string host;  // inet/inet6: numeric or a name ("" in bind: every interface)
    int port = 0;      // inet/inet6
    std::string path;  // unix_socket: the socket file; named_pipe: the pipe name

    static Address tcp(std::string host, int port) { return {AddressFamily::inet, std::move(host), port, {}}; }
    static Address tcp6(std::string host, int port) { return {AddressFamily::inet6, std::move(host), port, {}}; }
    static Address unix_socket(std::string path) { return {AddressFamily::unix_socket, {}, 0, std::move(path)}; }
    static Address unix_socket(const std::filesystem::path& path) { return unix_socket(mp::detail::utf8_path(path)); }
    static Address unix_socket(const char* path) { return unix_socket(std::string(path)); }
    static Address pipe(std::string name) { return {AddressFamily::named_pipe, {}, 0, std::move(name)}; }

    // ("127.0.0.1", 5000) / "[::1]:5000" style text for messages; a path as it is.
    std::string to_string() const;
    bool operator==(const Address& o) const {
        return family == o.family && host == o.host && port == o.port && path == o.path;
    }
    bool operator!=(const Address& o) const { return !(*this == o); }
    MP_FIELDS(family, host, port, path)
};

enum class SocketOption { reuseaddr };   // SO_REUSEADDR
enum class Shutdown { read, write, both };  // SHUT_RD / SHUT_WR / SHUT_RDWR

class Socket {
public:
    Socket() = default;  // no socket: closed() is true
    explicit Socket(AddressFamily family);

    void setsockopt(SocketOption option, int value);
    void bind(const Address& address);
    void listen(int backlog = 128);
    // A connected socket (which has the same timeout as this one) and the peer's address.
    std::pair<Socket, Address> accept();
    void connect(const Address& address);

    // One send: how many bytes went (possibly fewer than size).
    std::size_t send(const void* data, std::size_t size);
    std::size_t send(std::string_view s) { return send(s.data(), s.size()); }
    // Sends everything, or raises.
    void sendall(const void* data, std::size_t size);
    void sendall(std::string_view s) { sendall(s.data(), s.size()); }
    void sendall(const bytes& b) { sendall(b.data(), b.size()); }
    // One receive of at most bufsize bytes; empty when the peer has closed its side.
    bytes recv(std::size_t bufsize);
    std::size_t recv_into(void* buf, std::size_t size);

    // nullopt: block without limit; 0: never wait; t > 0: wait at most t seconds.
    void settimeout(std::optional<double> seconds);
    // The same with a duration (a negative one: 0, non-blocking; see mp/duration.hpp).
    template <class Rep, class Period>
    void settimeout(std::chrono::duration<Rep, Period> timeout) {
        settimeout(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    std::optional<double> gettimeout() const;

    void shutdown(Shutdown how);
    void close();
    bool closed() const noexcept;
    AddressFamily family() const;
    Address getsockname() const;
    Address getpeername() const;
    // The fd (POSIX) or SOCKET value (Windows); OSError if closed.
    std::uintptr_t fileno() const;

    // The codec hook (see the top of this file).
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

    struct State;

private:
    explicit Socket(std::shared_ptr<State> s) : s_(std::move(s)) {}
    std::shared_ptr<State> s_;
};

}  // namespace mp
