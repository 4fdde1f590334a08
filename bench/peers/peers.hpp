// bench/peers/peers.hpp - the peers' side of the benchmarks: the same work as a metric of
// mp_bench done with another library (Boost.Process v1 and v2, Boost.Interprocess, Poco,
// reproc), timed by the same harness (bench/bench.hpp: the same plan of samples, medians, the
// same single pinned CPU) in a separate program, mp_bench_peers, so that mp and mp_bench never
// link Boost or Poco (and mp_bench's own children, which spawn measurements start, never load
// them). Each source file here is one library and is compiled only where that library is
// found (bench/meson.build); each registers its peers with a RegisterPeer.
//
// A peer's figure is in its metric's unit. A peer checks its own result (exact counts, exact
// bytes) with bench::check; a wrong result makes it "not measured" with the reason, never a
// figure. `compared` is false for a peer printed beside mp's row but left out of the "mp vs
// best peer" ratio because it gives up what mp keeps (crash safety: a lock whose dead owner
// deadlocks everyone, a channel whose dead peer is never noticed); `note` says which.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include "../bench.hpp"

namespace bench {

struct Peer {
    std::string id;    // the mp_bench metric this peer does the work of
    std::string name;  // "Boost.Process v2" ...: bench/run's PEERS table uses the same names
    bool compared;     // in the best-peer ratio (false: printed beside, for honesty)
    std::string note;  // what it does differently, printed beside its figure
    std::function<double(int scale)> run;
};

std::vector<Peer>& peers();

struct RegisterPeer {
    RegisterPeer(std::string id, std::string name, bool compared, std::string note, std::function<double(int)> run) {
        peers().push_back({std::move(id), std::move(name), compared, std::move(note), std::move(run)});
    }
};

// mp_bench's path (--child, else beside this program): the child of subprocess.capture_64m,
// started as `mp_bench --write-64m`, the same child program as mp's and the raw floor's.
const std::string& child_exe();

// A unique name for a named object of this run ("mp_bench_peer_<pid>_<tag><n>").
std::string unique_name(const char* tag);

// Everything a reader gives until it returns 0 (end of file), in a std::string as mp's
// capture holds it: read straight into the string's free space, the string doubled when full
// (from 64 KiB). read(p, n) returns the bytes read, 0 at the end, < 0 on an error.
template <class Read>
std::string read_all(Read read) {
    std::string out(std::size_t{64} << 10, '\0');
    std::size_t got = 0;
    for (;;) {
        if (got == out.size()) out.resize(out.size() * 2);
        const long n = static_cast<long>(read(&out[got], out.size() - got));
        check(n >= 0, "read failed");
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return out;
}

// Runs body() in a forked child that then ends with _exit: 0 if body returned true, 1 if it
// returned false or threw (a child never unwinds into the parent's frames).
template <class Body>
int fork_child(Body body) {
    const int pid = ::fork();
    if (pid == 0) {
        bool ok = false;
        try {
            ok = body();
        } catch (...) {
        }
        ::_exit(ok ? 0 : 1);
    }
    check(pid > 0, "fork failed");
    return pid;
}

// Waits for a child of fork_child; true if it ended with 0.
bool joined(int pid);

// "<what> every descriptor up to the open-file limit (N here) in the child": the note of a
// spawner whose cost grows with `ulimit -n`.
std::string per_fd_note(const char* what);

}  // namespace bench
