// tests/test_shared_memory.cpp - mp::SharedMemory (T17): lifecycle, Python's errors, passing a
// segment to a child under every start method, attaching by name from a child, crash cleanup
// (the POSIX tracker; the Windows kernel), and no segment left behind by any test.
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sys/forkserver.hpp"
#include "test_util.hpp"

#if defined(_WIN32)
#include <windows.h>
#else
#include <cerrno>
#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

// Every name a test makes starts with this prefix (and the test process's pid), so that the
// leak check can find them; generated names are remembered instead.
std::string prefix() { return "mp_test_shm_" + std::to_string(mp::getpid()) + "_"; }
std::string test_name(const std::string& stem) {
    static int counter = 0;
    return prefix() + stem + std::to_string(++counter);
}
std::set<std::string>& seen_names() {
    static std::set<std::string> s;
    return s;
}
mp::SharedMemory remember(mp::SharedMemory shm) {
    seen_names().insert(shm.name());
    return shm;
}

bool name_exists(const std::string& name) {
    try {
        mp::SharedMemory::attach(name);
        return true;
    } catch (const mp::FileNotFoundError&) {
        return false;
    }
}

void write_text(const mp::SharedMemory& shm, const std::string& text) {
    std::memcpy(shm.data(), text.data(), text.size());
}
std::string read_text(const mp::SharedMemory& shm, std::size_t n) {
    return std::string(reinterpret_cast<const char*>(shm.data()), n);
}

// No name made by these tests survives: every remembered name is gone, and on POSIX no
// /dev/shm entry carries this process's test prefix.
void expect_nothing_left() {
    for (const std::string& n : seen_names()) EXPECT_FALSE(name_exists(n)) << "segment " << n << " was left behind";
#if !defined(_WIN32)
    if (DIR* d = ::opendir("/dev/shm")) {
        while (const dirent* e = ::readdir(d))
            EXPECT_NE(std::string(e->d_name).rfind(prefix(), 0), 0u) << "/dev/shm/" << e->d_name << " was left behind";
        ::closedir(d);
    }
#endif
}

// These tests start and stop the tracker, and count descriptors around that. The suite's
// forkserver (POSIX) keeps its directory in the tracker, so it is stopped first (its directory
// leaves the tracker with it) and started again, with a tracker, after the test.
void stop_forkserver_and_tracker() {
    mp::sys::forkserver_stop();
    mp::SharedMemory::stop_tracker();
}

class SharedMemoryTest : public ::testing::Test {
protected:
    void SetUp() override {
        stop_forkserver_and_tracker();
        handles_before_ = mp_test::count_handles();
    }
    void TearDown() override {
        mp::SharedMemory::stop_tracker();  // the tracker is a child: end it so that none is left
        expect_nothing_left();
        if (!mp_test::under_wine()) {
            EXPECT_EQ(mp_test::count_handles(), handles_before_) << "leaked descriptors";
        }
        mp_test::warm_up_forkserver();
    }
    std::size_t handles_before_ = 0;
};

TEST_F(SharedMemoryTest, CreateAttachWriteReadCloseUnlink) {
    const std::string name = test_name("life");
    mp::SharedMemory a = remember(mp::SharedMemory::create(4096, name));
    EXPECT_EQ(a.name(), name);
    EXPECT_EQ(a.size(), 4096u);
    ASSERT_NE(a.data(), nullptr);
    EXPECT_FALSE(a.closed());
    write_text(a, "hello shared world");

    mp::SharedMemory b = mp::SharedMemory::attach(name);
    EXPECT_EQ(b.name(), name);
    EXPECT_EQ(b.size(), 4096u);
    EXPECT_NE(b.data(), a.data());  // two views of one segment
    EXPECT_EQ(read_text(b, 18), "hello shared world");
    b.buf()[0] = std::byte{'J'};
    EXPECT_EQ(read_text(a, 5), "Jello");
    EXPECT_EQ(b.buf().size(), b.size());

    b.close();
    EXPECT_TRUE(b.closed());
    EXPECT_EQ(b.data(), nullptr);
    EXPECT_TRUE(b.buf().empty());
    b.close();  // idempotent
    a.unlink();
#if !defined(_WIN32)
    EXPECT_FALSE(name_exists(name));
    // As in Python: the mapping stays valid after the name is gone.
    EXPECT_EQ(read_text(a, 5), "Jello");
    EXPECT_THROW(a.unlink(), mp::FileNotFoundError);
    a.close();
#else
    // Windows: unlink does nothing; the kernel removes the mapping with its last handle.
    EXPECT_TRUE(name_exists(name));
    a.close();
    EXPECT_FALSE(name_exists(name));
#endif
}

TEST_F(SharedMemoryTest, PythonConstructorAndGeneratedNames) {
    mp::SharedMemory a = remember(mp::SharedMemory("", true, 100));
    mp::SharedMemory b = remember(mp::SharedMemory::create(100));
#if defined(_WIN32)
    EXPECT_EQ(a.name().rfind("wnsm_", 0), 0u) << a.name();
#else
    EXPECT_EQ(a.name().rfind("psm_", 0), 0u) << a.name();
#endif
    EXPECT_NE(a.name(), b.name());
    EXPECT_EQ(a.size(), 100u);
    mp::SharedMemory c(a.name());  // attach, Python style; size comes from the segment
#if defined(_WIN32)
    EXPECT_GE(c.size(), 100u);  // a Windows view is page-rounded, as in CPython
#else
    EXPECT_EQ(c.size(), 100u);
    // A POSIX name may be given with its leading '/'.
    mp::SharedMemory d = mp::SharedMemory::attach("/" + a.name());
    EXPECT_EQ(d.name(), a.name());
#endif
    // Copies share one mapping: closing one closes all.
    mp::SharedMemory copy = c;
    EXPECT_EQ(copy.data(), c.data());
    copy.close();
    EXPECT_TRUE(c.closed());
    a.unlink();
    b.unlink();
}

TEST_F(SharedMemoryTest, ErrorsArePythons) {
    EXPECT_THROW(mp::SharedMemory::create(0), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory("", true, 0), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory("", true, -5), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory::attach(""), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory(""), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory::create(64, std::string(300, 'x')), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory::attach(std::string(300, 'x')), mp::ValueError);
#if defined(_WIN32)
    EXPECT_THROW(mp::SharedMemory::create(64, "Global\\x"), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory::attach("a\\b"), mp::ValueError);
#else
    EXPECT_THROW(mp::SharedMemory::create(64, "a/b"), mp::ValueError);
    EXPECT_THROW(mp::SharedMemory::attach("/a/b"), mp::ValueError);
    // The longest name glibc accepts works; one more character is a ValueError.
    const std::string longest = prefix() + std::string(253 - prefix().size(), 'L');
    mp::SharedMemory l = remember(mp::SharedMemory::create(64, longest));
    l.unlink();
    EXPECT_THROW(mp::SharedMemory::create(64, longest + "L"), mp::ValueError);
#endif
    const std::string missing = test_name("missing");
    EXPECT_THROW(mp::SharedMemory::attach(missing), mp::FileNotFoundError);
    EXPECT_THROW(mp::SharedMemory(missing, false), mp::FileNotFoundError);

    const std::string name = test_name("dup");
    mp::SharedMemory a = remember(mp::SharedMemory::create(64, name));
    EXPECT_THROW(mp::SharedMemory::create(64, name), mp::FileExistsError);
    EXPECT_THROW(mp::SharedMemory(name, true, 64), mp::FileExistsError);
    a.unlink();

    // A closed or empty object cannot travel.
    std::string bytes;
    mp::HandleList handles;
    mp::Encoder enc(bytes, &handles);
    EXPECT_THROW(enc.write(mp::SharedMemory()), mp::ValueError);
    EXPECT_THROW(mp::encode(mp::SharedMemory()), mp::ValueError);
}

// A name created and never unlinked is the tracker's to remove when the creator is done (here:
// stop_tracker, the same end of file as the creator's exit). On Windows the kernel removes it
// with its last handle.
TEST_F(SharedMemoryTest, ForgottenUnlinkIsCleanedUp) {
    const std::string name = test_name("forgotten");
    {
        mp::SharedMemory a = remember(mp::SharedMemory::create(64, name));
#if !defined(_WIN32)
        // The tracker runs in a session of its own: signals to our process group miss it.
        const int tracker = mp::SharedMemory::tracker_pid();
        ASSERT_GT(tracker, 0);
        bool own_session = false;
        for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
             !own_session && std::chrono::steady_clock::now() < until;) {
            own_session = ::getsid(tracker) == tracker;
            if (!own_session) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        EXPECT_TRUE(own_session);
        EXPECT_NE(::getpgid(tracker), ::getpgid(0));
#endif
    }  // closed, not unlinked
#if !defined(_WIN32)
    EXPECT_TRUE(name_exists(name));  // the name outlives the object, as in Python
    mp::SharedMemory::stop_tracker();  // warns "1 leaked shared_memory objects" and unlinks
    EXPECT_EQ(mp::SharedMemory::tracker_pid(), 0);
#endif
    EXPECT_FALSE(name_exists(name));
}

#if !defined(_WIN32)
// A tracker killed by someone is replaced at the next create, with CPython's warning, and the
// new one knows the names the old one did (the registry is kept).
TEST_F(SharedMemoryTest, KilledTrackerIsReplaced) {
    const std::string first = test_name("before");
    const std::string second = test_name("after");
    mp::SharedMemory a = remember(mp::SharedMemory::create(64, first));
    const int old_tracker = mp::SharedMemory::tracker_pid();
    ASSERT_GT(old_tracker, 0);
    ASSERT_EQ(::kill(old_tracker, SIGKILL), 0);
    // tracker_pid() reaps a dead tracker and says 0 until a new one is needed.
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         mp::SharedMemory::tracker_pid() != 0 && std::chrono::steady_clock::now() < until;)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(mp::SharedMemory::tracker_pid(), 0);
    testing::internal::CaptureStderr();
    mp::SharedMemory b = remember(mp::SharedMemory::create(64, second));
    const std::string warning = testing::internal::GetCapturedStderr();
    EXPECT_NE(warning.find("resource_tracker: process " + std::to_string(old_tracker) + " died unexpectedly"),
              std::string::npos)
        << warning;
    const int new_tracker = mp::SharedMemory::tracker_pid();
    EXPECT_GT(new_tracker, 0);
    EXPECT_NE(new_tracker, old_tracker);
    a.close();
    b.close();
    mp::SharedMemory::stop_tracker();  // the new tracker unlinks both
    EXPECT_FALSE(name_exists(first));
    EXPECT_FALSE(name_exists(second));
}
#endif

// Attaching never takes ownership: an attacher's end (close or destruction) leaves the name.
TEST_F(SharedMemoryTest, AttachingNeverOwns) {
    const std::string name = test_name("own");
    mp::SharedMemory a = remember(mp::SharedMemory::create(64, name));
    { mp::SharedMemory b = mp::SharedMemory::attach(name); }
    EXPECT_TRUE(name_exists(name));
    a.unlink();
}

int write_into(mp::SharedMemory shm, std::string text) {
    if (shm.closed() || shm.size() < text.size()) return 2;
    write_text(shm, text);
    return 0;
}
MP_TARGET(write_into);

int attach_and_write(std::string name, std::string text) {
    mp::SharedMemory shm = mp::SharedMemory::attach(name);
    write_text(shm, text);
    return mp::SharedMemory::tracker_pid() == 0 ? 0 : 3;  // attaching started no tracker
}
MP_TARGET(attach_and_write);

// Creates a segment (and `extra` more, named name_0 ..., beyond the tracker registry's first
// 64 slots), puts text in it, reports its tracker's pid through a file, then waits to be killed.
int create_and_wait(std::string name, std::string text, std::string report, int extra) {
    mp::SharedMemory shm = mp::SharedMemory::create(4096, name);
    write_text(shm, text);
    std::vector<mp::SharedMemory> more;
    for (int i = 0; i < extra; ++i) more.push_back(mp::SharedMemory::create(64, name + "_" + std::to_string(i)));
    {
        std::ofstream f(report + ".tmp");
        f << mp::SharedMemory::tracker_pid() << "\n";
    }
    std::rename((report + ".tmp").c_str(), report.c_str());
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
MP_TARGET(create_and_wait);

// Creates named segments, one after another, never unlinking them, until it is killed: a kill
// then lands at some instant of a create.
int create_until_killed(std::string stem) {
    for (int i = 0;; ++i) mp::SharedMemory::create(64, stem + std::to_string(i)).close();
}
MP_TARGET(create_until_killed);

// Whether some segment whose name starts with stem (or a creator's private "mp_c_<pid>_" name)
// still exists.
bool any_left(const std::string& stem, int creator) {
#if defined(_WIN32)
    (void)creator;
    for (int i = 0; i < 64; ++i)
        if (name_exists(stem + std::to_string(i))) return true;
    return false;
#else
    const std::string temporary = "mp_c_" + std::to_string(creator) + "_";
    bool found = false;
    if (DIR* d = ::opendir("/dev/shm")) {
        while (const dirent* e = ::readdir(d)) {
            const std::string n = e->d_name;
            if (n.rfind(stem, 0) == 0 || n.rfind(temporary, 0) == 0) found = true;
        }
        ::closedir(d);
    }
    return found;
#endif
}

class SharedMemoryMethodTest : public mp_test::MethodTest {
protected:
    void SetUp() override {
        stop_forkserver_and_tracker();  // MethodTest::SetUp starts the forkserver again for its turn
        MethodTest::SetUp();
    }
    void TearDown() override {
        stop_forkserver_and_tracker();
        expect_nothing_left();
        mp_test::warm_up_forkserver();  // as MethodTest::SetUp left them
        MethodTest::TearDown();
    }
};

TEST_P(SharedMemoryMethodTest, ChildWritesThroughArgument) {
    mp::SharedMemory shm = remember(mp::SharedMemory::create(4096, test_name("arg")));
    mp::Process p = ctx().Process(write_into, shm, std::string("written by the child"));
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(read_text(shm, 20), "written by the child");
    EXPECT_TRUE(name_exists(shm.name()));  // the child's copy did not own the name
    shm.unlink();
}

TEST_P(SharedMemoryMethodTest, ChildAttachesByName) {
    mp::SharedMemory shm = remember(mp::SharedMemory::create(4096, test_name("byname")));
    mp::Process p = ctx().Process(attach_and_write, shm.name(), std::string("attached"));
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(read_text(shm, 8), "attached");
    EXPECT_TRUE(name_exists(shm.name()));
    shm.unlink();
}

// The crash case: the creator is killed. POSIX: its tracker unlinks the name within seconds
// (and exits; it was reparented to us, the subreaper, so we reap it); our mapping stays valid.
// Windows: the kernel removes the mapping once its last handle (the killed child's) is gone.
TEST_P(SharedMemoryMethodTest, KilledCreatorsNameVanishes) {
    const std::string name = test_name("crash");
    const int extra = 100;
    seen_names().insert(name);
    for (int i = 0; i < extra; ++i) seen_names().insert(name + "_" + std::to_string(i));
    const std::string report = mp_test::temp_path("shm_report");
    mp::Process p = ctx().Process(create_and_wait, name, std::string("from the creator"), report, extra);
    p.start();
    int tracker = -1;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         tracker < 0 && std::chrono::steady_clock::now() < until;) {
        std::ifstream f(report);
        if (!(f >> tracker)) {
            tracker = -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    std::remove(report.c_str());
    ASSERT_GE(tracker, 0) << "the child never reported";
    mp::SharedMemory view = mp::SharedMemory::attach(name);
    EXPECT_EQ(read_text(view, 16), "from the creator");
#if defined(_WIN32)
    EXPECT_EQ(tracker, 0);
    view.close();  // on Windows our handle would keep the mapping alive
#else
    EXPECT_GT(tracker, 0);
#endif
    p.kill();
    p.join();
    EXPECT_EQ(p.exitcode(), -9);
    bool gone = false;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
         !gone && std::chrono::steady_clock::now() < until;) {
        gone = !name_exists(name) && !name_exists(name + "_" + std::to_string(extra - 1)) &&
               !name_exists(name + "_0");
        if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(gone) << "the name outlived its killed creator";
    for (int i = 0; i < extra; ++i) EXPECT_FALSE(name_exists(name + "_" + std::to_string(i)));
#if !defined(_WIN32)
    EXPECT_EQ(read_text(view, 16), "from the creator");  // our mapping is still valid
    view.close();
    // The tracker exits after its cleanup; it was reparented to this process (a subreaper).
    bool reaped = false;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
         !reaped && std::chrono::steady_clock::now() < until;) {
        int status = 0;
        const pid_t r = ::waitpid(tracker, &status, WNOHANG);
        if (r == tracker) reaped = true;
        else std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(reaped) << "the tracker " << tracker << " did not exit";
#endif
}

// "No leaked segment however the creator ends", at every instant of create: creators killed
// at random moments (their first create also starts their tracker) leave no name and no
// private name behind within 2 s.
TEST_P(SharedMemoryMethodTest, CreatorKilledAtAnyInstantLeavesNothing) {
    mp_test::time_limit(300);
    const int trials = mp_test::under_wine() ? 20 : mp_test::under_sanitizer() ? 60 : 200;
    std::mt19937 random(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::uniform_int_distribution<int> delay_us(0, 30000);
    int left = 0;
    for (int t = 0; t < trials; ++t) {
        const std::string stem = test_name("instant") + "_";
        mp::Process p = ctx().Process(create_until_killed, stem);
        p.start();
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));  // when to strike, not a wait
        const int pid = p.pid().value();
        p.kill();
        p.join();
        bool clean = false;
        for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2); !clean;) {
            clean = !any_left(stem, pid);
            if (clean || std::chrono::steady_clock::now() > until) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        if (!clean) ++left;
    }
    EXPECT_EQ(left, 0) << left << " of " << trials << " killed creators left a segment behind";
    mp_test::reap_orphans(std::chrono::seconds(10));  // their trackers, re-parented to us
}

MP_INSTANTIATE_FOR_EACH_METHOD(SharedMemoryMethodTest);

}  // namespace
