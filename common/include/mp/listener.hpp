// mp/listener.hpp - mp::Listener and mp::Client (Python's multiprocessing.connection.Listener
// and Client): a server end that accepts Connections, and a function that connects to it,
// with optional HMAC-SHA256 authentication.
//
//     mp::Listener l(mp::Address::tcp("127.0.0.1", 0), "secret");   // port 0: any free port
//     mp::Address where = l.address();                              // the port it got
//     mp::Connection c = l.accept();            // in another process:
//                                               //   auto c = mp::Client(where, "secret");
//     c.send(std::vector<int>{1, 2});  ... the same Connection as mp::Pipe's ends
//
// Families (Address::family):
//   inet / inet6   TCP, ("127.0.0.1", port) by default loopback only. SO_REUSEADDR on POSIX.
//   unix_socket    POSIX: a socket file, created with mode 0600 (chmod before listen, so no one
//                  else can connect in between) and removed by close() / the destructor (only in
//                  the process that created it). Abstract names (a leading '\0' or '@') are
//                  rejected with ValueError: they have no file permissions to protect them.
//   named_pipe     Windows: \\.\pipe\name, instances with an owner-only DACL, the first one with
//                  FILE_FLAG_FIRST_PIPE_INSTANCE (so a name squatted by another process is an
//                  error, not a silent man in the middle); a new instance is made before a
//                  connected one is handed out, as CPython does.
// default_family() is Python's default: unix_socket on POSIX, named_pipe on Windows;
// arbitrary_address(family) makes a fresh address of a family (a temp path, a unique pipe name,
// or 127.0.0.1 port 0). Listener(family) listens on one.
//
// Authentication: with a non-empty authkey, every accepted connection runs CPython's
// challenge-response both ways before accept() returns it: the server sends a 40-byte random
// nonce (from the OS: getrandom / RtlGenRandom), the client answers HMAC-SHA256(authkey,
// nonce), and then the client challenges the server the same way. A wrong key is
// AuthenticationError on both sides, before any payload is read. An empty authkey means no
// authentication (Python's None). The handshake is bounded: a message longer than 256 bytes is
// rejected without allocating it, and the whole handshake must finish within
// handshake_timeout (default 10 s; a client that connects and says nothing makes that accept()
// fail with AuthenticationError after 10 s, and the Listener stays usable). Every handshake
// failure, including a peer that closes early or sends garbage, is AuthenticationError.
//
// Errors: Client to an address where nothing listens: ConnectionRefusedError (TCP, or a stale
// unix socket file) or FileNotFoundError (no such socket file or pipe). accept(timeout) /
// Client(..., timeout) past their time: TimeoutError (never earlier). A bad address:
// ValueError. Connections over TCP on Windows cannot be passed to spawned children
// (NotImplementedError, see mp/socket.hpp); named-pipe and POSIX connections can.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "connection.hpp"
#include "duration.hpp"
#include "socket.hpp"

namespace mp {

AddressFamily default_family();
Address arbitrary_address(AddressFamily family);

class Listener {
public:
    static constexpr double kDefaultHandshakeTimeout = 10.0;  // seconds

    // Listens on address (unix_socket / named_pipe / inet / inet6). authkey empty: no
    // authentication. backlog: pending connections the OS queues (sockets only).
    explicit Listener(const Address& address, std::string authkey = {}, int backlog = 16);
    // Listens on arbitrary_address(family); Listener() uses default_family().
    explicit Listener(AddressFamily family = default_family(), std::string authkey = {}, int backlog = 16);
    Listener(Listener&&) noexcept;
    Listener& operator=(Listener&&) noexcept;
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    ~Listener();

    // Waits for a client (without limit / at most timeout_seconds, else TimeoutError), then
    // authenticates it (AuthenticationError) and returns the Connection.
    Connection accept();
    Connection accept(std::optional<double> timeout_seconds);  // std::nullopt: as accept()
    // The same with a duration (a negative one: no time left, see mp/duration.hpp).
    template <class Rep, class Period>
    Connection accept(std::chrono::duration<Rep, Period> timeout) {
        return accept(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }

    void close();
    bool closed() const noexcept;
    Address address() const;
    std::optional<Address> last_accepted() const;

    void set_handshake_timeout(double seconds);
    template <class Rep, class Period>
    void set_handshake_timeout(std::chrono::duration<Rep, Period> timeout) {
        set_handshake_timeout(mp::detail::nonnegative_seconds(timeout));
    }

private:
    struct State;
    friend struct ListenerAccess;  // common/listener_internal.hpp: accepting and authenticating apart
    Connection accept_ms(double timeout_ms);
    std::unique_ptr<State> s_;
};

// Connects to a Listener and authenticates (when authkey is not empty). timeout bounds the
// connect and, separately, the handshake (nullopt: connect without limit, handshake within
// Listener::kDefaultHandshakeTimeout).
Connection Client(const Address& address, const std::string& authkey = {},
                  std::optional<double> timeout_seconds = std::nullopt);
template <class Rep, class Period>
Connection Client(const Address& address, const std::string& authkey, std::chrono::duration<Rep, Period> timeout) {
    return Client(address, authkey, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
}

}  // namespace mp
