// bench/peers/poco.cpp - Poco Foundation (1.11, Debian's libpoco-dev) as the peer of
// mp::subprocess, mp::Pipe, mp::SharedMemory and mp::Lock / Value:
//   subprocess.run          Process::launch("/bin/true", {}) + ProcessHandle::wait() == 0
//   subprocess.capture_64m  Process::launch(exe, args, nullptr, &pipe, nullptr) and
//                           Pipe::readBytes straight into a std::string until end of file
//                           (the fd-level pipe, no stream buffer), wait(); exactly
//                           kCaptureBytes and exit code 0
//   pipe.pingpong           two Poco::Pipe (one each way, pipe(2): no framing) with a forked
//                           child echoing 64-byte messages; each echo checked
//   pipe.bulk_64k, _1m      a Poco::Pipe to a forked child that reads each message whole and
//                           acknowledges every kBulkBytes on a second Pipe
//   shm.cycle               SharedMemory(name, 4096, AM_WRITE, 0, server = true) (creates
//                           and, when destroyed, unlinks) + SharedMemory(name, ..., false)
//                           (attaches), both destroyed
//   lock.uncontended        NamedMutex lock + unlock
//   value.locked_incr       2 forked processes x N increments of a long long in a
//                           SharedMemory, each under a NamedMutex
// Poco's NamedMutex on Linux is a System V semaphore taken with SEM_UNDO: when its owner dies
// the kernel gives it back, so it never deadlocks (crash-safe; the next owner is not told, as
// mp's OwnerDeadError tells it). Every lock and unlock is a semop system call.
// Process::launch closes every descriptor up to the open-file limit in the child (a close()
// each: strace shows 20000 where `ulimit -n` is 20000), so its cost grows with that limit.
#include <Poco/NamedMutex.h>
#include <Poco/Pipe.h>
#include <Poco/Process.h>
#include <Poco/SharedMemory.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "peers.hpp"

namespace {

double run_true(int scale) {
    const Poco::Process::Args none;
    return bench::timed(bench::work::run(scale), [&] {
        Poco::ProcessHandle h = Poco::Process::launch("/bin/true", none);
        bench::check(h.wait() == 0, "/bin/true failed");
    });
}

double capture(int scale) {
    const Poco::Process::Args args{"--write-64m"};
    const double us = bench::timed(bench::work::capture(scale), [&] {
        Poco::Pipe out;
        Poco::ProcessHandle h = Poco::Process::launch(bench::child_exe(), args, nullptr, &out, nullptr);
        const std::string bytes = bench::read_all([&](char* p, std::size_t n) { return out.readBytes(p, static_cast<int>(n)); });
        out.close();
        bench::check(h.wait() == 0 && bytes.size() == bench::work::kCaptureBytes, "wrong byte count or child failed");
    });
    return static_cast<double>(bench::work::kCaptureBytes) / us;
}

bool read_n(Poco::Pipe& p, char* c, std::size_t n) {
    while (n > 0) {
        const int r = p.readBytes(c, static_cast<int>(n));
        if (r <= 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}
bool write_n(Poco::Pipe& p, const char* c, std::size_t n) {
    while (n > 0) {
        const int w = p.writeBytes(c, static_cast<int>(n));
        if (w <= 0) return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

double pingpong(int scale) {
    using bench::work::kPingpongBatch;
    using bench::work::kPingpongBytes;
    Poco::Pipe up, down;
    const int pid = bench::fork_child([&] {
        up.close(Poco::Pipe::CLOSE_WRITE);
        down.close(Poco::Pipe::CLOSE_READ);
        char buf[kPingpongBytes];
        while (read_n(up, buf, sizeof buf) && write_n(down, buf, sizeof buf)) {
        }
        return true;
    });
    up.close(Poco::Pipe::CLOSE_READ);
    down.close(Poco::Pipe::CLOSE_WRITE);
    char msg[kPingpongBytes] = {};
    char in[kPingpongBytes];
    const double us = bench::timed(bench::work::pingpong(scale), [&] {
        for (int i = 0; i < kPingpongBatch; ++i) {
            std::memcpy(msg, &i, sizeof i);
            bench::check(write_n(up, msg, sizeof msg), "write failed");
            bench::check(read_n(down, in, sizeof in) && std::memcmp(in, msg, sizeof in) == 0, "wrong echo");
        }
    });
    up.close();
    bench::check(bench::joined(pid), "echo child failed");
    return us / kPingpongBatch;
}

double bulk(int scale, std::size_t size) {
    using bench::work::kBulkBytes;
    Poco::Pipe data, ack;
    const int pid = bench::fork_child([&] {
        data.close(Poco::Pipe::CLOSE_WRITE);
        ack.close(Poco::Pipe::CLOSE_READ);
        std::vector<char> buf(size);
        for (;;) {
            for (std::size_t got = 0; got < kBulkBytes; got += size)
                if (!read_n(data, buf.data(), size)) return true;
            if (!write_n(ack, "k", 1)) return false;
        }
    });
    data.close(Poco::Pipe::CLOSE_READ);
    ack.close(Poco::Pipe::CLOSE_WRITE);
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

double shm_cycle(int scale) {
    return bench::timed(bench::work::shm(scale), [] {
        const std::string name = bench::unique_name("shm");
        Poco::SharedMemory a(name, bench::work::kShmBytes, Poco::SharedMemory::AM_WRITE, nullptr, true);
        Poco::SharedMemory b(name, bench::work::kShmBytes, Poco::SharedMemory::AM_WRITE, nullptr, false);
        bench::check(a.begin() != nullptr && b.end() - b.begin() == static_cast<long>(bench::work::kShmBytes), "attach failed");
    });  // b detaches, then a detaches and unlinks (server)
}

// A NamedMutex of this run; its key file (Poco makes one in /tmp for ftok) removed after.
struct Mutex {
    std::string name = bench::unique_name("mutex");
    Poco::NamedMutex m{name};
    ~Mutex() { std::remove(("/tmp/" + name + ".mutex").c_str()); }
};

double uncontended(int scale) {
    Mutex mx;
    const double us = bench::timed(bench::work::lock(scale), [&] {
        for (int i = 0; i < bench::work::kLockBatch; ++i) {
            mx.m.lock();
            mx.m.unlock();
        }
    });
    return us / bench::work::kLockBatch;
}

double locked_incr(int scale) {
    const int n = bench::work::incr_count(scale);
    Mutex mx;
    Poco::SharedMemory shm(bench::unique_name("value"), sizeof(long long), Poco::SharedMemory::AM_WRITE, nullptr, true);
    auto* value = reinterpret_cast<long long*>(shm.begin());
    const double us = bench::timed(bench::work::incr(scale), [&] {
        *value = 0;
        int pids[2];
        for (int& pid : pids)
            pid = bench::fork_child([&] {
                for (int i = 0; i < n; ++i) {
                    mx.m.lock();
                    ++*value;
                    mx.m.unlock();
                }
                return true;
            });
        const bool ok = bench::joined(pids[0]) & bench::joined(pids[1]);
        bench::check(ok && *value == 2LL * n, "wrong count");
    });
    return us / (2.0 * n);
}

bench::RegisterPeer run_peer("subprocess.run", "Poco::Process", true, bench::per_fd_note("closes"), run_true);
bench::RegisterPeer capture_peer("subprocess.capture_64m", "Poco::Process + Pipe", true, bench::per_fd_note("closes"), capture);
bench::RegisterPeer pingpong_peer("pipe.pingpong", "Poco::Pipe", true, "", pingpong);
bench::RegisterPeer bulk64k_peer("pipe.bulk_64k", "Poco::Pipe", true, "", [](int s) { return bulk(s, 64 * 1024); });
bench::RegisterPeer bulk1m_peer("pipe.bulk_1m", "Poco::Pipe", true, "", [](int s) { return bulk(s, 1024 * 1024); });
bench::RegisterPeer shm_peer("shm.cycle", "Poco::SharedMemory", true, "no tracker: a dead creator's segment stays", shm_cycle);
bench::RegisterPeer lock_peer("lock.uncontended", "Poco::NamedMutex", true, "SysV semaphore, SEM_UNDO: crash-safe", uncontended);
bench::RegisterPeer incr_peer("value.locked_incr", "Poco::NamedMutex", true, "SysV semaphore, SEM_UNDO: crash-safe", locked_incr);

}  // namespace
