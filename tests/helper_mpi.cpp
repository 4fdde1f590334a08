// tests/helper_mpi.cpp - mp_mpi_test_helper: a static MPI job whose task ends its rank, for
// tests/test_mpi.cpp to read what the user sees (mpirun ends the job; which of mpirun's kill and
// rank 0's own WorkerLostError comes first is a race, and both name the rank). `mpirun -n 2 mp_mpi_test_helper abort|exit`.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "mp/mpi.hpp"

static int abort_rank(int) { std::abort(); }
MP_TARGET(abort_rank);

static int exit_rank(int code) { std::exit(code); }
MP_TARGET(exit_rank);

int main(int argc, char** argv) {
    mp::mpi::bootstrap(argc, argv);
    const bool abort_mode = argc > 1 && std::strcmp(argv[1], "abort") == 0;
    mp::mpi::PoolExecutor ex;
    auto f = abort_mode ? ex.submit(abort_rank, 0) : ex.submit(exit_rank, 3);
    // Rank 0 may see the death first (it watches its workers' pids) and get WorkerLostError,
    // before mpirun ends the job; it never hangs.
    try {
        f.result(60.0);
        std::printf("rank 0 got a result: wrong\n");
    } catch (const mp::WorkerLostError& e) {
        std::printf("rank 0 caught WorkerLostError: %s\n", e.what());
    } catch (const std::exception& e) {
        std::printf("rank 0 caught something else: %s\n", e.what());
    }
    std::fflush(stdout);
    return 0;
}
