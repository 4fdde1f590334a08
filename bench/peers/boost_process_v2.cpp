// bench/peers/boost_process_v2.cpp - Boost.Process v2 (Boost 1.81, header-only, on Asio) as the
// peer of mp::subprocess:
//   subprocess.run          process(ctx, "/bin/true", {}) + wait(), exit code 0 checked
//   subprocess.capture_64m  a readable_pipe bound to the child's stdout (process_stdio),
//                           asio::read of everything into a std::string (dynamic_buffer)
//                           until end of file, wait(); exactly kCaptureBytes and exit code 0
// One io_context for the whole metric, as a program using v2 keeps one.
#include <boost/optional.hpp>  // v2's config.hpp names boost::optional before including it (1.81)

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/stdio.hpp>

#include "peers.hpp"

namespace {

namespace asio = boost::asio;
namespace bp2 = boost::process::v2;

double run_true(int scale) {
    asio::io_context ctx;
    return bench::timed(bench::work::run(scale), [&] {
        bp2::process p(ctx, "/bin/true", {});
        bench::check(p.wait() == 0, "/bin/true failed");
    });
}

double capture(int scale) {
    asio::io_context ctx;
    const double us = bench::timed(bench::work::capture(scale), [&] {
        asio::readable_pipe out(ctx);
        bp2::process p(ctx, bench::child_exe(), {"--write-64m"}, bp2::process_stdio{{}, out, {}});
        std::string bytes;
        boost::system::error_code ec;
        asio::read(out, asio::dynamic_buffer(bytes), ec);
        bench::check(ec == asio::error::eof, "read failed");
        bench::check(p.wait() == 0 && bytes.size() == bench::work::kCaptureBytes, "wrong byte count or child failed");
    });
    return static_cast<double>(bench::work::kCaptureBytes) / us;  // MB/s: bytes per us
}

bench::RegisterPeer run_peer("subprocess.run", "Boost.Process v2", true, "", run_true);
bench::RegisterPeer capture_peer("subprocess.capture_64m", "Boost.Process v2", true, "", capture);

}  // namespace
