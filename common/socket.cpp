// common/socket.cpp - mp::Socket: Python's timeout rules and exception types over the
// sys/socket.hpp contract (non-blocking sockets: wait for readiness, then one call).
#include "mp/socket.hpp"

#include "socket_internal.hpp"
#include "sys/handle.hpp"
#include "timeout.hpp"

namespace mp {

namespace detail {

sys::SockFamily to_sys_family(AddressFamily f, const std::string& what) {
    switch (f) {
        case AddressFamily::inet: return sys::SockFamily::inet;
        case AddressFamily::inet6: return sys::SockFamily::inet6;
        case AddressFamily::unix_socket: return sys::SockFamily::unix_path;
        case AddressFamily::named_pipe: break;
    }
    throw ValueError(what + ": the named_pipe family is for Listener/Client only, not for a socket");
}

sys::SockAddress to_sys_address(const Address& a, const std::string& what) {
    sys::SockAddress out;
    out.family = to_sys_family(a.family, what);
    if (a.family == AddressFamily::unix_socket) {
        if (a.path.empty()) throw ValueError(what + ": empty socket path");
        if (a.path.find('\0') != std::string::npos) throw ValueError(what + ": socket path contains a NUL byte");
        out.path = a.path;
    } else {
        if (a.port < 0 || a.port > 65535)
            throw ValueError(what + ": port " + std::to_string(a.port) + " is outside 0..65535");
        out.host = a.host;
        out.port = a.port;
    }
    return out;
}

Address from_sys_address(const sys::SockAddress& a) {
    Address out;
    switch (a.family) {
        case sys::SockFamily::inet: out.family = AddressFamily::inet; break;
        case sys::SockFamily::inet6: out.family = AddressFamily::inet6; break;
        case sys::SockFamily::unix_path: out.family = AddressFamily::unix_socket; break;
    }
    out.host = a.host;
    out.port = a.port;
    out.path = a.path;
    return out;
}

void raise_socket_error(std::error_code ec, const std::string& what) {
    if (ec == std::errc::filename_too_long) throw ValueError(what + ": the socket path is too long for this OS");
    if (ec == std::errc::address_not_available && ec.category() == std::generic_category())
        raise_os_error(ec, what + " (the host name could not be resolved or is not local)");
    raise_os_error(ec, what);
}

}  // namespace detail

std::string Address::to_string() const {
    switch (family) {
        case AddressFamily::inet: return "(\"" + host + "\", " + std::to_string(port) + ")";
        case AddressFamily::inet6: return "(\"[" + host + "]\", " + std::to_string(port) + ")";
        case AddressFamily::unix_socket:
        case AddressFamily::named_pipe: return path;
    }
    return path;
}

struct Socket::State {
    sys::SocketHandle s;
    AddressFamily family = AddressFamily::inet;
    double timeout_ms = -1;  // < 0: block without limit
};

namespace {

[[noreturn]] void throw_closed(const char* what) {
    throw OSError(std::make_error_code(std::errc::bad_file_descriptor), std::string(what) + ": socket is closed");
}

// Runs a non-blocking call until it stops saying "would block", waiting for readiness in
// between, within the socket's timeout.
template <class Op>
void with_timeout(Socket::State& st, bool for_write, const std::string& what, Op op) {
    const sys::Deadline deadline = sys::Deadline::after_ms(st.timeout_ms);
    for (;;) {
        const std::error_code ec = op();
        if (!ec) return;
        if (ec != std::errc::operation_would_block) detail::raise_socket_error(ec, what);
        if (st.timeout_ms == 0) throw BlockingIOError(ec, what);
        if (deadline.passed()) throw TimeoutError(what + ": timed out");
        bool ready = false;
        if (auto wec = sys::socket_wait(st.s.get(), for_write, deadline, ready)) detail::raise_socket_error(wec, what);
        if (!ready) throw TimeoutError(what + ": timed out");
    }
}

}  // namespace

static Socket::State& open_state(const std::shared_ptr<Socket::State>& s, const char* what) {
    if (!s || !s->s) throw_closed(what);
    return *s;
}

Socket::Socket(AddressFamily family) : s_(std::make_shared<State>()) {
    s_->family = family;
    if (auto ec = sys::socket_create(detail::to_sys_family(family, "mp::Socket"), s_->s))
        detail::raise_socket_error(ec, "mp::Socket: creating a socket");
}

void Socket::setsockopt(SocketOption option, int value) {
    State& st = open_state(s_, "mp::Socket::setsockopt");
    switch (option) {
        case SocketOption::reuseaddr:
            if (auto ec = sys::socket_set_reuseaddr(st.s.get(), value != 0))
                detail::raise_socket_error(ec, "mp::Socket::setsockopt(SO_REUSEADDR)");
            return;
    }
    throw ValueError("mp::Socket::setsockopt: unknown option");
}

static void check_family(const Socket::State& st, const Address& a, const std::string& what) {
    if (a.family != st.family)
        throw ValueError(what + ": the address " + a.to_string() + " is not of this socket's family");
}

void Socket::bind(const Address& address) {
    State& st = open_state(s_, "mp::Socket::bind");
    const std::string what = "mp::Socket::bind to " + address.to_string();
    check_family(st, address, what);
    if (auto ec = sys::socket_bind(st.s.get(), detail::to_sys_address(address, what))) detail::raise_socket_error(ec, what);
}

void Socket::listen(int backlog) {
    State& st = open_state(s_, "mp::Socket::listen");
    if (backlog < 0) backlog = 0;
    if (auto ec = sys::socket_listen(st.s.get(), backlog)) detail::raise_socket_error(ec, "mp::Socket::listen");
}

std::pair<Socket, Address> Socket::accept() {
    State& st = open_state(s_, "mp::Socket::accept");
    auto out = std::make_shared<State>();
    out->family = st.family;
    out->timeout_ms = st.timeout_ms;
    sys::SockAddress peer;
    with_timeout(st, false, "mp::Socket::accept", [&] { return sys::socket_accept(st.s.get(), out->s, peer); });
    Address a = detail::from_sys_address(peer);
    if (st.family == AddressFamily::unix_socket) a.family = AddressFamily::unix_socket;
    return {Socket(std::move(out)), std::move(a)};
}

void Socket::connect(const Address& address) {
    State& st = open_state(s_, "mp::Socket::connect");
    const std::string what = "mp::Socket::connect to " + address.to_string();
    check_family(st, address, what);
    bool in_progress = false;
    const sys::Deadline deadline = sys::Deadline::after_ms(st.timeout_ms);
    if (auto ec = sys::socket_connect_start(st.s.get(), detail::to_sys_address(address, what), deadline,
                                            in_progress)) {
        if (ec == std::errc::timed_out) throw TimeoutError(what + ": timed out");
        detail::raise_socket_error(ec, what);
    }
    if (!in_progress) return;
    if (st.timeout_ms == 0)
        throw BlockingIOError(std::make_error_code(std::errc::operation_in_progress), what + " (still in progress)");
    bool ready = false;
    if (auto ec = sys::socket_wait(st.s.get(), true, deadline, ready)) detail::raise_socket_error(ec, what);
    if (!ready) throw TimeoutError(what + ": timed out");
    if (auto ec = sys::socket_connect_result(st.s.get())) detail::raise_socket_error(ec, what);
}

std::size_t Socket::send(const void* data, std::size_t size) {
    State& st = open_state(s_, "mp::Socket::send");
    std::size_t sent = 0;
    with_timeout(st, true, "mp::Socket::send", [&] { return sys::socket_send(st.s.get(), data, size, sent); });
    return sent;
}

void Socket::sendall(const void* data, std::size_t size) {
    State& st = open_state(s_, "mp::Socket::sendall");
    const sys::Deadline deadline = sys::Deadline::after_ms(st.timeout_ms);
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        std::size_t sent = 0;
        const std::error_code ec = sys::socket_send(st.s.get(), p, size, sent);
        if (!ec) {
            p += sent;
            size -= sent;
            continue;
        }
        if (ec != std::errc::operation_would_block) detail::raise_socket_error(ec, "mp::Socket::sendall");
        if (st.timeout_ms == 0) throw BlockingIOError(ec, "mp::Socket::sendall");
        bool ready = false;
        if (!deadline.passed()) {
            if (auto wec = sys::socket_wait(st.s.get(), true, deadline, ready))
                detail::raise_socket_error(wec, "mp::Socket::sendall");
        }
        if (!ready) throw TimeoutError("mp::Socket::sendall: timed out");
    }
}

std::size_t Socket::recv_into(void* buf, std::size_t size) {
    State& st = open_state(s_, "mp::Socket::recv");
    std::size_t got = 0;
    with_timeout(st, false, "mp::Socket::recv", [&] { return sys::socket_recv(st.s.get(), buf, size, got); });
    return got;
}

bytes Socket::recv(std::size_t bufsize) {
    bytes out(bufsize);
    out.resize(recv_into(out.data(), out.size()));
    return out;
}

void Socket::settimeout(std::optional<double> seconds) {
    State& st = open_state(s_, "mp::Socket::settimeout");
    if (seconds && !(*seconds >= 0)) throw ValueError("mp::Socket::settimeout: timeout must be >= 0 or nullopt");
    if (seconds) detail::check_not_nan(*seconds, "mp::Socket::settimeout");
    st.timeout_ms = !seconds || *seconds * 1000.0 > sys::Deadline::kMaxMs ? -1 : *seconds * 1000.0;
}

std::optional<double> Socket::gettimeout() const {
    const State& st = open_state(s_, "mp::Socket::gettimeout");
    if (st.timeout_ms < 0) return std::nullopt;
    return st.timeout_ms / 1000.0;
}

void Socket::shutdown(Shutdown how) {
    State& st = open_state(s_, "mp::Socket::shutdown");
    const int h = how == Shutdown::read ? 0 : how == Shutdown::write ? 1 : 2;
    if (auto ec = sys::socket_shutdown(st.s.get(), h)) detail::raise_socket_error(ec, "mp::Socket::shutdown");
}

void Socket::close() {
    if (s_) s_->s.reset();
}

bool Socket::closed() const noexcept { return !s_ || !s_->s; }

AddressFamily Socket::family() const { return open_state(s_, "mp::Socket::family").family; }

static Address socket_name(const std::shared_ptr<Socket::State>& s, bool peer, const char* what) {
    const Socket::State& st = open_state(s, what);
    sys::SockAddress a;
    if (auto ec = sys::socket_name(st.s.get(), peer, a)) detail::raise_socket_error(ec, what);
    Address out = detail::from_sys_address(a);
    if (st.family == AddressFamily::unix_socket) out.family = AddressFamily::unix_socket;
    return out;
}

Address Socket::getsockname() const { return socket_name(s_, false, "mp::Socket::getsockname"); }
Address Socket::getpeername() const { return socket_name(s_, true, "mp::Socket::getpeername"); }

std::uintptr_t Socket::fileno() const { return sys::handle_to_value(open_state(s_, "mp::Socket::fileno").s.get()); }

void Socket::mp_encode(Encoder& e) const {
    const State& st = open_state(s_, "mp::Socket: passing to a child");
    if (const char* why = sys::socket_inherit_problem())
        throw NotImplementedError(std::string("mp::Socket cannot be passed to a spawned child: ") + why +
                                  "; create, accept or connect the socket in the child instead");
    e.write_handle(sys::handle_to_value(st.s.get()));
    e.write(static_cast<unsigned char>(st.family));
    e.write(st.timeout_ms);
}

void Socket::mp_decode(Decoder& d) {
    auto st = std::make_shared<State>();
    st->s.reset(sys::handle_from_value(d.read_handle()));
    const auto fam = d.read<unsigned char>();
    if (fam > static_cast<unsigned char>(AddressFamily::unix_socket))
        throw DecodeError("mp::Socket: bad address family " + std::to_string(fam), d.offset());
    st->family = static_cast<AddressFamily>(fam);
    st->timeout_ms = d.read<double>();
    s_ = std::move(st);
}

}  // namespace mp
