// tests/test_main.cpp - the test binary's main: the spawn bootstrap first (a spawned child of a
// test runs its target there), then GoogleTest, with a watchdog that fails a test which runs
// past its time limit.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "sys/forkserver.hpp"
#include "sys/handle.hpp"
#include "sys/os.hpp"
#include "sys/process.hpp"
#include "sys/tracker.hpp"
#include "test_util.hpp"

#if defined(_WIN32)
#include <windows.h>
#include <tlhelp32.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#else
#include <csignal>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace mp_test {

namespace {
constexpr int kDefaultLimit = 60;
// The message is made when a test starts, so that the timeout (a signal handler on POSIX)
// only writes it: no allocation, no stdio in a handler.
char g_timeout_message[512] = "\n*** TIMEOUT ***\n";

[[noreturn]] void on_timeout() {
#if defined(_WIN32)
    std::fputs(g_timeout_message, stderr);
    std::fflush(stderr);
#else
    const ssize_t ignored = ::write(2, g_timeout_message, std::strlen(g_timeout_message));
    (void)ignored;
#endif
    std::_Exit(3);
}

#if defined(_WIN32)
// Windows has no alarm(): a watchdog thread waits for the deadline.
std::mutex g_mu;
std::condition_variable g_cv;
std::chrono::steady_clock::time_point g_deadline = std::chrono::steady_clock::time_point::max();

void arm(int seconds) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    g_cv.notify_all();
}
void start_watchdog() {
    std::thread([] {
        std::unique_lock<std::mutex> lock(g_mu);
        for (;;) {
            if (g_cv.wait_until(lock, g_deadline) == std::cv_status::timeout &&
                std::chrono::steady_clock::now() >= g_deadline)
                on_timeout();
        }
    }).detach();
}
#else
// POSIX: alarm() keeps the test process single-threaded, so the fork start method is tested
// as users meet it; a pending alarm is not inherited by a fork child.
void arm(int seconds) { ::alarm(static_cast<unsigned>(seconds)); }
void start_watchdog() { std::signal(SIGALRM, [](int) { on_timeout(); }); }
#endif

class Watchdog : public ::testing::EmptyTestEventListener {
    void OnTestStart(const ::testing::TestInfo& info) override {
        std::snprintf(g_timeout_message, sizeof g_timeout_message, "\n*** TIMEOUT: %s.%s ran past its time limit ***\n",
                      info.test_suite_name(), info.name());
        arm(kDefaultLimit * (under_wine() ? 3 : 1));
    }
    void OnTestEnd(const ::testing::TestInfo&) override { arm(3600); }
};
}  // namespace

void time_limit(int seconds) { arm(seconds * (under_wine() ? 3 : 1)); }

bool under_wine() {
#if defined(_WIN32)
    static const bool wine = GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != nullptr;
    return wine;
#else
    return false;
#endif
}

mp::Process start_retrying_wine_refusals(const std::function<mp::Process()>& make, std::atomic<int>& refusals) {
    for (;;) {
        mp::Process p = make();
        try {
            p.start();
            return p;
        } catch (const mp::OSError& e) {
            if (!under_wine() || e.code().value() != 1359 || ++refusals > 5) throw;
        }
    }
}

int count_children() {
#if defined(_WIN32)
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return -1;
    PROCESSENTRY32W e{};
    e.dwSize = sizeof e;
    int n = 0;
    const DWORD self = GetCurrentProcessId();
    for (BOOL ok = Process32FirstW(snap, &e); ok; ok = Process32NextW(snap, &e))
        if (e.th32ParentProcessID == self) ++n;
    CloseHandle(snap);
    return n;
#else
    // waitid with WNOWAIT looks without reaping: ECHILD means no child exists at all.
    int n = 0;
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0) return 0;
    // Some child exists (running or zombie): count them from /proc. The forkserver and the
    // resource tracker (which holds the forkserver's directory) live as long as this process,
    // as they do under CPython: they are started before the first test (see main) and are not
    // counted.
    const int server = mp::sys::forkserver_pid();
    const int tracker = mp::sys::tracker_pid();
    std::ifstream f("/proc/self/task/" + std::to_string(::getpid()) + "/children");
    int pid;
    bool long_lived = false;
    while (f >> pid) {
        if (pid == server || pid == tracker) {
            long_lived = true;
            continue;
        }
        ++n;
    }
    return n > 0 ? n : long_lived ? 0 : 1;
#endif
}

std::size_t count_handles() {
    std::size_t n = 0;
    if (auto ec = mp::sys::count_open_handles(n)) ADD_FAILURE() << "count_open_handles: " << ec.message();
    return n;
}

std::string capture_stderr(const std::function<void()>& fn) {
    mp::sys::PipeEnds pipe;
    if (mp::sys::make_pipe(pipe)) throw std::runtime_error("make_pipe");
    std::fflush(stderr);
#if defined(_WIN32)
    HANDLE saved = GetStdHandle(STD_ERROR_HANDLE);
    SetStdHandle(STD_ERROR_HANDLE, pipe.write.get());
    fn();
    SetStdHandle(STD_ERROR_HANDLE, saved);
#else
    const int saved = ::dup(2);
    ::dup2(pipe.write.get(), 2);
    fn();
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
#endif
    pipe.write.reset();
    std::string out;
    char buf[4096];
    for (std::size_t got = 0; !mp::sys::read_full(pipe.read.get(), buf, sizeof buf, got) && got > 0;) out.append(buf, got);
    out.erase(std::remove(out.begin(), out.end(), '\r'), out.end());  // Windows' text-mode stderr writes \r\n
    return out;
}

std::string temp_path(const std::string& stem) {
    static int counter = 0;
#if defined(_WIN32)
    char dir[MAX_PATH];
    GetTempPathA(MAX_PATH, dir);
    return std::string(dir) + "mp_test_" + std::to_string(mp::getpid()) + "_" + stem + std::to_string(++counter);
#else
    return "/tmp/mp_test_" + std::to_string(mp::getpid()) + "_" + stem + std::to_string(++counter);
#endif
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path + ".tmp") << text;
    std::rename((path + ".tmp").c_str(), path.c_str());
}

std::string wait_for_file(const std::string& path, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        std::ifstream f(path);
        std::string s;
        if (f && std::getline(f, s) && !s.empty()) return s;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return "";
}

int wait_reaped(int pid, std::chrono::seconds limit) {
#if defined(_WIN32)
    HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, static_cast<DWORD>(pid));
    if (!h) return 0;  // already gone
    DWORD r = WaitForSingleObject(h, static_cast<DWORD>(limit.count() * 1000));
    CloseHandle(h);
    return r == WAIT_OBJECT_0 ? 0 : -1;
#else
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return 0;
        // Not (yet) our child: a forkserver's child is its server's until the server ends.
        if (r < 0 && !mp::sys::pid_exists(pid)) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
#endif
}

// The flag is a file's existence: it needs no process, descriptor or tracker of its own.
Gate::Gate() : name_(temp_path("gate")) { std::remove(name_.c_str()); }

Gate::~Gate() { std::remove(name_.c_str()); }

void Gate::open() { write_file(name_, "open"); }

static bool gate_is_open(const std::string& name) { return std::ifstream(name).good(); }

bool Gate::is_open() const { return gate_is_open(name_); }

bool Gate::wait_open(std::chrono::seconds limit) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!is_open()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

int wait_at_gate(std::string gate, int v) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!gate_is_open(gate) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return v;
}

int raise_gate_then_sleep(std::string gate, int ms) {
    write_file(gate, "begun");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}

void reap_orphans(std::chrono::seconds limit) {
#if !defined(_WIN32)
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(-1, &status, WNOHANG);
        if (r > 0) continue;
        if (r < 0 || count_children() == 0) return;
        if (std::chrono::steady_clock::now() > deadline) {
            ADD_FAILURE() << "an orphan re-parented to the test binary is still alive after " << limit.count() << " s";
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
#else
    (void)limit;
#endif
}

std::string path_beside(const std::string& program) {
    std::string self;
    if (auto ec = mp::sys::current_executable(self)) throw std::system_error(ec, "current_executable");
    const auto slash = self.find_last_of("/\\");
    std::string path = self.substr(0, slash + 1) + program;
#if defined(_WIN32)
    path += ".exe";
#endif
    return path;
}

Captured run_beside(const std::string& program, const std::vector<std::string>& args, int timeout_s) {
    const std::string path = path_beside(program);
    mp::sys::PipeEnds out;
    if (auto ec = mp::sys::make_pipe(out)) throw std::system_error(ec, "make_pipe");
    mp::sys::SpawnRequest req;
    req.program = path;
    req.args = {path};
    req.args.insert(req.args.end(), args.begin(), args.end());
    req.stdout_handle = out.write.get();
    req.stderr_handle = out.write.get();
    mp::sys::Child child;
    if (auto ec = mp::sys::spawn_process(req, child)) throw std::system_error(ec, "spawn " + path);
    out.write.reset();
    Captured c;
    char buf[4096];
    for (;;) {
        std::size_t got = 0;
        if (mp::sys::read_full(out.read.get(), buf, sizeof buf, got) || got == 0) break;
        c.output.append(buf, got);
        if (got < sizeof buf) continue;
    }
    bool exited = false;
    if (auto ec = mp::sys::wait_process(child, mp::sys::Deadline::after_seconds(timeout_s), exited, c.exitcode))
        throw std::system_error(ec, "wait");
    if (!exited) {
        mp::sys::signal_process(child, 9);
        mp::sys::wait_process(child, mp::sys::Deadline::never(), exited, c.exitcode);
        ADD_FAILURE() << program << " did not finish within " << timeout_s << " s";
    }
    return c;
}

void LeftoverCheck::before() {
    // The forkserver and the resource tracker (which holds the server's directory) live as long
    // as this process once started. A test before this one may have stopped either: this
    // brings both back before the descriptors are counted, under every start method, so that
    // a test that starts the tracker (a FIFO, a socket file) counts nothing new.
    warm_up_forkserver();
    ASSERT_EQ(count_children(), 0) << "a child from an earlier test is still around";
    handles_before_ = count_handles();
}

void LeftoverCheck::after() {
    EXPECT_EQ(count_children(), 0) << "the test left a child process behind";
    // Wine's handle count moves with its own internal objects; there the loop tests compare
    // counts over many cycles instead.
    if (!under_wine()) {
        EXPECT_EQ(count_handles(), handles_before_) << "the test leaked descriptors";
    }
}

std::string method_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

}  // namespace mp_test

MP_TARGET(mp_test::wait_at_gate);
MP_TARGET(mp_test::raise_gate_then_sleep);

namespace mp_test {
namespace {
void nothing() {}
MP_TARGET(nothing);
}  // namespace

void warm_up_forkserver() {
    for (const auto& m : mp::get_all_start_methods()) {
        if (m != "forkserver") continue;
        mp::Process p = mp::get_context("forkserver").Process(nothing);
        p.start();
        p.join(60);
        if (p.exitcode() != 0) ADD_FAILURE() << "the forkserver's warm-up child ended with " << p.exitcode().value_or(-999);
    }
}
}  // namespace mp_test

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns
#if !defined(_WIN32)
    // Orphaned grandchildren (a daemon whose parent a test killed) come back to us, so tests
    // can reap them and prove they died.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
    ::testing::InitGoogleTest(&argc, argv);
    mp_test::start_watchdog();
    ::testing::UnitTest::GetInstance()->listeners().Append(new mp_test::Watchdog);
    // The forkserver (and the tracker that holds its directory) start before the first test,
    // so that the tests' counts of children and descriptors do not see them appear.
    mp_test::time_limit(120);
    mp_test::warm_up_forkserver();
    const int result = RUN_ALL_TESTS();
#if !defined(_WIN32)
    // No leftovers after the suite: the server ends and its directory goes; then no child at all.
    const std::string socket = mp::sys::forkserver_address();
    const std::string dir = socket.substr(0, socket.rfind('/'));
    mp::sys::forkserver_stop();
    mp::sys::stop_tracker();
    int leftovers = 0;
    if (!socket.empty() && (::access(socket.c_str(), F_OK) == 0 || ::access(dir.c_str(), F_OK) == 0)) {
        std::fprintf(stderr, "mp_tests: the forkserver's directory %s is still there after the suite\n", dir.c_str());
        ++leftovers;
    }
    if (const int n = mp_test::count_children(); n != 0) {
        std::fprintf(stderr, "mp_tests: %d child process(es) still around after the suite\n", n);
        ++leftovers;
    }
    if (result == 0 && leftovers) return 1;
#endif
    return result;
}
