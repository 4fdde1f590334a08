// T14 - Pipe and Connection: two connected ends, messages with their boundaries kept, objects
// through the codec, poll with a timeout, and EOFError when the other side has gone; under
// every start method this platform has.
//
// Python:                                  C++ (mp):
//   a, b = Pipe()                            auto [a, b] = mp::Pipe();
//   r, w = Pipe(duplex=False)                auto [r, w] = mp::Pipe(false);
//   a.send({"x": 1}); b.recv()               a.send(std::map<std::string,int>{{"x",1}}); b.recv<std::map<...>>()
//   a.send_bytes(b"..."); b.recv_bytes()     a.send_bytes("..."); b.recv_bytes()
//   b.poll(0.5)                              b.poll(0.5)
//   except EOFError                          catch (const mp::EOFError&)
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

// Runs in the child: answers each request with its square until it gets a negative number.
// Why not stop at EOFError when the parent closes its end? Under fork the child inherited a
// copy of the parent's end too, and a reader sees end of file only when every copy of the
// other end is closed, its own included: it would wait for ever. A stop message is the
// dependable way (Python has the same trap).
static int squarer(mp::Connection conn) {
    for (;;) {
        const int n = conn.recv<int>();
        if (n < 0) {
            std::printf("  [child] got the stop message\n");
            std::fflush(stdout);
            return 0;
        }
        conn.send(std::map<std::string, int>{{"n", n}, {"square", n * n}});
    }
}
MP_TARGET(squarer);  // spawn finds targets by name: register them

// Runs in the child: a one-way writer. It waits a little first, so that the parent's poll
// has something to time out on.
static int reporter(mp::Connection w, int delay_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    w.send_bytes("raw bytes, no codec");
    w.send_bytes("");  // an empty message is still a message
    w.send(std::vector<std::string>{"objects", "too"});
    return 0;
}
MP_TARGET(reporter);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        // Duplex: both ends send and receive.
        auto [mine, theirs] = mp::Pipe();
        mp::Process p = ctx.Process(squarer, theirs);
        p.start();
        // The child has its own copy of `theirs` now (inherited under fork, passed as a handle
        // under spawn). Closing ours matters: while any process holds an end open, the reader
        // of the other end cannot see end of file.
        theirs.close();
        for (int n : {3, 12}) {
            mine.send(n);
            auto reply = mine.recv<std::map<std::string, int>>();
            std::printf("  sent %d, got back square=%d\n", n, reply["square"]);
        }
        mine.send(-1);
        p.join();
        try {
            mine.recv<int>();  // the child has exited, and with it every copy of its end
        } catch (const mp::EOFError& e) {
            std::printf("  recv after the child exited: EOFError (%s)\n", e.what());
        }
        std::printf("  child exit code %d\n", p.exitcode().value_or(-1));

        // One-way: r only receives, w only sends.
        auto [r, w] = mp::Pipe(false);
        std::printf("  one-way: r.readable=%d r.writable=%d, w.readable=%d w.writable=%d\n", r.readable(),
                    r.writable(), w.readable(), w.writable());
        mp::Process q = ctx.Process(reporter, w, 300);
        q.start();
        w.close();
        const auto t0 = std::chrono::steady_clock::now();
        const bool early = r.poll(0.05);
        const auto waited = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("  poll(0.05) -> %s after %.0f ms (the child sleeps 300 ms before writing)\n",
                    early ? "true" : "false", waited);
        if (r.poll(10.0)) {  // recv with a timeout is poll(timeout), then recv
            const mp::bytes b1 = r.recv_bytes();
            const mp::bytes b2 = r.recv_bytes();
            std::printf("  recv_bytes -> \"%.*s\" (%zu bytes), then an empty message of %zu bytes\n",
                        static_cast<int>(b1.size()), reinterpret_cast<const char*>(b1.data()), b1.size(), b2.size());
            auto v = r.recv<std::vector<std::string>>();
            std::printf("  recv<vector<string>> -> [%s, %s]\n", v.at(0).c_str(), v.at(1).c_str());
        }
        q.join();
        try {
            r.recv_bytes();
        } catch (const mp::EOFError& e) {
            std::printf("  after the writer exited: EOFError (%s)\n", e.what());
        }
        try {
            r.send_bytes("x");
        } catch (const mp::OSError& e) {
            std::printf("  sending on the read end: OSError (%s)\n", e.what());
        }
    }
    return 0;
}
