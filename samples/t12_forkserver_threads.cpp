// T12 - forkserver with a multithreaded parent: the reason the method exists.
//
// Python (3.14: forkserver is the default on POSIX):
//   ctx = multiprocessing.get_context("forkserver")
//   threads busy allocating ...; [ctx.Process(target=work, args=(i,)) for i in range(200)]
//
// fork() copies only the calling thread: a lock another thread held at that instant (malloc's,
// a logger's) stays held for ever in the child, which can hang on its first allocation. The
// forkserver is a fresh run of the program, started on first use, that stays single-threaded
// and forks every child itself: the parent's threads are never copied. Each child's OS parent
// is the server; mp still reports its exit code, pid and sentinel to the parent that started
// it. On Windows there is no forkserver (get_context("forkserver") is a ValueError, as CPython).
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

// Allocates and returns a code the parent checks; also reports, once, who its OS parent is.
static int work(int i, bool report) {
    std::vector<std::string> v;
    for (int k = 0; k < 100; ++k) v.emplace_back(64 + k, 'x');
    if (report) std::printf("  child pid %d: OS parent %d (the server), mp parent %d\n", mp::getpid(), mp::getppid(),
                            mp::parent_process() ? mp::parent_process()->pid() : 0);
    std::fflush(stdout);
    return i % 100;
}
MP_TARGET(work);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
    const auto methods = mp::get_all_start_methods();
    bool has_forkserver = false;
    for (const auto& m : methods) has_forkserver = has_forkserver || m == "forkserver";
    if (!has_forkserver) {
        try {
            mp::get_context("forkserver");
        } catch (const mp::ValueError& e) {
            std::printf("no forkserver on this platform: ValueError: %s\n", e.what());
        }
        return 0;
    }
    std::printf("parent pid %d, default start method %s\n", mp::getpid(), mp::get_start_method().c_str());

    // Eight busy threads: some allocating all the time, some computing.
    std::atomic<bool> stop{false};
    std::vector<std::thread> busy;
    for (int t = 0; t < 8; ++t)
        busy.emplace_back([&stop, t] {
            std::vector<std::unique_ptr<char[]>> held;
            long sum = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                if (t % 2 == 0) {
                    held.emplace_back(new char[64 + held.size() * 8]);
                    if (held.size() > 128) held.clear();
                } else {
                    for (int k = 0; k < 1000; ++k) sum += k;
                }
            }
            (void)sum;
        });
    std::printf("8 threads busy in the parent\n");

    const mp::Context& ctx = mp::get_context("forkserver");
    int ok = 0;
    const int total = 200;
    for (int batch = 0; batch < total / 20; ++batch) {
        std::vector<mp::Process> ps;
        for (int i = 0; i < 20; ++i) ps.push_back(ctx.Process(work, batch * 20 + i, batch == 0 && i == 0));
        for (auto& p : ps) p.start();
        for (std::size_t i = 0; i < ps.size(); ++i) {
            ps[i].join(60);
            if (ps[i].exitcode() == (batch * 20 + static_cast<int>(i)) % 100) ++ok;
        }
    }
    stop = true;
    for (auto& th : busy) th.join();
    std::printf("forkserver: %d of %d children started and joined with the right exit code, no hang\n", ok, total);
    return ok == total ? 0 : 1;
}
