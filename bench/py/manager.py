"""CPython side of manager.*: multiprocessing managers with the fork context, pinned to CPU 0
like the C++ side (bench/bench_managers.cpp).

    python3 manager.py dict_get_set SAMPLES  ->  {"python": median us per d[k] = v plus d[k],
                                                   from a child}
    python3 manager.py remote_queue SAMPLES  ->  {"python": median items per second through a
                                                   manager's queue over loopback TCP}
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from multiprocessing.managers import SyncManager

BATCH = 2000
ITEMS = 20000


def drive_dict(d, conn, samples):
    times = []
    for _ in range(samples + 2):  # two warm-up rounds, as the C++ side
        t0 = time.perf_counter()
        for i in range(BATCH):
            d[i & 63] = i
            if d[i & 63] != i:
                raise SystemExit(1)
        times.append((time.perf_counter() - t0) * 1e6 / BATCH)
    conn.send(times[2:])


def produce(q, n):
    for i in range(n):
        q.put(i)


def main():
    mode, samples = sys.argv[1], int(sys.argv[2])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    ctx = mp.get_context("fork")
    if mode == "dict_get_set":
        with ctx.Manager() as m:
            d = m.dict()
            d[0] = 0
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=drive_dict, args=(d, w, samples))
            p.start()
            times = r.recv()
            p.join()
        print(json.dumps({"python": statistics.median(times)}))
    else:
        m = SyncManager(address=("127.0.0.1", 0), authkey=b"bench", ctx=ctx)
        m.start()
        q = m.Queue()
        rates = []
        for _ in range(samples):
            t0 = time.perf_counter()
            p = ctx.Process(target=produce, args=(q, ITEMS))
            p.start()
            total = 0
            for _ in range(ITEMS):
                total += q.get()
            p.join()
            rates.append(ITEMS / (time.perf_counter() - t0))
            assert total == ITEMS * (ITEMS - 1) // 2
        m.shutdown()
        print(json.dumps({"python": statistics.median(rates)}))


if __name__ == "__main__":
    main()
