"""CPython side of shm.cycle: SharedMemory(create=True, size=4096) + attach by name + close x2
+ unlink (CPython registers with its resource tracker on create and unregisters on unlink).

    python3 shm.py SAMPLES   ->  {"python": median_us}
"""
import json
import os
import statistics
import sys
import time
from multiprocessing import shared_memory


def cycle():
    a = shared_memory.SharedMemory(create=True, size=4096)
    b = shared_memory.SharedMemory(name=a.name)
    b.close()
    a.close()
    a.unlink()


def main():
    samples = int(sys.argv[1])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # the same single CPU as the C++ side
    for _ in range(samples // 10 + 1):
        cycle()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        cycle()
        times.append((time.perf_counter() - t0) * 1e6)
    print(json.dumps({"python": statistics.median(times)}))


if __name__ == "__main__":
    main()
