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


def echo(b):
    return b


def shout(s):
    return s.upper()


def total(v):
    return sum(v)


def ping_pong_child(conn, n):
    for _ in range(n):
        conn.send(conn.recv())


def queue_producer(q, n):
    for i in range(n):
        q.put(i)


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def best(f, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[1] if len(sys.argv) > 1 else "fork")  # --forks-only: Q6 and Q3 only

    ts = []
    for _ in range(50):
        t = time.perf_counter()
        procs = [ctx.Process(target=noop) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print("q6_start_join_4_ms %.3f" % (ts[25] * 1e3))

    def q3():
        with ctx.Pool(4) as pool:
            assert pool.map(cubes, [1, 2, 3, 4, 5]) == [1, 8, 27, 64, 125]

    ts = []
    for _ in range(30):
        t = time.perf_counter()
        q3()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print("q3_pool4_map5_ms %.3f" % (ts[15] * 1e3))
    if "--forks-only" in sys.argv:
        sys.exit(0)
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

        # Bulk data: 64 buffers of 4 MiB (256 MiB) in (the function returns the length), and echoed.
        bufs = [bytes([i % 251]) * (4 << 20) for i in range(64)]
        dt = best(lambda: pool.map(len, bufs), 2)
        print("bytes_in_ms %.3f" % (dt * 1e3))
        dt = best(lambda: pool.map(echo, bufs), 2)
        print("bytes_echo_ms %.3f" % (dt * 1e3))
        # Memory: the parent's peak above what it held when the call began (results kept).
        held = status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        out = pool.map(echo, bufs)
        print("bytes_echo_peak_mib %.1f" % ((status_kib("VmHWM") - held) / 1024))
        del out
        del bufs
        # Many short strings: 200 000 strings of 12 characters, upper-cased.
        words = ["word%08d" % i for i in range(200_000)]
        dt = best(lambda: pool.map(shout, words), 3)
        print("strings_ms %.3f" % (dt * 1e3))
        # Vectors of floats: 200 vectors of 50 000 floats, summed.
        vecs = [[float(i + j) for j in range(50_000)] for i in range(200)]
        dt = best(lambda: pool.map(total, vecs), 2)
        print("floats_ms %.3f" % (dt * 1e3))
        del vecs

        # 5000 apply_async in flight, then every get().
        def many_async():
            rs = [pool.apply_async(cubes, (i,)) for i in range(5000)]
            for r in rs:
                r.get()

        dt = best(many_async, 3)
        print("apply_async_5000_ms %.3f" % (dt * 1e3))
        # imap_unordered, default chunksize 1, 20 000 tiny tasks.
        dt = best(lambda: sum(pool.imap_unordered(cubes, range(20_000))), 3)
        print("imap_unordered_20000_ms %.3f" % (dt * 1e3))

    # Pipe ping-pong with a child: 10 000 round trips of a small int.
    a, b = ctx.Pipe()
    p = ctx.Process(target=ping_pong_child, args=(b, 30_000))
    p.start()

    def pingpong():
        for i in range(10_000):
            a.send(i)
            a.recv()

    dt = best(pingpong, 3)
    p.join()
    print("pipe_roundtrip_us %.3f" % (dt / 10_000 * 1e6))

    # Queue streaming: a child puts 100 000 small ints, the parent gets them.
    def stream():
        q = ctx.Queue()
        p = ctx.Process(target=queue_producer, args=(q, 100_000))
        p.start()
        for _ in range(100_000):
            q.get()
        p.join()

    dt = best(stream, 2)
    print("queue_100k_ms %.3f" % (dt * 1e3))
