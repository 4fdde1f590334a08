// bench/bench_process.cpp - process.start_join.*: start and join a child that does nothing.
//   cpp: mp::Process(noop) with the fork / spawn / forkserver context, start() + join()
//   raw: fork() + _exit(0) + waitpid(), or posix_spawn() of this binary (which returns from
//        main at once) + waitpid(); for forkserver, a request over a Unix socket to a server
//        process (forked once) that forks a child, reaps it and writes its wait status back
//        over the same connection: connect, 1 byte, fork, waitpid, 4 bytes, close, with bare
//        calls (no key, no descriptors passed, no pidfd: the floor of the round trip)
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <csignal>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
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

// The raw forkserver: forked on first use (the bench is single-threaded then), ended, reaped
// and its socket removed at exit.
struct RawForkserver {
    std::string dir, path;
    pid_t pid = -1;
    RawForkserver() {
        char tmpl[] = "/tmp/mp-bench-rawfs-XXXXXX";
        bench::check(::mkdtemp(tmpl) != nullptr, "process.start_join (raw): mkdtemp failed");
        dir = tmpl;
        path = dir + "/s";
        const int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, path.c_str());
        bench::check(l >= 0 && ::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && ::listen(l, 64) == 0,
                     "process.start_join (raw): no listening socket");
        pid = ::fork();
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (;;) {
                const int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0) continue;
                char b;
                if (::read(c, &b, 1) == 1) {
                    const pid_t k = ::fork();
                    if (k == 0) ::_exit(0);
                    int status = -1;
                    ::waitpid(k, &status, 0);
                    [[maybe_unused]] ssize_t w = ::write(c, &status, sizeof status);
                }
                ::close(c);
            }
        }
        ::close(l);
    }
    ~RawForkserver() {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        ::unlink(path.c_str());
        ::rmdir(dir.c_str());
    }
};

void raw_forkserver() {
    static RawForkserver server;
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, server.path.c_str());
    bench::check(s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0,
                 "process.start_join (raw): connect failed");
    const char b = 1;
    int status = -1;
    bench::check(::write(s, &b, 1) == 1 && ::recv(s, &status, sizeof status, MSG_WAITALL) == sizeof status,
                 "process.start_join (raw): no status came back");
    ::close(s);
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
bench::Register forkserver_metric("process.start_join.forkserver", "us", "lower",
                                  [](int scale) { return start_join("forkserver", 2000 / scale, raw_forkserver); });
#endif

}  // namespace
