// T19 - signals: a child sends SIGUSR1 to its parent, whose handler reports it; under every
// start method this platform has.
//
// Python:                                    C++ (mp):
//   signal.signal(signal.SIGUSR1, handler)     mp::signals::handle(mp::sig::USR1, handler);
//   os.kill(os.getppid(), signal.SIGUSR1)      mp::kill(parent_pid, mp::sig::USR1);
//   (handler runs between bytecodes)           mp::signals::dispatch(timeout);  // runs it here
//   signal.signal(SIGUSR1, signal.SIG_DFL)     mp::signals::restore(mp::sig::USR1);
//
// POSIX delivers a real signal: mp's sigaction handler only records it (a handler may interrupt
// anything, so it may do almost nothing), and your handler runs when you call dispatch().
// Windows has no SIGUSR1 and no kill(): mp gives the receiving process a named event per
// caught signal (Local\mp-signal-<pid>-<sig>), which mp::kill sets. Same code, same output.
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

static int notify_parent(int parent_pid) {
    std::printf("  [child %d] sending USR1 to my parent %d\n", mp::getpid(), parent_pid);
    std::fflush(stdout);
    mp::kill(parent_pid, mp::sig::USR1);
    return 0;
}
MP_TARGET(notify_parent);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    const auto main_thread = std::this_thread::get_id();
    mp::signals::handle(mp::sig::USR1, [&](int s) {
        // An ordinary function on an ordinary thread: printing, allocating, locking are fine.
        std::printf("  [parent] handler: got signal %d (USR1) on the %s thread\n", s,
                    std::this_thread::get_id() == main_thread ? "main" : "another");
    });
    for (const std::string& method : mp::get_all_start_methods()) {
        std::printf("== start method: %s ==\n", method.c_str());
        mp::Process p = mp::get_context(method).Process(notify_parent, mp::getpid());
        p.start();
        const std::vector<int> ran = mp::signals::dispatch(10);
        std::printf("  dispatch ran %zu handler(s)\n", ran.size());
        p.join();
    }
    const std::vector<int> none = mp::signals::dispatch(0.1);
    std::printf("dispatch(0.1) with no sender: %zu handlers, after waiting the full 0.1 s\n", none.size());
    mp::signals::restore(mp::sig::USR1);
    try {
        mp::kill(0x3ffffff0, mp::sig::USR1);
    } catch (const mp::ProcessLookupError& e) {
        std::printf("kill of a pid that names no process: ProcessLookupError (%s)\n", e.what());
    }
    return 0;
}
