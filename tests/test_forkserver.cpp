// tests/test_forkserver.cpp - what only the forkserver start method has: its server, the key
// that guards it, its restart, its preloads, and a multithreaded parent. The Process operations
// themselves run under forkserver with every other start method (MethodTest, test_process.cpp).
// On Windows there is no forkserver: get_context("forkserver") is a ValueError
// (Context.StartMethods).
#include "test_util.hpp"

#if !defined(_WIN32)
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>
#include <functional>
#include <memory>
#include <vector>

#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.hpp"
#include "sys/forkserver.hpp"
#include "sys/handle.hpp"
#include "sys/process.hpp"
#include "sys/tracker.hpp"

using namespace std::chrono_literals;

namespace {

// ---- targets --------------------------------------------------------------------------------

int touch_file(std::string path) {
    mp_test::write_file(path, std::to_string(mp::getpid()));
    return 0;
}
MP_TARGET(touch_file);

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
MP_TARGET(sleep_ms);

int say_pid_then_wait(mp::Connection c, mp::Event stop) {
    c.send(mp::getpid());
    (void)stop.wait(120);  // set or not, the child ends the same way (the wait only bounds its life)
    return 3;
}
MP_TARGET(say_pid_then_wait);

// The preloads: they run in the server, once, before any child is forked; a child is a fork of
// the server and so sees what they left in memory.
int g_preloaded = 0;
// Each run appends the pid it ran in to the file MP_TEST_PRELOAD_LOG names (the server is a new
// run of the program: the path travels in its environment).
void preload_count() {
    ++g_preloaded;
    if (const char* log = std::getenv("MP_TEST_PRELOAD_LOG")) {
        std::ofstream(log, std::ios::app) << mp::getpid() << "\n";
    }
}
MP_TARGET(preload_count);
void preload_throws() { throw std::runtime_error("no cache today"); }
MP_TARGET(preload_throws);
int report_preloaded() { return 40 + g_preloaded; }
MP_TARGET(report_preloaded);

// A child that allocates and locks (what a fork child of a busy multithreaded parent could
// deadlock on), then exits with its number's remainder.
int allocate_and_exit(int i) {
    std::vector<std::string> v;
    for (int k = 0; k < 50; ++k) v.push_back(std::string(100 + k, 'x'));
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    return i % 7;
}
MP_TARGET(allocate_and_exit);

// A middle process: starts a daemonic forkserver child that sleeps "forever", reports the
// daemon's pid, its server's pid and the server's directory, then waits to be killed.
int middle_with_forkserver_daemon(std::string report) {
    mp::Process d = mp::get_context("forkserver").Process(sleep_ms, 600000);
    d.set_daemon(true);
    d.start();
    const std::string socket = mp::sys::forkserver_address();
    mp_test::write_file(report, std::to_string(*d.pid()) + " " + std::to_string(mp::sys::forkserver_pid()) + " " +
                                    socket.substr(0, socket.rfind('/')));
    std::this_thread::sleep_for(600s);
    return 0;
}
MP_TARGET(middle_with_forkserver_daemon);

// ---- helpers --------------------------------------------------------------------------------

std::vector<int> children_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::vector<int> out;
    for (int c; f >> c;) out.push_back(c);
    return out;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string directory_of(const std::string& socket) { return socket.substr(0, socket.rfind('/')); }

bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
    for (auto until = std::chrono::steady_clock::now() + limit; !done();) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

// A bootstrap payload for a registered function, as start() builds it (process.cpp).
std::string payload_for(const std::string& target, const std::string& args) {
    mp::detail::SpawnPayload p;
    p.magic = mp::detail::kSpawnMagic;
    p.version = mp::detail::kSpawnVersion;
    p.kind = "function";
    p.target = target;
    p.target_payload = args;
    p.name = "by-hand";
    p.parent_pid = mp::getpid();
    p.parent_name = "MainProcess";
    return mp::encode(p);
}

// Children, descriptors and the server: the same after each test as before it.
class Forkserver : public ::testing::Test {
protected:
    void SetUp() override {
        mp_test::warm_up_forkserver();
        ASSERT_GT(mp::sys::forkserver_pid(), 0);
        ASSERT_EQ(mp_test::count_children(), 0);
        handles_before_ = mp_test::count_handles();
    }
    void TearDown() override {
        mp::set_forkserver_preload({});
        mp_test::warm_up_forkserver();  // a test that stopped the server leaves one running, as it found it
        EXPECT_EQ(mp_test::count_children(), 0) << "the test left a child process behind";
        EXPECT_EQ(mp_test::count_handles(), handles_before_) << "the test leaked descriptors";
    }
    std::size_t handles_before_ = 0;
};

}  // namespace

// The server holds no key we know: a request made with another key is refused before anything
// is read beyond its header, and nothing is forked; the same request with the real key (start())
// works, and the server goes on serving.
TEST_F(Forkserver, WrongKeyIsRefused) {
    const std::string marker = mp_test::temp_path("refused");
    const std::string payload = payload_for("touch_file", mp::encode_message(std::make_tuple(marker)));
    mp::sys::Handle watch;
    ASSERT_FALSE(mp::sys::open_self_watch(watch));
    const int server = mp::sys::forkserver_pid();
    const auto before = children_of(server);
    for (const std::string& key : {std::string(32, 'x'), std::string(32, '\0'), std::string(31, 'k'), std::string()}) {
        mp::sys::Child c;
        const auto ec = mp::sys::forkserver_request(mp::sys::forkserver_address(), key, payload, {watch.get()}, false, c);
        EXPECT_EQ(ec, std::errc::permission_denied) << ec.message();
        EXPECT_EQ(c.pid, 0);
        EXPECT_FALSE(c.status.valid());
    }
    EXPECT_EQ(children_of(server), before) << "a refused request forked a child";
    EXPECT_FALSE(exists(marker)) << "a refused request ran its target";
    EXPECT_EQ(mp::sys::forkserver_pid(), server);  // it refused and served on

    // The same target through start(): runs, from the same server.
    mp::Process p = mp::get_context("forkserver").Process(touch_file, marker);
    p.start();
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_TRUE(exists(marker));
    EXPECT_EQ(mp::sys::forkserver_pid(), server);
    std::remove(marker.c_str());
}

// A peer that connects and says nothing useful (a truncated header, garbage, an early close)
// costs the server that connection only.
TEST_F(Forkserver, GarbageAndSilenceDoNotStopTheServer) {
    const std::string address = mp::sys::forkserver_address();
    const int server = mp::sys::forkserver_pid();
    for (int round = 0; round < 3; ++round) {
        const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(s, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, address.c_str());
        ASSERT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        char hello[40];
        ASSERT_EQ(::recv(s, hello, sizeof hello, MSG_WAITALL), 40);
        if (round == 1) {
            const char garbage[200] = {1, 2, 3};
            ::send(s, garbage, sizeof garbage, MSG_NOSIGNAL);
        } else if (round == 2) {
            ::send(s, hello, 10, MSG_NOSIGNAL);  // a truncated header, then the close
        }
        ::close(s);
    }
    mp::Process p = mp::get_context("forkserver").Process(sleep_ms, 0);
    p.start();
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(mp::sys::forkserver_pid(), server);
}

// Something else answering at the server's address cannot prove it holds the key: the client
// refuses its answer (the authentication goes both ways).
TEST_F(Forkserver, AServerWithoutTheKeyIsNotBelieved) {
    const std::string dir = mp_test::temp_path("fake");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    const std::string address = dir + "/s";
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, address.c_str());
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    std::thread fake([listener] {
        const int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        // The wire of sys/forkserver.hpp: a hello (magic "mpfs", version 1, nonce), the
        // request (80 bytes of header, then the payload), a reply that claims success.
        unsigned char hello[40] = {};
        const std::uint32_t magic = 0x6d706673, version = 1;
        std::memcpy(hello, &magic, 4);
        std::memcpy(hello + 4, &version, 4);
        ::send(c, hello, sizeof hello, MSG_NOSIGNAL);
        unsigned char header[80];
        if (::recv(c, header, sizeof header, MSG_WAITALL) == 80) {
            std::uint64_t size = 0;
            std::memcpy(&size, header + 64, 8);
            std::string rest(size, '\0');
            ::recv(c, rest.data(), rest.size(), MSG_WAITALL);
            unsigned char reply[40] = {};
            const std::int32_t pid = ::getpid();
            std::memcpy(reply + 4, &pid, 4);
            ::send(c, reply, sizeof reply, MSG_NOSIGNAL);
        }
        char b;
        ::recv(c, &b, 1, 0);  // until the client closes
        ::close(c);
    });
    mp::sys::Handle watch;
    ASSERT_FALSE(mp::sys::open_self_watch(watch));
    mp::sys::Child c;
    const auto ec = mp::sys::forkserver_request(address, std::string(32, 'k'), payload_for("touch_file", ""),
                                                {watch.get()}, false, c);
    EXPECT_EQ(ec, std::errc::operation_not_permitted) << ec.message();
    EXPECT_EQ(c.pid, 0);
    fake.join();
    ::close(listener);
    ::unlink(address.c_str());
    ::rmdir(dir.c_str());
}

// The directory is the user's alone, with a random name, and the server's socket is in it.
TEST_F(Forkserver, SocketLivesInAPrivateDirectory) {
    const std::string socket = mp::sys::forkserver_address();
    ASSERT_FALSE(socket.empty());
    ASSERT_NE(socket[0], '\0');  // a path, never an abstract name
    struct stat st {};
    ASSERT_EQ(::stat(directory_of(socket).c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(st.st_uid, ::getuid());
    ASSERT_EQ(::stat(socket.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    // The key is nowhere the world sees: not in the server's command line, not in its environment.
    const int server = mp::sys::forkserver_pid();
    for (const char* file : {"cmdline", "environ"}) {
        std::ifstream f("/proc/" + std::to_string(server) + "/" + file);
        std::stringstream text;
        text << f.rdbuf();
        EXPECT_EQ(text.str().find("key"), std::string::npos) << file;
    }
}

// A killed server is replaced at the next start(), with a new directory; the old one goes.
TEST_F(Forkserver, KilledServerIsRestarted) {
    const int old_server = mp::sys::forkserver_pid();
    const std::string old_dir = directory_of(mp::sys::forkserver_address());
    ASSERT_EQ(::kill(old_server, SIGKILL), 0);
    // It is our child: it stays a zombie until start() finds it dead (waitid without reaping).
    siginfo_t si{};
    ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(old_server), &si, WEXITED | WNOWAIT), 0);
    const std::string marker = mp_test::temp_path("restarted");
    mp::Process p = mp::get_context("forkserver").Process(touch_file, marker);
    p.start();
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_TRUE(exists(marker));
    std::remove(marker.c_str());
    const int new_server = mp::sys::forkserver_pid();
    EXPECT_GT(new_server, 0);
    EXPECT_NE(new_server, old_server);
    EXPECT_FALSE(exists(old_dir)) << "the dead server's directory is still there";
    EXPECT_TRUE(exists(mp::sys::forkserver_address()));
    EXPECT_NE(::waitpid(old_server, nullptr, WNOHANG), old_server) << "the dead server was not reaped";
}

// SharedMemory::stop_tracker removes every tracked name, the server's directory with it: the
// running server is given a new directory and socket, and goes on (its children undisturbed).
TEST_F(Forkserver, ServerWhoseDirectoryWentGetsANewOne) {
    const int server = mp::sys::forkserver_pid();
    auto [r, w] = mp::Pipe(false);
    mp::Event stop;
    mp::Process running = mp::get_context("forkserver").Process(say_pid_then_wait, w, stop);
    running.set_daemon(true);
    running.start();
    EXPECT_EQ(r.recv<int>(), *running.pid());
    const std::string old_dir = directory_of(mp::sys::forkserver_address());
    testing::internal::CaptureStderr();
    mp::sys::stop_tracker();  // warns about the directory it removes
    testing::internal::GetCapturedStderr();
    EXPECT_FALSE(exists(old_dir));
    mp::Process p = mp::get_context("forkserver").Process(sleep_ms, 0);
    p.start();
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(mp::sys::forkserver_pid(), server);
    EXPECT_NE(directory_of(mp::sys::forkserver_address()), old_dir);
    EXPECT_TRUE(running.is_alive());  // the daemon of the same server lives on
    stop.set();
    running.join(60);
    EXPECT_EQ(running.exitcode(), 3);
}

// stop: the server ends, is reaped, and its directory goes; nothing of it is left.
TEST_F(Forkserver, StopLeavesNothing) {
    const std::string socket = mp::sys::forkserver_address();
    const int server = mp::sys::forkserver_pid();
    const std::size_t fds = mp_test::count_handles();
    mp::sys::forkserver_stop();
    EXPECT_EQ(mp::sys::forkserver_pid(), 0);
    EXPECT_EQ(mp::sys::forkserver_address(), "");
    EXPECT_FALSE(exists(socket));
    EXPECT_FALSE(exists(directory_of(socket)));
    EXPECT_FALSE(mp::sys::pid_exists(server)) << "the server outlived stop";
    EXPECT_EQ(mp_test::count_handles(), fds - 1);  // its alive channel
    EXPECT_EQ(mp_test::count_children(), 0);
}

// A daemonic forkserver child of a parent killed with SIGKILL dies when the parent's server
// notices the end of its alive channel; the server itself ends (no orphaned server), and its
// directory goes with the parent (the parent's tracker).
TEST_F(Forkserver, DaemonDiesWhenItsKilledParentsServerNotices) {
    const std::string report = mp_test::temp_path("middle");
    mp::Process middle = mp::get_context("spawn").Process(middle_with_forkserver_daemon, report);
    middle.start();
    const std::string line = mp_test::wait_for_file(report, 60s);
    ASSERT_FALSE(line.empty());
    std::istringstream in(line);
    int daemon = 0, server = 0;
    std::string dir;
    in >> daemon >> server >> dir;
    ASSERT_GT(daemon, 0);
    ASSERT_GT(server, 0);
    EXPECT_TRUE(exists(dir));
    EXPECT_EQ(children_of(server), std::vector<int>{daemon});
    middle.kill();
    middle.join();
    EXPECT_EQ(middle.exitcode(), -9);
    EXPECT_EQ(mp_test::wait_reaped(daemon, 30s), 0) << "the daemon outlived its killed parent";
    EXPECT_EQ(mp_test::wait_reaped(server, 30s), 0) << "the server outlived its killed parent";
    EXPECT_TRUE(wait_until([&] { return !exists(dir); }, 30s)) << "the server's directory outlived its parent";
    mp_test::reap_orphans(30s);  // the middle's tracker
    std::remove(report.c_str());
}

// Preloads run in the server, once, before any child: each child (a fork of the server) sees
// what they left in memory.
TEST_F(Forkserver, PreloadRunsOnceInTheServer) {
    const std::string log = mp_test::temp_path("preload");
    ::setenv("MP_TEST_PRELOAD_LOG", log.c_str(), 1);  // the server is a new run: it reads its env
    mp::sys::forkserver_stop();
    mp::set_forkserver_preload({"preload_count"});
    for (int i = 0; i < 3; ++i) {
        mp::Process p = mp::get_context("forkserver").Process(report_preloaded);
        p.start();
        p.join(60);
        EXPECT_EQ(p.exitcode(), 41);  // 40 + one preload, done in the server
    }
    ::unsetenv("MP_TEST_PRELOAD_LOG");
    std::ifstream f(log);
    std::vector<int> pids;
    for (int pid; f >> pid;) pids.push_back(pid);
    EXPECT_EQ(pids, std::vector<int>{mp::sys::forkserver_pid()}) << "the preload ran elsewhere, or more than once";
    EXPECT_EQ(g_preloaded, 0);  // not here
    mp::sys::forkserver_stop();  // the next server starts without the preload
    std::remove(log.c_str());
}

// Runs fn with this process's stderr (which the server inherits when it starts) in a pipe.
std::string server_stderr(const std::function<void()>& fn) {
    mp::sys::PipeEnds pipe;
    EXPECT_FALSE(mp::sys::make_pipe(pipe));
    std::fflush(stderr);
    const int saved = ::dup(2);
    ::dup2(pipe.write.get(), 2);
    fn();
    mp::sys::forkserver_stop();  // the server's copy of the pipe goes with it
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    pipe.write.reset();
    std::string out;
    char buf[4096];
    for (std::size_t got = 0; !mp::sys::read_full(pipe.read.get(), buf, sizeof buf, got) && got > 0;) out.append(buf, got);
    return out;
}

TEST_F(Forkserver, PreloadErrorsIgnoredWarnedOrFatal) {
    mp_test::time_limit(120);
    using mp::OnPreloadError;
    for (OnPreloadError mode : {OnPreloadError::ignore, OnPreloadError::warn}) {
        const std::string err = server_stderr([&] {
            mp::sys::forkserver_stop();
            mp::set_forkserver_preload({"no_such_function", "preload_throws", "touch_file", "preload_count"}, mode);
            mp::Process p = mp::get_context("forkserver").Process(report_preloaded);
            p.start();
            p.join(60);
            EXPECT_EQ(p.exitcode(), 41);  // the good preload ran despite the bad ones
        });
        if (mode == OnPreloadError::ignore) {
            EXPECT_EQ(err.find("preload"), std::string::npos) << err;
        } else {
            EXPECT_NE(err.find("warning: preload no function is registered as 'no_such_function'"), std::string::npos)
                << err;
            EXPECT_NE(err.find("'preload_throws' threw std::runtime_error: no cache today"), std::string::npos) << err;
            EXPECT_NE(err.find("'touch_file' takes arguments; a preload takes none"), std::string::npos) << err;
        }
    }
    // fail: the server stops before it serves; start() says so and why; the next server, without
    // the bad preload, serves again.
    const std::string err = server_stderr([&] {
        mp::sys::forkserver_stop();
        mp::set_forkserver_preload({"preload_throws"}, OnPreloadError::fail);
        mp::Process p = mp::get_context("forkserver").Process(report_preloaded);
        try {
            p.start();
            ADD_FAILURE() << "start() succeeded with a failing preload under fail";
            p.join();
        } catch (const mp::OSError& e) {
            EXPECT_NE(std::string(e.what()).find("ended with exit code 1 before it answered"), std::string::npos)
                << e.what();
        }
        EXPECT_FALSE(p.pid());
    });
    EXPECT_NE(err.find("preload 'preload_throws' threw std::runtime_error: no cache today; the server stops"),
              std::string::npos)
        << err;
    mp::set_forkserver_preload({});
    mp::Process again = mp::get_context("forkserver").Process(report_preloaded);
    again.start();
    again.join(60);
    EXPECT_EQ(again.exitcode(), 40);
}

// The reason the method exists: a parent with 16 busy threads (some allocating in a loop, some
// taking a lock over and over, some computing) starts 1000 children with no hang. Under fork a
// child could inherit a lock held by one of those threads; here every child is forked by the
// single-threaded server. A hang is the watchdog's failure.
TEST_F(Forkserver, SixteenBusyThreadsAThousandChildren) {
    mp_test::time_limit(600);
    std::atomic<bool> stop{false};
    std::mutex shared;
    std::vector<std::thread> busy;
    std::atomic<long> work{0};
    for (int t = 0; t < 16; ++t) {
        busy.emplace_back([&, t] {
            std::vector<std::unique_ptr<char[]>> held;
            while (!stop.load(std::memory_order_relaxed)) {
                if (t % 3 == 0) {  // allocating
                    held.emplace_back(new char[64 + (work % 4096)]);
                    if (held.size() > 256) held.clear();
                } else if (t % 3 == 1) {  // a lock held now and then, at any instant
                    std::lock_guard<std::mutex> lock(shared);
                    std::string s(200, 'y');
                    work += static_cast<long>(s.size());
                } else {
                    for (int k = 0; k < 1000; ++k) work.fetch_add(1, std::memory_order_relaxed);
                }
                ++work;
                std::this_thread::yield();
            }
        });
    }
    int failures = 0;
    std::string first_failure;
    const auto& ctx = mp::get_context("forkserver");
    for (int batch = 0; batch < 50; ++batch) {
        std::vector<mp::Process> ps;
        for (int i = 0; i < 20; ++i) ps.push_back(ctx.Process(allocate_and_exit, batch * 20 + i));
        for (auto& p : ps) p.start();
        for (std::size_t i = 0; i < ps.size(); ++i) {
            ps[i].join(120);
            const int expected = (batch * 20 + static_cast<int>(i)) % 7;
            if (ps[i].exitcode() != expected && failures++ == 0)
                first_failure = "child " + std::to_string(batch * 20 + static_cast<int>(i)) + " ended with " +
                                std::to_string(ps[i].exitcode().value_or(-999));
        }
    }
    stop = true;
    for (auto& th : busy) th.join();
    EXPECT_EQ(failures, 0) << first_failure;
    EXPECT_GT(work.load(), 0);
}

// What a forkserver child reports as its pid is the pid the parent sees; a signal death reads
// -signum; sentinels work under mp::wait while the children run and after.
TEST_F(Forkserver, PidsSignalsAndSentinels) {
    auto [r, w] = mp::Pipe(false);
    mp::Event stop;
    mp::Process a = mp::get_context("forkserver").Process(say_pid_then_wait, w, stop);
    mp::Process b = mp::get_context("forkserver").Process(sleep_ms, 600000);
    a.start();
    b.start();
    EXPECT_EQ(r.recv<int>(), *a.pid());
    EXPECT_TRUE(mp::wait({a, b}, 0.05).empty());
    ASSERT_EQ(::kill(*b.pid(), SIGUSR1), 0);  // by pid, as another program would
    EXPECT_EQ(mp::wait({a, b}, 60.0), std::vector<std::size_t>{1});
    EXPECT_EQ(b.exitcode(), -SIGUSR1);
    stop.set();
    a.join(60);
    EXPECT_EQ(a.exitcode(), 3);
    EXPECT_EQ(mp::wait({a, b}, 0), (std::vector<std::size_t>{0, 1}));  // sentinels stay ready
    b.terminate();  // ended and reaped: nothing is signalled (the pid may be someone else's now)
    b.kill();
    a.interrupt();
}

#endif  // !_WIN32
