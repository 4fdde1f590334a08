// T30 - beyond one machine: the T26 CPU-bound work on the local pool, then, unchanged but for the
// one line that makes the executor, on the ranks of an MPI job.
//
//     $ mpiexec -n 4 ./t30_mpi                  # rank 0 runs main, ranks 1-3 work
//     $ mpiexec -n 8 --hostfile hosts ./t30_mpi # the same, across the hosts in the file
//     $ ./t30_mpi                               # alone: the MPI executor spawns its workers
//
// Python (mpi4py.futures):                        C++ (mp):
//   from concurrent.futures import                  mp::futures::ProcessPoolExecutor ex;
//       ProcessPoolExecutor as Executor
//   from mpi4py.futures import                      mp::mpi::PoolExecutor ex;
//       MPIPoolExecutor as Executor
//   with Executor() as ex: ex.map(work, jobs)       ex.map(work, jobs)
//   $ mpiexec -n 4 python -m mpi4py.futures t.py    $ mpiexec -n 4 ./t30_mpi
//
// Both executors derive from mp::futures::Executor, so run_jobs below takes either. Every rank
// runs this same program, so the MP_TARGET names resolve on every rank; mp::mpi::bootstrap makes
// ranks 1..N-1 serve tasks and return only into exit.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "mp/mp.hpp"
#include "mp/mpi.hpp"

// The T26 work: plain arithmetic the compiler cannot fold away.
static long long work(int n) {
    unsigned long long x = static_cast<unsigned long long>(n);
    long long s = 0;
    for (int i = 0; i < n; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s += static_cast<long long>(x >> 60);
    }
    return s;
}
MP_TARGET(work);

// Where a task ran: the host and pid of the process that ran it.
struct Where {
    std::string host;
    int pid = 0;
    MP_FIELDS(host, pid)
};
static Where where(int) {
    return {mp::mpi::initialized() ? mp::mpi::processor_name() : std::string("local"), mp::getpid()};
}
MP_TARGET(where);

static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The work, for any executor: local worker processes or MPI ranks.
static long long run_jobs(mp::futures::Executor& ex, const char* what, double serial_s) {
    const std::vector<int> jobs(16, 4000000);
    const auto t0 = std::chrono::steady_clock::now();
    long long total = 0;
    for (long long v : ex.map(work, jobs)) total += v;
    const double s = seconds_since(t0);
    std::printf("%s, %d workers: %zu jobs in %.0f ms (checksum %lld): %.2fx the serial speed\n", what, ex.max_workers(),
                jobs.size(), s * 1000, total, serial_s / s);
    return total;
}

int main(int argc, char** argv) {
    mp::mpi::bootstrap(argc, argv);  // on ranks 1..N-1 this serves tasks and never returns

    std::printf("rank %d of %d on %s (pid %d)\n", mp::mpi::rank(), mp::mpi::world_size(), mp::mpi::processor_name().c_str(),
                mp::getpid());
    const auto t0 = std::chrono::steady_clock::now();
    long long serial = 0;
    for (int i = 0; i < 16; ++i) serial += work(4000000);
    const double serial_s = seconds_since(t0);
    std::printf("serial: 16 jobs in %.0f ms (checksum %lld)\n", serial_s * 1000, serial);

    bool ok = true;
    {
        // The local pool (T25, T26), with spawn: an MPI library runs threads of its own, and a
        // fork copies only the calling one.
        mp::futures::ProcessPoolExecutor ex(mp::cpu_count(), mp::PoolOptions().context(mp::get_context("spawn")));
        ok = run_jobs(ex, "local pool", serial_s) == serial && ok;
    }
    {
        // The one line that changes. Alone (no mpiexec) it spawns cpu_count() workers, more than
        // this host's free cores, which Open MPI allows when asked.
        mp::mpi::PoolExecutor ex(0, mp::mpi::Options().spawn_info("map_by", "slot:OVERSUBSCRIBE"));
        ok = run_jobs(ex, "MPI ranks", serial_s) == serial && ok;
        for (const mp::mpi::WorkerInfo& w : ex.workers())
            std::printf("  worker: rank %d on %s, pid %d\n", w.rank, w.host.c_str(), w.pid);
        // And the tasks ran there: one `where` per worker, answered by the ranks themselves.
        std::vector<int> one_each(static_cast<std::size_t>(ex.max_workers()), 0);
        int elsewhere = 0;
        for (const Where& w : ex.map(where, one_each)) elsewhere += w.pid != mp::getpid() ? 1 : 0;
        std::printf("  %d of %zu tasks ran outside rank 0\n", elsewhere, one_each.size());
        ok = ok && elsewhere == static_cast<int>(one_each.size());
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
