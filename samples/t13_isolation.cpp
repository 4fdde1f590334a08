// T13 - data isolation: each child has its own copy of the globals, so the parent's stay as
// they were whatever the children do.
//
// Python:                                  C++ (mp):
//   n = 100                                  static int n = 100;
//   def work(): global n; n -= 1             static void work() { n -= 1; }
#include <cstdio>
#include <string>
#include <vector>

#include "mp/mp.hpp"

static int g_counter = 100;

static void decrement(int index) {
    g_counter -= 1;
    std::printf("  [child %d pid %d] decremented g_counter to %d\n", index, mp::getpid(), g_counter);
    std::fflush(stdout);
}
MP_TARGET(decrement);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    for (const std::string& method : mp::get_all_start_methods()) {
        std::printf("== start method: %s ==\n", method.c_str());
        std::vector<mp::Process> children;
        for (int i = 0; i < 10; ++i) children.push_back(mp::get_context(method).Process(decrement, i));
        for (auto& c : children) c.start();
        for (auto& c : children) c.join();
        // Every child started from 100 (fork: a copy of ours; spawn: the initial value) and
        // changed only its own memory.
        std::printf("parent pid %d: g_counter is still %d after 10 children decremented it\n", mp::getpid(),
                    g_counter);
    }
    std::printf("to share data, use the IPC tools: Value, Array, Queue, Pipe, Manager\n");
    return 0;
}
