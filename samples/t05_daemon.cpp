// T5 - daemon children: the daemon flag is set before start(); a daemonic child ends when its
// parent ends, even when the parent is killed; and a daemonic child may not start children.
//
// Python:                                  C++ (mp):
//   p = Process(target=work, daemon=True)    mp::Process p(work); p.set_daemon(true);
//   p.start()                                p.start();
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "mp/mp.hpp"

static void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

static void daemon_work() {
    std::printf("    [daemon pid %d] started by pid %d; sleeping 20 s unless my parent dies\n", mp::getpid(),
                mp::getppid());
    std::fflush(stdout);
    sleep_ms(20000);
    std::printf("    [daemon pid %d] still alive after 20 s: it should not be\n", mp::getpid());
}
MP_TARGET(daemon_work);

// The middle process starts the daemon, tells the top process its pid through a file, then
// waits to be killed.
static void middle(std::string method, std::string pid_file) {
    mp::Process d = mp::get_context(method).Process(daemon_work);
    d.set_daemon(true);
    d.start();
    std::ofstream(pid_file) << *d.pid() << "\n";
    std::printf("  [middle pid %d] started daemon pid %d; waiting to be killed\n", mp::getpid(), *d.pid());
    std::fflush(stdout);
    sleep_ms(20000);
}
MP_TARGET(middle);

static void daemon_tries_a_child() {
    try {
        mp::Process grandchild(daemon_work);
        grandchild.start();
        std::printf("    [daemon pid %d] started a child: unexpected\n", mp::getpid());
    } catch (const mp::ProcessError& e) {
        std::printf("    [daemon pid %d] ProcessError: %s\n", mp::getpid(), e.what());
    }
    std::fflush(stdout);
}
MP_TARGET(daemon_tries_a_child);

static bool is_gone(int pid) {
    try {
        const mp::os::ProcessState s = mp::os::process_state(pid);
        // Killed but not yet reaped by its new parent still counts as ended.
        return s == mp::os::ProcessState::zombie || s == mp::os::ProcessState::dead;
    } catch (const mp::ProcessLookupError&) {
        return true;
    }
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
    std::printf("top process pid %d\n", mp::getpid());

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        const std::string pid_file =
            (std::filesystem::temp_directory_path() / ("mp_t05_" + std::to_string(mp::getpid()) + "_" + method))
                .string();
        std::filesystem::remove(pid_file);
        mp::Process m = ctx.Process(middle, method, pid_file);
        m.start();
        int daemon_pid = 0;
        for (int i = 0; i < 500 && daemon_pid == 0; ++i) {
            sleep_ms(10);
            std::ifstream(pid_file) >> daemon_pid;
        }
        std::filesystem::remove(pid_file);
        sleep_ms(300);  // let the daemon get going (a spawned child takes a moment to start)
        std::printf("  middle pid %d, its daemon pid %d, daemon alive: %s\n", *m.pid(), daemon_pid,
                    is_gone(daemon_pid) ? "no" : "yes");
        m.kill();  // no clean-up code runs in the middle process: the OS must end the daemon
        m.join();
        bool gone = false;
        for (int i = 0; i < 300 && !gone; ++i) {
            gone = is_gone(daemon_pid);
            if (!gone) sleep_ms(10);
        }
        std::printf("  middle killed (exitcode %d); daemon pid %d gone: %s\n", m.exitcode().value_or(0), daemon_pid,
                    gone ? "yes" : "NO");
#if defined(_WIN32)
        std::printf("  (Windows: the daemon was in a job object that closes with its parent's last handle)\n");
#elif defined(__linux__)
        std::printf("  (Linux: the daemon asked for SIGKILL on its parent's death, prctl(PR_SET_PDEATHSIG))\n");
#endif

        mp::Process d = ctx.Process(daemon_tries_a_child);
        d.set_daemon(true);  // must come before start(): afterwards it is a ProcessError
        d.start();
        d.join();
        try {
            d.set_daemon(false);
        } catch (const mp::ProcessError& e) {
            std::printf("  set_daemon after start: ProcessError: %s\n", e.what());
        }
        std::printf("\n");
    }
    return 0;
}
