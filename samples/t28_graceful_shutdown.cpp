// T28 - graceful shutdown: ask politely (terminate), wait a bounded time (join with a timeout),
// then force (kill), and always join so that no zombie is left.
//
// Python:                                  C++ (mp):
//   p.terminate(); p.join(timeout=1)         p.terminate(); p.join(1.0);
//   if p.is_alive(): p.kill(); p.join()      if (p.is_alive()) { p.kill(); p.join(); }
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "mp/mp.hpp"

static void sleeper(bool ignore_sigterm, std::string ready_file) {
#if !defined(_WIN32)
    if (ignore_sigterm) std::signal(SIGTERM, SIG_IGN);  // a stubborn child: terminate() is not enough
#endif
    std::ofstream(ready_file) << "ready\n";  // tells the parent the handler is in place
    std::printf("    [child pid %d] running%s\n", mp::getpid(), ignore_sigterm ? ", ignoring SIGTERM" : "");
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(30));
}
MP_TARGET(sleeper);

static void show(const char* step, mp::Process& p) {
    auto code = p.exitcode();
    std::printf("    %-26s alive=%-3s exitcode=%s\n", step, p.is_alive() ? "yes" : "no",
                code ? std::to_string(*code).c_str() : "None");
}

static void shut_down(mp::Process& p, double grace_s) {
    p.terminate();  // SIGTERM: the child may clean up, or ignore it
    show("after terminate():", p);
    p.join(grace_s);
    show("after join(grace):", p);
    if (p.is_alive()) {
        p.kill();  // SIGKILL cannot be caught or ignored
        p.join();
        show("after kill() + join():", p);
    }
}

// What the OS still knows about a pid: "gone" once the process has been reaped everywhere.
static std::string os_view(int pid) {
    try {
        return mp::os::to_string(mp::os::process_state(pid));
    } catch (const mp::ProcessLookupError&) {
        return "gone";
    }
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    for (const std::string& method : mp::get_all_start_methods()) {
        std::printf("== start method: %s ==\n", method.c_str());
        for (bool stubborn : {false, true}) {
            std::printf("  %s child:\n", stubborn ? "a stubborn" : "an obedient");
            const std::filesystem::path ready =
                std::filesystem::temp_directory_path() / ("mp_t28_" + std::to_string(mp::getpid()) + "_ready");
            std::filesystem::remove(ready);
            mp::Process p = mp::get_context(method).Process(sleeper, stubborn, ready.string());
            p.start();
            // A SIGTERM sent before the child ignores it would end the stubborn child too early.
            for (int i = 0; i < 1000 && !std::filesystem::exists(ready); ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            std::filesystem::remove(ready);
            show("running:", p);
            shut_down(p, 0.5);
            const int pid = *p.pid();
            p.close();  // releases the last handle on the finished child
            // Windows frees the process object when its last handle closes, which may lag a little.
            std::string state = os_view(pid);
            for (int i = 0; i < 100 && state != "gone"; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                state = os_view(pid);
            }
            std::printf("    pid %d after join and close: %s\n", pid,
                        state == "gone" ? "gone, no zombie left" : state.c_str());
        }
    }
#if defined(_WIN32)
    std::printf("Windows: terminate() and kill() are both TerminateProcess, which cannot be ignored,\n"
                "so the stubborn child ends at terminate() too (exitcode -15).\n");
#endif
    return 0;
}
