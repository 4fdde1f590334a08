// T10 - spawn re-runs the program, and mp::bootstrap is the guard.
//
// Python:                                  C++ (mp):
//   print("top of module")                   std::printf("top of main\n");
//   if __name__ == '__main__':               mp::bootstrap(argc, argv);   // spawned child stops here
//       Process(target=f).start()            ...parent's logic...
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mp/mp.hpp"

static void hello(std::string from) {
    std::printf("  [child pid %d] target runs, sent by %s\n", mp::getpid(), from.c_str());
    std::fflush(stdout);
}
MP_TARGET(hello);

static void set_env(const char* name, const char* value) {
#if defined(_WIN32)
    _putenv_s(name, value);
#else
    if (*value) setenv(name, value, 1); else unsetenv(name);
#endif
}

int main(int argc, char** argv) {
    // Above the guard: runs in the parent and again at the start of every spawned child.
    std::printf("[pid %d] main() begins\n", mp::getpid());
    std::fflush(stdout);

    // For the demonstration only: a child started while T10_FORGET_GUARD is set acts like a
    // program without the guard and goes straight on to the parent's logic below.
    const char* forget = std::getenv("T10_FORGET_GUARD");
    const bool without_guard = forget != nullptr && *forget != '\0';
    if (!without_guard) mp::bootstrap(argc, argv);

    if (without_guard) {
        std::printf("  [pid %d] no guard: this child goes on to start a child of its own...\n", mp::getpid());
        std::fflush(stdout);
        // mp stops this child here with a message and exit code 1: never a chain of spawns.
        mp::Process again = mp::get_context("spawn").Process(hello, std::string("a child without the guard"));
        again.start();
        again.join();
        std::printf("  [pid %d] unexpected: the unguarded child started a process\n", mp::getpid());
        return 0;
    }

    std::printf("[pid %d] past mp::bootstrap: only the first process gets here\n", mp::getpid());
    for (int i = 0; i < 2; ++i) {
        mp::Process p = mp::get_context("spawn").Process(hello, std::string("the parent"));
        p.start();
        p.join();
        std::printf("[parent] spawned child %d exited with %d\n", *p.pid(), p.exitcode().value_or(-1));
    }
    std::printf("each spawned child printed \"main() begins\" again: code above the guard runs in every child\n\n");

    std::printf("Now a child that skips the guard (as if mp::bootstrap were missing); mp's message follows:\n");
    std::fflush(stdout);
    set_env("T10_FORGET_GUARD", "1");
    mp::Process p = mp::get_context("spawn").Process(hello, std::string("the parent"));
    p.start();
    set_env("T10_FORGET_GUARD", "");
    p.join();
    std::printf("[parent] the unguarded child exited with %d, and started nothing\n", p.exitcode().value_or(-1));
    return 0;
}
