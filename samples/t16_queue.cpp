// T16 - Queue: a producer and a consumer; several workers stopped by poison pills; back-pressure
// with maxsize; put/get with block and timeout; JoinableQueue task_done/join.
//
// Python:                                  C++ (mp):
//   q = Queue(); q.put("item-0")             mp::Queue q; q.put(std::string("item-0"));
//   x = q.get()                              auto x = q.get<std::string>();
//   q.get(timeout=0.2)  -> queue.Empty       q.get<T>(true, 0.2)  -> mp::queue::Empty
//   q = Queue(maxsize=2); q.put_nowait(x)    mp::Queue q(2); q.put_nowait(x)  -> mp::queue::Full
//   q = JoinableQueue(); q.task_done()       mp::JoinableQueue q; q.task_done(); q.join();
// One difference worth knowing: CPython's put hands the item to a feeder thread, and a process
// that exits with items still in that thread may hang in join (the "joining processes that
// use queues" warning). mp's put copies the item into shared memory before it returns: a
// producer can always exit at once.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

static void say(const char* fmt, const std::string& s) {
    std::printf(fmt, s.c_str());
    std::fflush(stdout);
}

static int producer(mp::Queue q, int n) {
    for (int i = 0; i < n; ++i) {
        const std::string item = "item-" + std::to_string(i);
        q.put(item);
        say("  [producer] put %s\n", item);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    q.put(std::string("END"));
    return 0;
}
MP_TARGET(producer);

static int consumer(mp::Queue q) {
    for (;;) {
        const std::string x = q.get<std::string>();
        if (x == "END") {
            say("  [consumer] got the end marker%s\n", "");
            return 0;
        }
        say("  [consumer] got %s\n", x);
    }
}
MP_TARGET(consumer);

// A worker squares numbers until it takes a poison pill (-1); one pill per worker.
static int worker(int id, mp::Queue tasks, mp::Queue results) {
    for (;;) {
        const int n = tasks.get<int>();
        if (n < 0) break;
        results.put(std::pair<int, int>{n, n * n});
    }
    results.put(std::pair<int, int>{-1, id});  // "worker id has stopped"
    return 0;
}
MP_TARGET(worker);

// Drains a bounded queue slowly, so that the parent's puts wait for room.
static int slow_reader(mp::Queue q, int n) {
    for (int i = 0; i < n; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        (void)q.get<int>();
    }
    return 0;
}
MP_TARGET(slow_reader);

static int task_worker(mp::JoinableQueue q) {
    for (;;) {
        const std::string job = q.get<std::string>();
        q.task_done();  // for the pill too: join() counts every put
        if (job.empty()) return 0;
    }
}
MP_TARGET(task_worker);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        // 1. Producer and consumer.
        mp::Queue q;
        mp::Process p1 = ctx.Process(producer, q, 3);
        mp::Process p2 = ctx.Process(consumer, q);
        p1.start();
        p2.start();
        p1.join();
        p2.join();
        std::printf("  producer exit %d, consumer exit %d\n", p1.exitcode().value_or(-1), p2.exitcode().value_or(-1));

        // 2. Several workers, stopped by one poison pill each.
        mp::Queue tasks, results;
        std::vector<mp::Process> workers;
        for (int id = 0; id < 3; ++id) workers.push_back(ctx.Process(worker, id, tasks, results));
        for (auto& w : workers) w.start();
        for (int n = 1; n <= 10; ++n) tasks.put(n);
        for (std::size_t i = 0; i < workers.size(); ++i) tasks.put(-1);
        long sum = 0;
        for (std::size_t stopped = 0; stopped < workers.size();) {
            const auto [n, v] = results.get<std::pair<int, int>>();
            if (n < 0) {
                ++stopped;
            } else {
                sum += v;
            }
        }
        for (auto& w : workers) w.join();
        std::printf("  3 workers squared 1..10: sum of squares = %ld; all stopped by poison pills\n", sum);

        // 3. Back-pressure: at most 2 items wait; put blocks (or times out) until a get makes room.
        mp::Queue bounded(2);
        bounded.put(1);
        bounded.put(2);
        try {
            bounded.put_nowait(3);
        } catch (const mp::queue::Full&) {
            std::printf("  maxsize=2: put_nowait of a third item -> queue::Full\n");
        }
        try {
            bounded.put(3, true, 0.2);
        } catch (const mp::queue::Full&) {
            std::printf("  put(timeout=0.2) -> queue::Full after at least 0.2 s\n");
        }
        mp::Process reader = ctx.Process(slow_reader, bounded, 5);
        reader.start();
        for (int i = 3; i <= 5; ++i) bounded.put(i);  // each waits until the reader takes one
        reader.join();
        std::printf("  3 more puts waited for a slow reader; queue empty now: %s\n", bounded.empty() ? "yes" : "no");
        try {
            bounded.get<int>(true, 0.2);
        } catch (const mp::queue::Empty&) {
            std::printf("  get(timeout=0.2) on an empty queue -> queue::Empty\n");
        }

        // 4. JoinableQueue: join() returns when every item put has been marked done.
        mp::JoinableQueue jobs;
        mp::Process tw = ctx.Process(task_worker, jobs);
        tw.start();
        for (const char* j : {"wash", "dry", "fold"}) jobs.put(std::string(j));
        jobs.put(std::string());  // the pill
        jobs.join();
        tw.join();
        std::printf("  JoinableQueue: join() returned after 4 task_done() calls\n");
    }
    return 0;
}
