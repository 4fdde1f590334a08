// bench/peers/boost_process_v1.cpp - Boost.Process v1 (Boost 1.81, boost/process/*.hpp) as
// the peer of mp::subprocess and of mp::Pipe:
//   subprocess.run          child(exe = "/bin/true") + wait(), exit code 0 checked
//   subprocess.capture_64m  child(exe, args, std_out > pipe) and pipe.read() straight into a
//                           std::string until end of file (bench::read_all), wait(); exactly
//                           kCaptureBytes and exit code 0
//   pipe.pingpong           two bp::pipe (one each way) with a forked child echoing 64-byte
//                           messages with read()/write(); each echo checked
//   pipe.bulk_64k, _1m      a bp::pipe to a forked child that reads each message whole and
//                           acknowledges every kBulkBytes on a second pipe
// bp::pipe is a pipe(2) pair: no framing, as the raw floor.
#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/io.hpp>
#include <boost/process/pipe.hpp>

#include <cstring>
#include <unistd.h>
#include <vector>

#include "peers.hpp"

namespace {

namespace bp = boost::process;

double run_true(int scale) {
    return bench::timed(bench::work::run(scale), [] {
        bp::child c(bp::exe = "/bin/true");
        c.wait();
        bench::check(c.exit_code() == 0, "/bin/true failed");
    });
}

double capture(int scale) {
    const double us = bench::timed(bench::work::capture(scale), [] {
        bp::pipe out;
        bp::child c(bp::exe = bench::child_exe(), bp::args = {"--write-64m"}, bp::std_out > out);
        const std::string bytes = bench::read_all([&](char* p, std::size_t n) { return out.read(p, static_cast<int>(n)); });
        c.wait();
        bench::check(c.exit_code() == 0 && bytes.size() == bench::work::kCaptureBytes, "wrong byte count or child failed");
    });
    return static_cast<double>(bench::work::kCaptureBytes) / us;
}

// v1's basic_pipe closes both ends or none; one end alone is closed by its fd.
void close_sink(bp::pipe& p) {
    ::close(p.native_sink());
    p.assign_sink(-1);
}
void close_source(bp::pipe& p) {
    ::close(p.native_source());
    p.assign_source(-1);
}

// Exactly n bytes through a bp::pipe; false at end of file.
bool read_n(bp::pipe& p, char* c, std::size_t n) {
    while (n > 0) {
        const int r = p.read(c, static_cast<int>(n));
        if (r <= 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}
bool write_n(bp::pipe& p, const char* c, std::size_t n) {
    while (n > 0) {
        const int w = p.write(c, static_cast<int>(n));
        if (w <= 0) return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

double pingpong(int scale) {
    using bench::work::kPingpongBatch;
    using bench::work::kPingpongBytes;
    bp::pipe up, down;
    const int pid = bench::fork_child([&] {
        close_sink(up);
        close_source(down);
        char buf[kPingpongBytes];
        while (read_n(up, buf, sizeof buf) && write_n(down, buf, sizeof buf)) {
        }
        return true;
    });
    close_source(up);
    close_sink(down);
    char msg[kPingpongBytes] = {};
    char in[kPingpongBytes];
    const double us = bench::timed(bench::work::pingpong(scale), [&] {
        for (int i = 0; i < kPingpongBatch; ++i) {
            std::memcpy(msg, &i, sizeof i);
            bench::check(write_n(up, msg, sizeof msg), "write failed");
            bench::check(read_n(down, in, sizeof in) && std::memcmp(in, msg, sizeof in) == 0, "wrong echo");
        }
    });
    up.close();  // end of file: the child ends
    bench::check(bench::joined(pid), "echo child failed");
    return us / kPingpongBatch;
}

double bulk(int scale, std::size_t size) {
    using bench::work::kBulkBytes;
    bp::pipe data, ack;
    const int pid = bench::fork_child([&] {
        close_sink(data);
        close_source(ack);
        std::vector<char> buf(size);
        for (;;) {
            for (std::size_t got = 0; got < kBulkBytes; got += size)
                if (!read_n(data, buf.data(), size)) return true;
            if (!write_n(ack, "k", 1)) return false;
        }
    });
    close_source(data);
    close_sink(ack);
    const std::vector<char> bytes(size, 'x');
    const double us = bench::timed(bench::work::bulk(scale), [&] {
        for (std::size_t sent = 0; sent < kBulkBytes; sent += size) bench::check(write_n(data, bytes.data(), size), "write failed");
        char k = 0;
        bench::check(read_n(ack, &k, 1) && k == 'k', "no acknowledgement");
    });
    data.close();
    bench::check(bench::joined(pid), "sink child failed");
    return static_cast<double>(kBulkBytes) / us;
}

bench::RegisterPeer run_peer("subprocess.run", "Boost.Process v1", true, "", run_true);
bench::RegisterPeer capture_peer("subprocess.capture_64m", "Boost.Process v1", true, "", capture);
bench::RegisterPeer pingpong_peer("pipe.pingpong", "Boost.Process v1 pipe", true, "", pingpong);
bench::RegisterPeer bulk64k_peer("pipe.bulk_64k", "Boost.Process v1 pipe", true, "", [](int s) { return bulk(s, 64 * 1024); });
bench::RegisterPeer bulk1m_peer("pipe.bulk_1m", "Boost.Process v1 pipe", true, "", [](int s) { return bulk(s, 1024 * 1024); });

}  // namespace
