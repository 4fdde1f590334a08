// bench/bench_managers.cpp - manager.*: mp's managers against CPython's (bench/py/manager.py) and
// the raw floor of the same exchange.
//   manager.dict_get_set  one d[k] = v and one d[k] (int keys and values) from a child process,
//                         against a manager started with fork; us per pair (lower is better)
//     cpp: a forked child driving a DictProxy<int, int>
//     raw: a forked child writing a request and reading a response of the same sizes as mp's
//          (19 + 11 bytes for the set, 18 + 12 for the get, with their 4-byte length headers)
//          over a bare Unix socketpair to a forked server that reads each request whole and
//          answers it: the floor of any request/response between two processes
//   manager.remote_queue  items (int) through a manager-served queue over loopback TCP: a forked
//                         producer puts them, this process gets them; items per second (higher
//                         is better). No raw side.
// bench_main pins the whole run (and so every child and the servers) to one CPU, as manager.py
// does for CPython.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

#if !defined(_WIN32)
bool write_all(int fd, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = ::write(fd, c, n);
        if (w <= 0) return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

// A child that runs `work` each time it reads a byte on fd, and answers with one. It closes
// the descriptors in `others` (copies of its siblings' ends), so that each end has one owner.
template <class Work>
pid_t driver(int fd, std::vector<int> others, Work work) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        for (int o : others) ::close(o);
        char go = 0;
        try {
            while (bench::read_n(fd, &go, 1) && go) {
                work();
                write_all(fd, &go, 1);
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench driver: %s\n", e.what());
            ::_exit(1);
        }
        ::_exit(0);
    }
    return pid;
}

void drive(int fd) {
    char go = 1;
    write_all(fd, &go, 1);
    bench::check(bench::read_n(fd, &go, 1), "the child driving the requests ended (see its message)");
}

void stop(int fd, pid_t pid) {
    char go = 0;
    write_all(fd, &go, 1);
    ::close(fd);
    int st = 0;
    ::waitpid(pid, &st, 0);
}

constexpr std::size_t kSetRequest = 19, kSetReply = 11, kGetRequest = 18, kGetReply = 12;

bench::Result dict_get_set(int scale) {
    const int batch = 2000;
    mp::Manager m(mp::get_context("fork"));
    auto d = m.dict<int, int>();
    d[0] = 0;  // the server is up and this process's session made before the fork

    int ours[2], raw_ctl[2], raw_srv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ours);
    const pid_t our_child = driver(ours[1], {ours[0]}, [&] {
        for (int i = 0; i < batch; ++i) {
            d[i & 63] = i;
            bench::check(static_cast<int>(d[i & 63]) == i, "d[k] read back another value than was written");
        }
    });
    ::close(ours[1]);
    // The raw server: reads each request whole, answers with a reply of the same size as mp's.
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, raw_srv);
    const pid_t raw_server = ::fork();
    if (raw_server == 0) {
        ::close(ours[0]);
        ::close(raw_srv[0]);
        char buf[64] = {};
        for (;;) {
            if (!bench::read_n(raw_srv[1], buf, kSetRequest) || !write_all(raw_srv[1], buf, kSetReply)) break;
            if (!bench::read_n(raw_srv[1], buf, kGetRequest) || !write_all(raw_srv[1], buf, kGetReply)) break;
        }
        ::_exit(0);
    }
    ::close(raw_srv[1]);
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, raw_ctl);
    const pid_t raw_child = driver(raw_ctl[1], {ours[0], raw_ctl[0]}, [&] {
        char buf[64] = {};
        for (int i = 0; i < batch; ++i) {
            buf[0] = static_cast<char>(i);
            write_all(raw_srv[0], buf, kSetRequest);
            bench::read_n(raw_srv[0], buf, kSetReply);
            write_all(raw_srv[0], buf, kGetRequest);
            bench::read_n(raw_srv[0], buf, kGetReply);
        }
    });
    ::close(raw_ctl[1]);
    ::close(raw_srv[0]);  // the raw child's now
    const bench::Result r =
        bench::interleaved(std::max(5, 40 / scale), 2, [&] { drive(ours[0]); }, [&] { drive(raw_ctl[0]); });
    stop(ours[0], our_child);
    stop(raw_ctl[0], raw_child);
    int st = 0;
    ::waitpid(raw_server, &st, 0);
    return {r.cpp / batch, r.raw / batch};
}

bench::Result remote_queue(int scale) {
    const int n = 20000 / scale;
    mp::SyncManager m(mp::Address::tcp("127.0.0.1", 0), "bench", mp::get_context("fork"));
    m.start();
    auto q = m.Queue();
    std::vector<double> rates;
    for (int sample = 0; sample < std::max(3, 9 / scale); ++sample) {
        const auto t0 = std::chrono::steady_clock::now();
        const pid_t producer = ::fork();
        if (producer == 0) {
            for (int i = 0; i < n; ++i) q.put(i);
            ::_exit(0);
        }
        long long sum = 0;
        for (int i = 0; i < n; ++i) sum += q.get<int>();
        int st = 0;
        ::waitpid(producer, &st, 0);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        bench::check(sum == static_cast<long long>(n) * (n - 1) / 2, "the items that came out are not those put in");
        rates.push_back(n / s);
    }
    return {bench::median(rates), -1};
}

bench::Register dict_metric("manager.dict_get_set", "us", "lower", dict_get_set);
bench::Register queue_metric("manager.remote_queue", "items/s", "higher", remote_queue);
#endif

}  // namespace
