// bench/bench_pipe.cpp - pipe.*: mp::Pipe between a parent and a forked child, against the same
// exchange on a raw socketpair (the OS object a duplex mp::Pipe is on POSIX), with no framing.
//   pipe.pingpong  64-byte message there and back; us per round trip (lower is better)
//     cpp: Connection::send_bytes + recv_bytes_into, both sides
//     raw: write() + read() of 64 bytes, both sides
//     Each message carries its number; each side checks that the echo is the message sent.
//   pipe.bulk_64k, pipe.bulk_1m  one-way throughput parent -> child in 64 KiB / 1 MiB messages,
//     MB/s (higher is better); 64 MiB per sample, then a 1-byte acknowledgement
//     cpp: send_bytes, and recv_bytes_into a reused buffer in the child
//     raw: write() of the same sizes, each message read whole into a reused buffer in the child
//     The child acknowledges once it has counted all kBulkBytes in whole messages.
// bench_main pins the whole run (and so every child) to one CPU, as pipe.py does for CPython.
#include <cstring>
#include <string>
#include <vector>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <csignal>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

#if !defined(_WIN32)
using bench::work::kBulkBytes;
using bench::work::kPingpongBatch;
using bench::work::kPingpongBytes;

// Ours, child side: echoes each message until an empty one. (Not until end of file: a fork
// child holds a copy of the parent's end as well, so it would never see one.)
int mp_echo(mp::Connection c) {
    std::vector<char> buf(64 * 1024);
    for (;;) {
        const std::size_t n = c.recv_bytes_into(buf.data(), buf.size());
        if (n == 0) return 0;
        c.send_bytes(buf.data(), n);
    }
}
MP_TARGET(mp_echo);

// Ours, child side: receives kBulkBytes in messages of `size`, acknowledges, again, until an
// empty message.
int mp_sink(mp::Connection c, std::uint64_t size) {
    std::vector<char> buf(static_cast<std::size_t>(size));
    for (;;) {
        std::size_t got = 0;
        while (got < kBulkBytes) {
            const std::size_t n = c.recv_bytes_into(buf.data(), buf.size());
            if (n == 0) return 0;
            got += n;
        }
        c.send_bytes("k", 1);
    }
}
MP_TARGET(mp_sink);

using bench::read_n;
bool write_n(int fd, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

// A raw child on a socketpair; body runs in the child on its end.
struct RawChild {
    int fd = -1;
    pid_t pid = -1;
    template <class F>
    explicit RawChild(F body) {
        int sv[2];
        ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
        pid = ::fork();
        if (pid == 0) {
            ::close(sv[0]);
            body(sv[1]);
            ::_exit(0);
        }
        ::close(sv[1]);
        fd = sv[0];
    }
    ~RawChild() {
        ::close(fd);
        int st = 0;
        ::waitpid(pid, &st, 0);
    }
};

bench::Result pingpong(int scale) {
    auto [a, b] = mp::Pipe();
    mp::Process p = mp::get_context("fork").Process(mp_echo, b);
    p.start();
    b.close();
    RawChild raw([](int fd) {
        char buf[kPingpongBytes];
        while (read_n(fd, buf, sizeof buf) && write_n(fd, buf, sizeof buf)) {
        }
    });
    char msg[kPingpongBytes] = {};
    char in[kPingpongBytes];
    bench::Result r = bench::interleaved(
        bench::work::pingpong(scale),
        [&] {
            for (int i = 0; i < kPingpongBatch; ++i) {
                std::memcpy(msg, &i, sizeof i);
                a.send_bytes(msg, sizeof msg);
                const std::size_t n = a.recv_bytes_into(in, sizeof in);
                bench::check(n == sizeof in && std::memcmp(in, msg, sizeof in) == 0, "pipe.pingpong (mp): wrong echo");
            }
        },
        [&] {
            for (int i = 0; i < kPingpongBatch; ++i) {
                std::memcpy(msg, &i, sizeof i);
                write_n(raw.fd, msg, sizeof msg);
                const bool got = read_n(raw.fd, in, sizeof in);
                bench::check(got && std::memcmp(in, msg, sizeof in) == 0, "pipe.pingpong (raw): wrong echo");
            }
        });
    a.send_bytes("", 0);  // stop
    p.join();
    return {r.cpp / kPingpongBatch, r.raw / kPingpongBatch};
}

bench::Result bulk(int scale, std::size_t size) {
    auto [a, b] = mp::Pipe();
    mp::Process p = mp::get_context("fork").Process(mp_sink, b, static_cast<std::uint64_t>(size));
    p.start();
    b.close();
    // The same work as mp_sink: each message lands whole in the buffer. (A reader that just
    // drains the socket keeps rewriting the first ~200 KB of its buffer, which stays in cache,
    // and measures a copy that no message receiver gets: 1.4x faster at 1 MiB here.)
    RawChild raw([size](int fd) {
        std::vector<char> buf(size);
        for (;;) {
            for (std::size_t got = 0; got < kBulkBytes; got += size)
                if (!read_n(fd, buf.data(), size)) return;
            if (!write_n(fd, "k", 1)) return;
        }
    });
    const std::vector<char> data(size, 'x');
    char ack[1];
    bench::Result r = bench::interleaved(
        bench::work::bulk(scale),
        [&] {
            for (std::size_t sent = 0; sent < kBulkBytes; sent += size) a.send_bytes(data.data(), size);
            bench::check(a.recv_bytes_into(ack, 1) == 1 && ack[0] == 'k', "pipe.bulk (mp): no acknowledgement");
        },
        [&] {
            for (std::size_t sent = 0; sent < kBulkBytes; sent += size) write_n(raw.fd, data.data(), size);
            bench::check(read_n(raw.fd, ack, 1) && ack[0] == 'k', "pipe.bulk (raw): no acknowledgement");
        });
    a.send_bytes("", 0);  // stop
    p.join();
    const double mb = static_cast<double>(kBulkBytes) / 1e6;
    return {mb / (r.cpp / 1e6), mb / (r.raw / 1e6)};
}

bench::Register pingpong_metric("pipe.pingpong", "us", "lower", pingpong);
bench::Register bulk64k_metric("pipe.bulk_64k", "MB/s", "higher", [](int scale) { return bulk(scale, 64 * 1024); });
bench::Register bulk1m_metric("pipe.bulk_1m", "MB/s", "higher", [](int scale) { return bulk(scale, 1024 * 1024); });
#endif

}  // namespace
