"""CPython side of subprocess.*: subprocess.run, the same work as bench/bench_subprocess.cpp.

    python3 subprocess_bench.py run SAMPLES            ->  {"python": median_us}
    python3 subprocess_bench.py capture EXE SAMPLES    ->  {"python": median_MB_per_s}
    python3 subprocess_bench.py pipeline EXE SAMPLES   ->  {"python": median_MB_per_s}

run: subprocess.run(["/bin/true"]). capture: subprocess.run([EXE, "--write-64m"],
capture_output=True), EXE being mp_bench, which then writes 64 MiB to stdout. pipeline: EXE
--produce-256m | EXE --consume-256m, the bytes flowing from child to child as Python's docs
show it: p1 = Popen(..., stdout=PIPE); p2 = Popen(..., stdin=p1.stdout); p1.stdout.close();
p2.wait(); p1.wait() (the consumer exits 0 only if it read exactly 256 MiB). Pinned to CPU 0,
like the C++ side.
"""
import json
import os
import statistics
import subprocess
import sys
import time

CAPTURE = 64 << 20
PIPELINE = 256 << 20


def main():
    mode = sys.argv[1]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    results = []
    if mode == "run":
        samples = int(sys.argv[2])
        for i in range(samples + samples // 10 + 1):
            t0 = time.perf_counter()
            subprocess.run(["/bin/true"])
            if i > samples // 10:
                results.append((time.perf_counter() - t0) * 1e6)
    elif mode == "pipeline":
        exe, samples = sys.argv[2], int(sys.argv[3])
        for i in range(samples + 1):
            t0 = time.perf_counter()
            p1 = subprocess.Popen([exe, "--produce-256m"], stdout=subprocess.PIPE)
            p2 = subprocess.Popen([exe, "--consume-256m"], stdin=p1.stdout)
            p1.stdout.close()  # so that p1 gets SIGPIPE if p2 exits first
            consumer = p2.wait()
            producer = p1.wait()
            dt = time.perf_counter() - t0
            if consumer != 0 or producer != 0:
                raise SystemExit("pipeline: the consumer did not get 256 MiB or a child failed")
            if i > 0:
                results.append(PIPELINE / 1e6 / dt)
    else:
        exe, samples = sys.argv[2], int(sys.argv[3])
        for i in range(samples + 1):
            t0 = time.perf_counter()
            r = subprocess.run([exe, "--write-64m"], capture_output=True)
            dt = time.perf_counter() - t0
            if len(r.stdout) != CAPTURE:
                raise SystemExit("short capture")
            if i > 0:
                results.append(CAPTURE / 1e6 / dt)
    print(json.dumps({"python": statistics.median(results)}))


if __name__ == "__main__":
    main()
