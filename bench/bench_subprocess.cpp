// bench/bench_subprocess.cpp - subprocess.*: mp::subprocess against posix_spawn itself.
//   subprocess.run          run /bin/true and wait for it; us per run (lower is better)
//     cpp: mp::subprocess::run({"/bin/true"})
//     raw: posix_spawn("/bin/true") + waitpid()
//   subprocess.capture_64m  a child (this binary with --write-64m) writes 64 MiB to stdout in
//     64 KiB writes; MB/s captured (higher is better)
//     cpp: run(..., Options().capture_output()), the bytes in CompletedProcess::std_out
//     raw: pipe2 + posix_spawn with the pipe as stdout + a read() loop straight into a 64 MiB
//          buffer malloc'd for the run (captured bytes must live somewhere; no zero fill)
// bench_main pins the whole run (and so every child) to one CPU, as subprocess_bench.py does.
#include <cstdlib>
#include <string>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/process.hpp"

extern char** environ;
#endif

namespace {

#if !defined(_WIN32)
namespace sp = mp::subprocess;

using bench::work::kCaptureBytes;

const std::string& self() {
    static const std::string exe = [] {
        std::string p;
        mp::sys::current_executable(p);
        return p;
    }();
    return exe;
}

void raw_true() {
    char arg0[] = "/bin/true";
    char* argv[] = {arg0, nullptr};
    pid_t pid = 0;
    bench::check(::posix_spawn(&pid, arg0, nullptr, nullptr, argv, environ) == 0, "subprocess.run (raw): posix_spawn failed");
    int status = 0;
    ::waitpid(pid, &status, 0);
    bench::check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "subprocess.run (raw): /bin/true failed");
}

bench::Result run_true(int scale) {
    return bench::interleaved(
        bench::work::run(scale),
        [] { bench::check(sp::run({"/bin/true"}).returncode == 0, "subprocess.run (mp): /bin/true failed"); },
        raw_true);
}

void raw_capture() {
    int fds[2];
    bench::check(::pipe2(fds, O_CLOEXEC) == 0, "subprocess.capture_64m (raw): pipe2 failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    std::string exe = self();
    char arg1[] = "--write-64m";
    char* argv[] = {exe.data(), arg1, nullptr};
    pid_t pid = 0;
    ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    char* buf = static_cast<char*>(std::malloc(kCaptureBytes + 1));
    std::size_t got = 0;
    for (ssize_t n; (n = ::read(fds[0], buf + got, kCaptureBytes + 1 - got)) > 0;) got += static_cast<std::size_t>(n);
    std::free(buf);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    bench::check(got == kCaptureBytes && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "subprocess.capture_64m (raw): wrong byte count or child failed");
}

bench::Result capture(int scale) {
    bench::Result r = bench::interleaved(
        bench::work::capture(scale),
        [] {
            const auto done = sp::run({self(), "--write-64m"}, sp::Options().capture_output());
            bench::check(done.std_out.size() == kCaptureBytes && done.returncode == 0,
                         "subprocess.capture_64m (mp): wrong byte count or child failed");
        },
        raw_capture);
    const double mb = static_cast<double>(kCaptureBytes) / 1e6;
    return {mb / (r.cpp / 1e6), mb / (r.raw / 1e6)};
}

bench::Register run_metric("subprocess.run", "us", "lower", run_true);
bench::Register capture_metric("subprocess.capture_64m", "MB/s", "higher", capture);
#endif

}  // namespace
