// T3 - orphans: when a parent dies before its child, who is the child's parent now?
//
// The main process starts a "middle" process; the middle starts a child and dies at once, so
// the child is an orphan. The orphan waits until its parent is gone and reports what it sees.
//
// Platform difference: POSIX re-parents an orphan at once, to init (pid 1) or to the nearest
// ancestor that declared itself a "child subreaper" (Linux prctl(PR_SET_CHILD_SUBREAPER); a
// container's init or systemd --user often is one). The second round below makes this main
// process a subreaper, so the orphan comes to us and we reap it. Windows has no re-parenting:
// a process's parent pid is written once at creation, so the orphan keeps naming its dead
// parent, a number that may later belong to an unrelated process.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <sys/prctl.h>
#include <sys/wait.h>
#endif

using namespace std::chrono_literals;

static void orphan(int main_pid) {
    // The parent mp recorded at start (getppid() may already have changed: the middle process
    // does not wait for us).
    auto parent = mp::parent_process();
    const int first_parent = parent ? parent->pid() : mp::getppid();
    if (parent) parent->join(10.0);  // until the middle process is gone
    const int now = mp::os::parent_pid_of(0);
    std::printf("  orphan pid %d: my parent was %d, it has ended; my parent is now %d", mp::getpid(), first_parent,
                now);
    if (now == first_parent) std::printf("  (unchanged: no re-parenting)\n");
    else if (now == 1) std::printf("  (init)\n");
    else if (now == main_pid) std::printf("  (the main process: it is a subreaper)\n");
    else std::printf("  (a subreaper above us)\n");
    std::fflush(stdout);
}
MP_TARGET(orphan);

static void middle(int main_pid) {
    mp::Process o(orphan, main_pid);
    o.start();
    std::printf("  middle pid %d: started orphan %d, now exiting without joining it\n", mp::getpid(), *o.pid());
    std::fflush(stdout);
    std::_Exit(0);  // skips mp's at-exit join of children, as a crash would
}
MP_TARGET(middle);

static void round_trip(const char* title) {
    std::printf("%s\n", title);
    std::fflush(stdout);
    mp::Process m(middle, mp::getpid());
    m.start();
    m.join();
#if defined(_WIN32)
    std::this_thread::sleep_for(300ms);  // the orphan reports and ends by itself
#else
    // An orphan that came to us (round 2) must be reaped by us; one that went to init is not
    // our child (waitpid says ECHILD), and we just give it time to report.
    for (int i = 0; i < 200; ++i) {
        std::this_thread::sleep_for(10ms);
        int status = 0;
        const pid_t r = ::waitpid(-1, &status, WNOHANG);
        if (r > 0) {
            std::printf("  main reaped the orphan %d\n", static_cast<int>(r));
            break;
        }
        if (r < 0 && i >= 30) break;  // not ours, and 300 ms is ample to report
    }
#endif
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns
    std::printf("main pid %d (its own parent is %d)\n", mp::getpid(), mp::getppid());
    round_trip("round 1: an ordinary parent dies");
#if defined(_WIN32)
    std::printf("Windows: no re-parenting, and no subreapers to ask for; the orphan still names its\n"
                "dead parent. Nothing reaps it either: it needs no reaping, its process object goes\n"
                "when the last handle to it closes.\n");
#else
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    round_trip("round 2: main is now a child subreaper (prctl(PR_SET_CHILD_SUBREAPER, 1))");
#endif
}
