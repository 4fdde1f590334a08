// tests/test_socket.cpp - mp::Socket: TCP (and Unix sockets on POSIX) in one process and
// between server and client processes under every start method; timeouts, errors, and
// passing a socket to a child.
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "test_util.hpp"

#if defined(_WIN32)
#include <winsock2.h>
#include <windows.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::string text(const mp::bytes& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// A listening TCP socket on a free loopback port.
mp::Socket tcp_server(int backlog = 8) {
    mp::Socket s(mp::AddressFamily::inet);
    s.setsockopt(mp::SocketOption::reuseaddr, 1);
    s.bind(mp::Address::tcp("127.0.0.1", 0));
    s.listen(backlog);
    return s;
}

bool is_private(std::uintptr_t h) {
#if defined(_WIN32)
    DWORD flags = 0;
    return GetHandleInformation(reinterpret_cast<HANDLE>(h), &flags) && !(flags & HANDLE_FLAG_INHERIT);
#else
    return (::fcntl(static_cast<int>(h), F_GETFD) & FD_CLOEXEC) != 0;
#endif
}

}  // namespace

TEST(Socket, TcpRoundTripInOneProcess) {
    mp::Socket srv = tcp_server();
    const mp::Address where = srv.getsockname();
    EXPECT_EQ(where.family, mp::AddressFamily::inet);
    EXPECT_EQ(where.host, "127.0.0.1");
    EXPECT_GT(where.port, 0);
    mp::Socket cli(mp::AddressFamily::inet);
    cli.connect(where);
    auto [conn, peer] = srv.accept();
    EXPECT_EQ(peer, cli.getsockname());
    EXPECT_EQ(conn.getpeername(), cli.getsockname());
    EXPECT_EQ(cli.getpeername(), where);
    EXPECT_TRUE(is_private(srv.fileno()));
    EXPECT_TRUE(is_private(cli.fileno()));
    EXPECT_TRUE(is_private(conn.fileno()));  // Windows hands accepted sockets back inheritable

    cli.sendall("hello");
    std::string got;
    while (got.size() < 5) got += text(conn.recv(1024));
    EXPECT_EQ(got, "hello");
    const std::string big(300000, 'z');  // more than the socket buffers: sendall must loop
    std::thread writer([&conn = conn, &big] { conn.sendall(big); });
    std::size_t total = 0;
    while (total < big.size()) total += cli.recv(65536).size();
    writer.join();
    EXPECT_EQ(total, big.size());
    conn.shutdown(mp::Shutdown::write);
    EXPECT_TRUE(cli.recv(16).empty());  // the peer's end of file
    EXPECT_EQ(cli.send("x", 1), 1u);
    conn.close();
    EXPECT_TRUE(conn.closed());
    EXPECT_THROW(conn.recv(1), mp::OSError);
}

TEST(Socket, ConnectionRefused) {
    mp::Address where;
    {
        mp::Socket s = tcp_server();
        where = s.getsockname();
    }  // closed: nothing listens there now
    mp::Socket cli(mp::AddressFamily::inet);
    cli.settimeout(20.0);
    EXPECT_THROW(cli.connect(where), mp::ConnectionRefusedError);
}

TEST(Socket, TimeoutsNeverReturnEarly) {
    mp::Socket srv = tcp_server();
    srv.settimeout(0.2);
    EXPECT_EQ(srv.gettimeout(), 0.2);
    auto t0 = Clock::now();
    EXPECT_THROW(srv.accept(), mp::TimeoutError);
    EXPECT_GE(ms_since(t0), 200.0);

    mp::Socket cli(mp::AddressFamily::inet);
    cli.connect(srv.getsockname());
    auto [conn, peer] = srv.accept();
    EXPECT_EQ(conn.gettimeout(), 0.2);  // an accepted socket takes the listener's timeout
    conn.settimeout(0.15);
    t0 = Clock::now();
    EXPECT_THROW(conn.recv(10), mp::TimeoutError);
    EXPECT_GE(ms_since(t0), 150.0);
    conn.settimeout(0);  // non-blocking: no wait at all
    EXPECT_THROW(conn.recv(10), mp::BlockingIOError);
    conn.settimeout(std::nullopt);
    EXPECT_FALSE(conn.gettimeout().has_value());
    EXPECT_THROW(conn.settimeout(-1.0), mp::ValueError);
}

// settimeout with a std::chrono duration; a negative one is no time left: non-blocking (the
// seconds form refuses a negative value).
TEST(Socket, DurationTimeouts) {
    mp::Socket srv = tcp_server();
    srv.settimeout(std::chrono::milliseconds(150));
    EXPECT_EQ(srv.gettimeout(), 0.15);
    const auto t0 = Clock::now();
    EXPECT_THROW(srv.accept(), mp::TimeoutError);
    EXPECT_GE(ms_since(t0), 150.0);
    srv.settimeout(std::chrono::seconds(-1));
    EXPECT_EQ(srv.gettimeout(), 0.0);
    EXPECT_THROW(srv.accept(), mp::BlockingIOError);
}

TEST(Socket, ConnectTimeoutNeverEarly) {
    // A listener that never accepts and has a backlog of 0: Linux (and Wine on it) keeps later
    // connects waiting for a SYN-ACK that does not come, which is what a connect timeout is for.
    mp::Socket srv = tcp_server(0);
    std::vector<mp::Socket> queued;
    for (int i = 0; i < 16; ++i) {
        mp::Socket cli(mp::AddressFamily::inet);
        cli.settimeout(0.3);
        const auto t0 = Clock::now();
        try {
            cli.connect(srv.getsockname());
        } catch (const mp::TimeoutError&) {
            EXPECT_GE(ms_since(t0), 300.0);
            return;
        } catch (const mp::ConnectionRefusedError&) {
            GTEST_SKIP() << "this OS refuses connects past the backlog instead of leaving them waiting";
        }
        queued.push_back(std::move(cli));
    }
    GTEST_SKIP() << "this OS completed 16 connects with a backlog of 0; no connect waited";
}

TEST(Socket, SendToClosedPeerIsAnErrorNotASignal) {
    mp::Socket srv = tcp_server();
    mp::Socket cli(mp::AddressFamily::inet);
    cli.connect(srv.getsockname());
    auto accepted = srv.accept();
    accepted.first.close();
    cli.settimeout(10.0);
    bool raised = false;
    try {
        for (int i = 0; i < 1000; ++i) {  // the first sends may still be buffered
            cli.sendall(std::string(4096, 'x'));
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    } catch (const mp::ConnectionError&) {  // BrokenPipeError or ConnectionResetError
        raised = true;
    }
    EXPECT_TRUE(raised);
}

TEST(Socket, BadInputIsValueError) {
    mp::Socket s(mp::AddressFamily::inet);
    EXPECT_THROW(s.bind(mp::Address::tcp("127.0.0.1", 70000)), mp::ValueError);
    EXPECT_THROW(s.bind(mp::Address::tcp("127.0.0.1", -1)), mp::ValueError);
    EXPECT_THROW(s.connect(mp::Address::unix_socket("/tmp/x")), mp::ValueError);  // not this socket's family
    EXPECT_THROW(mp::Socket{mp::AddressFamily::named_pipe}, mp::ValueError);  // braces: not a declaration
    mp::Socket none;
    EXPECT_TRUE(none.closed());
    EXPECT_THROW(none.listen(), mp::OSError);
    EXPECT_THROW(s.connect(mp::Address::tcp("no-such-host.invalid", 1)), mp::OSError);
}

#if !defined(_WIN32)
TEST(Socket, UnixSocketPaths) {
    const std::string path = mp_test::temp_path("sock") + ".sock";
    mp::Socket srv(mp::AddressFamily::unix_socket);
    srv.bind(mp::Address::unix_socket(path));
    srv.listen();
    EXPECT_EQ(srv.getsockname(), mp::Address::unix_socket(path));
    EXPECT_EQ(mp::Address::unix_socket(std::filesystem::path(path)), mp::Address::unix_socket(path));
    mp::Socket cli(mp::AddressFamily::unix_socket);
    cli.connect(mp::Address::unix_socket(path));
    auto [conn, peer] = srv.accept();
    EXPECT_EQ(peer.family, mp::AddressFamily::unix_socket);
    EXPECT_EQ(cli.getpeername().path, path);
    conn.sendall("u");
    EXPECT_EQ(text(cli.recv(4)), "u");
    EXPECT_THROW(mp::Socket(mp::AddressFamily::unix_socket).bind(mp::Address::unix_socket(std::string(300, 'p'))),
                 mp::ValueError);
    ::unlink(path.c_str());
}
#else
TEST(Socket, UnixSocketsAreNotAWindowsFamily) {
    EXPECT_THROW(mp::Socket{mp::AddressFamily::unix_socket}, mp::OSError);  // braces: not a declaration
}
#endif

// ---- server and client processes -----------------------------------------------------------

namespace {

// The tutorial's server: binds a free port, tells the parent which, answers "OK:" + data.
int socket_server(mp::Connection report) {
    mp::Socket s(mp::AddressFamily::inet);
    s.setsockopt(mp::SocketOption::reuseaddr, 1);
    s.bind(mp::Address::tcp("127.0.0.1", 0));
    s.listen(1);
    report.send(s.getsockname().port);
    s.settimeout(30.0);
    auto [conn, peer] = s.accept();
    conn.settimeout(30.0);
    for (int i = 0; i < 3; ++i) {
        const mp::bytes data = conn.recv(1024);
        if (data.empty()) return 2;
        conn.sendall("OK:" + text(data));
    }
    return 0;
}
MP_TARGET(socket_server);

int socket_client(int port, mp::Connection report) {
    mp::Socket c(mp::AddressFamily::inet);
    c.settimeout(30.0);
    c.connect(mp::Address::tcp("127.0.0.1", port));
    std::string replies;
    for (const char* m : {"hello", "again", "bye"}) {
        c.sendall(m);
        replies += text(c.recv(1024)) + ";";
    }
    report.send(replies);
    return 0;
}
MP_TARGET(socket_client);

// Accepts one client on a listening socket that the parent made and passed.
int accept_on(mp::Socket listening) {
    listening.settimeout(30.0);
    auto [conn, peer] = listening.accept();
    conn.sendall("from child");
    return 0;
}
MP_TARGET(accept_on);

class SocketMethodTest : public mp_test::MethodTest {};

}  // namespace

TEST_P(SocketMethodTest, TcpServerAndClientProcesses) {
    mp_test::time_limit(60);
    auto [port_r, port_w] = mp::Pipe(false);
    mp::Process server = ctx().Process(socket_server, port_w);
    server.start();
    port_w.close();
    ASSERT_TRUE(port_r.poll(30.0));
    const int port = port_r.recv<int>();
    auto [out_r, out_w] = mp::Pipe(false);
    mp::Process client = ctx().Process(socket_client, port, out_w);
    client.start();
    out_w.close();
    ASSERT_TRUE(out_r.poll(30.0));
    EXPECT_EQ(out_r.recv<std::string>(), "OK:hello;OK:again;OK:bye;");
    client.join();
    server.join();
    EXPECT_EQ(client.exitcode(), 0);
    EXPECT_EQ(server.exitcode(), 0);
}

TEST_P(SocketMethodTest, PassListeningSocketToChild) {
    mp_test::time_limit(60);
    mp::Socket srv = tcp_server();
#if defined(_WIN32)
    // Windows cannot pass a SOCKET by inheritance (see mp/socket.hpp): a clear error, at start.
    EXPECT_THROW(
        {
            mp::Process p = ctx().Process(accept_on, srv);
            p.start();
        },
        mp::NotImplementedError);
#else
    mp::Process p = ctx().Process(accept_on, srv);
    p.start();
    mp::Socket cli(mp::AddressFamily::inet);
    cli.settimeout(30.0);
    cli.connect(srv.getsockname());
    srv.close();  // the child has its own
    std::string got;
    for (;;) {
        const mp::bytes b = cli.recv(64);
        if (b.empty()) break;
        got += text(b);
    }
    EXPECT_EQ(got, "from child");
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
#endif
}

MP_INSTANTIATE_FOR_EACH_METHOD(SocketMethodTest);
