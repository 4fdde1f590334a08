// bench/peers/boost_interprocess.cpp - Boost.Interprocess (Boost 1.81, header-only) as the
// peer of mp::SharedMemory, mp::Lock / Value, mp::Queue (and, beside, mp::Pipe):
//   shm.cycle          shared_memory_object(create_only) + truncate(4096) + mapped_region,
//                      shared_memory_object(open_only) + mapped_region (attach), both
//                      unmapped and closed, shared_memory_object::remove
//   lock.uncontended   interprocess_mutex in an anonymous_shared_memory region: on glibc a
//                      PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST mutex (Boost's
//                      BOOST_INTERPROCESS_POSIX_ROBUST_MUTEXES): a dead owner makes lock()
//                      throw, never deadlock, so it is compared with mp's lock. Beside it:
//                      named_mutex, a POSIX named semaphore (sem_open) that a dead owner
//                      leaves taken for good (not crash-safe).
//   value.locked_incr  2 forked processes x N increments of a long long in an
//                      anonymous_shared_memory region, each under the lock (the same two)
//   queue.1to1, 2to2   message_queue of kQueueRecord-byte messages sized to mp::Queue's ring
//                      (kQueueRingBytes): the producers send (int, 64 bytes) records, the
//                      parent one stop record per consumer; consumers add what they got to
//                      a shared total, checked
//   pipe.pingpong      beside: two message_queues (one each way) with a forked child echoing
//                      64-byte messages. Not compared: a message_queue never learns that the
//                      other side died (a receive waits for good), where a pipe sees EOF.
// Forked children use the parent's objects (the mappings are shared across fork), as mp's
// fork children do.
#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/named_mutex.hpp>

#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "peers.hpp"

namespace {

namespace bi = boost::interprocess;

double shm_cycle(int scale) {
    return bench::timed(bench::work::shm(scale), [] {
        const std::string name = bench::unique_name("shm");
        {
            bi::shared_memory_object a(bi::create_only, name.c_str(), bi::read_write);
            a.truncate(static_cast<bi::offset_t>(bench::work::kShmBytes));
            bi::mapped_region ra(a, bi::read_write);
            bi::shared_memory_object b(bi::open_only, name.c_str(), bi::read_write);
            bi::mapped_region rb(b, bi::read_write);
            bench::check(ra.get_address() != nullptr && rb.get_size() == bench::work::kShmBytes, "attach failed");
        }
        bench::check(bi::shared_memory_object::remove(name.c_str()), "remove failed");
    });
}

// The two locks, one interface: lock()/unlock().
struct RobustMutex {
    bi::mapped_region region = bi::anonymous_shared_memory(4096);
    bi::interprocess_mutex* m = new (region.get_address()) bi::interprocess_mutex;
    void lock() { m->lock(); }
    void unlock() { m->unlock(); }
};
struct NamedMutex {
    std::string name = bench::unique_name("mutex");
    bi::named_mutex m{bi::create_only, name.c_str()};
    ~NamedMutex() { bi::named_mutex::remove(name.c_str()); }
    void lock() { m.lock(); }
    void unlock() { m.unlock(); }
};

template <class Mutex>
double uncontended(int scale) {
    Mutex mx;
    const double us = bench::timed(bench::work::lock(scale), [&] {
        for (int i = 0; i < bench::work::kLockBatch; ++i) {
            mx.lock();
            mx.unlock();
        }
    });
    return us / bench::work::kLockBatch;
}

template <class Mutex>
double locked_incr(int scale) {
    const int n = bench::work::incr_count(scale);
    Mutex mx;
    bi::mapped_region shared = bi::anonymous_shared_memory(4096);
    auto* value = static_cast<long long*>(shared.get_address());
    const double us = bench::timed(bench::work::incr(scale), [&] {
        *value = 0;
        int pids[2];
        for (int& pid : pids)
            pid = bench::fork_child([&] {
                for (int i = 0; i < n; ++i) {
                    mx.lock();
                    ++*value;
                    mx.unlock();
                }
                return true;
            });
        const bool ok = bench::joined(pids[0]) & bench::joined(pids[1]);
        bench::check(ok && *value == 2LL * n, "wrong count");
    });
    return us / (2.0 * n);
}

double queue(int scale, int producers, int consumers) {
    using bench::work::kQueuePayload;
    using bench::work::kQueueRecord;
    const int per = bench::work::queue_items(scale) / producers;
    bi::mapped_region shared = bi::anonymous_shared_memory(4096);
    auto* total = new (shared.get_address()) std::atomic<long long>(0);
    const double us = bench::timed(bench::work::queue(scale), [&] {
        total->store(0);
        const std::string name = bench::unique_name("queue");
        {
            bi::message_queue q(bi::create_only, name.c_str(), bench::work::kQueueRingBytes / kQueueRecord, kQueueRecord);
            std::vector<int> pids;
            for (int c = 0; c < consumers; ++c)
                pids.push_back(bench::fork_child([&] {
                    char rec[kQueueRecord];
                    long long got = 0;
                    for (;;) {
                        std::size_t size = 0;
                        unsigned prio = 0;
                        q.receive(rec, sizeof rec, size, prio);
                        int v = 0;
                        std::memcpy(&v, rec, sizeof v);
                        if (v < 0) break;
                        if (size != kQueueRecord) return false;
                        ++got;
                    }
                    total->fetch_add(got);
                    return true;
                }));
            std::vector<int> prods;
            for (int p = 0; p < producers; ++p)
                prods.push_back(bench::fork_child([&] {
                    char rec[kQueueRecord];
                    std::memset(rec + 4, 'x', kQueuePayload);
                    for (int i = 0; i < per; ++i) {
                        std::memcpy(rec, &i, sizeof i);
                        q.send(rec, sizeof rec, 0);
                    }
                    return true;
                }));
            bool ok = true;
            for (int pid : prods) ok &= bench::joined(pid);
            char stop[kQueueRecord] = {};
            const int minus_one = -1;
            std::memcpy(stop, &minus_one, sizeof minus_one);
            for (int c = 0; c < consumers; ++c) q.send(stop, sizeof stop, 0);
            for (int pid : pids) ok &= bench::joined(pid);
            bench::check(ok && total->load() == static_cast<long long>(per) * producers, "wrong item count");
        }
        bi::message_queue::remove(name.c_str());
    });
    return us / (static_cast<double>(per) * producers);
}

double pingpong(int scale) {
    using bench::work::kPingpongBatch;
    using bench::work::kPingpongBytes;
    const std::string up_name = bench::unique_name("up"), down_name = bench::unique_name("down");
    double us = -1;
    {
        bi::message_queue up(bi::create_only, up_name.c_str(), 16, kPingpongBytes);
        bi::message_queue down(bi::create_only, down_name.c_str(), 16, kPingpongBytes);
        const int pid = bench::fork_child([&] {
            char buf[kPingpongBytes];
            for (;;) {
                std::size_t size = 0;
                unsigned prio = 0;
                up.receive(buf, sizeof buf, size, prio);
                if (size == 0) return true;  // stop
                down.send(buf, size, 0);
            }
        });
        char msg[kPingpongBytes] = {};
        char in[kPingpongBytes];
        us = bench::timed(bench::work::pingpong(scale), [&] {
            for (int i = 0; i < kPingpongBatch; ++i) {
                std::memcpy(msg, &i, sizeof i);
                up.send(msg, sizeof msg, 0);
                std::size_t size = 0;
                unsigned prio = 0;
                down.receive(in, sizeof in, size, prio);
                bench::check(size == sizeof in && std::memcmp(in, msg, sizeof in) == 0, "wrong echo");
            }
        });
        up.send(msg, 0, 0);
        bench::check(bench::joined(pid), "echo child failed");
    }
    bi::message_queue::remove(up_name.c_str());
    bi::message_queue::remove(down_name.c_str());
    return us / kPingpongBatch;
}

const char* const kNotCrashSafe = "not crash-safe: a dead owner leaves it locked for good";

bench::RegisterPeer shm_peer("shm.cycle", "Boost.Interprocess shared_memory_object", true,
                             "no tracker: a dead creator's segment stays", shm_cycle);
bench::RegisterPeer lock_peer("lock.uncontended", "Boost.Interprocess interprocess_mutex", true, "robust pthread mutex",
                              uncontended<RobustMutex>);
bench::RegisterPeer lock_named_peer("lock.uncontended", "Boost.Interprocess named_mutex", false, kNotCrashSafe,
                                    uncontended<NamedMutex>);
bench::RegisterPeer incr_peer("value.locked_incr", "Boost.Interprocess interprocess_mutex", true, "robust pthread mutex",
                              locked_incr<RobustMutex>);
bench::RegisterPeer incr_named_peer("value.locked_incr", "Boost.Interprocess named_mutex", false, kNotCrashSafe,
                                    locked_incr<NamedMutex>);
bench::RegisterPeer q11_peer("queue.1to1", "Boost.Interprocess message_queue", true, "", [](int s) { return queue(s, 1, 1); });
bench::RegisterPeer q22_peer("queue.2to2", "Boost.Interprocess message_queue", true, "", [](int s) { return queue(s, 2, 2); });
bench::RegisterPeer pingpong_peer("pipe.pingpong", "Boost.Interprocess message_queue", false,
                                  "not crash-safe: a dead peer is never noticed (a pipe sees EOF)", pingpong);

}  // namespace
