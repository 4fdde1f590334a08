// tests/test_listener.cpp - mp::Listener / mp::Client: every family this platform has, with
// the right key, a wrong key and no key, across processes under every start method; hostile
// handshakes; timeouts; the Unix socket file's mode and removal; refused connections.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sys/connection.hpp"
#include "sys/named_pipe.hpp"
#include "sys/socket.hpp"
#include "test_util.hpp"

#if defined(_WIN32)
#include <windows.h>
#include <aclapi.h>
#else
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Point {
    int x = 0;
    std::string label;
    MP_FIELDS(x, label)
    bool operator==(const Point& o) const { return x == o.x && label == o.label; }
};

// The families a Listener has here: TCP everywhere, and the platform's default (Unix sockets
// on POSIX, named pipes on Windows).
std::vector<mp::AddressFamily> families() { return {mp::AddressFamily::inet, mp::default_family()}; }

// A raw client end, connected without any handshake, so that a test can send what no Client
// would.
mp::sys::PipeEnd raw_connect(const mp::Address& a) {
    mp::sys::PipeEnd end;
    if constexpr (mp::sys::kListenerPipes) {  // the named-pipe family exists on Windows only
        if (a.family == mp::AddressFamily::named_pipe) {
            if (auto ec = mp::sys::listener_pipe_connect(a.path, mp::sys::Deadline::after_seconds(10), end))
                mp::raise_os_error(ec, "raw_connect");
            return end;
        }
    }
    mp::sys::SockAddress sa;
    sa.family = a.family == mp::AddressFamily::inet ? mp::sys::SockFamily::inet : mp::sys::SockFamily::unix_path;
    sa.host = a.host;
    sa.port = a.port;
    sa.path = a.path;
    mp::sys::SocketHandle s;
    if (auto ec = mp::sys::socket_create(sa.family, s)) mp::raise_os_error(ec, "raw_connect");
    bool in_progress = false;
    if (auto ec = mp::sys::socket_connect_start(s.get(), sa, mp::sys::Deadline::never(), in_progress)) mp::raise_os_error(ec, "raw_connect");
    if (in_progress) {
        bool ready = false;
        mp::sys::socket_wait(s.get(), true, mp::sys::Deadline::after_seconds(10), ready);
        if (auto ec = mp::sys::socket_connect_result(s.get())) mp::raise_os_error(ec, "raw_connect");
    }
    if (auto ec = mp::sys::end_from_socket(std::move(s), end)) mp::raise_os_error(ec, "raw_connect");
    return end;
}

void raw_write(mp::sys::PipeEnd& end, const std::string& bytes) {
    mp::sys::pipe_write(end, bytes.data(), bytes.size(), nullptr, 0);  // a gone peer is fine here
}

// Reads one length-prefixed message (as the handshake and Connection frame them).
std::string raw_read_frame(mp::sys::PipeEnd& end) {
    unsigned char h[4] = {};
    std::size_t got = 0;
    mp::sys::pipe_read(end, h, 4, got);
    const std::uint32_t n = h[0] | (h[1] << 8) | (h[2] << 16) | (std::uint32_t{h[3]} << 24);
    std::string m(got == 4 && n <= 4096 ? n : 0, '\0');
    if (!m.empty()) mp::sys::pipe_read(end, m.data(), m.size(), got);
    return m;
}

std::string frame(const std::string& payload, std::uint32_t announced) {
    std::string f(4, '\0');
    for (int i = 0; i < 4; ++i) f[i] = static_cast<char>(announced >> (8 * i));
    return f + payload;
}

// ---- child targets ---------------------------------------------------------------------------

// Connects, then echoes Points back (x doubled) until it gets x < 0. 7: authentication failed.
int auth_client(mp::Address where, std::string key) {
    mp::Connection c;
    try {
        c = mp::Client(where, key, 30.0);
    } catch (const mp::AuthenticationError&) {
        return 7;
    }
    for (;;) {
        if (!c.poll(30.0)) return 3;
        Point p = c.recv<Point>();
        if (p.x < 0) return 0;
        p.x *= 2;
        c.send(p);
    }
}
MP_TARGET(auth_client);

class ListenerMethodTest : public mp_test::MethodTest {
protected:
    // Starts auth_client(key) in a child against a Listener(family, listen_key); returns the
    // child's exit code and whether accept raised AuthenticationError.
    void exchange(mp::AddressFamily family, const std::string& listen_key, const std::string& client_key,
                  bool expect_ok) {
        SCOPED_TRACE("family " + std::to_string(static_cast<int>(family)));
        mp::Listener l(family, listen_key);
        mp::Process p = ctx().Process(auth_client, l.address(), client_key);
        p.start();
        if (expect_ok) {
            mp::Connection c = l.accept(30.0);
            for (int i = 0; i < 5; ++i) {
                c.send(Point{i, "p" + std::to_string(i)});
                EXPECT_EQ(c.recv<Point>(), (Point{2 * i, "p" + std::to_string(i)}));
            }
            c.send(Point{-1, ""});
            p.join();
            EXPECT_EQ(p.exitcode(), 0);
        } else {
            EXPECT_THROW(l.accept(30.0), mp::AuthenticationError);
            p.join();
            EXPECT_EQ(p.exitcode(), 7);  // the client saw AuthenticationError too
        }
    }
};

}  // namespace

TEST_P(ListenerMethodTest, RightKeyObjectsRoundTrip) {
    mp_test::time_limit(60);
    for (auto f : families()) exchange(f, "secret key", "secret key", true);
}

TEST_P(ListenerMethodTest, WrongKeyFailsOnBothSides) {
    mp_test::time_limit(60);
    for (auto f : families()) exchange(f, "secret key", "another key", false);
}

TEST_P(ListenerMethodTest, NoKeyNoHandshake) {
    mp_test::time_limit(60);
    for (auto f : families()) exchange(f, "", "", true);
}

#if defined(_WIN32)
namespace {
int hold_connection(mp::Connection c) { return c.closed() ? 1 : 0; }
MP_TARGET(hold_connection);
}  // namespace

TEST_P(ListenerMethodTest, TcpConnectionCannotBeSpawnedOnWindows) {
    mp::Listener l(mp::AddressFamily::inet);
    std::thread t([&] { mp::Connection c = l.accept(30.0); });
    mp::Connection c = mp::Client(l.address());
    t.join();
    EXPECT_THROW(
        {
            mp::Process p = ctx().Process(hold_connection, c);
            p.start();
        },
        mp::NotImplementedError);
}
#endif

MP_INSTANTIATE_FOR_EACH_METHOD(ListenerMethodTest);

TEST(Listener, AddressesAndDefaults) {
    mp::Listener tcp(mp::Address::tcp("127.0.0.1", 0));
    EXPECT_EQ(tcp.address().family, mp::AddressFamily::inet);
    EXPECT_EQ(tcp.address().host, "127.0.0.1");
    EXPECT_GT(tcp.address().port, 0);  // port 0 chose one, and address() reports it
    mp::Listener def;
    EXPECT_EQ(def.address().family, mp::default_family());
#if defined(_WIN32)
    EXPECT_EQ(mp::default_family(), mp::AddressFamily::named_pipe);
    EXPECT_EQ(def.address().path.rfind("\\\\.\\pipe\\", 0), 0u);
    EXPECT_THROW(mp::Listener(mp::Address::pipe("not-a-pipe-name")), mp::ValueError);
#else
    EXPECT_EQ(mp::default_family(), mp::AddressFamily::unix_socket);
    EXPECT_THROW(mp::Listener(mp::Address::pipe("\\\\.\\pipe\\x")), mp::ValueError);
#endif
    def.close();
    EXPECT_TRUE(def.closed());
    EXPECT_THROW(def.accept(), mp::OSError);
    EXPECT_THROW(tcp.accept(-1.0), mp::ValueError);
}

TEST(Listener, AcceptTimeoutNeverEarly) {
    for (auto f : families()) {
        mp::Listener l(f, "k");
        const auto t0 = Clock::now();
        EXPECT_THROW(l.accept(0.2), mp::TimeoutError);
        EXPECT_GE(ms_since(t0), 200.0);
    }
}

// accept, set_handshake_timeout and Client with std::chrono durations; a negative one is no
// time left: accept throws TimeoutError at once (the seconds form refuses a negative value).
TEST(Listener, DurationTimeouts) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    for (auto f : families()) {
        mp::Listener l(f, "k");
        const auto t0 = Clock::now();
        EXPECT_THROW(l.accept(milliseconds(150)), mp::TimeoutError);
        EXPECT_GE(ms_since(t0), 150.0);
        EXPECT_THROW(l.accept(milliseconds(-1)), mp::TimeoutError);
        EXPECT_THROW(l.set_handshake_timeout(seconds(-1)), mp::ValueError);
        l.set_handshake_timeout(seconds(10));
        std::thread t([&] { mp::Client(l.address(), "k", seconds(10)).send(7); });
        mp::Connection c = l.accept(seconds(10));
        EXPECT_TRUE(c.poll(seconds(10)));
        EXPECT_EQ(c.recv<int>(), 7);
        t.join();
    }
}

TEST(Listener, HandshakeIsBoundedOnBothSides) {
    for (auto f : families()) {
        // A server that never accepts: the client's connect completes (the OS queues it, or the
        // pipe instance waits), then no challenge comes.
        mp::Listener l(f, "k");
        auto t0 = Clock::now();
        EXPECT_THROW(mp::Client(l.address(), "k", 0.3), mp::AuthenticationError);
        EXPECT_GE(ms_since(t0), 300.0);
        // A client that connects and says nothing: accept gives up after the handshake timeout.
        mp::Listener l2(f, "k");
        l2.set_handshake_timeout(0.3);
        mp::sys::PipeEnd silent = raw_connect(l2.address());
        t0 = Clock::now();
        EXPECT_THROW(l2.accept(10.0), mp::AuthenticationError);
        EXPECT_GE(ms_since(t0), 300.0);
    }
}

TEST(Listener, GarbageHandshakesThenAGoodClient) {
    mp_test::time_limit(120);
    const int rounds = mp_test::under_wine() ? 100 : 1000;
    std::mt19937 rng(12345);
    for (auto f : families()) {
        SCOPED_TRACE("family " + std::to_string(static_cast<int>(f)));
        mp::Listener l(f, "the key");
        l.set_handshake_timeout(0.5);
        int failures = 0;
        for (int i = 0; i < rounds; ++i) {
            const int kind = i % 6;
            std::string junk(rng() % 300, '\0');
            for (char& c : junk) c = static_cast<char>(rng());
            // The garbage client reads the server's challenge first (but for kind 3), so that
            // the server is reading when the garbage comes and must judge it; then it closes.
            std::thread client([&, kind, junk] {
                mp::sys::PipeEnd end = raw_connect(l.address());
                if (kind != 3) raw_read_frame(end);
                switch (kind) {
                    case 0: raw_write(end, junk); break;                                   // random bytes
                    case 1: raw_write(end, frame(junk.substr(0, 10), 100)); break;         // truncated frame
                    case 2: raw_write(end, frame("", 0x7ffffff0u)); break;                 // oversized
                    case 3: break;                                                         // closed at once
                    case 4: raw_write(end, frame("{sha256}" + std::string(32, 'x'), 40)); break;  // wrong digest
                    case 5: raw_write(end, std::string("\xff\xff\xff\xff", 4) + junk); break;   // escaped length
                }
            });
            std::string why;
            try {
                l.accept(10.0);
                ADD_FAILURE() << "round " << i << ": a garbage client was accepted";
            } catch (const mp::AuthenticationError& e) {
                ++failures;
                why = e.what();
            }
            client.join();
            // Each was judged on what it sent: none waited out the handshake time, and (but
            // for the client that left at once) the challenge went out.
            EXPECT_EQ(why.find("in time"), std::string::npos) << "round " << i << ": " << why;
            if (kind != 3) {
                EXPECT_EQ(why.find("sending"), std::string::npos) << "round " << i << ": " << why;
            }
            const char* expected = kind == 1 ? "closed the connection during the handshake"
                                   : kind == 2 || kind == 5 ? "over the limit"
                                   : kind == 4              ? "digest received was wrong"
                                                            : "";
            EXPECT_NE(why.find(expected), std::string::npos) << "round " << i << ": " << why;
        }
        EXPECT_EQ(failures, rounds);
        // The Listener is still good.
        std::thread client([&] {
            mp::Connection c = mp::Client(l.address(), "the key", 10.0);
            c.send(std::string("still here"));
        });
        mp::Connection c = l.accept(10.0);
        EXPECT_EQ(c.recv<std::string>(), "still here");
        client.join();
    }
}

TEST(Listener, ClientRefusesAServerThatCannotProveTheKey) {
    mp_test::time_limit(60);
    // A rogue server (no key: no handshake of its own) plays the protocol by hand: it lets the
    // client answer its challenge, says welcome without checking, then answers the client's
    // challenge with a wrong digest. The client must not take that connection.
    for (auto f : families()) {
        SCOPED_TRACE("family " + std::to_string(static_cast<int>(f)));
        mp::Listener rogue(f);
        std::string client_error;
        std::thread client([&] {
            try {
                mp::Client(rogue.address(), "the key", 10.0);
            } catch (const mp::AuthenticationError& e) {
                client_error = e.what();
            }
        });
        mp::Connection c = rogue.accept(10.0);
        c.send_bytes("#CHALLENGE#{sha256}" + std::string(40, 'n'));
        EXPECT_EQ(c.recv_bytes().size(), 8u + 32u);  // the client's digest, unchecked
        c.send_bytes(std::string("#WELCOME#"));
        const mp::bytes challenge = c.recv_bytes();
        EXPECT_GT(challenge.size(), std::string("#CHALLENGE#{sha256}").size());
        c.send_bytes("{sha256}" + std::string(32, '\0'));
        client.join();
        EXPECT_NE(client_error.find("digest received was wrong"), std::string::npos) << client_error;
    }
}

#if !defined(_WIN32)
TEST(Listener, UnixClientWaitsForRoomInAFullBacklog) {
    mp_test::time_limit(60);
    // Linux fails a non-blocking connect to a Unix socket whose backlog is full (EAGAIN) instead
    // of queueing it: a Client with time to wait must wait for room, not fail at once.
    mp::Listener l(mp::AddressFamily::unix_socket, "", 1);
    std::vector<mp::Connection> queued;
    for (int i = 0; i < 100; ++i) {
        try {
            queued.push_back(mp::Client(l.address(), "", 0.0));
        } catch (const mp::BlockingIOError&) {
            break;  // full: a try with no time to wait says so
        }
    }
    ASSERT_LT(queued.size(), 100u) << "the backlog never filled";
    bool connected = false;
    std::thread late([&] {
        mp::Connection c = mp::Client(l.address(), "", 20.0);
        connected = true;
        c.send(1);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<mp::Connection> accepted;
    for (std::size_t i = 0; i <= queued.size(); ++i) accepted.push_back(l.accept(20.0));  // makes room
    late.join();
    EXPECT_TRUE(connected);
    EXPECT_EQ(accepted.back().recv<int>(), 1);
}
#endif

TEST(Listener, ServerKeyClientWithout) {
    for (auto f : families()) {
        mp::Listener l(f, "k");
        l.set_handshake_timeout(0.3);
        std::thread client([&] {
            mp::Connection c = mp::Client(l.address());  // no key: no handshake on this side
            (void)c.poll(5.0);                             // holds the connection while the server waits
        });
        EXPECT_THROW(l.accept(10.0), mp::AuthenticationError);
        client.join();
    }
}

TEST(Listener, RefusedAndMissing) {
    mp::Address gone;
    {
        mp::Listener l(mp::Address::tcp("127.0.0.1", 0));
        gone = l.address();
    }
    EXPECT_THROW(mp::Client(gone, "", 20.0), mp::ConnectionRefusedError);
    EXPECT_THROW(mp::Client(mp::arbitrary_address(mp::default_family())), mp::FileNotFoundError);
}

#if !defined(_WIN32)
TEST(Listener, UnixSocketFileIsPrivateAndRemoved) {
    const mp::Address a = mp::arbitrary_address(mp::AddressFamily::unix_socket);
    const mode_t old = ::umask(0);  // even a permissive umask must not widen the socket's mode
    mp::Listener l(a);
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::stat(a.path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    l.close();
    EXPECT_NE(::stat(a.path.c_str(), &st), 0);  // removed on close
    {
        mp::Listener scoped(a);
        ASSERT_EQ(::stat(a.path.c_str(), &st), 0);
    }
    EXPECT_NE(::stat(a.path.c_str(), &st), 0);  // and by the destructor
    EXPECT_THROW(mp::Listener(mp::Address::unix_socket(std::string("\0abstract", 9))), mp::ValueError);
    EXPECT_THROW(mp::Listener(mp::Address::unix_socket("@abstract")), mp::ValueError);
    EXPECT_THROW(mp::Client(mp::Address::unix_socket("@abstract")), mp::ValueError);
    // A stale socket file with no one listening: refused, as in Python.
    {
        mp::Socket stale(mp::AddressFamily::unix_socket);
        stale.bind(a);
    }
    EXPECT_THROW(mp::Client(a), mp::ConnectionRefusedError);
    ::unlink(a.path.c_str());
}

// A unix-socket address from a std::filesystem::path is the one its text gives.
TEST(Listener, UnixSocketAddressFromAPath) {
    const std::filesystem::path p = mp::arbitrary_address(mp::AddressFamily::unix_socket).path;
    const mp::Address a = mp::Address::unix_socket(p);
    EXPECT_EQ(a, mp::Address::unix_socket(p.u8string()));
    EXPECT_EQ(a, mp::Address::unix_socket(p.u8string().c_str()));
    mp::Listener l(a);
    std::thread t([&] { mp::Client(mp::Address::unix_socket(p)).send(std::string("by path")); });
    mp::Connection c = l.accept(std::chrono::seconds(10));
    EXPECT_EQ(c.recv<std::string>(), "by path");
    t.join();
    l.close();
    EXPECT_FALSE(std::filesystem::exists(p));  // removed, as with a string address
}
#else
TEST(Listener, NamedPipeFirstInstanceAndDacl) {
    // The DACL as set: one ACE, allowing everything to this user's SID only.
    mp::sys::PipeEnd inst;
    const mp::Address a = mp::arbitrary_address(mp::AddressFamily::named_pipe);
    ASSERT_FALSE(mp::sys::listener_pipe_create(a.path, true, inst));
    PACL dacl = nullptr;
    PSECURITY_DESCRIPTOR sd = nullptr;
    ASSERT_EQ(GetSecurityInfo(inst.h.get(), SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, nullptr, nullptr, &dacl, nullptr,
                              &sd),
              static_cast<DWORD>(ERROR_SUCCESS));
    ASSERT_NE(dacl, nullptr);
    EXPECT_EQ(dacl->AceCount, 1);
    void* ace = nullptr;
    ASSERT_TRUE(GetAce(dacl, 0, &ace));
    EXPECT_EQ(static_cast<ACE_HEADER*>(ace)->AceType, ACCESS_ALLOWED_ACE_TYPE);
    HANDLE token = nullptr;
    ASSERT_TRUE(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
    unsigned char user[256];
    DWORD size = 0;
    ASSERT_TRUE(GetTokenInformation(token, TokenUser, user, sizeof user, &size));
    CloseHandle(token);
    EXPECT_TRUE(EqualSid(&static_cast<ACCESS_ALLOWED_ACE*>(ace)->SidStart, reinterpret_cast<TOKEN_USER*>(user)->User.Sid));
    LocalFree(sd);

    mp::Listener l;
    if (mp_test::under_wine())
        GTEST_SKIP() << "Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE (WINE-NOTES), so a second "
                        "Listener on the same name is not refused there";
    EXPECT_THROW(mp::Listener{l.address()}, mp::OSError);  // a squatter on the name is an error
}
#endif

// A TCP connection is a Connection like a pipe's: mp::wait sees its messages, and a send with a
// timeout to a peer that does not read ends in TimeoutError with every whole message intact.
TEST(Listener, TcpConnectionWaitsAndTimedSends) {
    mp::Listener l(mp::Address::tcp("127.0.0.1", 0));
    mp::Connection c = mp::Client(l.address());
    mp::Connection s = l.accept(10.0);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(mp::wait({s}, 0.05).empty());
    EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.05);
    c.send(41);
    EXPECT_EQ(mp::wait({s}, 10.0), std::vector<std::size_t>{0});
    EXPECT_EQ(s.recv<int>(), 41);

    const std::string msg(1000, 't');
    int sent = 0;
    bool timed_out = false;
    for (int i = 0; i < 1000000 && !timed_out; ++i) {
        try {
            c.send_bytes(msg.data(), msg.size(), 0.05);
            ++sent;
        } catch (const mp::TimeoutError&) {
            timed_out = true;
        }
    }
    ASSERT_TRUE(timed_out);
    const bool cut = c.closed();
    c.close();
    int got = 0;
    bool decode_error = false;
    for (;;) {
        try {
            EXPECT_EQ(s.recv_bytes().size(), msg.size());
            ++got;
        } catch (const mp::EOFError&) {
            break;
        } catch (const mp::DecodeError&) {
            decode_error = true;
            break;
        }
    }
    EXPECT_EQ(got, sent);
    EXPECT_EQ(decode_error, cut);
}
