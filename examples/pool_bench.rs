//! Pool benchmark: the same workloads as `bench/python_twin.py`, run in the same run, with ratios.
//!
//! ```text
//! cargo run --release --example pool_bench            # Rust + Python twin
//! cargo run --release --example pool_bench -- --no-python
//! cargo run --release --example pool_bench -- --progress-only   # only the cost of progress
//! cargo run --release --example pool_bench -- --forks-interleaved 8   # Q6, Q3: Rust and Python in turn
//! ```
//!
//! Workloads (2-core machine in mind): Q6 (create, start and join 4 `Process`es with an empty
//! target, median of 50); Q3 (`with Pool(4): map(cubes, [1..5])`, creation included,
//! median of 30); `Pool(2).map(cubes, range(1_000_000))` with the default chunksize; `apply` round
//! trip (2000 calls); counting primes below 400 000 in 16 chunks, pool vs serial; then the work
//! people really give a pool: 256 MiB of byte buffers in (and echoed back), 200 000 short strings,
//! 200 vectors of 50 000 floats, 5000 `apply_async` in flight, `imap_unordered` (chunksize 1), a
//! `Pipe` ping-pong, a `Queue` streaming 100 000 items. Every figure but Q6/Q3 is the best of
//! several runs, on both sides (the machine is shared). Also the cost of live progress (issue 12) on
//! the 1M map: progress forced on and the task stream recording, against both off, 30 interleaved rounds, with
//! an off-against-off control.
//!
//! Beside them, the machine's own limits, measured in the same run: memcpy bandwidth, the bandwidth
//! of a raw pipe between two forked processes, and a raw pipe round trip (8 bytes each way), with
//! blocking reads and with reads that spin before they block; the raw fork floor under Q6 and
//! Q3 (the same forks, pipes, kills and reaps with no library); and, for the short strings, the
//! parent's share of the work in one process (their limit), and the same map written by hand on
//! fork and pipes.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use std::os::fd::AsFd;

use multiprocessing::{Pipe, Pool, Process, Progress, Queue};

#[path = "common/floor.rs"]
mod floor;
use floor::raw_fork_floors;

fn cubes(n: u64) -> u64 {
    n.pow(3)
}

fn count_primes((lo, hi): (u64, u64)) -> u64 {
    let mut count = 0;
    for n in lo..hi {
        if n < 2 {
            continue;
        }
        let mut i = 2;
        let mut prime = true;
        while i * i <= n {
            if n % i == 0 {
                prime = false;
                break;
            }
            i += 1;
        }
        count += prime as u64;
    }
    count
}

fn byte_len(b: Vec<u8>) -> usize {
    b.len()
}

fn echo(b: Vec<u8>) -> Vec<u8> {
    b
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

fn total(v: Vec<f64>) -> f64 {
    v.iter().sum()
}

/// memcpy bandwidth in bytes/s: the best of copying 256 MiB five times.
fn memcpy_bandwidth() -> f64 {
    let src = vec![7u8; 256 << 20];
    let mut dst = vec![0u8; 256 << 20];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    src.len() as f64 / best
}

/// Raw pipe bandwidth in bytes/s between this process and a forked child writing 256 MiB in 1 MiB
/// writes (the pipe enlarged to 1 MiB, as the crate's data pipes are); and the raw round trip in
/// seconds: 8 bytes each way over two pipes, 20 000 times. No library, only read/write.
fn raw_pipe_limits() -> (f64, f64, f64) {
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::unistd::{pipe, read, write};
    let (r, w) = pipe().unwrap();
    let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(1 << 20));
    let total = 256usize << 20;
    let mut child = Process::new({
        let w = w.try_clone().unwrap();
        move || {
            let buf = vec![1u8; 1 << 20];
            let mut sent = 0;
            while sent < total {
                sent += write(&w, &buf).unwrap();
            }
        }
    });
    child.start().unwrap();
    drop(w);
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut got = 0;
    while got < total {
        got += read(r.as_fd(), &mut buf).unwrap();
    }
    let bandwidth = total as f64 / t.elapsed().as_secs_f64();
    child.join().unwrap();

    let (to_child_r, to_child_w) = pipe().unwrap();
    let (to_parent_r, to_parent_w) = pipe().unwrap();
    let n = 20_000;
    let mut echo = Process::new(move || {
        let mut b = [0u8; 8];
        for _ in 0..n {
            let _ = read(to_child_r.as_fd(), &mut b);
            let _ = write(&to_parent_w, &b);
        }
    });
    echo.start().unwrap();
    let mut b = [0u8; 8];
    let t = Instant::now();
    for _ in 0..n {
        write(&to_child_w, &b).unwrap();
        read(to_parent_r.as_fd(), &mut b).unwrap();
    }
    let round_trip = t.elapsed().as_secs_f64() / n as f64;
    echo.join().unwrap();

    // The same with reads that spin before they block (nonblocking reads for up to 50 us, then
    // poll): what a round trip costs when neither side pays the scheduler's wake-up, the limit
    // for a crate whose waits spin first.
    fn spin_read(fd: std::os::fd::BorrowedFd<'_>, b: &mut [u8; 8]) {
        let start = Instant::now();
        loop {
            match read(fd, b) {
                Ok(_) => return,
                Err(nix::errno::Errno::EAGAIN) if start.elapsed() < Duration::from_micros(50) => {
                    std::hint::spin_loop()
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    let mut p = [libc::pollfd {
                        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    // SAFETY: one valid pollfd, owned here, for the whole call.
                    unsafe { libc::poll(p.as_mut_ptr(), 1, -1) };
                }
                Err(_) => return,
            }
        }
    }
    let nonblocking = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
    let (to_child_r, to_child_w) = nix::unistd::pipe2(nonblocking).unwrap();
    let (to_parent_r, to_parent_w) = nix::unistd::pipe2(nonblocking).unwrap();
    let mut echo = Process::new(move || {
        let mut b = [0u8; 8];
        for _ in 0..n {
            spin_read(to_child_r.as_fd(), &mut b);
            let _ = write(&to_parent_w, &b);
        }
    });
    echo.start().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        write(&to_child_w, &b).unwrap();
        spin_read(to_parent_r.as_fd(), &mut b);
    }
    let spin_round_trip = t.elapsed().as_secs_f64() / n as f64;
    echo.join().unwrap();
    (bandwidth, round_trip, spin_round_trip)
}

/// User + system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The best (shortest) of `runs` timings of `f`, in seconds: the run least disturbed by other work on
/// a shared machine (the Python twin does the same).
fn best(
    runs: usize,
    mut f: impl FnMut() -> multiprocessing::Result<()>,
) -> multiprocessing::Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Like [`best`], with a fresh input from `make` for each run, made outside the timing (Python's
/// `map` takes its list by reference; Rust's takes it by value, and a user passes it without a clone).
/// A field of /proc/self/status in KiB (`VmRSS`: resident now, `VmHWM`: the peak since start or
/// since [`reset_peak`]).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// Makes `VmHWM` start again from the resident size now (Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn best_with<T>(
    runs: usize,
    mut make: impl FnMut() -> T,
    mut f: impl FnMut(T) -> multiprocessing::Result<()>,
) -> multiprocessing::Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let input = make();
        let t = Instant::now();
        f(input)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn python_twin() -> Option<HashMap<String, f64>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/python_twin.py");
    let out = Command::new("python3").arg(script).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "python twin failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
            .collect(),
    )
}

/// Q6 (create, start and join 4 processes with an empty target, median of 50) and Q3 (pool
/// creation + map of 5 + drop, median of 30), in milliseconds. Each run is a fraction of a
/// millisecond: many runs make the medians steadier on a shared machine.
fn q6_q3() -> multiprocessing::Result<(f64, f64)> {
    let mut q6 = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let mut processes: Vec<Process> = (0..4).map(|_| Process::new(|| ())).collect();
        for p in &mut processes {
            p.start()?;
        }
        for p in &processes {
            assert_eq!(p.join()?, 0);
        }
        q6.push(t.elapsed());
    }
    let mut q3 = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let out = Pool::with(4, |pool| pool.map(cubes, [1, 2, 3, 4, 5]))?;
        q3.push(t.elapsed());
        assert_eq!(out, [1, 8, 27, 64, 125]);
    }
    Ok((
        median(q6).as_secs_f64() * 1e3,
        median(q3).as_secs_f64() * 1e3,
    ))
}

/// `--forks-interleaved N`: Q6 and Q3 only, the Python twin's (`python_twin.py fork --forks-only`)
/// and the crate's in turn, N rounds, a ratio per round. The full bench runs the twin some 20 s after
/// the Rust side, and this machine's speed drifts within that time; alternating puts both sides
/// in the same seconds.
fn forks_interleaved(rounds: usize) -> multiprocessing::Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/python_twin.py");
    let (mut r6, mut r3) = (Vec::new(), Vec::new());
    println!("round   Q6 Rust  Python   ratio |   Q3 Rust  Python   ratio");
    // Each side starts after a pause: the other side's processes have exited and been freed.
    let settle = || std::thread::sleep(std::time::Duration::from_millis(300));
    for round in 1..=rounds {
        settle();
        let out = match Command::new("python3")
            .args([script, "fork", "--forks-only"])
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("python3 could not run: {e}");
                return Ok(());
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| -> Option<f64> {
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.trim().parse().ok())
        };
        let (Some(py6), Some(py3)) = (get("q6_start_join_4_ms"), get("q3_pool4_map5_ms")) else {
            eprintln!(
                "python twin failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok(());
        };
        settle();
        let (q6, q3) = q6_q3()?;
        println!(
            "{round:5} {q6:7.3} ms {py6:5.2} ms {:6.1}x | {q3:7.3} ms {py3:5.2} ms {:6.1}x",
            py6 / q6,
            py3 / q3
        );
        r6.push(py6 / q6);
        r3.push(py3 / q3);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{lo:.1}x-{hi:.1}x")
    };
    println!(
        "Q6: {} (median {:.1}x, target >= 6x); Q3: {} (median {:.1}x, target >= 10x)",
        range(&r6),
        med(r6.clone()),
        range(&r3),
        med(r3.clone())
    );
    Ok(())
}

/// What watching the pool costs on the 1M-tiny-task map.
struct ProgressCost {
    rounds: usize,
    off_s: f64,
    on_s: f64,
    wall: f64,
    cpu: f64,
    noise_wall: f64,
    noise_cpu: f64,
}

/// The cost of watching the pool (issue 12) on `map(cubes, range(1_000_000))`: progress forced on
/// and the task stream recording, against both off, in interleaved rounds (rotating which goes
/// first) so that the machine's noise hits both. Wall time and this process's CPU time (the
/// notebook's side, the only one watching adds work to; the workers store their task index in the
/// shared page either way, since `WorkerDied` names the task) are compared per round. A third arm,
/// off again, gives the noise floor of such a comparison on this machine.
fn progress_cost(pool: &Pool) -> multiprocessing::Result<ProgressCost> {
    let rounds = 30;
    let (mut wall_on, mut wall_off, mut cpu_on, mut cpu_off) = (vec![], vec![], vec![], vec![]);
    let (mut wall_ctl, mut cpu_ctl) = (vec![], vec![]);
    for round in 0..rounds {
        let mut modes = [
            (Progress::Never, &mut wall_off, &mut cpu_off),
            (Progress::Always, &mut wall_on, &mut cpu_on),
            (Progress::Never, &mut wall_ctl, &mut cpu_ctl),
        ];
        modes.rotate_left(round % 3);
        for (mode, wall, cpu) in modes {
            let on = mode != Progress::Never;
            let (t, c) = (Instant::now(), cpu_seconds());
            let out = pool
                .with_progress(mode)
                .record_tasks(on)
                .map(cubes, 0..1_000_000u64)?;
            cpu.push(cpu_seconds() - c);
            wall.push(t.elapsed().as_secs_f64());
            assert_eq!(out.len(), 1_000_000);
        }
    }
    let median_ratio = |on: &[f64], off: &[f64]| {
        let mut r: Vec<f64> = on.iter().zip(off).map(|(a, b)| a / b).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    Ok(ProgressCost {
        rounds,
        off_s: fastest(&wall_off),
        on_s: fastest(&wall_on),
        wall: median_ratio(&wall_on, &wall_off),
        cpu: median_ratio(&cpu_on, &cpu_off),
        noise_wall: median_ratio(&wall_ctl, &wall_off),
        noise_cpu: median_ratio(&cpu_ctl, &cpu_off),
    })
}

impl ProgressCost {
    fn print(&self) {
        println!(
            "progress + task stream cost on map 1M tiny tasks, Pool(2), {} interleaved rounds: fastest off {:.1} ms / on {:.1} ms; median of pair ratios: wall {:+.1} %, this process's CPU {:+.1} % (limit +2 %); noise floor (off against off): wall {:+.1} %, CPU {:+.1} %",
            self.rounds,
            self.off_s * 1e3,
            self.on_s * 1e3,
            (self.wall - 1.0) * 100.0,
            (self.cpu - 1.0) * 100.0,
            (self.noise_wall - 1.0) * 100.0,
            (self.noise_cpu - 1.0) * 100.0
        );
    }
}

fn main() -> multiprocessing::Result<()> {
    let with_python = !std::env::args().any(|a| a == "--no-python");
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--forks-interleaved") {
        let rounds = args.get(at + 1).and_then(|n| n.parse().ok()).unwrap_or(8);
        return forks_interleaved(rounds);
    }
    if std::env::args().any(|a| a == "--progress-only") {
        // Only the progress cost (to repeat it on a shared machine).
        let pool = Pool::new(2)?;
        pool.map(cubes, 0..100)?;
        progress_cost(&pool)?.print();
        return Ok(());
    }

    let (q6_ms, q3_ms) = q6_q3()?;
    // Right after them, in the same conditions: what the machine itself needs for that much forking.
    let (q6_floor_ms, q3_floor_ms) = raw_fork_floors();

    let pool = Pool::new(2)?;
    pool.map(cubes, 0..100)?;
    // map over 1,000,000 tiny tasks, default chunksize (125 000).
    let map_s = best(5, || {
        let out = pool.map(cubes, 0..1_000_000u64)?;
        assert_eq!(out[999_999], 999_999u64.pow(3));
        Ok(())
    })?;
    let map_rate = 1e6 / map_s;

    let progress = progress_cost(&pool)?;

    // apply round trip.
    for i in 0..200 {
        pool.apply(cubes, i)?;
    }
    let apply_us = best(3, || {
        for i in 0..2000 {
            pool.apply(cubes, i)?;
        }
        Ok(())
    })? / 2000.0
        * 1e6;

    // CPU-bound: primes below 400 000 in 16 inputs.
    let chunks: Vec<(u64, u64)> = (0..16).map(|i| (i * 25_000, (i + 1) * 25_000)).collect();
    let expected: u64 = chunks.iter().copied().map(count_primes).sum();
    let serial_s = best(5, || {
        let total: u64 = chunks.iter().copied().map(count_primes).sum();
        assert_eq!(total, expected);
        Ok(())
    })?;
    let parallel_s = best(5, || {
        assert_eq!(
            pool.map(count_primes, chunks.clone())?.iter().sum::<u64>(),
            expected
        );
        Ok(())
    })?;
    let parallel1_s = best(5, || {
        assert_eq!(
            pool.chunked(1)
                .map(count_primes, chunks.clone())?
                .iter()
                .sum::<u64>(),
            expected
        );
        Ok(())
    })?;
    // The same, ten times the work per input (Rust only): less at the mercy of other processes.
    let big: Vec<(u64, u64)> = (0..16).map(|i| (i * 250_000, (i + 1) * 250_000)).collect();
    let big_serial_s = best(2, || {
        std::hint::black_box(big.iter().copied().map(count_primes).sum::<u64>());
        Ok(())
    })?;
    let big_parallel_s = best(2, || {
        pool.chunked(1).map(count_primes, big.clone())?;
        Ok(())
    })?;

    // Bulk data: 64 buffers of 4 MiB (256 MiB) in, and echoed back.
    let bufs: Vec<Vec<u8>> = (0..64).map(|i| vec![(i % 251) as u8; 4 << 20]).collect();
    let bulk_bytes = (64usize << 22) as f64;
    let bytes_in_s = best_with(
        2,
        || bufs.clone(),
        |input| {
            assert_eq!(pool.map(byte_len, input)?[63], 4 << 20);
            Ok(())
        },
    )?;
    let bytes_echo_s = best_with(
        2,
        || bufs.clone(),
        |input| {
            assert_eq!(pool.map(echo, input)?[7][0], 7);
            Ok(())
        },
    )?;
    // Memory: how far the parent's peak rises above what it held when the call began (the
    // inputs, handed to the call, included), results kept until measured.
    let input = bufs.clone();
    let held = status_kib("VmRSS");
    reset_peak();
    let out = pool.map(echo, input)?;
    let echo_peak_mib = (status_kib("VmHWM").saturating_sub(held)) as f64 / 1024.0;
    drop(out);
    drop(bufs);
    let words: Vec<String> = (0..200_000).map(|i| format!("word{i:08}")).collect();
    let strings_s = best_with(
        3,
        || words.clone(),
        |input| {
            assert_eq!(pool.map(shout, input)?[1], "WORD00000001");
            Ok(())
        },
    )?;
    // What many short strings cost besides moving bytes, measured here: the parent's share of
    // the work alone (the limit), and the same map by hand (fork, pipes, no library).
    let strings_raw_s = floor::raw_strings_floor(&words, 2, 3);
    let strings_share_s = floor::strings_parent_share(&words, 3);
    drop(words);
    let vecs: Vec<Vec<f64>> = (0..200)
        .map(|i| (0..50_000).map(|j| (i + j) as f64).collect())
        .collect();
    let floats_s = best_with(
        2,
        || vecs.clone(),
        |input| {
            assert_eq!(pool.map(total, input)?.len(), 200);
            Ok(())
        },
    )?;
    drop(vecs);
    let async_s = best(3, || {
        let results: Vec<_> = (0..5000u64)
            .map(|i| pool.apply_async(cubes, i))
            .collect::<Result<_, _>>()?;
        for r in results {
            r.get()?;
        }
        Ok(())
    })?;
    let unordered_s = best(3, || {
        let sum: u64 = pool
            .imap_unordered(cubes, 0..20_000u64)?
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .fold(0u64, |a, b| a.wrapping_add(*b));
        std::hint::black_box(sum);
        Ok(())
    })?;
    drop(pool);

    // Pipe ping-pong with a child: 10 000 round trips of a small int, three times.
    let (a, b) = Pipe::new()?;
    let mut echo_child = Process::new(move || {
        for _ in 0..30_000 {
            let Ok(x) = b.recv::<u64>() else { return };
            b.send(x).unwrap();
        }
    });
    echo_child.start()?;
    let pipe_s = best(3, || {
        for i in 0..10_000u64 {
            a.send(i)?;
            a.recv::<u64>()?;
        }
        Ok(())
    })?;
    echo_child.join()?;
    let pipe_us = pipe_s / 10_000.0 * 1e6;

    // Queue streaming: a child puts 100 000 small ints, the parent gets them.
    let queue_s = best(2, || {
        let q = Queue::<u64>::new()?;
        let tx = q.clone();
        let mut p = Process::new(move || {
            for i in 0..100_000u64 {
                tx.put(&i).unwrap();
            }
        });
        p.start()?;
        for _ in 0..100_000 {
            q.get()?;
        }
        p.join()?;
        Ok(())
    })?;

    let memcpy_bw = memcpy_bandwidth();
    let (pipe_bw, raw_rt, spin_rt) = raw_pipe_limits();

    let py = if with_python { python_twin() } else { None };
    let get = |k: &str| py.as_ref().and_then(|p| p.get(k).copied());
    println!("workload                                   Rust          Python        ratio");
    let row = |name: &str, rust: f64, unit: &str, python: Option<f64>, higher_better: bool| {
        let ratio = python.map(|p| if higher_better { rust / p } else { p / rust });
        println!(
            "{name:<42} {:>10.3} {unit:<3}{:>10} {unit:<3}{:>8}",
            rust,
            python.map_or("-".into(), |p| format!("{p:.3}")),
            ratio.map_or("-".into(), |r| format!("{r:.1}x")),
        );
    };
    row(
        "Q6: start + join 4 Processes, median",
        q6_ms,
        "ms",
        get("q6_start_join_4_ms"),
        false,
    );
    row(
        "Q3: Pool(4) + map(cubes, 1..=5), median",
        q3_ms,
        "ms",
        get("q3_pool4_map5_ms"),
        false,
    );
    row(
        "map 1M tiny tasks, Pool(2), default chunks",
        map_rate / 1e6,
        "M/s",
        get("map_1M_tasks_per_s").map(|v| v / 1e6),
        true,
    );
    row(
        "apply round trip, Pool(2)",
        apply_us,
        "us",
        get("apply_roundtrip_us"),
        false,
    );
    let py_speedup = |k: &str| get(k).map_or("-".into(), |s| format!("{s:.2}"));
    println!(
        "primes < 400000, 16 inputs, Pool(2), speedup over serial: default chunksize (2) {:.2} (Python {}), chunksize 1 {:.2} (Python {})",
        serial_s / parallel_s,
        py_speedup("primes_speedup"),
        serial_s / parallel1_s,
        py_speedup("primes_speedup_chunksize1"),
    );
    println!(
        "  serial: Rust {serial_s:.3} s, Python {} s (ideal greedy speedup of these 16 uneven inputs on 2 workers: 1.87 with chunksize 2, 1.93 with chunksize 1)",
        get("primes_serial_s").map_or("-".into(), |s| format!("{s:.2}"))
    );
    println!(
        "primes < 4000000, 16 inputs, chunksize 1 (Rust only): serial {big_serial_s:.3} s, map {big_parallel_s:.3} s -> speedup {:.2}",
        big_serial_s / big_parallel_s
    );
    progress.print();
    println!(
        "  raw fork floor (no library: fork, pipes, SIGKILL + reap only): Q6 {q6_floor_ms:.3} ms, Q3 {q3_floor_ms:.3} ms; the crate takes {:.1}x and {:.1}x that",
        q6_ms / q6_floor_ms,
        q3_ms / q3_floor_ms
    );
    println!();
    println!(
        "machine limits: memcpy {:.0} MiB/s, raw pipe {:.0} MiB/s, raw pipe round trip {:.2} us (blocking reads), {:.2} us (reads spinning up to 50 us first)",
        memcpy_bw / (1 << 20) as f64,
        pipe_bw / (1 << 20) as f64,
        raw_rt * 1e6,
        spin_rt * 1e6
    );
    println!(
        "workload                                   Rust          Python        ratio   vs limit"
    );
    let mib = (1 << 20) as f64;
    // 200 000 strings of 12 bytes and a length byte, in and out.
    let strings_bytes = 200_000.0 * 2.0 * 13.0;
    let row2 = |name: &str, rust_s: f64, key: &str, limit_s: f64| {
        let python = get(key).map(|ms| ms / 1e3);
        println!(
            "{name:<42} {:>10.1} ms {:>10} ms {:>8} {:>8.1}x",
            rust_s * 1e3,
            python.map_or("-".into(), |p| format!("{:.1}", p * 1e3)),
            python.map_or("-".into(), |p| format!("{:.1}x", p / rust_s)),
            rust_s / limit_s,
        );
    };
    // Limits: bytes cross two pipes in (parent -> worker) for `in`, four for `echo`: the best a
    // pipe-based pool can do; shared memory could go below it, down to memcpy.
    row2(
        "map(len, 64 x 4 MiB Vec<u8>)",
        bytes_in_s,
        "bytes_in_ms",
        bulk_bytes / pipe_bw,
    );
    row2(
        "map(echo, 64 x 4 MiB Vec<u8>)",
        bytes_echo_s,
        "bytes_echo_ms",
        2.0 * bulk_bytes / pipe_bw,
    );
    // Many short strings: the limit of their kind is making and freeing a `String` per item, not
    // the pipe: the parent's share of that, alone, is work no design can spare it (line below
    // the table).
    row2(
        "map(upper, 200k short strings)",
        strings_s,
        "strings_ms",
        strings_share_s,
    );
    row2(
        "map(sum, 200 x 50k f64)",
        floats_s,
        "floats_ms",
        (200.0 * 50_000.0 * 8.0) / pipe_bw,
    );
    row2(
        "5000 apply_async in flight, then get",
        async_s,
        "apply_async_5000_ms",
        5000.0 * raw_rt / 2.0,
    );
    row2(
        "imap_unordered(cubes, 20k), chunksize 1",
        unordered_s,
        "imap_unordered_20000_ms",
        20_000.0 * raw_rt / 2.0,
    );
    row2(
        "Queue: child puts 100k ints, parent gets",
        queue_s,
        "queue_100k_ms",
        100_000.0 * raw_rt / 2.0,
    );
    let py_pipe = get("pipe_roundtrip_us");
    println!(
        "{:<42} {:>10.1} us {:>10} us {:>8} {:>8.1}x (vs the spinning raw round trip: {:.1}x)",
        "Pipe ping-pong round trip (small int)",
        pipe_us,
        py_pipe.map_or("-".into(), |p| format!("{p:.1}")),
        py_pipe.map_or("-".into(), |p| format!("{:.1}x", p / pipe_us)),
        pipe_us / (raw_rt * 1e6),
        pipe_us / (spin_rt * 1e6),
    );
    println!(
        "  (map(len) moves {} MiB/s; the inputs are made outside the timing on both sides)",
        (bulk_bytes / bytes_in_s / mib) as u64
    );
    let py_peak = get("bytes_echo_peak_mib");
    println!(
        "  memory: map(echo) over 256 MiB raises the parent's peak by {:.0} MiB above what it held when the call began (Python: {} MiB; the results alone are 256 MiB: the crate frees each chunk's inputs once it is sent, Python's caller keeps its list)",
        echo_peak_mib,
        py_peak.map_or("-".into(), |p| format!("{p:.0}")),
    );
    println!(
        "  map(upper)'s limit: the parent's share alone (encode the inputs, free them, make and free the results' Strings; one process, no transport) {:.1} ms; beside it, the same map by hand (2 forked workers, one frame each way through a pipe, no library) {:.1} ms, the crate {:.1}x that; the raw pipe moves its 5 MB in {:.1} ms, the crate {:.1}x that",
        strings_share_s * 1e3,
        strings_raw_s * 1e3,
        strings_s / strings_raw_s,
        strings_bytes / pipe_bw * 1e3,
        strings_s / (strings_bytes / pipe_bw),
    );
    println!("(ratio: how many times better Rust is; vs limit: Rust time / the machine's limit for that much data or that many round trips (pipelined kinds: half a round trip each; short strings: the parent's share alone); targets: every workload >= 2x Python, bulk >= 3x, within 2x of the limit; map >= 10x, Q3 >= 10x, Q6 >= 6x)");
    Ok(())
}
