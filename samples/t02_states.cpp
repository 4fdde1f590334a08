// T2 - process states and priority: what the OS says a process is doing, read for a child by
// pid, and a child's priority changed from outside and read back.
//
// Python (with psutil):                    C++ (mp):
//   psutil.Process(pid).status()             mp::os::process_state(pid)
//   os.getpriority(os.PRIO_PROCESS, pid)     mp::os::get_priority(pid)
//   os.setpriority(os.PRIO_PROCESS, pid, n)  mp::os::set_priority(pid, n)
//
// Platform difference: Linux shows a state letter per process in /proc/<pid>/stat (R running,
// S sleeping, T stopped, Z zombie ...). Windows keeps scheduling state per thread only, so a
// process there is just "running" (alive) or "dead" (ended, handle still held), and it has no
// SIGSTOP. Priority is niceness (-20..19) on POSIX and a priority class on Windows; mp maps one
// onto the other (table in mp/os.hpp).
#include <chrono>
#include <cstdio>
#include <thread>

#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <csignal>
#endif

using namespace std::chrono_literals;

static void sleeper() { std::this_thread::sleep_for(3s); }  // blocked in the kernel: sleeping
MP_TARGET(sleeper);

static void spinner() {  // always wants the CPU: running (or runnable)
    const auto end = std::chrono::steady_clock::now() + 3s;
    volatile unsigned long n = 0;
    while (std::chrono::steady_clock::now() < end) n = n + 1;
}
MP_TARGET(spinner);

// Reads the state a few times, since a freshly started child is still starting up.
static mp::os::ProcessState settle(int pid, mp::os::ProcessState want) {
    mp::os::ProcessState s = mp::os::process_state(pid);
    for (int i = 0; i < 100 && s != want; ++i) {
        std::this_thread::sleep_for(10ms);
        s = mp::os::process_state(pid);
    }
    return s;
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns
    using S = mp::os::ProcessState;

    mp::Process s(sleeper);
    s.start();
    std::printf("sleeping child pid %d: %s   (waiting in sleep_for: the kernel will not run it)\n", *s.pid(),
                mp::os::to_string(settle(*s.pid(), S::sleeping)));

#if defined(_WIN32)
    std::printf("stopped child: not on Windows. It has no SIGSTOP (no job control); suspension is per\n"
                "  thread (SuspendThread), and a process handle tells only alive or ended, so mp\n"
                "  reports \"%s\" for the sleeping child above too.\n",
                mp::os::to_string(S::running));
#else
    ::kill(*s.pid(), SIGSTOP);
    std::printf("after SIGSTOP,  pid %d: %s    (stopped by a signal: job control, as Ctrl-Z does)\n", *s.pid(),
                mp::os::to_string(settle(*s.pid(), S::stopped)));
    ::kill(*s.pid(), SIGCONT);
    std::printf("after SIGCONT,  pid %d: %s   (it carries on sleeping)\n", *s.pid(),
                mp::os::to_string(settle(*s.pid(), S::sleeping)));
#endif

    mp::Process r(spinner);
    r.start();
    const int pid = *r.pid();
    std::printf("spinning child pid %d: %s    (busy on a CPU or waiting for one)\n", pid,
                mp::os::to_string(settle(pid, S::running)));

    std::printf("\npriority of the spinning child: niceness %d\n", mp::os::get_priority(pid));
    mp::os::set_priority(pid, 10);  // lower its priority: always permitted for our own child
    std::printf("after set_priority(%d, 10):     niceness %d\n", pid, mp::os::get_priority(pid));
    mp::os::set_priority(pid, 19);
    std::printf("after set_priority(%d, 19):     niceness %d   (the lowest)\n", pid, mp::os::get_priority(pid));
#if defined(_WIN32)
    std::printf("  (Windows: 10 is BELOW_NORMAL_PRIORITY_CLASS and 19 IDLE_PRIORITY_CLASS)\n");
#else
    try {
        mp::os::set_priority(pid, 0);
        std::printf("set_priority(%d, 0) worked: we have CAP_SYS_NICE (root), so we may raise it again\n", pid);
    } catch (const mp::PermissionError& e) {
        std::printf("set_priority(%d, 0) refused: %s\n  (lowering niceness needs CAP_SYS_NICE)\n", pid, e.what());
    }
#endif
    try {
        mp::os::set_priority(pid, 25);
    } catch (const mp::ValueError& e) {
        std::printf("set_priority(%d, 25): ValueError: %s\n", pid, e.what());
    }

    r.terminate();
    s.terminate();
    r.join();
    s.join();
    std::printf("\nboth ended: exit codes %d and %d (-15: terminated)\n", r.exitcode().value_or(0),
                s.exitcode().value_or(0));
}
