// bench/bench_process.cpp - process.start_join.*: start and join a child that does nothing.
//   cpp: mp::Process(noop) with the fork / spawn context, start() + join()
//   raw: fork() + _exit(0) + waitpid(), or posix_spawn() of this binary (which returns from
//        main at once) + waitpid()
#include <string>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/process.hpp"

extern char** environ;
#endif

namespace {

void noop() {}
MP_TARGET(noop);

#if !defined(_WIN32)
void raw_fork() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    bench::check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process.start_join (raw): child failed");
}

void raw_spawn() {
    static const std::string exe = [] {
        std::string p;
        mp::sys::current_executable(p);
        return p;
    }();
    char arg0[] = "mp_bench";
    char arg1[] = "--raw-child";
    char* argv[] = {arg0, arg1, nullptr};
    pid_t pid = 0;
    bench::check(::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, environ) == 0, "process.start_join (raw): posix_spawn failed");
    int status = 0;
    ::waitpid(pid, &status, 0);
    bench::check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process.start_join (raw): child failed");
}

bench::Result start_join(const char* method, int samples, void (*raw)()) {
    const mp::Context& ctx = mp::get_context(method);
    return bench::interleaved(
        samples, samples / 10 + 1,
        [&] {
            mp::Process p = ctx.Process(noop);
            p.start();
            p.join();
            bench::check(p.exitcode() == 0, "process.start_join (mp): child failed");
        },
        raw);
}

bench::Register fork_metric("process.start_join.fork", "us", "lower",
                            [](int scale) { return start_join("fork", 2000 / scale, raw_fork); });
bench::Register spawn_metric("process.start_join.spawn", "us", "lower",
                             [](int scale) { return start_join("spawn", 400 / scale, raw_spawn); });
#endif

}  // namespace
