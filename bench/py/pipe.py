"""CPython side of pipe.*: multiprocessing.Pipe between a parent and a forked child.

    python3 pipe.py pingpong SAMPLES      ->  {"python": median_us_per_round_trip}
    python3 pipe.py bulk SIZE SAMPLES     ->  {"python": median_MB_per_s}

The same work as bench/bench_pipe.cpp: 64-byte send_bytes/recv_bytes round trips in batches of
2000; or 64 MiB one way in SIZE-byte messages, received with recv_bytes_into a reused
bytearray, then a 1-byte acknowledgement. Pinned to CPU 0, like the C++ side.
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

BULK = 64 << 20
BATCH = 2000


def echo(conn):
    buf = bytearray(64 * 1024)
    while True:  # until an empty message (a fork child holds the parent's end too: no EOF)
        n = conn.recv_bytes_into(buf)
        if n == 0:
            return
        conn.send_bytes(buf, 0, n)


def sink(conn, size):
    buf = bytearray(size)
    while True:
        got = 0
        while got < BULK:
            n = conn.recv_bytes_into(buf)
            if n == 0:
                return
            got += n
        conn.send_bytes(b"k")


def main():
    mode = sys.argv[1]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    if mode == "pingpong":
        samples = int(sys.argv[2])
        p = ctx.Process(target=echo, args=(b,))
    else:
        size, samples = int(sys.argv[2]), int(sys.argv[3])
        p = ctx.Process(target=sink, args=(b, size))
    p.start()
    b.close()
    results = []
    if mode == "pingpong":
        msg = b"x" * 64
        for i in range(samples + 3):
            t0 = time.perf_counter()
            for _ in range(BATCH):
                a.send_bytes(msg)
                a.recv_bytes()
            if i >= 3:
                results.append((time.perf_counter() - t0) * 1e6 / BATCH)
    else:
        data = b"x" * size
        for i in range(samples + 2):
            t0 = time.perf_counter()
            sent = 0
            while sent < BULK:
                a.send_bytes(data)
                sent += size
            a.recv_bytes()
            if i >= 2:
                results.append(BULK / 1e6 / (time.perf_counter() - t0))
    a.send_bytes(b"")
    p.join()
    print(json.dumps({"python": statistics.median(results)}))


if __name__ == "__main__":
    main()
