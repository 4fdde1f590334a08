// T12 - the start methods side by side: what fork, spawn and forkserver children see of their
// parent. (samples/t12_forkserver_threads.cpp: forkserver with a multithreaded parent.)
//
// Python:                                  C++ (mp):
//   ctx = multiprocessing.get_context("spawn")   const mp::Context& ctx = mp::get_context("spawn");
//   ctx.Process(target=f).start()                ctx.Process(f).start();
#include <chrono>
#include <cstdio>
#include <string>

#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <unistd.h>
#endif

static int g_setting = 1;           // the parent sets it to 2 before starting children
static int g_top_of_main_pid = 0;   // which process last ran the code above mp::bootstrap

static void show_globals() {
    std::printf("    [child pid %d] g_setting=%d; code above mp::bootstrap ran in pid %d (%s)\n", mp::getpid(),
                g_setting, g_top_of_main_pid,
                g_top_of_main_pid == mp::getpid()    ? "me: main() ran again"
                : g_top_of_main_pid == mp::getppid() && mp::parent_process() &&
                          mp::parent_process()->pid() != mp::getppid()
                    ? "the forkserver, once: not in me"
                    : "my parent: not run again");
    std::fflush(stdout);
}
MP_TARGET(show_globals);

static void nothing() {}
MP_TARGET(nothing);

#if !defined(_WIN32)
static void probe_fd(int fd) {
    const bool open = fcntl(fd, F_GETFD) != -1;
    std::printf("    [child pid %d] fd %d inherited from the parent: %s\n", mp::getpid(), fd,
                open ? "open, usable" : "closed (EBADF)");
    std::fflush(stdout);
}
MP_TARGET(probe_fd);
#endif

int main(int argc, char** argv) {
    g_top_of_main_pid = mp::getpid();  // above the guard on purpose: spawn children run this line
    mp::bootstrap(argc, argv);

    g_setting = 2;
#if !defined(_WIN32)
    const int fd = open("/dev/null", O_WRONLY);  // no O_CLOEXEC: fork children inherit it
#endif
    std::printf("default start method: %s; parent pid %d set g_setting=2\n", mp::get_start_method().c_str(),
                mp::getpid());

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        std::printf("  1-3. globals and code above the guard:\n");
        mp::Process g = ctx.Process(show_globals);
        g.start();
        g.join();

        std::printf("  4. a capturing lambda as target:\n");
        int local = 7;  // not const: a const int need not be captured, and clang says so
        try {
            mp::Process l = ctx.Process([local] {
                std::printf("    [child pid %d] the lambda sees local=%d\n", mp::getpid(), local);
                std::fflush(stdout);
            });
            l.start();
            l.join();
        } catch (const mp::ValueError& e) {
            std::printf("    ValueError at start(): %s\n", e.what());
        }

        const int rounds = 5;
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < rounds; ++i) {
            mp::Process p = ctx.Process(nothing);
            p.start();
            p.join();
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("  5. start+join of an empty target: %.2f ms on average over %d runs\n", ms / rounds, rounds);

#if !defined(_WIN32)
        std::printf("  6. a descriptor opened without O_CLOEXEC:\n");
        mp::Process f = ctx.Process(probe_fd, fd);
        f.start();
        f.join();
#else
        std::printf("  6. handles: a spawned Windows child receives only the handles mp lists for it\n"
                    "     (PROC_THREAD_ATTRIBUTE_HANDLE_LIST); there is no fork to copy the others\n");
#endif
    }
#if !defined(_WIN32)
    close(fd);
#else
    std::printf("Windows has only spawn: every difference above is spawn's behaviour there.\n");
#endif
    std::printf("fork: a copy of the parent at start() (new globals, any callable, inherited fds, fast);\n"
                "spawn: a new run of the program (initial globals, registered functions, only what mp passes);\n"
                "forkserver (POSIX): a fork of a server that is itself a new run (spawn's rules, near fork's cost)\n");
    return 0;
}
