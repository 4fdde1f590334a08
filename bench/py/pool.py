"""CPython side of pool.*: multiprocessing.Pool with the fork context, pinned to CPU 0 like the
C++ side (bench/bench_pool.cpp).

    python3 pool.py apply SAMPLES   ->  {"python": median us per pool.apply call}
    python3 pool.py map SAMPLES     ->  {"python": median us per item of map over 100000 ints}
    python3 pool.py submit SAMPLES  ->  {"python": median us per submit().result() round trip on
                                         a warm ProcessPoolExecutor (fork, one worker)}
"""
import concurrent.futures
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

BATCH = 2000
ITEMS = 100000


def echo_int(x):
    return x


def square_int(x):
    return x * x


def main():
    mode, samples = sys.argv[1], int(sys.argv[2])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    ctx = mp.get_context("fork")
    times = []
    if mode == "submit":
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
            ex.submit(echo_int, 0).result()
            for _ in range(samples):
                t0 = time.perf_counter()
                for i in range(BATCH):
                    assert ex.submit(echo_int, i).result() == i
                times.append((time.perf_counter() - t0) * 1e6 / BATCH)
    elif mode == "apply":
        with ctx.Pool(1) as pool:
            pool.apply(echo_int, (0,))
            for _ in range(samples):
                t0 = time.perf_counter()
                for i in range(BATCH):
                    pool.apply(echo_int, (i,))
                times.append((time.perf_counter() - t0) * 1e6 / BATCH)
    else:
        items = [i & 0x7FFF for i in range(ITEMS)]  # as the C++ side: squares fit an int
        with ctx.Pool(2) as pool:
            pool.map(square_int, items[:1000])
            for _ in range(samples):
                t0 = time.perf_counter()
                out = pool.map(square_int, items)
                times.append((time.perf_counter() - t0) * 1e6 / ITEMS)
                assert out[-1] == items[-1] ** 2
    print(json.dumps({"python": statistics.median(times)}))


if __name__ == "__main__":
    main()
