// T1 - process identity: every process has a pid, a parent pid, a name and an executable.
// This program builds a three-level tree (main process -> child -> grandchild) and has each
// level describe itself and its parent through mp::os, which works for ANY pid, not only our
// own.
//
// Python:                                  C++ (mp):
//   os.getpid(), os.getppid()                mp::getpid(), mp::getppid()
//   current_process().name                   mp::current_process().name()
//   psutil.Process(pid).ppid()               mp::os::parent_pid_of(pid)
//   psutil.Process(pid).exe()                mp::os::executable_of(pid)
#include <cstdio>
#include <string>

#include "mp/mp.hpp"

// Prints one line about the running process and one about its parent, as the OS sees them.
static void describe(const char* role) {
    const int pid = mp::getpid();
    const int ppid = mp::getppid();
    std::printf("%-11s pid=%-7d ppid=%-7d name=%-12s exe=%s\n", role, pid, ppid,
                mp::current_process().name().c_str(), mp::os::executable_of(pid).c_str());
    // The same facts, asked about another process by pid: our parent's parent. (pid 0 means
    // "this process" to mp::os, so a missing parent is not looked up.)
    if (ppid == 0)
        std::printf("%-11s   no parent recorded: started by something outside this OS's process table (Wine's\n"
                    "%-11s   first process has ppid 0)\n", "", "");
    else
        std::printf("%-11s   its parent %d has parent %d\n", "", ppid, mp::os::parent_pid_of(ppid));
    std::fflush(stdout);
}

static void grandchild() { describe("grandchild"); }
MP_TARGET(grandchild);

static void child() {
    describe("child");
    mp::Process g(grandchild);
    g.set_name("Grandchild");
    g.start();
    g.join();
}
MP_TARGET(child);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns
    std::printf("start method: %s (%s)\n", mp::get_start_method().c_str(),
                mp::get_start_method() == "fork" ? "children are copies of this process"
                                                 : "children are new runs of this program");
    describe("main");
    mp::Process c(child);
    c.set_name("Child");
    c.start();
    c.join();
    std::printf("\nEach ppid is the pid on the line above it: the tree is main -> child -> grandchild.\n"
                "The name is mp's (Python's 'MainProcess', or what set_name gave); the executable is\n"
                "the OS's: one program file for all three, because %s.\n",
                mp::get_start_method() == "fork" ? "fork copies the running program"
                                                 : "spawn starts this same program again");
}
