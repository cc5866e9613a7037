//! An interrupt keeps the session: during `Process::join`, `Pool::map`, `Queue::get` and
//! `Lock::acquire` the kernel's SIGINT makes the crate's wait return `Err(Error::Interrupted)`
//! within 200 ms, the cell ends as an error well inside the grace period (the runtime is not
//! killed: same pid), a `let` from an earlier cell is still there, and the children the cell
//! started are gone. Needs both the patched kernel (kernel/patches: the interrupt pipe) and the
//! crate's waiting core that polls `RUST_MP_INTERRUPT_FD`.

mod common;

use std::time::{Duration, Instant};

use common::{describe, run_ok, runtime_pid, seconds, start_kernel, Checks};
use kernel_client::messages::ReplyStatus;
use kernel_client::{procs, KernelClient};

/// Runs `cell` (which blocks in a crate wait), interrupts it once its code runs (it first writes
/// a marker file), and checks what the issue asks. `pool_workers`: processes that may stay (a pool
/// made in an earlier cell).
fn interrupt_keeps_the_session(
    kernel: &mut KernelClient,
    what: &str,
    cell: &str,
    pool_workers: usize,
) {
    run_ok(kernel, &format!("let kept_{what} = 42u64;"));
    let runtime = runtime_pid(kernel);
    let before: Vec<u32> = procs::descendants(runtime).iter().map(|p| p.pid).collect();
    let started_file =
        std::env::temp_dir().join(format!("kernel-interrupt-{}-{what}", std::process::id()));
    let _ = std::fs::remove_file(&started_file);
    let cell = format!(
        "std::fs::write({:?}, \"\")?;\n{cell}",
        started_file.display().to_string()
    );
    let msg_id = kernel.send_execute(&cell).unwrap();
    // The cell's code runs once it has written the file; give it a moment to block in the wait.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !started_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started_file.exists(), "the cell's code never started");
    let _ = std::fs::remove_file(&started_file);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert_eq!(kernel.interrupt().unwrap().status, ReplyStatus::Ok);
    let outcome = kernel
        .wait_execute(&msg_id, Duration::from_secs(30))
        .unwrap();
    let took = started.elapsed();
    eprintln!("  {what}: interrupt to cell end {}", seconds(took));
    assert_eq!(outcome.status, ReplyStatus::Error, "{outcome:?}");
    let text = outcome.error_text();
    assert!(text.to_lowercase().contains("interrupted"), "{text}");
    assert!(
        !text.contains("every variable is lost"),
        "the runtime was killed: {text}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?}: the crate's wait did not return"
    );
    assert_eq!(runtime_pid(kernel), runtime, "the runtime was restarted");
    let kept = run_ok(kernel, &format!("println!(\"{{kept_{what}}}\");"));
    assert_eq!(kept.stdout, "42\n");
    let left = procs::wait_until_none(Duration::from_secs(5), || {
        let now = procs::descendants(runtime);
        if now.len() <= before.len().max(pool_workers) {
            Vec::new()
        } else {
            now
        }
    });
    assert!(
        left.is_empty(),
        "processes left after the interrupted cell:\n{}",
        describe(&left)
    );
}

#[test]
fn an_interrupt_keeps_every_variable() {
    let mut kernel = start_kernel("interrupt");
    let mut checks = Checks::default();

    checks.check("interrupt during Process::join", || {
        interrupt_keeps_the_session(
            &mut kernel,
            "join",
            "let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_secs(60)));\n\
             p.start()?;\np.join()?;",
            0,
        );
    });

    checks.check("interrupt during Pool::map (pool from an earlier cell)", || {
        run_ok(
            &mut kernel,
            "fn slow_square(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_secs(2)); x * x }\n\
             let pool = Pool::new(2)?;",
        );
        interrupt_keeps_the_session(
            &mut kernel,
            "map",
            "let squares = pool.map(slow_square, 0..40u64)?;",
            2,
        );
        // The pool is usable or says why not; it never hangs.
        let outcome = kernel
            .execute_with_timeout(
                "match pool.map(slow_square, 0..2u64) { Ok(v) => println!(\"{v:?}\"), Err(e) => println!(\"pool: {e}\") }",
                Duration::from_secs(30),
            )
            .expect("the pool's next map did not finish");
        assert!(!outcome.stdout.is_empty(), "{outcome:?}");
        eprintln!("  after the interrupt: {}", outcome.stdout.trim());
        run_ok(&mut kernel, "drop(pool);");
    });

    checks.check("interrupt during Queue::get", || {
        interrupt_keeps_the_session(
            &mut kernel,
            "get",
            "let q: Queue<u64> = Queue::new()?;\n\
             let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_secs(60)));\n\
             p.start()?;\nlet item = q.get()?;",
            0,
        );
    });

    checks.check("interrupt during Lock::acquire", || {
        interrupt_keeps_the_session(
            &mut kernel,
            "acquire",
            "let lock = Lock::new()?;\nlet held = lock.clone();\n\
             let mut p = Process::new(move || { let _g = held.acquire().unwrap(); std::thread::sleep(std::time::Duration::from_secs(60)); });\n\
             p.start()?;\nstd::thread::sleep(std::time::Duration::from_millis(300));\n{ let _guard = lock.acquire()?; }",
            0,
        );
    });

    checks.finish();
    kernel.shutdown().unwrap();
}
