// bench/peers/reproc.cpp - reproc (C API, 14.x) as the peer of mp::subprocess; built only when
// a reproc install is given (bench/run --reproc PREFIX or MP_BENCH_REPROC=PREFIX: its
// lib/pkgconfig/reproc.pc), since Debian does not package it.
//   subprocess.run          reproc_run({"/bin/true"}, {}) == 0 (the child's streams are the
//                           parent's: reproc_run's default)
//   subprocess.capture_64m  reproc_run_ex with stdout to a pipe drained by a sink that
//                           appends to a std::string (reproc_sink_string would strlen the
//                           whole output on each read), stderr the parent's; exactly
//                           kCaptureBytes and exit code 0
// reproc marks every descriptor up to the open-file limit close-on-exec in the child (an
// fcntl each, strace shows), so its cost grows with `ulimit -n`.
#include <reproc/run.h>

#include <cstdint>
#include <string>

#include "peers.hpp"

namespace {

double run_true(int scale) {
    const char* argv[] = {"/bin/true", nullptr};
    return bench::timed(bench::work::run(scale), [&] {
        reproc_options options{};
        bench::check(reproc_run(argv, options) == 0, "/bin/true failed");
    });
}

int append(REPROC_STREAM, const uint8_t* buffer, size_t size, void* context) {
    static_cast<std::string*>(context)->append(reinterpret_cast<const char*>(buffer), size);
    return 0;
}

double capture(int scale) {
    const std::string exe = bench::child_exe();
    const char* argv[] = {exe.c_str(), "--write-64m", nullptr};
    const double us = bench::timed(bench::work::capture(scale), [&] {
        std::string bytes;
        reproc_options options{};
        options.redirect.in.type = REPROC_REDIRECT_PARENT;
        options.redirect.out.type = REPROC_REDIRECT_PIPE;
        options.redirect.err.type = REPROC_REDIRECT_PARENT;
        const reproc_sink out{append, &bytes};
        const int status = reproc_run_ex(argv, options, out, REPROC_SINK_NULL);
        bench::check(status == 0 && bytes.size() == bench::work::kCaptureBytes, "wrong byte count or child failed");
    });
    return static_cast<double>(bench::work::kCaptureBytes) / us;
}

bench::RegisterPeer run_peer("subprocess.run", "reproc", true, bench::per_fd_note("sets FD_CLOEXEC on"), run_true);
bench::RegisterPeer capture_peer("subprocess.capture_64m", "reproc", true, bench::per_fd_note("sets FD_CLOEXEC on"), capture);

}  // namespace
