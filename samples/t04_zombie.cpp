// T4 - zombies, and a scope guard that leaves no child behind.
//
// Part 1: a child that has ended but has not been joined is a zombie: the OS keeps its pid and
// exit code until the parent collects them (join() does, via waitpid). We read the state
// through mp::os::process_state, not ps.
// Platform difference: Windows has no zombies by that name. The parent's process HANDLE keeps
// the ended process's object (pid and exit code) alive, the same role; mp reports that as
// "dead", and the object goes when the last handle closes rather than when someone waits.
//
// Part 2: mp::ManagedProcesses, the tutorials' managed_processes context manager: at scope exit
// it joins each child for a while, terminates the ones still alive, then kills any survivor.
#include <chrono>
#include <cstdio>
#include <thread>

#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <csignal>
#endif

using namespace std::chrono_literals;

static int quick() { return 7; }
MP_TARGET(quick);

static int nap() {
    std::this_thread::sleep_for(200ms);
    return 0;
}
MP_TARGET(nap);

static void sleep_forever() { std::this_thread::sleep_for(3600s); }
MP_TARGET(sleep_forever);

static void stubborn() {
#if !defined(_WIN32)
    std::signal(SIGTERM, SIG_IGN);  // ignores terminate(): only SIGKILL will do
#endif
    std::this_thread::sleep_for(3600s);
}
MP_TARGET(stubborn);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns
    using S = mp::os::ProcessState;

    std::printf("part 1: a zombie\n");
    mp::Process p(quick);
    p.start();
    const int pid = *p.pid();
    // Do not call join() or is_alive() yet: either would reap it.
    S s = mp::os::process_state(pid);
    for (int i = 0; i < 200 && s != S::zombie && s != S::dead; ++i) {
        std::this_thread::sleep_for(10ms);
        s = mp::os::process_state(pid);
    }
    std::printf("  child %d returned 7 and ended; not joined yet, its state is: %s\n", pid, mp::os::to_string(s));
#if defined(_WIN32)
    std::printf("  (Windows: our process HANDLE keeps its object and exit code; no zombie state)\n");
#else
    std::printf("  (its executable is gone already: \"%s\"; only the pid and exit status remain)\n",
                mp::os::executable_of(pid).c_str());
#endif
    p.join();
    std::printf("  after join(): exitcode %d; ", p.exitcode().value_or(-1));
    try {
        std::printf("state now %s\n", mp::os::to_string(mp::os::process_state(pid)));
#if defined(_WIN32)
        std::printf("  (Windows: join() closed mp's process HANDLE, but an ended process's object lives\n"
                    "  while any handle to it is open anywhere, and Wine keeps one for about 0.5 s)\n");
#endif
    } catch (const mp::ProcessLookupError&) {
        std::printf("pid %d names no process any more (ProcessLookupError): it was reaped\n", pid);
    }

    std::printf("\npart 2: ManagedProcesses(join 0.5 s, then terminate, then kill)\n");
    mp::Process a(nap), b(sleep_forever), c(stubborn);
    const auto t0 = std::chrono::steady_clock::now();
    {
        mp::ManagedProcesses guard(0.5);
        guard.add(a);
        guard.add(b);
        guard.add(c);
        guard.start_all();
        std::printf("  started %d (naps 0.2 s), %d (sleeps an hour), %d (ignores SIGTERM, sleeps an hour)\n",
                    *a.pid(), *b.pid(), *c.pid());
        std::this_thread::sleep_for(100ms);  // let the stubborn one install its handler
        mp::ManagedProcesses::Outcome o = guard.finish();  // what the destructor would do
        std::printf("  guard: of those running, %zu ended by themselves, %zu after terminate(), %zu needed kill()\n", o.joined,
                    o.terminated, o.killed);
    }  // the destructor finds nothing left to do
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  exit codes: %d, %d, %d   (-15 terminated, -9 killed) in %.1f s\n", a.exitcode().value_or(0),
                b.exitcode().value_or(0), c.exitcode().value_or(0), took);
#if defined(_WIN32)
    std::printf("  (Windows: terminate() is TerminateProcess, which cannot be ignored, so no kill was needed)\n");
#endif
    std::printf("  no child is left: active_children() has %zu entries\n", mp::active_children().size());
}
