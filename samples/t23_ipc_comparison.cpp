// T23 - IPC comparison: the same messages between a parent and one child over four channels
// (Pipe, Queue, shared memory with semaphores, a TCP socket), with the round-trip latency of a
// 64-byte message and the one-way throughput of 64 KiB messages printed side by side.
//
// Python:                                          C++ (mp):
//   a, b = Pipe()                                    auto [a, b] = mp::Pipe();
//   a.send_bytes(msg); b.recv_bytes_into(buf)        a.send_bytes(msg); b.recv_bytes_into(buf, size)
//   q = Queue(); q.put(msg); q.get(timeout=30)       mp::Queue q; q.put(msg); q.get<std::string>(true, 30.0)
//   shm = SharedMemory(create=True, size=n)          auto shm = mp::SharedMemory::create(n);
//   s = Semaphore(0); s.acquire(timeout=30)          mp::Semaphore s(0); s.acquire(true, 30.0)
//   Listener(("127.0.0.1", 0)); Client(address)      mp::Listener l(mp::Address::tcp("127.0.0.1", 0)); mp::Client(a)
//
// Every channel carries the same bytes: the child echoes each small message (the parent
// compares the echo with what it sent) and checksums the big ones (the parent compares the
// child's checksum with its own). The program exits 0 only when every channel delivered every
// message intact. Timings are printed, never judged: they depend on the machine and its load.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "mp/mp.hpp"

// Sizes. Under Wine every kernel call costs 30-45 us, so the Windows build does less work.
#if defined(_WIN32)
constexpr int kRoundTrips = 200;
constexpr int kBigCount = 64;  // 4 MiB in all
#else
constexpr int kRoundTrips = 5000;
constexpr int kBigCount = 512;  // 32 MiB in all
#endif
constexpr int kWarmup = 20;  // round trips not timed: the first ones pay for page faults and caches
constexpr std::size_t kSmall = 64;
constexpr std::size_t kBig = 64 * 1024;
constexpr double kWait = 30.0;  // no wait in this program is without limit: a dead peer is an error

// A Fletcher-style sum over 64-bit words: cheap enough not to hide the channel's own cost (a
// byte-at-a-time hash would cap every channel near 1 GB/s), yet order-sensitive, so a lost,
// repeated or reordered message changes it. The length of each message counts too.
class Checksum {
public:
    void add(const char* p, std::size_t n) {
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t w;
            std::memcpy(&w, p + i, 8);  // memcpy: the buffer need not be 8-byte aligned
            a_ += w;
            b_ += a_;
        }
        for (; i < n; ++i) {
            a_ += static_cast<unsigned char>(p[i]);
            b_ += a_;
        }
        a_ += n;
        b_ += a_;
    }
    std::uint64_t value() const { return a_ ^ (b_ * 0x9E3779B97F4A7C15ull); }

private:
    std::uint64_t a_ = 0, b_ = 0;
};

// What the parent sends: a fixed pseudo-random pattern with the message number in its first 8
// bytes, so that no two messages are alike.
static std::string pattern(std::size_t size) {
    std::string s(size, '\0');
    std::uint32_t x = 12345;
    for (char& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 24);
    }
    return s;
}
static void stamp(std::string& msg, std::uint64_t number) { std::memcpy(&msg[0], &number, sizeof number); }

// ---- The children: one per channel, each echoes kWarmup + kRoundTrips small messages, then
// checksums kBigCount big ones and sends the checksum back (that is the acknowledgement the
// parent's throughput clock stops on).

// Pipe and socket give the same mp::Connection, so one child body serves both.
// recv_bytes_into reuses one buffer: no allocation per message.
static int echo_over_connection(mp::Connection c) {
    std::vector<char> buf(kBig);
    for (int i = 0; i < kWarmup + kRoundTrips; ++i) {
        const std::size_t n = c.recv_bytes_into(buf.data(), buf.size());
        c.send_bytes(buf.data(), n);
    }
    Checksum sum;
    for (int i = 0; i < kBigCount; ++i) sum.add(buf.data(), c.recv_bytes_into(buf.data(), buf.size()));
    c.send(sum.value());
    return 0;
}

static int pipe_child(mp::Connection c) { return echo_over_connection(c); }
MP_TARGET(pipe_child);

// The child connects itself. (A TCP connection cannot be handed to a spawned child on Windows,
// and across machines there is no parent to hand it anyway.) No authkey: loopback only here;
// across a network, give both sides one.
static int socket_child(mp::Address where) { return echo_over_connection(mp::Client(where, "", kWait)); }
MP_TARGET(socket_child);

// Two queues, one each way: a single queue would hand the parent its own request back.
// Every put encodes (copies) the item into the queue's shared ring and every get copies it out.
static int queue_child(mp::Queue requests, mp::Queue replies) {
    for (int i = 0; i < kWarmup + kRoundTrips; ++i) replies.put(requests.get<std::string>(true, kWait), true, kWait);
    Checksum sum;
    for (int i = 0; i < kBigCount; ++i) {
        const std::string m = requests.get<std::string>(true, kWait);
        sum.add(m.data(), m.size());
    }
    replies.put(sum.value(), true, kWait);
    return 0;
}
MP_TARGET(queue_child);

// Shared memory has no messages, only bytes both processes see; the program decides what goes
// where and who may touch it when. The layout here:
//   [0, 64)            the small request      [64, 128)  the child's echo of it
//   [128, 136)         the child's checksum   [kSlotBase + k * kBig)  slot k of kSlots
// and two semaphores, which are the whole protocol (Semaphores rather than an Event or a
// Condition: a count is exactly "how many slots are ready", and a release is never lost even
// when nobody waits yet):
//   to_child   counts what the parent has written (a request, or a filled slot);
//   to_parent  counts what the child has finished with (an echo written, or a slot drained).
// With kSlots slots the parent may run kSlots messages ahead of the child. A semaphore
// release/acquire pair also orders memory: what one process wrote before release() is visible
// to the other after its acquire() returns.
constexpr std::size_t kSlots = 4;
constexpr std::size_t kSlotBase = 256;

static void wait_for(mp::Semaphore& s) {
    if (!s.acquire(true, kWait)) throw mp::TimeoutError("no answer from the other process within 30 s");
}

static int shm_child(mp::SharedMemory shm, mp::Semaphore to_child, mp::Semaphore to_parent) {
    char* base = reinterpret_cast<char*>(shm.data());
    for (int i = 0; i < kWarmup + kRoundTrips; ++i) {
        wait_for(to_child);
        std::memcpy(base + kSmall, base, kSmall);
        to_parent.release();
    }
    Checksum sum;
    for (int i = 0; i < kBigCount; ++i) {
        wait_for(to_child);
        sum.add(base + kSlotBase + (i % kSlots) * kBig, kBig);  // in place: zero-copy
        to_parent.release();
    }
    const std::uint64_t v = sum.value();
    std::memcpy(base + 2 * kSmall, &v, sizeof v);
    to_parent.release();
    return 0;
}
MP_TARGET(shm_child);

// ---- The parent's side: one Channel is three operations, the measurement is the same for all.
struct Channel {
    std::function<void(const std::string& msg, std::string& echo)> round_trip;
    std::function<void(const std::string& msg)> send;
    std::function<std::uint64_t()> finish;  // waits for the child's checksum
};

struct Row {
    const char* name = "";
    const char* good_for = "";
    double latency_us = 0;
    double mb_per_s = 0;
    bool ok = false;
    std::string problem;
};

static void measure(Channel& ch, Row& row) {
    using clock = std::chrono::steady_clock;
    std::string msg = pattern(kSmall), echo;
    std::vector<double> times;
    times.reserve(kRoundTrips);
    int bad_echoes = 0;
    for (int i = 0; i < kWarmup + kRoundTrips; ++i) {
        stamp(msg, static_cast<std::uint64_t>(i));
        const auto t0 = clock::now();
        ch.round_trip(msg, echo);
        const auto t1 = clock::now();
        if (echo != msg) ++bad_echoes;
        if (i >= kWarmup) times.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    // The median, not the mean: one descheduled round trip should not move the figure. Expect
    // the figure itself to vary between runs: a round trip is a few us when the OS runs both
    // processes on one CPU, and can be ten times that when each wake-up must reach another CPU
    // (dearest in a virtual machine).
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    row.latency_us = times[times.size() / 2];

    std::string big = pattern(kBig);
    Checksum expected;
    for (int i = 0; i < kBigCount; ++i) {
        stamp(big, static_cast<std::uint64_t>(i));
        expected.add(big.data(), big.size());
    }
    const auto t0 = clock::now();
    for (int i = 0; i < kBigCount; ++i) {
        stamp(big, static_cast<std::uint64_t>(i));
        ch.send(big);
    }
    const std::uint64_t got = ch.finish();
    const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    row.mb_per_s = static_cast<double>(kBig) * kBigCount / seconds / 1e6;

    row.ok = bad_echoes == 0 && got == expected.value();
    if (bad_echoes != 0) row.problem = std::to_string(bad_echoes) + " echoes differ from what was sent";
    if (got != expected.value()) row.problem += (row.problem.empty() ? "" : "; ") + std::string("checksum differs");
}

// Runs one channel with its child; any exception (a dead child, a timeout) marks the row failed.
template <class Setup>
static Row run(const char* name, const char* good_for, Setup setup) {
    Row row;
    row.name = name;
    row.good_for = good_for;
    mp::Process child;
    try {
        Channel ch = setup(child);
        measure(ch, row);
    } catch (const std::exception& e) {
        row.ok = false;
        row.problem = e.what();
    }
    if (!child.pid()) return row;  // it never started: the problem is already noted
    child.join(kWait);
    if (child.is_alive()) {
        child.kill();
        child.join();
    }
    if (child.exitcode().value_or(-1) != 0) {
        row.ok = false;
        row.problem += (row.problem.empty() ? "" : "; ") + std::string("the child's exit code is ") +
                       std::to_string(child.exitcode().value_or(-1));
    }
    return row;
}

static Row run_pipe() {
    // Named variables, not `auto [mine, theirs]`: C++17 lambdas cannot capture structured bindings.
    mp::Connection mine, theirs;
    std::tie(mine, theirs) = mp::Pipe();
    return run("Pipe", "point to point, both ways; the lightest channel for two processes", [&](mp::Process& p) {
        p = mp::Process(pipe_child, theirs);
        p.start();
        theirs.close();  // so that a child that dies is an EOFError here, not a wait for ever
        return Channel{[&](const std::string& m, std::string& echo) {
                           mine.send_bytes(m);
                           echo.resize(kSmall);
                           echo.resize(mine.recv_bytes_into(&echo[0], echo.size()));
                       },
                       [&](const std::string& m) { mine.send_bytes(m); },
                       [&] { return mine.recv<std::uint64_t>(); }};
    });
}

static Row run_queue() {
    mp::Queue requests, replies;
    return run("Queue", "many producers and consumers, items of any type, built-in locking",
               [&](mp::Process& p) {
                   p = mp::Process(queue_child, requests, replies);
                   p.start();
                   return Channel{[&](const std::string& m, std::string& echo) {
                                      requests.put(m, true, kWait);
                                      echo = replies.get<std::string>(true, kWait);
                                  },
                                  [&](const std::string& m) { requests.put(m, true, kWait); },
                                  [&] { return replies.get<std::uint64_t>(true, kWait); }};
               });
}

static Row run_shared_memory() {
    mp::SharedMemory shm = mp::SharedMemory::create(kSlotBase + kSlots * kBig);
    mp::Semaphore to_child(0), to_parent(0);
    char* base = reinterpret_cast<char*>(shm.data());
    std::size_t sent = 0;
    Row row = run(
        "SharedMemory+Semaphores", "zero-copy, the fastest for bulk data; you design the layout and the sync",
        [&](mp::Process& p) {
            p = mp::Process(shm_child, shm, to_child, to_parent);
            p.start();
            return Channel{[&](const std::string& m, std::string& echo) {
                               std::memcpy(base, m.data(), kSmall);
                               to_child.release();
                               wait_for(to_parent);
                               echo.assign(base + kSmall, kSmall);
                           },
                           [&](const std::string& m) {
                               // The first kSlots messages go without waiting; from then on
                               // each needs a slot that the child has drained.
                               if (sent >= kSlots) wait_for(to_parent);
                               std::memcpy(base + kSlotBase + (sent % kSlots) * kBig, m.data(), kBig);
                               to_child.release();
                               ++sent;
                           },
                           [&] {
                               // The slots still in the child's hands, then its checksum.
                               for (std::size_t k = 0; k < std::min(sent, kSlots) + 1; ++k) wait_for(to_parent);
                               std::uint64_t v;
                               std::memcpy(&v, base + 2 * kSmall, sizeof v);
                               return v;
                           }};
        });
    shm.close();
    shm.unlink();  // POSIX: the name would outlive us otherwise (Windows: nothing to do)
    return row;
}

static Row run_socket() {
    mp::Listener listener(mp::Address::tcp("127.0.0.1", 0));
    mp::Connection conn;
    return run("Socket (TCP loopback)", "works across machines; the same Connection API as a Pipe",
               [&](mp::Process& p) {
                   p = mp::Process(socket_child, listener.address());
                   p.start();
                   conn = listener.accept(kWait);
                   return Channel{[&](const std::string& m, std::string& echo) {
                                      conn.send_bytes(m);
                                      echo.resize(kSmall);
                                      echo.resize(conn.recv_bytes_into(&echo[0], echo.size()));
                                  },
                                  [&](const std::string& m) { conn.send_bytes(m); },
                                  [&] { return conn.recv<std::uint64_t>(); }};
               });
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    std::printf("IPC comparison: one parent, one child per channel, start method %s.\n",
                mp::get_start_method().c_str());
#if defined(_WIN32)
    std::printf("(spawn is the only method on Windows. Under Wine every kernel call costs 30-45 us:\n"
                " Wine timings say nothing about Windows, only the order of magnitude of the calls made.)\n");
#else
    std::printf("(Linux: only the default method, fork, is run; once the child runs, the timings do not\n"
                " depend on how it was started.)\n");
#endif
    std::printf("latency: median of %d round trips of a %zu-byte message (the child echoes it)\n", kRoundTrips,
                kSmall);
    std::printf("throughput: %d messages of %zu KiB one way (%.0f MiB), clock stopped by the child's checksum\n\n",
                kBigCount, kBig / 1024, static_cast<double>(kBig) * kBigCount / (1024.0 * 1024.0));
    std::fflush(stdout);  // before the first fork: a child must not inherit unprinted output

    const Row rows[] = {run_pipe(), run_queue(), run_shared_memory(), run_socket()};

    std::printf("%-24s %12s %12s  %s\n", "channel", "latency (us)", "MB/s", "good for");
    bool all_ok = true;
    for (const Row& r : rows) {
        if (r.ok) {
            std::printf("%-24s %12.1f %12.0f  %s\n", r.name, r.latency_us, r.mb_per_s, r.good_for);
        } else {
            std::printf("%-24s %12s %12s  FAILED: %s\n", r.name, "-", "-", r.problem.c_str());
            all_ok = false;
        }
    }
    std::printf("\n(us: microseconds per round trip; MB/s: 10^6 bytes per second.)\n");
    std::printf(all_ok ? "every channel delivered every message intact\n"
                       : "some channel lost or damaged a message: see FAILED above\n");
    return all_ok ? 0 : 1;
}
