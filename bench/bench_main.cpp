// bench/bench_main.cpp - runs the C++ side of the metrics whose ids start with one of the
// given prefixes and prints one JSON object per metric:
//   {"id": "...", "unit": "us", "better": "lower", "cpp": 210.0, "raw": 180.0}
// plus any further figures the metric gives (bench::Result::extra), as more fields.
//   mp_bench [--scale N] [--list] [--only ID] [prefix ...]
// --scale divides the amount of work (a quick smoke run uses a large one); --only runs the one
// metric named exactly. A side whose own check fails (bench::WrongResult) stops the run with
// exit code 2 and the message on stderr: mp or its floor did the wrong work.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <sched.h>
#include <unistd.h>
#endif

namespace bench {
std::vector<Metric>& registry() {
    static std::vector<Metric> r;
    return r;
}

int write_64m() {
#if !defined(_WIN32)
    static char chunk[64 * 1024];
    std::memset(chunk, 'x', sizeof chunk);
    for (std::size_t left = std::size_t{64} << 20; left > 0;) {
        const ssize_t w = ::write(1, chunk, std::min(left, sizeof chunk));
        if (w <= 0) return 1;
        left -= static_cast<std::size_t>(w);
    }
#endif
    return 0;
}
}  // namespace bench

static std::string number(double v) {
    if (v < 0) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    return buf;
}

int main(int argc, char** argv) {
    // The raw spawn floor starts this same program and has it end at once: same binary, same
    // loading cost, no mp bootstrap.
    if (argc > 1 && std::strcmp(argv[1], "--raw-child") == 0) return 0;
    // subprocess.capture_64m's child, for every side alike: 64 MiB to stdout in 64 KiB writes.
    if (argc > 1 && std::strcmp(argv[1], "--write-64m") == 0) return bench::write_64m();
    // subprocess.pipeline_256m's two children, for every side alike: producer | consumer.
    if (argc > 1 && std::strcmp(argv[1], "--produce-256m") == 0) return bench::pipeline_produce();
    if (argc > 1 && std::strcmp(argv[1], "--consume-256m") == 0) return bench::pipeline_consume();
    mp::bootstrap(argc, argv);

    int scale = 1;
    bool list = false;
    std::vector<std::string> prefixes;
    std::string only;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = std::max(1, std::atoi(argv[++i]));
        } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (std::strcmp(argv[i], "--list") == 0) {
            list = true;
        } else {
            prefixes.emplace_back(argv[i]);
        }
    }
#if !defined(_WIN32)
    // One CPU for everything: a child inherits it, so each side pays the same scheduling cost
    // (a 2-vCPU machine otherwise swings between same-CPU and cross-CPU wakeups).
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
#endif
    for (const auto& m : bench::registry()) {
        bool wanted = prefixes.empty();
        for (const auto& p : prefixes) wanted = wanted || m.id.compare(0, p.size(), p) == 0;
        if (!only.empty()) wanted = m.id == only;
        if (!wanted) continue;
        if (list) {
            std::printf("%s\n", m.id.c_str());
            continue;
        }
        bench::Result r;
        try {
            r = m.run(scale);
        } catch (const bench::WrongResult& e) {
            std::fprintf(stderr, "%s: %s\n", m.id.c_str(), e.what());
            return 2;
        }
        std::string more;
        for (const auto& [key, value] : r.extra) more += ", \"" + key + "\": " + number(value);
        std::printf("{\"id\": \"%s\", \"unit\": \"%s\", \"better\": \"%s\", \"cpp\": %s, \"raw\": %s%s}\n", m.id.c_str(),
                    m.unit.c_str(), m.better.c_str(), number(r.cpp).c_str(), number(r.raw).c_str(), more.c_str());
        std::fflush(stdout);
    }
    return 0;
}
