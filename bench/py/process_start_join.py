"""CPython side of process.start_join.{fork,spawn,forkserver}: start and join a no-op child.

    python3 process_start_join.py METHOD SAMPLES   ->  {"python": median_us}
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time


def noop():
    pass


def main():
    method, samples = sys.argv[1], int(sys.argv[2])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # the same single CPU as the C++ side
    ctx = mp.get_context(method)
    times = []
    for i in range(samples + samples // 10 + 1):
        t0 = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        if i > samples // 10:
            times.append((time.perf_counter() - t0) * 1e6)
    print(json.dumps({"python": statistics.median(times)}))


if __name__ == "__main__":
    main()
