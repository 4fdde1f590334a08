// T7 - the Process object: start, join with a timeout, is_alive, terminate, kill, name, pid,
// daemon and exitcode, under every start method this platform has.
//
// Python:                                  C++ (mp):
//   p = Process(target=work, args=(2,))      mp::Process p(work, 2);
//   p.start(); p.join(timeout=0.1)           p.start(); p.join(0.1);
//   p.exitcode  -> None / 0 / -15            p.exitcode() -> std::optional<int>
#include <chrono>
#include <cstdio>
#include <thread>

#include "mp/mp.hpp"

static int work(int seconds_tenths) {
    std::printf("  [%s pid %d] working for %d00 ms\n", mp::current_process().name().c_str(), mp::getpid(),
                seconds_tenths);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * seconds_tenths));
    return 0;
}
MP_TARGET(work);  // spawn finds targets by name: register them

static int fail_with(int code) { return code; }  // an int result is the exit code, as in main()
MP_TARGET(fail_with);

static void show(const char* what, mp::Process& p) {
    auto code = p.exitcode();
    std::printf("  %-28s name=%-10s pid=%-7d alive=%-5s exitcode=%s\n", what, p.name().c_str(), p.pid().value_or(0),
                p.is_alive() ? "yes" : "no", code ? std::to_string(*code).c_str() : "None");
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        mp::Process p = ctx.Process(work, 3);
        p.set_name("worker");
        show("created (not started):", p);
        p.start();
        show("started:", p);
        p.join(0.1);  // returns after 100 ms although the child is still working
        show("after join(0.1):", p);
        p.join();
        show("after join():", p);

        mp::Process q = ctx.Process(fail_with, 3);
        q.start();
        q.join();
        show("target returned 3:", q);

        mp::Process t = ctx.Process(work, 100);
        t.start();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        t.terminate();  // SIGTERM on POSIX; TerminateProcess on Windows
        t.join();
        show("terminated:", t);

        mp::Process k = ctx.Process(work, 100);
        k.start();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        k.kill();  // SIGKILL: cannot be caught
        k.join();
        show("killed:", k);
        std::printf("  a negative exitcode is the signal number: -15 is SIGTERM, -9 is SIGKILL%s\n\n",
#if defined(_WIN32)
                    " (Windows has no signals: mp reports TerminateProcess this way, as CPython does)"
#else
                    ""
#endif
        );
    }
    return 0;
}
