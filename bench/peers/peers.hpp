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

// Everything a reader gives until it returns 0 (end of file), in a std::string, as a program
// using a library's fd-level pipe writes it: reads of up to 64 KiB appended to the string
// (which grows geometrically, without zero-filling). (Reading straight into a string resized
// ahead zero-fills it and, at a size that is a power of two such as 64 MiB, doubles it once
// more for the final read that sees the end: 1.5-3x slower here.) read(p, n) returns the
// bytes read, 0 at the end, < 0 on an error.
template <class Read>
std::string read_all(Read read) {
    std::string out;
    static char chunk[64 * 1024];
    for (;;) {
        const long n = static_cast<long>(read(chunk, sizeof chunk));
        check(n >= 0, "read failed");
        if (n == 0) break;
        out.append(chunk, static_cast<std::size_t>(n));
    }
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
