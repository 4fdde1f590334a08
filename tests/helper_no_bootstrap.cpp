// tests/helper_no_bootstrap.cpp - a program whose main() calls mp::bootstrap() in the first
// process but skips it in a spawned child (told apart by its command line). It shows what a
// missing bootstrap does: the child stops with a clear message at its first use of mp
// (mode "use") or when its main() returns (mode "return"), never spawning again.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mp/mp.hpp"

static int child_target() { return 0; }
MP_TARGET(child_target);

int main(int argc, char** argv) {
    std::printf("main ran in pid %d\n", mp::getpid());
    std::fflush(stdout);
    const bool spawned = argc > 1 && std::strcmp(argv[1], "--mp-spawn") == 0;
    if (!spawned) {
        mp::bootstrap(argc, argv);
        const std::string mode = argc > 1 ? argv[1] : "use";
#if defined(_WIN32)
        _putenv_s("MP_HELPER_MODE", mode.c_str());
#else
        setenv("MP_HELPER_MODE", mode.c_str(), 1);
#endif
    } else {
        const char* mode = std::getenv("MP_HELPER_MODE");
        if (mode && std::strcmp(mode, "return") == 0) return 0;
    }
    mp::Process p = mp::get_context("spawn").Process(child_target);
    p.start();
    p.join(30.0);
    std::printf("child exitcode %d\n", p.exitcode().value_or(-1000));
    return 0;
}
