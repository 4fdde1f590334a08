// bench/peers/peers_main.cpp - runs the peers of the metrics whose ids start with one of the
// given prefixes (or of the one metric named by --only) and prints one JSON object per peer:
//   {"id": "subprocess.run", "peer_name": "Boost.Process v2", "compared": true,
//    "note": "...", "peer": 512.0}                      (peer: null and "error": "..." when
//                                                        its own check failed)
//   mp_bench_peers [--scale N] [--list] [--only ID] [--child PATH] [prefix ...]
// --list prints "id<TAB>peer name" lines. Pinned to CPU 0 as mp_bench is.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.hpp"

namespace bench {

std::vector<Peer>& peers() {
    static std::vector<Peer> r;
    return r;
}

static std::string g_child;

const std::string& child_exe() { return g_child; }

std::string unique_name(const char* tag) {
    static int counter = 0;
    return "mp_bench_peer_" + std::to_string(::getpid()) + "_" + tag + std::to_string(++counter);
}

bool joined(int pid) {
    int st = 0;
    return ::waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

std::string per_fd_note(const char* what) {
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    return std::string(what) + " every descriptor up to the open-file limit (" + std::to_string(lim.rlim_cur) +
           " here) in the child";
}

}  // namespace bench

namespace {

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) {
            out += ' ';
            continue;
        }
        out += c;
    }
    return out + "\"";
}

std::string self_dir() {
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return ".";
    std::string p(buf, static_cast<std::size_t>(n));
    const std::size_t slash = p.rfind('/');
    return slash == std::string::npos ? "." : p.substr(0, slash);
}

}  // namespace

int main(int argc, char** argv) {
    int scale = 1;
    bool list = false;
    std::string only;
    std::vector<std::string> prefixes;
    bench::g_child = self_dir() + "/mp_bench";
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = std::max(1, std::atoi(argv[++i]));
        } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (std::strcmp(argv[i], "--child") == 0 && i + 1 < argc) {
            bench::g_child = argv[++i];
        } else if (std::strcmp(argv[i], "--list") == 0) {
            list = true;
        } else {
            prefixes.emplace_back(argv[i]);
        }
    }
    // The same single CPU as mp_bench: children inherit it.
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
    for (const auto& p : bench::peers()) {
        bool wanted = prefixes.empty();
        for (const auto& pre : prefixes) wanted = wanted || p.id.compare(0, pre.size(), pre) == 0;
        if (!only.empty()) wanted = p.id == only;
        if (!wanted) continue;
        if (list) {
            std::printf("%s\t%s\n", p.id.c_str(), p.name.c_str());
            continue;
        }
        std::string figure = "null", error;
        try {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.3f", p.run(scale));
            figure = buf;
        } catch (const std::exception& e) {  // its own check failed, or the library threw
            error = e.what();
        }
        std::printf("{\"id\": %s, \"peer_name\": %s, \"compared\": %s, \"note\": %s, \"peer\": %s", json_string(p.id).c_str(),
                    json_string(p.name).c_str(), p.compared ? "true" : "false", json_string(p.note).c_str(), figure.c_str());
        if (!error.empty()) std::printf(", \"error\": %s", json_string(error).c_str());
        std::printf("}\n");
        std::fflush(stdout);
    }
    return 0;
}
