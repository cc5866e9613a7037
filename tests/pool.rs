//! `Pool`: one test per behaviour. Each body runs in a fresh copy of this test binary (see
//! `process_support`): fresh session numbering, its own stdout to check, a timeout against hangs.

#[path = "process_support/mod.rs"]
mod process_support;

use std::io::Write;
use std::time::{Duration, Instant};

use multiprocessing::{current_process, Error, Pool, PoolState};
use process_support::{child_pids, is_dead, isolate};

fn cubes(n: u64) -> u64 {
    n.pow(3)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn my_name(_: u8) -> String {
    current_process().name().to_string()
}

fn my_pid(_: u32) -> i32 {
    std::process::id() as i32
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn panics_on_three(n: u32) -> u32 {
    if n == 3 {
        panic!("three is not allowed");
    }
    n
}

/// The seed's Q3/Q5: map in input order; workers are ForkPoolWorker-1..4 and say so themselves.
#[test]
fn map_returns_results_in_input_order_from_named_workers() {
    if let Some(out) = isolate("map_returns_results_in_input_order_from_named_workers") {
        out.assert_success();
        assert_eq!(out.lines(), ["[1, 8, 27, 64, 125]"]);
        return;
    }
    let pool = Pool::new(4).unwrap();
    let names: Vec<String> = pool.workers().into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "ForkPoolWorker-1",
            "ForkPoolWorker-2",
            "ForkPoolWorker-3",
            "ForkPoolWorker-4"
        ]
    );
    let out = pool.map(cubes, [1, 2, 3, 4, 5]).unwrap();
    say(&format!("{out:?}"));
    let reported = pool.chunked(1).map(my_name, [0u8; 40]).unwrap();
    assert!(reported.iter().all(|n| names.contains(n)), "{reported:?}");
    let big: Vec<u64> = (0..10_000).collect();
    assert_eq!(
        pool.map(cubes, big.clone()).unwrap(),
        big.iter().map(|n| n.pow(3)).collect::<Vec<_>>()
    );
    assert_eq!(pool.map(cubes, Vec::new()).unwrap(), Vec::<u64>::new());
    pool.close();
    pool.join().unwrap();
}

/// Python's default chunksize rule, and explicit chunk sizes give the same results.
#[test]
fn chunksize_follows_python_rule() {
    if let Some(out) = isolate("chunksize_follows_python_rule") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();
    for (len, expected) in [
        (0, 0),
        (1, 1),
        (8, 1),
        (9, 2),
        (100, 13),
        (1_000_000, 125_000),
    ] {
        assert_eq!(pool.default_chunksize(len), expected, "len {len}");
    }
    for chunksize in [1, 2, 7, 1000] {
        assert_eq!(
            pool.chunked(chunksize).map(cubes, 0..100).unwrap(),
            (0..100u64).map(cubes).collect::<Vec<_>>()
        );
    }
}

fn power(base: u64, exp: u32) -> u64 {
    base.pow(exp)
}

/// starmap, apply, apply_async, map_async with get / get_timeout / wait / ready / successful.
#[test]
fn starmap_apply_and_async_results() {
    if let Some(out) = isolate("starmap_apply_and_async_results") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.starmap(power, [(2, 3), (3, 2), (10, 0)]).unwrap(),
        [8, 9, 1]
    );
    assert_eq!(
        pool.chunked(2)
            .starmap(power, [(2, 3), (3, 2), (10, 0)])
            .unwrap(),
        [8, 9, 1]
    );
    assert_eq!(pool.apply(cubes, 3).unwrap(), 27);

    let many: Vec<_> = (0..50u64)
        .map(|i| pool.apply_async(cubes, i).unwrap())
        .collect();
    let got: Vec<u64> = many.iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(got, (0..50u64).map(cubes).collect::<Vec<_>>());

    let slow = pool.apply_async(sleep_ms, 300).unwrap();
    assert!(!slow.ready());
    assert!(matches!(slow.successful(), Err(Error::ResultNotReady)));
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    assert!(!slow.wait_timeout(Duration::from_millis(10)).unwrap());
    slow.wait().unwrap();
    assert!(slow.ready());
    assert!(slow.successful().unwrap());
    assert_eq!(slow.get_timeout(Duration::from_secs(10)).unwrap(), 300);
    assert!(matches!(slow.get(), Err(Error::ResultTaken)));

    let m = pool.map_async(cubes, 1..=5).unwrap();
    assert_eq!(m.get().unwrap(), [1, 8, 27, 64, 125]);
    let failing = pool.map_async(panics_on_three, 0..6).unwrap();
    failing.wait().unwrap();
    assert!(!failing.successful().unwrap());
    assert!(matches!(
        failing.get(),
        Err(Error::TaskPanicked { index: 3, .. })
    ));
    // Dropped without get: discarded, the pool goes on.
    drop(pool.apply_async(sleep_ms, 50).unwrap());
    assert_eq!(pool.apply(cubes, 2).unwrap(), 8);
}

/// imap is ordered and lazy (an endless input works), imap_unordered yields as tasks finish.
#[test]
fn imap_is_ordered_and_lazy_imap_unordered_is_not_ordered() {
    if let Some(out) = isolate("imap_is_ordered_and_lazy_imap_unordered_is_not_ordered") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();
    let first: Vec<u64> = pool
        .imap(cubes, 0..)
        .unwrap()
        .take(20)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..20u64).map(cubes).collect::<Vec<_>>());
    let chunked: Vec<u64> = pool
        .chunked(7)
        .imap(cubes, 0..100)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked, (0..100u64).map(cubes).collect::<Vec<_>>());
    // 400 ms first, then quick ones: unordered yields the quick ones first, ordered waits.
    let t = Instant::now();
    let unordered: Vec<u64> = pool
        .imap_unordered(sleep_ms, [400, 1, 2, 3])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(unordered.last(), Some(&400), "{unordered:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let ordered: Vec<u64> = pool
        .imap(sleep_ms, [200, 1, 2, 3])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, [200, 1, 2, 3]);
    // A failed task yields its error in place; the iteration goes on.
    let results: Vec<_> = pool.imap(panics_on_three, 0..6).unwrap().collect();
    assert_eq!(results.len(), 6);
    assert!(matches!(
        results[3],
        Err(Error::TaskPanicked { index: 3, .. })
    ));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
    let mut it = pool.imap(sleep_ms, [300]).unwrap();
    assert!(matches!(
        it.next_timeout(Duration::from_millis(10)),
        Some(Err(Error::Timeout { .. }))
    ));
    assert_eq!(
        it.next_timeout(Duration::from_secs(10)).unwrap().unwrap(),
        300
    );
    assert!(it.next().is_none());
}

/// A panicking task: TaskPanicked with message, index and worker; the pool stays usable.
#[test]
fn panicking_task_is_reported_and_pool_stays_usable() {
    if let Some(out) = isolate("panicking_task_is_reported_and_pool_stays_usable") {
        out.assert_success();
        // The default panic hook's line reaches the cell's stderr, naming the source line.
        assert!(
            out.stderr.contains("three is not allowed"),
            "{}",
            out.stderr
        );
        return;
    }
    let pool = Pool::new(2).unwrap();
    let names: Vec<String> = pool.workers().into_iter().map(|(n, _)| n).collect();
    for chunksize in [1, 4] {
        match pool.chunked(chunksize).map(panics_on_three, 0..8) {
            Err(Error::TaskPanicked {
                index,
                worker,
                message,
            }) => {
                assert_eq!(index, 3);
                assert!(names.contains(&worker), "{worker}");
                assert_eq!(message, "three is not allowed");
            }
            other => panic!("expected TaskPanicked, got {other:?}"),
        }
    }
    let err = pool.apply(panics_on_three, 3).unwrap_err().to_string();
    assert!(
        err.contains("task 0 panicked in ForkPoolWorker-") && err.contains("three is not allowed"),
        "{err}"
    );
    assert_eq!(pool.map(cubes, 0..10).unwrap().len(), 10);
    assert_eq!(
        pool.workers()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        names,
        "no worker was replaced"
    );
}

fn abort_on_five(n: u32) -> u32 {
    if n == 5 {
        std::process::abort();
    }
    std::thread::sleep(Duration::from_millis(5));
    n
}

fn segfault_on_two(n: u32) -> u32 {
    if n == 2 {
        // SAFETY: restores the default action of SIGSEGV (Rust's runtime handles it to detect stack
        // overflows) and sends it to this worker process: crashing it is the point of the test.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::raise(libc::SIGSEGV);
        }
    }
    n
}

/// Workers that die mid-map (SIGKILL from outside, abort, segfault): WorkerDied within a second,
/// naming the worker, its pid, the signal and the task; the dead worker is replaced.
#[test]
fn dying_worker_is_reported_and_replaced() {
    if let Some(out) = isolate("dying_worker_is_reported_and_replaced") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();

    // SIGKILL from outside while a task runs.
    let r = pool.apply_async(sleep_ms, 60_000).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = pool.workers();
    // The task went to the first worker with room.
    let (victim_name, victim_pid) = before[0].clone();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t = Instant::now();
    match r.get() {
        Err(Error::WorkerDied {
            worker,
            pid,
            how,
            task,
        }) => {
            assert_eq!(
                (worker.as_str(), pid, task),
                (victim_name.as_str(), victim_pid, 0)
            );
            assert!(how.contains("SIGKILL"), "{how}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    let after = pool.workers();
    assert_eq!(after.len(), 2);
    assert!(!after.iter().any(|(_, pid)| *pid == victim_pid));
    assert_eq!(
        after
            .iter()
            .filter(|(n, _)| n == "ForkPoolWorker-3")
            .count(),
        1,
        "{after:?}"
    );
    assert!(is_dead(victim_pid));

    // abort() in the middle of a map: the task index is exact, even inside a chunk.
    let t = Instant::now();
    match pool.chunked(4).map(abort_on_five, 0..16) {
        Err(Error::WorkerDied { how, task, .. }) => {
            assert_eq!(task, 5);
            assert!(how.contains("SIGABRT"), "{how}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(1));

    // A segfault.
    match pool.map(segfault_on_two, 0..4) {
        Err(Error::WorkerDied { how, task: 2, .. }) => assert!(how.contains("SIGSEGV"), "{how}"),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    // Still usable, with two live workers and no zombies.
    assert_eq!(pool.map(cubes, 0..100).unwrap().len(), 100);
    let live = pool.workers();
    assert_eq!(live.len(), 2);
    let mut pids: Vec<i32> = live.iter().map(|(_, p)| *p).collect();
    pids.sort_unstable();
    assert_eq!(child_pids(), pids);
}

fn print_lines(n: u32) -> u32 {
    println!("line {n} from {}", current_process().name());
    print!("partial {n}");
    n
}

/// Workers' output reaches the parent's stdout as whole lines: never two workers on one line, and
/// an unfinished last line is ended when the call returns.
#[test]
fn worker_output_arrives_as_whole_lines() {
    if let Some(out) = isolate("worker_output_arrives_as_whole_lines") {
        out.assert_success();
        let lines = out.lines();
        for n in 0..20 {
            let line = format!("line {n} from ForkPoolWorker-");
            assert_eq!(
                lines.iter().filter(|l| l.contains(&line)).count(),
                1,
                "{lines:?}"
            );
            let partial = format!("partial {n}");
            let glued = format!("{partial}line ");
            assert_eq!(
                lines
                    .iter()
                    .filter(|l| **l == partial || l.starts_with(&glued))
                    .count(),
                1,
                "{lines:?}"
            );
        }
        for l in &lines {
            assert!(
                l.matches("ForkPoolWorker-").count() <= 1,
                "two workers glued on one line: {l:?}"
            );
        }
        assert!(out.stdout.contains("\ndone\n"), "{:?}", out.stdout);
        return;
    }
    let pool = Pool::new(2).unwrap();
    pool.chunked(1).map(print_lines, 0..20).unwrap();
    say("done");
}

/// Zero processes, zero timeout, zero chunksize, zero maxtasksperchild, a closed or terminated pool,
/// join on a running pool: typed errors that name the fix.
#[test]
fn bad_input_gives_typed_errors() {
    if let Some(out) = isolate("bad_input_gives_typed_errors") {
        out.assert_success();
        return;
    }
    let err = Pool::new(0).unwrap_err();
    assert!(matches!(err, Error::ZeroProcesses));
    assert!(err.to_string().contains("Pool::new(n) with n >= 1"));
    assert!(matches!(
        Pool::builder().processes(1).maxtasksperchild(0).build(),
        Err(Error::InvalidArgument {
            name: "maxtasksperchild",
            ..
        })
    ));

    let pool = Pool::new(1).unwrap();
    assert!(matches!(
        pool.chunked(0).map(cubes, 0..3),
        Err(Error::InvalidArgument {
            name: "chunksize",
            ..
        })
    ));
    // Zero timeouts check now, as Python's do (issue 10: they used to be refused with
    // InvalidTimeout, which this test pinned).
    let slow = pool.apply_async(sleep_ms, 300).unwrap();
    assert!(matches!(
        slow.get_timeout(Duration::ZERO),
        Err(Error::Timeout { .. })
    ));
    assert!(!slow.wait_timeout(Duration::ZERO).unwrap());
    assert_eq!(slow.get().unwrap(), 300);
    assert!(slow.successful().unwrap());
    let mut it = pool.imap(sleep_ms, vec![300]).unwrap();
    assert!(matches!(
        it.next_timeout(Duration::ZERO),
        Some(Err(Error::Timeout { .. }))
    ));
    assert_eq!(it.next().unwrap().unwrap(), 300);
    let done = pool.apply_async(cubes, 3).unwrap();
    done.wait().unwrap();
    assert!(done.wait_timeout(Duration::ZERO).unwrap());
    assert_eq!(done.get_timeout(Duration::ZERO).unwrap(), 27);
    let r = pool.apply_async(cubes, 2).unwrap();
    assert!(
        r.wait_timeout(Duration::MAX).unwrap(),
        "a huge timeout is no panic"
    );
    assert_eq!(r.get_timeout(Duration::MAX).unwrap(), 8);
    let err = pool.join().unwrap_err();
    assert!(matches!(err, Error::PoolStillRunning));
    assert!(err.to_string().contains("close() or terminate()"));

    pool.close();
    let err = pool.map(cubes, 0..3).unwrap_err();
    assert!(matches!(
        err,
        Error::PoolNotRunning {
            state: PoolState::Closed
        }
    ));
    assert!(err.to_string().contains("create a new Pool"));
    assert!(matches!(
        pool.apply_async(cubes, 1),
        Err(Error::PoolNotRunning { .. })
    ));
    assert!(matches!(
        pool.imap(cubes, 0..3),
        Err(Error::PoolNotRunning { .. })
    ));
    pool.join().unwrap();
    pool.join().unwrap();
    // Closed and joined is still "closed" (Python: "Pool not running"), not "terminated".
    assert!(matches!(
        pool.map(cubes, 0..3),
        Err(Error::PoolNotRunning {
            state: PoolState::Closed
        })
    ));

    let pool = Pool::new(1).unwrap();
    let pending = pool.apply_async(sleep_ms, 10_000).unwrap();
    let t = Instant::now();
    pool.terminate();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(matches!(
        pending.get(),
        Err(Error::PoolNotRunning {
            state: PoolState::Terminated
        })
    ));
    assert!(matches!(
        pool.apply(cubes, 1),
        Err(Error::PoolNotRunning {
            state: PoolState::Terminated
        })
    ));
    pool.join().unwrap();
    assert!(child_pids().is_empty());
}

/// close() + join() waits for work already given; the workers exit on their own (exit code 0).
#[test]
fn close_and_join_finish_outstanding_work() {
    if let Some(out) = isolate("close_and_join_finish_outstanding_work") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();
    let a = pool.map_async(sleep_ms, [100, 100, 100]).unwrap();
    let b = pool.apply_async(cubes, 5).unwrap();
    pool.close();
    pool.join().unwrap();
    assert!(a.ready() && b.ready());
    assert_eq!(a.get().unwrap(), [100, 100, 100]);
    assert_eq!(b.get().unwrap(), 125);
    assert!(child_pids().is_empty());
}

/// Pool::with reads like Python's `with Pool(4) as pool:` and terminates the pool at the end;
/// dropping a pool terminates it too, even while a task runs and an AsyncResult is kept.
#[test]
fn scoped_pool_and_drop_terminate() {
    if let Some(out) = isolate("scoped_pool_and_drop_terminate") {
        out.assert_success();
        assert_eq!(out.lines(), ["[1, 8, 27, 64, 125]"]);
        return;
    }
    let out = Pool::with(4, |pool| pool.map(cubes, 1..=5)).unwrap();
    say(&format!("{out:?}"));
    assert!(child_pids().is_empty());
    let err = Pool::with(2, |pool| pool.map(panics_on_three, 0..5)).unwrap_err();
    assert!(matches!(err, Error::TaskPanicked { .. }));
    assert!(child_pids().is_empty());

    let pool = Pool::new(2).unwrap();
    let kept = pool.apply_async(sleep_ms, 60_000).unwrap();
    let t = Instant::now();
    drop(pool);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(child_pids().is_empty());
    assert!(matches!(kept.get(), Err(Error::PoolNotRunning { .. })));
}

fn read_greeting(_: u8) -> (String, u32) {
    (
        std::env::var("POOL_GREETING").unwrap_or_default(),
        std::env::var("POOL_INITS").map_or(0, |v| v.parse().unwrap_or(0)),
    )
}

/// initializer runs once in each worker (replacements included); maxtasksperchild replaces workers.
#[test]
fn initializer_and_maxtasksperchild() {
    if let Some(out) = isolate("initializer_and_maxtasksperchild") {
        out.assert_success();
        return;
    }
    let greeting = String::from("hello");
    let pool = Pool::builder()
        .processes(2)
        .initializer(move || {
            let n: u32 = std::env::var("POOL_INITS").map_or(0, |v| v.parse().unwrap_or(0));
            std::env::set_var("POOL_INITS", (n + 1).to_string());
            std::env::set_var("POOL_GREETING", &greeting);
        })
        .build()
        .unwrap();
    for (g, inits) in pool.chunked(1).map(read_greeting, [0u8; 20]).unwrap() {
        assert_eq!((g.as_str(), inits), ("hello", 1));
    }
    assert!(
        std::env::var("POOL_INITS").is_err(),
        "the initializer ran in the parent"
    );

    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(2)
        .build()
        .unwrap();
    let pids = pool.chunked(1).map(my_pid, 0..12).unwrap();
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() >= 6,
        "each worker ran at most 2 tasks: {pids:?}"
    );
    for pid in &distinct {
        assert!(pids.iter().filter(|p| *p == pid).count() <= 2);
    }
    assert_eq!(pool.workers().len(), 2);

    let pool = Pool::builder()
        .processes(2)
        .initializer(|| panic!("no config"))
        .build()
        .unwrap();
    let t = Instant::now();
    match pool.map(cubes, 0..10) {
        Err(Error::InitializerFailed { message, .. }) => assert_eq!(message, "no config"),
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        pool.apply(cubes, 1),
        Err(Error::InitializerFailed { .. })
    ));
    drop(pool);
}

/// About 1.3 MB once encoded: 131 072 numbers near u64::MAX take 10 bytes each in postcard (a
/// `Vec<u8>` would be as big but 8 times slower to check in a debug build).
fn big_result(i: u64) -> Vec<u64> {
    (0..131_072u64)
        .map(|k| u64::MAX - i * 1_000_000 - k)
        .collect()
}

fn checksum(v: Vec<u64>) -> u64 {
    v.iter()
        .fold(0u64, |acc, x| acc.wrapping_mul(31).wrapping_add(*x))
}

/// 100 MB of results in one call, and 100 MB of arguments, arrive intact (no deadlock: the parent
/// reads results while it is still writing tasks).
#[test]
fn hundred_megabytes_arrive_intact() {
    if let Some(out) = isolate("hundred_megabytes_arrive_intact") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();
    let out = pool.map(big_result, 0..80).unwrap();
    assert_eq!(out.len(), 80);
    let encoded: usize = out
        .iter()
        .map(|v| postcard::to_allocvec(v).unwrap().len())
        .sum();
    assert!(encoded > 100_000_000, "{encoded} bytes");
    for (i, v) in out.iter().enumerate() {
        assert!(*v == big_result(i as u64), "result {i} corrupted");
    }
    let sums = pool.map(checksum, out.clone()).unwrap();
    assert_eq!(sums, out.into_iter().map(checksum).collect::<Vec<_>>());
}

/// No worker outlives the process that owns the pool, even when that process is SIGKILLed (an
/// interrupted kernel) and no destructor runs.
#[test]
fn workers_die_with_their_owner() {
    if std::env::var("POOL_OWNER_INNER").is_ok() {
        let pool = Pool::new(3).unwrap();
        let pids: Vec<String> = pool
            .workers()
            .into_iter()
            .map(|(_, p)| p.to_string())
            .collect();
        say(&pids.join(" "));
        std::mem::forget(pool);
        // Killed from outside while still running, like evcxr's interrupt.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "workers_die_with_their_owner",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("POOL_OWNER_INNER", "1")
        .env_remove("RUST_MULTIPROCESSING_STATE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<i32> = text
        .lines()
        .find(|l| {
            l.split_whitespace().count() == 3
                && l.split_whitespace().all(|w| w.parse::<i32>().is_ok())
        })
        .expect("the inner run printed its worker pids")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let t = Instant::now();
    while !pids.iter().all(|&p| is_dead(p)) {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "workers {pids:?} outlived their owner"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A forked child (a `Process`) holding a copy of a pool can neither use it nor, by dropping it,
/// kill the workers of the process that created it.
#[test]
fn a_forked_copy_of_a_pool_leaves_the_workers_alone() {
    if let Some(out) = isolate("a_forked_copy_of_a_pool_leaves_the_workers_alone") {
        out.assert_success();
        assert!(
            out.lines().contains(&"child: created by another process"),
            "{}",
            out.stdout
        );
        return;
    }
    let pool = std::rc::Rc::new(Pool::new(2).unwrap());
    let before = pool.workers();
    let copy = pool.clone();
    let creator_pid = std::process::id();
    let mut child = multiprocessing::Process::new(move || {
        match copy.apply(cubes, 2) {
            Err(Error::PoolOfAnotherProcess { creator }) if creator == creator_pid => {
                say("child: created by another process")
            }
            other => say(&format!("child: unexpected {other:?}")),
        }
        // What dropping the last copy does.
        copy.terminate();
    });
    child.start().unwrap();
    assert_eq!(child.join().unwrap(), 0);
    assert_eq!(pool.workers(), before);
    assert_eq!(pool.map(cubes, 0..10).unwrap().len(), 10);
}

/// What a worker holds open: its own four pipes (task, result, stdout, stderr) besides what the
/// test process held before, no pidfd, and none of its siblings' parent-side descriptors (which
/// would keep their pipes from ever reaching EOF).
fn pipes_and_pidfds(_: u8) -> (usize, usize) {
    let links: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_string_lossy().parse().ok()?;
            Some((fd, std::fs::read_link(e.path()).ok()?.display().to_string()))
        })
        .collect();
    let pipes = links
        .iter()
        .filter(|(fd, l)| *fd > 2 && l.starts_with("pipe:"))
        .count();
    let pidfds = links.iter().filter(|(_, l)| l.contains("pidfd")).count();
    (pipes, pidfds)
}

#[test]
fn workers_hold_only_their_own_pipes() {
    if let Some(out) = isolate("workers_hold_only_their_own_pipes") {
        out.assert_success();
        return;
    }
    // Pipes above fd 2 this process already had (e.g. a jobserver's), inherited by any child.
    let (before, _) = pipes_and_pidfds(0);
    let pool = Pool::new(4).unwrap();
    // A replacement worker, forked after the others, too.
    let victim = pool.workers()[0].1;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let counts = pool.chunked(1).map(pipes_and_pidfds, [0u8; 64]).unwrap();
    assert!(!pool.workers().iter().any(|(_, pid)| *pid == victim));
    for (pipes, pidfds) in counts {
        // Above fd 2: the task and result pipes only (stdout and stderr are fds 1 and 2).
        assert_eq!((pipes, pidfds), (before + 2, 0));
    }
}
