// bench/bench_subprocess.cpp - subprocess.*: mp::subprocess against posix_spawn itself.
//   subprocess.run          run /bin/true and wait for it; us per run (lower is better)
//     cpp: mp::subprocess::run({"/bin/true"})
//     raw: posix_spawn("/bin/true") + waitpid()
//   subprocess.capture_64m  a child (this binary with --write-64m) writes 64 MiB to stdout in
//     64 KiB writes; MB/s captured (higher is better)
//     cpp: run(..., Options().capture_output()), the bytes in CompletedProcess::std_out
//     raw: pipe2 + posix_spawn with the pipe as stdout + a read() loop straight into a 64 MiB
//          buffer malloc'd for the run (captured bytes must live somewhere; no zero fill)
//   subprocess.pipeline_256m  producer | consumer, both this binary: --produce-256m writes 256
//     MiB to stdout in 64 KiB writes, --consume-256m reads its stdin in 64 KiB reads to end of
//     file and discards it (exit 0 only for exactly 256 MiB); MB/s through the pipe (higher is
//     better). Each side starts both, the consumer's stdin being the producer's stdout, with
//     no byte through this process, and waits for both.
//     cpp: Popen a(..., std_out(PIPE)); Popen b(..., std_in(a.stdout_pipe())); b.wait(); a.wait()
//     raw: pipe2(O_CLOEXEC) + posix_spawn twice with posix_spawn_file_actions_adddup2 onto 1
//          and onto 0, both ends closed here, waitpid on both
// bench_main pins the whole run (and so every child) to one CPU, as subprocess_bench.py does:
// the two children of the pipeline share it, so each 64 KiB write that fills the pipe hands
// the CPU to the reader, on every side alike.
#include <algorithm>
#include <cstdlib>
#include <cstring>
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

using bench::work::kPipelineBytes;

void mp_pipeline() {
    sp::Popen a({self(), "--produce-256m"}, sp::Options().std_out(sp::PIPE));
    sp::Popen b({self(), "--consume-256m"}, sp::Options().std_in(a.stdout_pipe()));
    const int consumer = b.wait();
    const int producer = a.wait();
    bench::check(consumer == 0 && producer == 0,
                 "subprocess.pipeline_256m (mp): the consumer did not get 256 MiB or a child failed");
}

pid_t raw_spawn_with(const char* mode, int fd, int onto) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, onto);
    std::string exe = self();
    std::string arg1 = mode;
    char* argv[] = {exe.data(), arg1.data(), nullptr};
    pid_t pid = 0;
    const int e = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    bench::check(e == 0, "subprocess.pipeline_256m (raw): posix_spawn failed");
    return pid;
}

void raw_pipeline() {
    int fds[2];
    bench::check(::pipe2(fds, O_CLOEXEC) == 0, "subprocess.pipeline_256m (raw): pipe2 failed");
    const pid_t a = raw_spawn_with("--produce-256m", fds[1], 1);
    const pid_t b = raw_spawn_with("--consume-256m", fds[0], 0);
    ::close(fds[0]);
    ::close(fds[1]);
    int sb = 0, sa = 0;
    ::waitpid(b, &sb, 0);
    ::waitpid(a, &sa, 0);
    bench::check(WIFEXITED(sb) && WEXITSTATUS(sb) == 0 && WIFEXITED(sa) && WEXITSTATUS(sa) == 0,
                 "subprocess.pipeline_256m (raw): the consumer did not get 256 MiB or a child failed");
}

bench::Result pipeline(int scale) {
    bench::Result r = bench::interleaved(bench::work::pipeline(scale), mp_pipeline, raw_pipeline);
    const double mb = static_cast<double>(kPipelineBytes) / 1e6;
    return {mb / (r.cpp / 1e6), mb / (r.raw / 1e6)};
}

bench::Register run_metric("subprocess.run", "us", "lower", run_true);
bench::Register capture_metric("subprocess.capture_64m", "MB/s", "higher", capture);
bench::Register pipeline_metric("subprocess.pipeline_256m", "MB/s", "higher", pipeline);
#endif

}  // namespace

namespace bench {

// The children of subprocess.pipeline_256m (bench_main dispatches to them before anything of
// mp starts). POSIX only, as the subprocess metrics are.
int pipeline_produce() {
#if !defined(_WIN32)
    static char chunk[64 * 1024];
    std::memset(chunk, 'x', sizeof chunk);
    for (std::size_t left = work::kPipelineBytes; left > 0;) {
        const ssize_t w = ::write(1, chunk, std::min(left, sizeof chunk));
        if (w <= 0) return 1;
        left -= static_cast<std::size_t>(w);
    }
    return 0;
#else
    return 2;
#endif
}

int pipeline_consume() {
#if !defined(_WIN32)
    static char chunk[64 * 1024];
    std::size_t got = 0;
    for (ssize_t n; (n = ::read(0, chunk, sizeof chunk)) != 0;) {
        if (n < 0) return 1;
        got += static_cast<std::size_t>(n);
    }
    return got == work::kPipelineBytes ? 0 : 1;
#else
    return 2;
#endif
}

}  // namespace bench
