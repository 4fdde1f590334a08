// T20 - Sockets: a local TCP server process and a client process (the tutorial's echo), then
// the same conversation through multiprocessing.connection's Listener and Client with an
// authentication key; under every start method this platform has.
//
// Python:                                        C++ (mp):
//   s = socket.socket(AF_INET, SOCK_STREAM)        mp::Socket s(mp::AddressFamily::inet);
//   s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)      s.setsockopt(mp::SocketOption::reuseaddr, 1);
//   s.bind(("127.0.0.1", 0)); s.listen(1)          s.bind(mp::Address::tcp("127.0.0.1", 0)); s.listen(1);
//   conn, addr = s.accept()                        auto [conn, addr] = s.accept();
//   conn.sendall(b"OK:" + data)                    conn.sendall("OK:" + data);
//   Listener(("127.0.0.1", 0), authkey=b"k")       mp::Listener l(mp::Address::tcp("127.0.0.1", 0), "k");
//   Client(address, authkey=b"k")                  mp::Client(address, "k")
#include <cstdio>
#include <string>

#include "mp/mp.hpp"

static std::string text(const mp::bytes& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// The server. The tutorial binds a fixed port and the parent sleeps 0.2 s hoping the server is
// ready; here the server binds port 0 (the OS picks a free one) and tells the parent which, so
// there is neither a port clash nor a race.
static int server(mp::Connection report) {
    mp::Socket s(mp::AddressFamily::inet);
    s.setsockopt(mp::SocketOption::reuseaddr, 1);
    s.bind(mp::Address::tcp("127.0.0.1", 0));
    s.listen(1);
    report.send(s.getsockname().port);
    s.settimeout(30.0);  // never wait for ever for a client that does not come
    auto [conn, addr] = s.accept();
    const std::string data = text(conn.recv(1024));
    std::printf("  [server] received \"%s\" from %s\n", data.c_str(), addr.to_string().c_str());
    std::fflush(stdout);
    conn.sendall("OK:" + data);
    return 0;
}
MP_TARGET(server);

static int client(int port) {
    mp::Socket c(mp::AddressFamily::inet);
    c.settimeout(30.0);
    c.connect(mp::Address::tcp("127.0.0.1", port));
    c.sendall("hello");
    std::printf("  [client] received \"%s\"\n", text(c.recv(1024)).c_str());
    std::fflush(stdout);
    return 0;
}
MP_TARGET(client);

// Listener/Client: whole messages and objects instead of a byte stream, and a shared key that
// each side proves it knows (HMAC-SHA256 challenge-response) before anything else is read.
static int auth_client(mp::Address where, std::string key) {
    try {
        mp::Connection c = mp::Client(where, key, 30.0);
        c.send(std::string("hello with a key"));
        std::printf("  [client] reply: %s\n", c.recv<std::string>().c_str());
    } catch (const mp::AuthenticationError& e) {
        std::printf("  [client] AuthenticationError: %s\n", e.what());
        std::fflush(stdout);
        return 1;
    }
    std::fflush(stdout);
    return 0;
}
MP_TARGET(auth_client);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        // 1. Plain sockets.
        auto [port_r, port_w] = mp::Pipe(false);
        mp::Process srv = ctx.Process(server, port_w);
        srv.start();
        port_w.close();
        const int port = port_r.recv<int>();
        std::printf("  server listens on 127.0.0.1:%d\n", port);
        mp::Process cli = ctx.Process(client, port);
        cli.start();
        cli.join();
        srv.join();
        std::printf("  exit codes: server %d, client %d\n", srv.exitcode().value_or(-1), cli.exitcode().value_or(-1));

        // 2. Listener and Client with an authentication key, over TCP.
        mp::Listener l(mp::Address::tcp("127.0.0.1", 0), "secret");
        std::printf("  Listener on %s\n", l.address().to_string().c_str());
        mp::Process good = ctx.Process(auth_client, l.address(), std::string("secret"));
        good.start();
        mp::Connection c = l.accept(30.0);
        std::printf("  [server] got: %s\n", c.recv<std::string>().c_str());
        std::fflush(stdout);  // before the child prints its reply: keeps the output in order
        c.send(std::string("welcome"));
        good.join();

        // 3. The wrong key: both sides raise AuthenticationError before any message is read.
        mp::Process bad = ctx.Process(auth_client, l.address(), std::string("guess"));
        bad.start();
        try {
            l.accept(30.0);
        } catch (const mp::AuthenticationError& e) {
            std::printf("  [server] AuthenticationError: %s\n", e.what());
        }
        bad.join();
        std::printf("  exit codes: right key %d, wrong key %d\n", good.exitcode().value_or(-1),
                    bad.exitcode().value_or(-1));

        // 4. The platform's default family (a Unix socket file on POSIX, a named pipe on Windows).
        mp::Listener local;
        std::printf("  default-family Listener on %s\n", local.address().to_string().c_str());
        mp::Process p = ctx.Process(auth_client, local.address(), std::string());
        p.start();
        mp::Connection lc = local.accept(30.0);
        std::printf("  [server] got: %s\n", lc.recv<std::string>().c_str());
        std::fflush(stdout);
        lc.send(std::string("welcome, no key needed"));
        p.join();
    }
    return 0;
}
