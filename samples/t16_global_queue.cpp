// T16 - the tutorials' "global Queue" example, under fork, spawn and forkserver.
//
// Python:
//   buffer = Queue()                  # module level: runs again in every spawned child
//   def worker(): buffer.put(1)
//   if __name__ == '__main__':
//       p = Process(target=worker); p.start(); p.join()
//       print(buffer.qsize())         # Linux (fork): 1     Windows (spawn): 0
//
// fork: the child is a copy of the parent, so its `buffer` is the parent's queue object (the
// same shared memory): the parent sees the item. spawn: the child is a fresh run of the program;
// static initialisation builds a new, empty queue that only the child knows, so the parent
// sees nothing. forkserver: the child is a fork of the server, itself a fresh run of the
// program, so the queue is the server's (built by its static initialisation), not the
// parent's: the parent sees nothing either. The portable way is the same in both languages: pass the queue as an argument.
#include <cstdio>
#include <string>

#include "mp/mp.hpp"

static mp::Queue buffer;  // like the module-level Queue(): built again in a spawned child

static void worker() { buffer.put(1); }
MP_TARGET(worker);

static void worker_with(mp::Queue q) { q.put(1); }
MP_TARGET(worker_with);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

#if defined(_WIN32)
    std::printf("fork does not exist on Windows (CPython raises ValueError for it too): spawn only\n");
#endif
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());
        mp::Process p = ctx.Process(worker);
        p.start();
        p.join();
        const std::size_t seen = buffer.qsize();
        std::printf("  global queue: the child put 1 item, the parent's qsize() = %zu (%s)\n", seen,
                    seen == 1               ? "fork: the child used the parent's queue"
                    : method == "forkserver" ? "forkserver: the child filled the server's queue, not ours"
                                             : "spawn: the child filled its own fresh queue, which died with it");
        while (!buffer.empty()) buffer.get<int>();

        mp::Queue shared;
        mp::Process p2 = ctx.Process(worker_with, shared);
        p2.start();
        p2.join();
        std::printf("  queue passed as an argument: qsize() = %zu\n", shared.qsize());
    }
    return 0;
}
