"""CPython side of queue.*: multiprocessing.Queue between forked producer and consumer processes.
(Not named queue.py: that would shadow the stdlib module multiprocessing imports.)

    python3 mp_queue.py PRODUCERS CONSUMERS SAMPLES   ->  {"python": median_us_per_item}

The same work as bench/bench_queue.cpp: items (int, 64 bytes); each sample starts the
processes, the producers put their share, the parent puts one stop item per consumer and waits
for everyone; the time over the item count. Pinned to CPU 0, like the C++ side.
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

TOTAL = 40000


def produce(q, ident, n):
    payload = b"x" * 64
    for i in range(n):
        q.put((i, payload))


def consume(q):
    while True:
        i, _ = q.get()
        if i < 0:
            return


def run(ctx, producers, consumers, per):
    t0 = time.perf_counter()
    q = ctx.Queue()
    cons = [ctx.Process(target=consume, args=(q,)) for _ in range(consumers)]
    prods = [ctx.Process(target=produce, args=(q, p, per)) for p in range(producers)]
    for p in cons + prods:
        p.start()
    for p in prods:
        p.join()
    for _ in range(consumers):
        q.put((-1, b""))
    for p in cons:
        p.join()
    q.close()
    q.join_thread()
    return time.perf_counter() - t0


def main():
    producers, consumers, samples = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    ctx = mp.get_context("fork")
    per = TOTAL // producers
    run(ctx, producers, consumers, per // 10)  # warm-up
    results = [run(ctx, producers, consumers, per) * 1e6 / (per * producers) for _ in range(samples)]
    print(json.dumps({"python": statistics.median(results)}))


if __name__ == "__main__":
    main()
