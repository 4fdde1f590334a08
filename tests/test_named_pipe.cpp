// tests/test_named_pipe.cpp - mp::NamedPipe: a creator and a peer in two processes under every
// start method, lines, timeouts, bad paths, removal, permissions and a big transfer.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

#if !defined(_WIN32)
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

std::string unique_name(const char* stem) {
    static int counter = 0;
    return std::string("mptest-") + stem + "-" + std::to_string(mp::getpid()) + "-" + std::to_string(++counter);
}

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed + i / 4096) & 0xff);
    return s;
}

bool path_exists(const std::string& p) {
#if defined(_WIN32)
    (void)p;
    return false;
#else
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0;
#endif
}

// Child: opens the name for writing and sends three lines, a last line without '\n', then a
// block of bytes.
int fifo_write_lines(std::string name) {
    mp::NamedPipe w = mp::NamedPipe::open(name, "w", 30);
    w.write("first line\n");
    w.write("second ");
    w.write("line\nthird line\n");
    w.write("no newline");
    return 0;
}
MP_TARGET(fifo_write_lines);

// Child: opens the name for reading and checks that it receives pattern(n, seed) and then end
// of file. Exit code 0 when all is right.
int fifo_read_and_check(std::string name, std::size_t n, unsigned seed) {
    mp::NamedPipe r = mp::NamedPipe::open(name, "r", 30);
    const std::string got = r.read_exact(n);
    if (got != pattern(n, seed)) return 2;
    if (!r.read(10).empty()) return 3;
    return 0;
}
MP_TARGET(fifo_read_and_check);

// Child: writes pattern(n, seed) and exits.
int fifo_write_pattern(std::string name, std::size_t n, unsigned seed) {
    mp::NamedPipe w = mp::NamedPipe::open(name, "w", 30);
    w.write(pattern(n, seed));
    return 0;
}
MP_TARGET(fifo_write_pattern);

// Child: makes the FIFO, then waits at a gate nobody opens (its parent kills it first).
int fifo_create_then_wait(std::string name, std::string gate) {
    mp::NamedPipe c = mp::NamedPipe::create(name, "r");
    return mp_test::wait_at_gate(gate, 0);
}
MP_TARGET(fifo_create_then_wait);

class NamedPipeTest : public mp_test::MethodTest {};

}  // namespace

TEST_P(NamedPipeTest, ReaderAndWriterInTwoProcesses) {
    const std::string name = unique_name("rw");
    mp::NamedPipe r = mp::NamedPipe::create(name, "r");
    EXPECT_TRUE(r.is_creator());
    EXPECT_TRUE(r.readable());
    mp::Process p = ctx().Process(fifo_write_lines, name);
    p.start();
    r.accept(30);
    EXPECT_EQ(r.readline(), "first line\n");
    EXPECT_EQ(r.readline(), "second line\n");
    EXPECT_EQ(r.read_exact(6), "third ");
    EXPECT_EQ(r.readline(), "line\n");
    EXPECT_EQ(r.readline(), "no newline");  // the writer has exited: the rest, then ""
    EXPECT_EQ(r.readline(), "");
    EXPECT_EQ(r.read(100), "");
    EXPECT_TRUE(r.poll(0));  // end of file counts as readable
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(NamedPipeTest, BigTransferBothDirections) {
    const std::size_t n = std::size_t{4} << 20;
    {
        const std::string name = unique_name("big-out");
        mp::NamedPipe w = mp::NamedPipe::create(name, "w");
        mp::Process p = ctx().Process(fifo_read_and_check, name, n, 7u);
        p.start();
        w.write(pattern(n, 7));
        w.close();
        p.join();
        EXPECT_EQ(p.exitcode(), 0) << "2: wrong bytes, 3: no end of file";
    }
    {
        const std::string name = unique_name("big-in");
        mp::NamedPipe r = mp::NamedPipe::create(name, "r");
        mp::Process p = ctx().Process(fifo_write_pattern, name, n, 9u);
        p.start();
        std::string all;
        for (;;) {  // read() in pieces of whatever has arrived, up to 100 KiB each
            const std::string piece = r.read(100000);
            if (piece.empty()) break;
            all += piece;
        }
        EXPECT_TRUE(all == pattern(n, 9)) << "got " << all.size() << " bytes";
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
}

MP_INSTANTIATE_FOR_EACH_METHOD(NamedPipeTest);

TEST(NamedPipe, LinesFromAThreadAndEndOfFile) {
    const std::string name = unique_name("lines");
    mp::NamedPipe r = mp::NamedPipe::create(name, "r");
    std::thread t([&] {
        mp::NamedPipe w = mp::NamedPipe::open(name, "w", 10);
        EXPECT_FALSE(w.readable());
        EXPECT_THROW(w.read(1), mp::OSError);  // a write-only end
        for (int i = 0; i < 100; ++i) w.write("line " + std::to_string(i) + "\n");
        w.write("");  // nothing at all
    });
    r.accept(10);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(r.readline(), "line " + std::to_string(i) + "\n");
    t.join();
    EXPECT_EQ(r.readline(), "");
    EXPECT_THROW(r.write("x"), mp::OSError);  // a read-only end
    r.close();
    EXPECT_TRUE(r.closed());
    EXPECT_THROW(r.read(1), mp::OSError);
}

// Range-for walks the lines readline gives. Copies of an iterator share one position, and a
// line looked at (*it, or it != end) and not stepped past stays for readline.
TEST(NamedPipe, RangeForWalksTheLines) {
    mp_test::time_limit(60);
    const std::string name = unique_name("range");
    mp::NamedPipe r = mp::NamedPipe::create(name, "r");
    std::thread t([&] {
        mp::NamedPipe w = mp::NamedPipe::open(name, "w", 10);
        w.write("first\nsecond\n");
        w.write("third\nno newline");
    });
    r.accept(10);
    auto it = r.begin();
    ASSERT_NE(it, r.end());
    EXPECT_EQ(*it, "first\n");
    EXPECT_EQ(r.readline(), "first\n");  // looked at, not stepped past: still there
    EXPECT_EQ(*it, "second\n");
    auto copy = it;
    EXPECT_EQ(*copy++, "second\n");  // what it was at, although both copies moved on
    EXPECT_EQ(*it, "third\n");
    const std::vector<std::string> rest(it, r.end());
    t.join();
    EXPECT_EQ(rest, (std::vector<std::string>{"third\n", "no newline"}));
    EXPECT_EQ(r.begin(), r.end());
    EXPECT_EQ(r.readline(), "");
    std::vector<std::string> none;
    for (const std::string& line : r) none.push_back(line);
    EXPECT_TRUE(none.empty());
    r.close();
    EXPECT_THROW((void)*r.begin(), mp::OSError);  // as readline on a closed pipe
}

TEST(NamedPipe, ReadExactEOFAndBrokenPipe) {
    {
        const std::string name = unique_name("eof");
        mp::NamedPipe r = mp::NamedPipe::create(name, "r");
        std::thread t([&] { mp::NamedPipe::open(name, "w", 10).write("abc"); });
        r.accept(10);
        t.join();
        EXPECT_THROW(r.read_exact(10), mp::EOFError);
    }
    {
        const std::string name = unique_name("epipe");
        mp::NamedPipe w = mp::NamedPipe::create(name, "w");
        std::thread t([&] {
            mp::NamedPipe r = mp::NamedPipe::open(name, "r", 10);
            EXPECT_EQ(r.read_exact(2), "hi");
        });
        w.accept(10);
        w.write("hi");
        t.join();  // the reader has closed
        EXPECT_THROW(w.write("more"), mp::BrokenPipeError);
        EXPECT_THROW(w.write(std::string(1 << 20, 'z')), mp::BrokenPipeError);
    }
    SUCCEED() << "still alive: no SIGPIPE";
}

TEST(NamedPipe, TimeoutWithNoPeerNeverEarly) {
    for (const char* mode : {"r", "w"}) {
        mp::NamedPipe c = mp::NamedPipe::create(unique_name("lonely"), mode);
        const auto t0 = Clock::now();
        EXPECT_THROW(c.accept(0.2), mp::TimeoutError) << mode;
        EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(200)) << mode;
    }
#if !defined(_WIN32)
    // POSIX: a writer's open waits for a reader (Windows: a client opens at once, while the
    // creator has not accepted).
    const std::string name = unique_name("noreader");
    mp::NamedPipe c = mp::NamedPipe::create(name, "r");
    const auto t0 = Clock::now();
    EXPECT_THROW(mp::NamedPipe::open(name, "w", 0.15), mp::TimeoutError);
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(150));
#endif
    // After a timeout the creator can still accept a peer.
    const std::string again = unique_name("again");
    mp::NamedPipe r = mp::NamedPipe::create(again, "r");
    EXPECT_THROW(r.accept(0.05), mp::TimeoutError);
    std::thread t([&] { mp::NamedPipe::open(again, "w", 10).write("late\n"); });
    r.accept(10);
    EXPECT_EQ(r.readline(), "late\n");
    t.join();

    // poll() on a reading creator that has no writer yet waits for one within its own time,
    // and never blocks beyond it; once a writer comes, it sees the data.
    const std::string polled = unique_name("polled");
    mp::NamedPipe p = mp::NamedPipe::create(polled, "r");
    EXPECT_FALSE(p.poll(0));
    const auto t1 = Clock::now();
    EXPECT_FALSE(p.poll(0.1));
    EXPECT_GE(Clock::now() - t1, std::chrono::milliseconds(100));
    std::thread t2([&] { mp::NamedPipe::open(polled, "w", 10).write("x\n"); });
    EXPECT_TRUE(p.poll(10));
    EXPECT_EQ(p.readline(), "x\n");
    t2.join();
}

// A std::filesystem::path (or a plain char*) names the pipe as its text would, and a
// std::chrono duration bounds accept/open/poll as the seconds do; a negative duration is no
// time left (it throws at once, where a negative double would wait without limit).
TEST(NamedPipe, PathNamesAndDurationTimeouts) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    const std::filesystem::path name = unique_name("fspath");
    mp::NamedPipe r = mp::NamedPipe::create(name, "r");
    EXPECT_TRUE(r.is_creator());
    const auto t0 = Clock::now();
    EXPECT_THROW(r.accept(milliseconds(100)), mp::TimeoutError);
    EXPECT_GE(Clock::now() - t0, milliseconds(100));
    EXPECT_THROW(r.accept(milliseconds(-5)), mp::TimeoutError);
    EXPECT_FALSE(r.poll(milliseconds(-5)));
    EXPECT_THROW(r.accept(-1.0), mp::ValueError);  // std::nullopt is "no limit" (mp/duration.hpp)
    EXPECT_THROW((void)r.poll(-1.0), mp::ValueError);
    std::thread t([&] { mp::NamedPipe::open(name, "w", seconds(10)).write("by path\n"); });
    r.accept(seconds(10));
    EXPECT_TRUE(r.poll(seconds(10)));
    EXPECT_EQ(r.readline(), "by path\n");
    t.join();

    const std::string text = unique_name("cstr");
    mp::NamedPipe w = mp::NamedPipe::create(text.c_str(), "w");  // as a string literal would
    std::thread t2([&] {
        mp::NamedPipe rr = mp::NamedPipe::open(text.c_str(), "r", seconds(10));
        EXPECT_EQ(rr.path(), w.path());
        EXPECT_EQ(rr.read_exact(2), "ok");
    });
    w.accept(seconds(10));
    w.write("ok");
    t2.join();
    EXPECT_THROW(mp::NamedPipe::open(std::filesystem::path(unique_name("nobody")), "r", milliseconds(-1)),
                 mp::FileNotFoundError);
}

TEST(NamedPipe, BadNamesModesAndPaths) {
    EXPECT_THROW(mp::NamedPipe::create("", "r"), mp::ValueError);
    EXPECT_THROW(mp::NamedPipe::create(unique_name("mode"), "rw"), mp::ValueError);
    EXPECT_THROW(mp::NamedPipe::open(unique_name("missing"), "r", 1), mp::FileNotFoundError);
#if defined(_WIN32)
    EXPECT_THROW(mp::NamedPipe::create("a\\b", "r"), mp::ValueError);  // pipe names hold no backslash
    EXPECT_EQ(mp::NamedPipe::create("plain", "r").path(), "\\\\.\\pipe\\plain");
#else
    EXPECT_THROW(mp::NamedPipe::create("rel/path", "r"), mp::ValueError);
    // A path that exists but is no FIFO: the error names it.
    const std::string file = mp_test::temp_path("notfifo");
    mp_test::write_file(file, "regular\n");
    try {
        mp::NamedPipe::open(file, "w", 1);
        ADD_FAILURE() << "no ValueError";
    } catch (const mp::ValueError& e) {
        EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
    EXPECT_THROW(mp::NamedPipe::open(file, "r"), mp::ValueError);
    EXPECT_THROW(mp::NamedPipe::create(file, "r"), mp::FileExistsError);
    std::ifstream in(file);
    std::string text;
    std::getline(in, text);
    EXPECT_EQ(text, "regular");  // untouched
    ::unlink(file.c_str());
    const char* tmp = std::getenv("TMPDIR");
    const std::string dir = tmp && *tmp == '/' ? tmp : "/tmp";
    EXPECT_EQ(mp::NamedPipe::create("plain-" + std::to_string(mp::getpid()), "r").path(),
              dir + "/mp-fifo-plain-" + std::to_string(mp::getpid()));
#endif
}

TEST(NamedPipe, CreatingATakenNameFails) {
    const std::string name = unique_name("taken");
    mp::NamedPipe first = mp::NamedPipe::create(name, "r");
    try {
        mp::NamedPipe second = mp::NamedPipe::create(name, "w");
        if (mp_test::under_wine())
            GTEST_SKIP() << "Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE (WINE-NOTES): a squatter's "
                            "name is not refused";
        ADD_FAILURE() << "a second create of " << name << " succeeded";
    } catch (const mp::FileExistsError& e) {
        EXPECT_NE(std::string(e.what()).find(first.path()), std::string::npos) << e.what();
    }
}

TEST(NamedPipe, RemoveAndCreatorDestructor) {
    const std::string name = unique_name("rm");
    std::string path;
    {
        mp::NamedPipe c = mp::NamedPipe::create(name, "r");
        path = c.path();
#if !defined(_WIN32)
        EXPECT_TRUE(path_exists(path));
        c.remove();
        EXPECT_FALSE(path_exists(path));
        EXPECT_THROW(mp::NamedPipe::open(name, "w", 1), mp::FileNotFoundError);
        EXPECT_THROW(c.remove(), mp::FileNotFoundError);
#endif
    }
    // The creator is gone: on POSIX its destructor removed the node, on Windows its server
    // handle was the name.
    EXPECT_FALSE(path_exists(path));
    EXPECT_THROW(mp::NamedPipe::open(name, "w", 1), mp::FileNotFoundError);
    {
        mp::NamedPipe c = mp::NamedPipe::create(name, "r");  // the name is free again
        EXPECT_FALSE(c.closed());
    }
    EXPECT_FALSE(path_exists(path));
}

TEST_P(NamedPipeTest, CreatorKilledLeavesNoNode) {
#if defined(_WIN32)
    GTEST_SKIP() << "a Windows named pipe is no file: it ends with its last handle";
#else
    const std::string path = "/tmp/" + unique_name("killed");  // an absolute path is its own name
    const std::string& name = path;
    mp_test::Gate never;
    mp::Process p = ctx().Process(fifo_create_then_wait, name, never.name());
    p.start();
    const auto until = Clock::now() + std::chrono::seconds(60);
    while (!path_exists(path) && p.is_alive() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(path_exists(path)) << "the child did not make " << path;
    p.kill();
    p.join();
    EXPECT_EQ(p.exitcode(), -9);
    // The resource tracker removes what its dead creator left.
    const auto gone_by = Clock::now() + std::chrono::seconds(10);
    while (path_exists(path) && Clock::now() < gone_by) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_FALSE(path_exists(path)) << path << " outlived its killed creator";
    ::unlink(path.c_str());
    mp_test::reap_orphans(std::chrono::seconds(10));  // the child's own tracker, ended after its work
#endif
}

TEST(NamedPipe, PermissionDenied) {
#if defined(_WIN32)
    GTEST_SKIP() << "the pipe's DACL admits only its owner; proving a refusal needs a second user account, and Wine "
                    "does not check named-pipe DACLs at all (WINE-NOTES)";
#else
    const std::string name = unique_name("perm");
    mp::NamedPipe c = mp::NamedPipe::create(name, "r");
    struct stat st{};
    ASSERT_EQ(::stat(c.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "created with mode 0600";
    if (::geteuid() == 0) GTEST_SKIP() << "running as root, which bypasses file permissions";
    ASSERT_EQ(::chmod(c.path().c_str(), 0), 0);
    EXPECT_THROW(mp::NamedPipe::open(name, "w", 1), mp::PermissionError);
#endif
}
