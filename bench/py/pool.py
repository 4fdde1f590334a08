"""CPython side of pool.*: multiprocessing.Pool with the fork context, pinned to CPU 0 like the
C++ side (bench/bench_pool.cpp).

    python3 pool.py apply SAMPLES   ->  {"python": median us per pool.apply call}
    python3 pool.py map SAMPLES     ->  {"python": median us per item of map over 100000 ints}
    python3 pool.py submit SAMPLES  ->  {"python": median us per submit().result() round trip on
                                         a warm ProcessPoolExecutor (fork, one worker)}
    python3 pool.py imap SAMPLES    ->  {"python": median us per item of imap over 1M ints,
                                         "python_rss_before_kb": ..., "python_rss_peak_kb": ...}

imap: pool.imap(square_int, generator of 1M ints, chunksize 64) on Pool(2), each result consumed
and checked, as the C++ side's pool.imap_buffered. CPython 3.11's imap (Debian's python3) has no
buffersize (3.16 adds it; the C++ side gives 64 chunks, and so does this script on a Python that
has it): its task thread reads the generator ahead, held back
only by the pipe to the workers filling up, and the results not yet consumed pile up in the
iterator. The RSS is this (parent) process's before and at its peak during the first imap, the
peak reset by /proc/self/clear_refs (Linux 4.0+); null where that is refused.
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
IMAP_ITEMS = 1000000
IMAP_CHUNK = 64
IMAP_BUFFER = 64  # chunks in flight, where imap has a buffersize (3.16+), as the C++ side
HAS_BUFFERSIZE = sys.version_info >= (3, 16)


def echo_int(x):
    return x


def square_int(x):
    return x * x


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return None


def rss_during(side):
    """(RSS before, peak RSS during side()) of this process in kB; (None, None) if the peak
    cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        side()
        return None, None
    before = status_kb("VmRSS")
    side()
    return before, status_kb("VmHWM")


def imap_once(pool):
    i = 0
    items = (k & 0x7FFF for k in range(IMAP_ITEMS))
    results = (pool.imap(square_int, items, IMAP_CHUNK, buffersize=IMAP_BUFFER) if HAS_BUFFERSIZE
               else pool.imap(square_int, items, IMAP_CHUNK))
    for v in results:
        if v != (i & 0x7FFF) ** 2:
            raise AssertionError(f"imap: result {i} is {v}")
        i += 1
    assert i == IMAP_ITEMS


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
    elif mode == "imap":
        with ctx.Pool(2) as pool:
            before, peak = rss_during(lambda: imap_once(pool))  # the first run: a fresh process
            for _ in range(samples):
                t0 = time.perf_counter()
                imap_once(pool)
                times.append((time.perf_counter() - t0) * 1e6 / IMAP_ITEMS)
        print(json.dumps({"python": statistics.median(times), "python_rss_before_kb": before,
                          "python_rss_peak_kb": peak, "python_buffersize": IMAP_BUFFER if HAS_BUFFERSIZE else None,
                          "python_version": "%d.%d" % sys.version_info[:2]}))
        return
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
