"""The Python twin of examples/pool_bench.rs: the same workloads, with CPython's multiprocessing.Pool
(start method fork, as on Linux by default before 3.14). Prints one `key value` line per figure.
Each figure is the best of several runs (as on the Rust side): the machine is shared, and the best
run is the one least disturbed by other work.

Run by `cargo run --release --example pool_bench`, or alone: python3 bench/python_twin.py
"""
import multiprocessing as mp
import sys
import time


def cubes(n):
    return n ** 3


def noop():
    pass


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


def best(f, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[1] if len(sys.argv) > 1 else "fork")

    ts = []
    for _ in range(20):
        t = time.perf_counter()
        procs = [ctx.Process(target=noop) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print("q6_start_join_4_ms %.3f" % (ts[10] * 1e3))

    def q3():
        with ctx.Pool(4) as pool:
            assert pool.map(cubes, [1, 2, 3, 4, 5]) == [1, 8, 27, 64, 125]

    ts = []
    for _ in range(10):
        t = time.perf_counter()
        q3()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print("q3_pool4_map5_ms %.3f" % (ts[5] * 1e3))
    with ctx.Pool(2) as pool:
        pool.map(cubes, range(100))
        dt = best(lambda: pool.map(cubes, range(1_000_000)), 3)
        print("map_1M_tasks_per_s %.0f" % (1e6 / dt))

        def applies():
            for i in range(2000):
                pool.apply(cubes, (i,))

        dt = best(applies, 3)
        print("apply_roundtrip_us %.2f" % (dt / 2000 * 1e6))
        chunks = [(i, i + 25000) for i in range(0, 400000, 25000)]
        ser = best(lambda: sum(map(count_primes, chunks)), 2)
        par = best(lambda: sum(pool.map(count_primes, chunks)), 2)
        par1 = best(lambda: sum(pool.map(count_primes, chunks, chunksize=1)), 2)
        assert sum(map(count_primes, chunks[:2])) == sum(pool.map(count_primes, chunks[:2]))
        print("primes_serial_s %.4f" % ser)
        print("primes_parallel_s %.4f" % par)
        print("primes_speedup %.3f" % (ser / par))
        print("primes_speedup_chunksize1 %.3f" % (ser / par1))
