// T6 - the raw fork() system call, which mp's "fork" start method is built on: it returns twice,
// 0 in the child and the child's pid in the parent; the child gets a copy-on-write copy of the
// parent's memory; the parent collects the child's exit status with waitpid().
//
// Python:                                  C++ (POSIX):
//   pid = os.fork()                          pid_t pid = fork();
//   if pid == 0: ...; os._exit(0)            if (pid == 0) { ...; _exit(0); }
//   os.waitpid(pid, 0)                       waitpid(pid, &status, 0);
#include <cstdio>
#include <string>

#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <sys/wait.h>
#include <unistd.h>
#endif

static int g_value = 100;

static int child_on_windows(int value_seen_by_parent) {
    std::printf("  [child pid %d] a new program: g_value here is %d (the parent had %d)\n", mp::getpid(), g_value,
                value_seen_by_parent);
    std::fflush(stdout);
    return 0;
}
MP_TARGET(child_on_windows);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
#if defined(_WIN32)
    std::printf("Windows has no fork(): a process cannot be copied. CreateProcess always starts a new\n"
                "program from its entry point, so a child starts with fresh memory and must be told what\n"
                "to do. mp's spawn start method does exactly this (CreateProcessW + mp::bootstrap).\n");
    g_value = 42;
    mp::Process p = mp::get_context("spawn").Process(child_on_windows, g_value);
    p.start();
    p.join();
    std::printf("parent pid %d: child %d exited with %d; g_value here is still %d\n", mp::getpid(), *p.pid(),
                p.exitcode().value_or(-1), g_value);
#else
    std::printf("parent pid %d, g_value = %d before fork()\n", mp::getpid(), g_value);
    std::fflush(stdout);  // else the child's copy of the stdio buffer would print this line again
    const pid_t pid = fork();
    if (pid < 0) {
        std::perror("fork");
        return 1;
    }
    if (pid == 0) {
        g_value -= 58;  // the first write copies the page: only this process sees the change
        std::printf("  [child] fork() returned 0; my pid %d, parent %d; g_value changed to %d\n", getpid(), getppid(),
                    g_value);
        std::fflush(stdout);
        _exit(7);  // _exit: no atexit handlers or destructors of the parent's objects run twice
    }
    std::printf("[parent] fork() returned %d, the child's pid\n", static_cast<int>(pid));
    int status = 0;
    waitpid(pid, &status, 0);  // reaps the child: without it the child stays a zombie
    if (WIFEXITED(status))
        std::printf("[parent] waitpid: child %d exited with %d\n", static_cast<int>(pid), WEXITSTATUS(status));
    std::printf("[parent] g_value is still %d: the child changed its own copy\n", g_value);
#endif
    return 0;
}
