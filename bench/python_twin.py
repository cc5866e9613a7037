"""The Python twin of examples/pool_bench.rs: the same workloads, with CPython's multiprocessing.Pool
(start method fork, as on Linux by default before 3.14). Prints one `key value` line per figure.

Run by `cargo run --release --example pool_bench`, or alone: python3 bench/python_twin.py
"""
import multiprocessing as mp
import sys
import time


def cubes(n):
    return n ** 3


def count_primes(r):
    lo, hi = r
    c = 0
    for n in range(lo, hi):
        if n < 2:
            continue
        i = 2
        p = True
        while i * i <= n:
            if n % i == 0:
                p = False
                break
            i += 1
        c += p
    return c


if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[1] if len(sys.argv) > 1 else "fork")
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        with ctx.Pool(4) as pool:
            out = pool.map(cubes, [1, 2, 3, 4, 5])
        ts.append(time.perf_counter() - t)
    ts.sort()
    print("q3_pool4_map5_ms %.3f" % (ts[5] * 1e3))
    with ctx.Pool(2) as pool:
        pool.map(cubes, range(100))
        t = time.perf_counter()
        pool.map(cubes, range(1_000_000))
        dt = time.perf_counter() - t
        print("map_1M_tasks_per_s %.0f" % (1e6 / dt))
        t = time.perf_counter()
        for i in range(2000):
            pool.apply(cubes, (i,))
        dt = time.perf_counter() - t
        print("apply_roundtrip_us %.2f" % (dt / 2000 * 1e6))
        chunks = [(i, i + 25000) for i in range(0, 400000, 25000)]
        t = time.perf_counter()
        s = sum(map(count_primes, chunks))
        ser = time.perf_counter() - t
        t = time.perf_counter()
        p = sum(pool.map(count_primes, chunks))
        par = time.perf_counter() - t
        assert s == p
        t = time.perf_counter()
        p1 = sum(pool.map(count_primes, chunks, chunksize=1))
        par1 = time.perf_counter() - t
        assert s == p1
        print("primes_speedup_chunksize1 %.3f" % (ser / par1))
        print("primes_serial_s %.4f" % ser)
        print("primes_parallel_s %.4f" % par)
        print("primes_speedup %.3f" % (ser / par))
        print("primes_count %d" % p)
