// T29 - threads share the process's memory; processes each have their own.
//
// Python:                                  C++ (mp):
//   Thread(target=add).start()               std::thread(add, 1000);
//   Process(target=add).start()              mp::Process(add_in_child, 1000).start();
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

static std::atomic<int> g_total{0};  // atomic: four threads add to it at once

static void add(int n) {
    for (int i = 0; i < n; ++i) g_total += 1;
}

static void add_in_child(int index, int n) {
    add(n);
    std::printf("  [process %d pid %d] my g_total is %d\n", index, mp::getpid(), g_total.load());
    std::fflush(stdout);
}
MP_TARGET(add_in_child);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back(add, 1000);
    for (auto& t : threads) t.join();  // joined before any fork: fork copies only the calling thread
    std::printf("threads: 4 threads added 1000 each in pid %d; g_total = %d (shared memory)\n", mp::getpid(),
                g_total.load());

    for (const std::string& method : mp::get_all_start_methods()) {
        std::printf("== processes, start method: %s ==\n", method.c_str());
        std::vector<mp::Process> procs;
        for (int i = 0; i < 4; ++i) procs.push_back(mp::get_context(method).Process(add_in_child, i, 1000));
        for (auto& p : procs) p.start();
        for (auto& p : procs) p.join();
        // fork children start from a copy (4000), spawn children from the initial value (0);
        // either way they add to their own copy.
        std::printf("processes: 4 processes added 1000 each; parent's g_total is still %d (isolated)\n",
                    g_total.load());
    }
    return 0;
}
