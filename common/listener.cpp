// common/listener.cpp - mp::Listener and mp::Client: sockets (sys/socket.hpp) or, on Windows,
// named pipes (sys/named_pipe.hpp), the challenge-response handshake, and the hand-over to an
// ordinary mp::Connection (sys/connection.hpp).
#include "mp/listener.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "connection_internal.hpp"
#include "listener_internal.hpp"
#include "hmac_sha256.hpp"
#include "socket_internal.hpp"
#include "sys/connection.hpp"
#include "sys/named_pipe.hpp"
#include "sys/os.hpp"
#include "sys/socket.hpp"
#include "sys/tracker.hpp"
#include "timeout.hpp"

namespace mp {

namespace {

// The handshake, as CPython 3.12 frames it: messages are Connection frames (a 4-byte
// little-endian length, then the bytes), read here directly from the end with a deadline and a
// size limit, before the end becomes a Connection (whose reads have neither).
constexpr std::size_t kMaxHandshakeMessage = 256;
constexpr std::size_t kNonceBytes = 40;
const std::string kChallenge = "#CHALLENGE#";
const std::string kWelcome = "#WELCOME#";
const std::string kFailure = "#FAILURE#";
const std::string kDigestTag = "{sha256}";

[[noreturn]] void auth_fail(const std::string& why) { throw AuthenticationError("mp authentication: " + why); }

void send_message(sys::PipeEnd& end, const std::string& m) {
    unsigned char h[4];
    for (int i = 0; i < 4; ++i) h[i] = static_cast<unsigned char>(m.size() >> (8 * i));
    if (auto ec = sys::pipe_write(end, h, 4, m.data(), m.size()))
        auth_fail("sending a handshake message failed: " + ec.message());
}

void read_within(sys::PipeEnd& end, char* p, std::size_t n, const sys::Deadline& deadline) {
    std::size_t got = 0;
    while (got < n) {
        bool ready = false;
        if (auto ec = sys::pipe_poll(end, deadline, ready)) auth_fail("waiting for the peer failed: " + ec.message());
        if (!ready) auth_fail("the peer did not complete the handshake in time");
        std::size_t r = 0;
        if (auto ec = sys::pipe_read_some(end, p + got, n - got, r)) auth_fail("reading from the peer failed: " + ec.message());
        if (r == 0) auth_fail("the peer closed the connection during the handshake");
        got += r;
    }
}

std::string recv_message(sys::PipeEnd& end, const sys::Deadline& deadline) {
    unsigned char h[4];
    read_within(end, reinterpret_cast<char*>(h), 4, deadline);
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= std::uint32_t{h[i]} << (8 * i);
    if (n > kMaxHandshakeMessage)
        auth_fail("handshake message of " + std::to_string(n) + " bytes is over the limit of " +
                  std::to_string(kMaxHandshakeMessage));
    std::string m(n, '\0');
    read_within(end, m.data(), n, deadline);
    return m;
}

std::string digest_of(const std::string& key, const std::string& message) {
    const auto d = detail::hmac_sha256(key.data(), key.size(), message.data(), message.size());
    return kDigestTag + std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// Proves that the peer knows the key: it must return the HMAC of a fresh random nonce.
void deliver_challenge(sys::PipeEnd& end, const std::string& key, const sys::Deadline& deadline) {
    std::string nonce(kNonceBytes, '\0');
    if (auto ec = sys::random_bytes(nonce.data(), nonce.size())) raise_os_error(ec, "mp authentication: random nonce");
    const std::string message = kDigestTag + nonce;
    send_message(end, kChallenge + message);
    const std::string response = recv_message(end, deadline);
    const std::string expected = digest_of(key, message);
    if (response.size() != expected.size() ||
        !detail::constant_time_equal(response.data(), expected.data(), expected.size())) {
        try {
            send_message(end, kFailure);
        } catch (const AuthenticationError&) {  // the peer may be gone already; the verdict stands
        }
        auth_fail("digest received was wrong");
    }
    send_message(end, kWelcome);
}

// Answers the peer's challenge.
void answer_challenge(sys::PipeEnd& end, const std::string& key, const sys::Deadline& deadline) {
    const std::string m = recv_message(end, deadline);
    if (m.compare(0, kChallenge.size(), kChallenge) != 0) auth_fail("protocol error: expected a challenge");
    const std::string message = m.substr(kChallenge.size());
    if (message.compare(0, kDigestTag.size(), kDigestTag) != 0 || message.size() < kDigestTag.size() + 20)
        auth_fail("protocol error: unsupported or short challenge (only {sha256} is spoken)");
    send_message(end, digest_of(key, message));
    const std::string verdict = recv_message(end, deadline);
    if (verdict != kWelcome) auth_fail("digest sent was rejected (wrong authkey?)");
}

std::string random_hex(std::size_t n_bytes) {
    std::string raw(n_bytes, '\0');
    if (auto ec = sys::random_bytes(raw.data(), raw.size())) raise_os_error(ec, "mp: random name");
    return detail::to_hex(raw.data(), raw.size());
}

void check_unix_path(const std::string& path, const std::string& what) {
    if (path.empty()) throw ValueError(what + ": empty socket path");
    if (path[0] == '\0' || path[0] == '@')
        throw ValueError(what + ": abstract socket names (a leading NUL or '@') are not supported: they have no file "
                                "permissions, so any local user could connect; use a path");
}

// The named_pipe family exists where sys::kListenerPipes says so (Windows); elsewhere its
// address is a ValueError, and the pipe functions below are never reached.
void check_pipe_name(const std::string& name, const std::string& what) {
    if constexpr (!sys::kListenerPipes) {
        throw ValueError(what + ": named pipes (" + name +
                         ") are the Windows family; on POSIX use unix_socket or inet addresses");
    }
    const std::string prefix = "\\\\.\\pipe\\";
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0)
        throw ValueError(what + ": a named-pipe address must look like \\\\.\\pipe\\name, not \"" + name + "\"");
}

}  // namespace

// As in CPython: named pipes where the OS has them for Listeners (Windows), Unix sockets
// elsewhere.
AddressFamily default_family() {
    return sys::kListenerPipes ? AddressFamily::named_pipe : AddressFamily::unix_socket;
}

Address arbitrary_address(AddressFamily family) {
    static std::atomic<unsigned> counter{0};
    const std::string unique =
        std::to_string(sys::current_pid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" + random_hex(4);
    switch (family) {
        case AddressFamily::inet: return Address::tcp("127.0.0.1", 0);
        case AddressFamily::inet6: return Address::tcp6("::1", 0);
        case AddressFamily::unix_socket: {
            std::error_code ec;
            std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
            if (ec) dir = "/tmp";
            return Address::unix_socket((dir / ("mp-" + unique + ".sock")).string());
        }
        case AddressFamily::named_pipe: return Address::pipe("\\\\.\\pipe\\mp-listener-" + unique);
    }
    throw ValueError("mp::arbitrary_address: unknown family");
}

struct Listener::State {
    Address address;
    std::string authkey;
    double handshake_ms = kDefaultHandshakeTimeout * 1000.0;
    sys::SocketHandle sock;         // inet / inet6 / unix_socket
    sys::PipeEnd pipe_instance;     // named_pipe: the instance waiting for the next client
    bool open = false;
    int owner_pid = 0;              // the process that made the socket file (removes it)
    bool tracked = false;           // the socket file is registered with the resource tracker
    std::optional<Address> last;

    // Removes the socket file, then forgets it in the tracker.
    void remove_socket_file() {
        std::error_code ignored;
        std::filesystem::remove(address.path, ignored);
        if (tracked) sys::untrack(sys::Resource::file, address.path);
        tracked = false;
    }
};

Listener::Listener(AddressFamily family, std::string authkey, int backlog)
    : Listener(arbitrary_address(family), std::move(authkey), backlog) {}

Listener::Listener(const Address& address, std::string authkey, int backlog) : s_(std::make_unique<State>()) {
    const std::string what = "mp::Listener on " + address.to_string();
    s_->authkey = std::move(authkey);
    s_->address = address;
    if (address.family == AddressFamily::named_pipe) {
        check_pipe_name(address.path, what);
        if constexpr (sys::kListenerPipes) {
            if (auto ec = sys::listener_pipe_create(address.path, true, s_->pipe_instance)) raise_os_error(ec, what);
        }
        s_->open = true;
        return;
    }
    const bool unix_file = address.family == AddressFamily::unix_socket;
    if (unix_file) check_unix_path(address.path, what);
    if (auto ec = sys::socket_create(detail::to_sys_address(address, what).family, s_->sock))
        detail::raise_socket_error(ec, what);
    // A socket file is made under the resource tracker (sys/tracker.hpp), so that it goes
    // however this process ends, SIGKILL included: bound at a private name beside it, given
    // its mode there (before listen(), nobody can connect: no one slips in under the umask's
    // mode), then linked to its name, which fails if the name is taken. A name the tracker
    // cannot hold (too long) is bound as it is, untracked.
    sys::Creation creation;
    bool tracked = unix_file && !sys::begin_creation(sys::Resource::file, address.path, creation);
    auto untracked = [&] {
        sys::finish_creation(creation, false);
        tracked = false;
    };
    sys::SockAddress sa;
    if (tracked) {
        try {
            sa = detail::to_sys_address(Address::unix_socket(creation.temporary), what);
        } catch (const ValueError&) {  // the private name is over the socket path limit
            untracked();
        }
    }
    if (!tracked) sa = detail::to_sys_address(address, what);
    // SO_REUSEADDR where it only means "rebind a port in TIME_WAIT" (POSIX), as CPython does.
    if (auto ec = sys::socket_bind_listener(s_->sock.get(), sa)) {
        untracked();
        detail::raise_socket_error(ec, what);
    }
    if (unix_file) {
        const std::string bound = tracked ? creation.temporary : address.path;
        std::error_code ec;
        std::filesystem::permissions(bound, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                     std::filesystem::perm_options::replace, ec);
        if (ec) {
            std::error_code ignored;
            std::filesystem::remove(bound, ignored);
            untracked();
            raise_os_error(ec, what + ": chmod 0600");
        }
        if (tracked) {
            if (auto lec = sys::finish_creation(creation, true)) {  // the private name is gone either way
                detail::raise_socket_error(lec == std::errc::file_exists ? std::make_error_code(std::errc::address_in_use) : lec,
                                           what);
            }
        }
        s_->owner_pid = sys::current_pid();
        s_->tracked = tracked;
    }
    if (auto ec = sys::socket_listen(s_->sock.get(), backlog < 1 ? 1 : backlog)) {
        if (unix_file) s_->remove_socket_file();
        detail::raise_socket_error(ec, what);
    }
    if (address.family != AddressFamily::unix_socket) {
        sys::SockAddress bound;
        if (auto ec = sys::socket_name(s_->sock.get(), false, bound)) detail::raise_socket_error(ec, what);
        s_->address.port = bound.port;  // port 0 asked the OS to choose
        s_->address.host = bound.host;
    }
    s_->open = true;
}

Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&& o) noexcept {
    if (this != &o) {
        close();
        s_ = std::move(o.s_);
    }
    return *this;
}
Listener::~Listener() { close(); }

void Listener::close() {
    if (!s_ || !s_->open) return;
    s_->open = false;
    s_->sock.reset();
    sys::close_end(s_->pipe_instance);
    // Only the creator removes the file: a fork child's copy must not pull it from under the
    // parent.
    if (s_->address.family == AddressFamily::unix_socket && s_->owner_pid == sys::current_pid()) s_->remove_socket_file();
}

bool Listener::closed() const noexcept { return !s_ || !s_->open; }

Address Listener::address() const {
    if (!s_) throw OSError(std::make_error_code(std::errc::bad_file_descriptor), "mp::Listener: moved from");
    return s_->address;
}

std::optional<Address> Listener::last_accepted() const { return s_ ? s_->last : std::nullopt; }

void Listener::set_handshake_timeout(double seconds) {
    if (!(seconds > 0)) throw ValueError("mp::Listener::set_handshake_timeout: the timeout must be > 0 seconds");
    detail::check_not_nan(seconds, "mp::Listener::set_handshake_timeout");
    if (s_) s_->handshake_ms = seconds * 1000.0 > sys::Deadline::kMaxMs ? -1 : seconds * 1000.0;
}

Connection Listener::accept() { return accept_ms(-1); }
Connection Listener::accept(std::optional<double> timeout_seconds) {
    return accept_ms(detail::timeout_to_ms(timeout_seconds, "mp::Listener::accept"));
}

Connection Listener::accept_ms(double timeout_ms) {
    sys::PipeEnd end = ListenerAccess::accept_end(*this, timeout_ms);
    if (s_->authkey.empty()) return ConnectionAccess::from_end(std::move(end));
    return ListenerAccess::authenticate(std::move(end), s_->authkey, s_->handshake_ms);
}

sys::PipeEnd ListenerAccess::accept_end(Listener& l, double timeout_ms) {
    if (l.closed()) throw OSError(std::make_error_code(std::errc::bad_file_descriptor), "mp::Listener::accept: listener is closed");
    Listener::State& st = *l.s_;
    const std::string what = "mp::Listener::accept on " + st.address.to_string();
    sys::PipeEnd end;
    if (st.address.family == AddressFamily::named_pipe) {
        check_pipe_name(st.address.path, what);
        if constexpr (sys::kListenerPipes) {
            if (auto ec = sys::listener_pipe_accept(st.pipe_instance, sys::Deadline::after_ms(timeout_ms))) {
                if (ec == std::errc::timed_out) throw TimeoutError(what + ": timed out");
                raise_os_error(ec, what);
            }
            // The next instance exists before this one leaves, so clients never find the name gone.
            sys::PipeEnd next;
            if (auto ec = sys::listener_pipe_create(st.address.path, false, next)) raise_os_error(ec, what);
            end = std::move(st.pipe_instance);
            st.pipe_instance = std::move(next);
            st.last = st.address;
        }
    } else {
        const sys::Deadline deadline = sys::Deadline::after_ms(timeout_ms);
        sys::SocketHandle c;
        sys::SockAddress peer;
        for (;;) {
            const std::error_code ec = sys::socket_accept(st.sock.get(), c, peer);
            if (!ec) break;
            if (ec != std::errc::operation_would_block) detail::raise_socket_error(ec, what);
            bool ready = false;
            if (!deadline.passed()) {
                if (auto wec = sys::socket_wait(st.sock.get(), false, deadline, ready))
                    detail::raise_socket_error(wec, what);
            }
            if (!ready) throw TimeoutError(what + ": timed out");
        }
        Address a = detail::from_sys_address(peer);
        if (st.address.family == AddressFamily::unix_socket) a.family = AddressFamily::unix_socket;
        st.last = a;
        if (auto ec = sys::end_from_socket(std::move(c), end)) detail::raise_socket_error(ec, what);
    }
    return end;
}

Connection ListenerAccess::authenticate(sys::PipeEnd&& end, const std::string& authkey, double timeout_ms) {
    if (!authkey.empty()) {
        const sys::Deadline deadline = sys::Deadline::after_ms(timeout_ms);
        deliver_challenge(end, authkey, deadline);
        answer_challenge(end, authkey, deadline);
    }
    return ConnectionAccess::from_end(std::move(end));
}

Connection Client(const Address& address, const std::string& authkey, std::optional<double> timeout_seconds) {
    const std::string what = "mp::Client to " + address.to_string();
    const sys::Deadline connect_deadline = detail::deadline_in_seconds(timeout_seconds, "mp::Client");
    const double timeout_ms = timeout_seconds ? *timeout_seconds * 1000.0 : -1;
    sys::PipeEnd end;
    if (address.family == AddressFamily::named_pipe) {
        check_pipe_name(address.path, what);
        if constexpr (sys::kListenerPipes) {
            if (auto ec = sys::listener_pipe_connect(address.path, connect_deadline, end)) {
                if (ec == std::errc::timed_out) throw TimeoutError(what + ": timed out");
                raise_os_error(ec, what);
            }
        }
    } else {
        if (address.family == AddressFamily::unix_socket) check_unix_path(address.path, what);
        const sys::SockAddress sa = detail::to_sys_address(address, what);
        sys::SocketHandle s;
        if (auto ec = sys::socket_create(sa.family, s)) detail::raise_socket_error(ec, what);
        bool in_progress = false;
        if (auto ec = sys::socket_connect_start(s.get(), sa, connect_deadline, in_progress)) {
            if (ec == std::errc::timed_out) throw TimeoutError(what + ": timed out");
            detail::raise_socket_error(ec, what);
        }
        if (in_progress) {
            bool ready = false;
            if (auto ec = sys::socket_wait(s.get(), true, connect_deadline, ready)) detail::raise_socket_error(ec, what);
            if (!ready) throw TimeoutError(what + ": timed out");
            if (auto ec = sys::socket_connect_result(s.get())) detail::raise_socket_error(ec, what);
        }
        if (auto ec = sys::end_from_socket(std::move(s), end)) detail::raise_socket_error(ec, what);
    }
    if (!authkey.empty()) {
        const sys::Deadline deadline = sys::Deadline::after_ms(timeout_seconds ? timeout_ms : Listener::kDefaultHandshakeTimeout * 1000.0);
        answer_challenge(end, authkey, deadline);
        deliver_challenge(end, authkey, deadline);
    }
    return ConnectionAccess::from_end(std::move(end));
}

}  // namespace mp
