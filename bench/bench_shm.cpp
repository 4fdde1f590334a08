// bench/bench_shm.cpp - shm.cycle: one shared memory segment's whole life.
//   cpp: SharedMemory::create(4096) (generated name; registers with the tracker) + attach by
//        name + close x2 + unlink (unregisters)
//   raw: shm_open(O_CREAT|O_EXCL) + ftruncate + mmap, shm_open + mmap (attach), munmap x2,
//        close x2, shm_unlink
// POSIX only, like the other raw floors. The tracker costs a pipe write per create and per
// unlink (and wakes the tracker, which runs on the same pinned CPU).
#include <string>

#include "bench.hpp"
#include "mp/mp.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

void ours() {
    mp::SharedMemory a = mp::SharedMemory::create(bench::work::kShmBytes);
    mp::SharedMemory b = mp::SharedMemory::attach(a.name());
    bench::check(b.size() >= bench::work::kShmBytes, "shm.cycle (mp): attached segment too small");
    b.close();
    a.close();
    a.unlink();
}

void raw() {
    static int counter = 0;
    const std::string name = "/mp_bench_raw_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bench::check(fd >= 0 && ::ftruncate(fd, 4096) == 0, "shm.cycle (raw): shm_open or ftruncate failed");
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int fd2 = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
    void* q = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
    bench::check(fd2 >= 0 && p != MAP_FAILED && q != MAP_FAILED, "shm.cycle (raw): attach failed");
    ::munmap(q, 4096);
    ::close(fd2);
    ::munmap(p, 4096);
    ::close(fd);
    ::shm_unlink(name.c_str());
}

bench::Register cycle_metric("shm.cycle", "us", "lower",
                             [](int scale) { return bench::interleaved(bench::work::shm(scale), ours, raw); });

}  // namespace
#endif
