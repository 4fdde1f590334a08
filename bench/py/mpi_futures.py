"""CPython side of mpi.*: mpi4py.futures.MPIPoolExecutor (Debian's python3-mpi4py) in a static
job, the same shape as bench/bench_mpi.cpp: rank 0 submits, ranks 1-3 work.

    mpirun -n 4 /usr/bin/python3 -m mpi4py.futures mpi_futures.py submit SAMPLES
        ->  {"python": median small tasks per second (submit of echo_int, then every result)}
    mpirun -n 4 /usr/bin/python3 -m mpi4py.futures mpi_futures.py map SAMPLES
        ->  {"python": median us per item of map over 100000 ints, chunksize as mp's Pool picks}
"""
import json
import statistics
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

BATCH = 20000
ITEMS = 100000


def echo_int(x):
    return x


def square_int(x):
    return x * x


def main():
    mode, samples = sys.argv[1], int(sys.argv[2])
    scale = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    out = []
    with MPIPoolExecutor() as ex:
        workers = MPI.COMM_WORLD.Get_size() - 1  # static mode: every other rank
        if mode == "submit":
            batch = BATCH // scale
            for s in range(samples + 1):
                t0 = time.perf_counter()
                fs = [ex.submit(echo_int, i) for i in range(batch)]
                for i, f in enumerate(fs):
                    assert f.result() == i
                if s:
                    out.append(batch / (time.perf_counter() - t0))
        else:
            n = ITEMS // scale
            items = [i % 32768 for i in range(n)]
            parts = workers * 4
            chunksize = max(1, -(-n // parts))  # as mp::mpi::Pool (and multiprocessing.Pool) choose
            list(ex.map(square_int, items, chunksize=chunksize))
            for _ in range(samples):
                t0 = time.perf_counter()
                list(ex.map(square_int, items, chunksize=chunksize))
                out.append((time.perf_counter() - t0) / n * 1e6)
    print(json.dumps({"python": statistics.median(out)}))


if __name__ == "__main__":
    main()
