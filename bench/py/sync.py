"""CPython side of lock.uncontended and value.locked_incr.

    python3 sync.py uncontended SAMPLES   ->  {"python": median us per `with lock:`}
    python3 sync.py locked_incr SAMPLES   ->  {"python": median us per locked increment}

uncontended: `with lock:` on a multiprocessing.Lock, in batches of 20000.
locked_incr: 2 forked processes x 1M of `with v.get_lock(): v.value += 1` on a
multiprocessing.Value('q'), start and join included: the C++ side's count, so that the fixed
cost of starting and joining two processes weighs the same on both sides (with 20000 it was
about a sixth of CPython's per-increment time, which flattered the C++ side).
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

BATCH = 20000
INCREMENTS = 1000000  # per process, as bench_sync.cpp at scale 1


def uncontended(lock):
    t0 = time.perf_counter()
    for _ in range(BATCH):
        with lock:
            pass
    return (time.perf_counter() - t0) * 1e6 / BATCH


def incr(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def locked_incr(ctx):
    v = ctx.Value("q", 0)
    t0 = time.perf_counter()
    ps = [ctx.Process(target=incr, args=(v, INCREMENTS)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    dt = time.perf_counter() - t0
    assert v.value == 2 * INCREMENTS
    return dt * 1e6 / (2 * INCREMENTS)


def main():
    mode, samples = sys.argv[1], int(sys.argv[2])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # the same single CPU as the C++ side
    ctx = mp.get_context("fork")
    if mode == "uncontended":
        lock = ctx.Lock()
        uncontended(lock)
        times = [uncontended(lock) for _ in range(samples)]
    else:
        locked_incr(ctx)
        times = [locked_incr(ctx) for _ in range(samples)]
    print(json.dumps({"python": statistics.median(times)}))


if __name__ == "__main__":
    main()
