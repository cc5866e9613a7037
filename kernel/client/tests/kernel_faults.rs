//! Faults through the installed kernel: a panicking pool task, a SIGKILLed worker,
//! 20 pools created and dropped in a row (no process or descriptor leak), and an
//! interrupt during a long `Pool::map` (kernel answers again within 5 s, no process
//! of the old runtime left). One kernel is shared; the interrupt comes last since
//! it restarts the runtime. Timings are printed for the report.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{describe, run, run_ok, runtime_pid, seconds, start_kernel, still_running, Checks};
use kernel_client::messages::ReplyStatus;
use kernel_client::procs;

#[test]
fn faults_show_the_crate_error_and_leave_nothing_behind() {
    let mut kernel = start_kernel("faults");
    let kernel_pid = kernel.pid();
    let mut checks = Checks::default();

    checks.check(
        "a panicking pool task: the crate's error shows, next cell runs",
        || {
            let started = Instant::now();
            let outcome = run(
                &mut kernel,
                r#"fn fails_on_three(x: u32) -> u32 { if x == 3 { panic!("task three failed") } x }
let pool = Pool::new(2)?;
let results = pool.map(fails_on_three, 0..6u32)?;"#,
            );
            eprintln!("  panicking task cell: {} ", seconds(started.elapsed()));
            // The `?` error ends the cell as an error whose message is the crate's.
            let error = outcome.error_text();
            assert_eq!(outcome.status, ReplyStatus::Error);
            assert!(
                error.contains("task 3 panicked in ForkPoolWorker-")
                    && error.contains("task three failed"),
                "crate error missing: {error:?}"
            );
            let started = Instant::now();
            let next = run_ok(&mut kernel, "println!(\"next cell runs\");");
            eprintln!("  next cell: {}", seconds(started.elapsed()));
            assert_eq!(next.stdout, "next cell runs\n");
        },
    );

    checks.check(
        "a SIGKILLed worker: the crate's error shows, next cell runs",
        || {
            let started = Instant::now();
            let outcome = run(
                &mut kernel,
                r#"fn killed_on_two(x: u32) -> u32 {
    if x == 2 {
        // The worker kills itself: std::process::id() is the worker's pid.
        let me = std::process::id().to_string();
        std::process::Command::new("kill").args(["-9", &me]).status().unwrap();
    }
    x
}
let pool = Pool::new(2)?;
let results = pool.map(killed_on_two, 0..6u32)?;"#,
            );
            eprintln!("  killed worker cell: {}", seconds(started.elapsed()));
            assert_eq!(outcome.status, ReplyStatus::Error);
            assert!(
                outcome
                    .error_text()
                    .contains("was killed by signal 9 (SIGKILL) while running task 2"),
                "crate error missing: {:?}",
                outcome.error_text()
            );
            let next = run_ok(&mut kernel, "println!(\"next cell runs\");");
            assert_eq!(next.stdout, "next cell runs\n");
        },
    );

    checks.check(
        "20 cells each creating and dropping a pool: no leak",
        || {
            let runtime = runtime_pid(&mut kernel);
            run_ok(&mut kernel, "fn square(x: u64) -> u64 { x * x }");
            let fds_before = procs::open_fds(runtime).expect("fds of the runtime");
            let children_before = procs::descendants(runtime);
            let mut timings = Vec::new();
            for cell in 0..20 {
                // Even cells close and join; odd ones just drop the pool (Drop terminates).
                let code = if cell % 2 == 0 {
                    "{ let pool = Pool::new(4)?; let v = pool.map(square, 0..16u64)?; \
                 assert_eq!(v[15], 225); pool.close(); pool.join()?; }"
                } else {
                    "{ let pool = Pool::new(4)?; let v = pool.map(square, 0..16u64)?; \
                 assert_eq!(v[15], 225); }"
                };
                let started = Instant::now();
                run_ok(&mut kernel, code);
                timings.push(started.elapsed().as_secs_f64());
            }
            eprintln!(
                "  20 pool cells: total {:.2} s, min {:.2} s, max {:.2} s",
                timings.iter().sum::<f64>(),
                timings.iter().cloned().fold(f64::MAX, f64::min),
                timings.iter().cloned().fold(0.0, f64::max)
            );
            assert_eq!(runtime_pid(&mut kernel), runtime, "the runtime restarted");
            let left = procs::wait_until_none(Duration::from_secs(5), || {
                let before: Vec<u32> = children_before.iter().map(|p| p.pid).collect();
                procs::descendants(runtime)
                    .into_iter()
                    .filter(|p| !before.contains(&p.pid))
                    .collect()
            });
            assert!(left.is_empty(), "processes left:\n{}", describe(&left));
            let fds_after = procs::open_fds(runtime).expect("fds of the runtime");
            eprintln!(
                "  runtime fds: {} before, {} after; descendants before {}",
                fds_before.len(),
                fds_after.len(),
                children_before.len()
            );
            assert_eq!(
                fd_kinds(&fds_before),
                fd_kinds(&fds_after),
                "open descriptors changed:\nbefore {fds_before:#?}\nafter {fds_after:#?}"
            );
        },
    );

    // With the crate's interrupt support the map returns `Err(Interrupted)` and the runtime
    // (with every variable) stays; without it the kernel kills the runtime after its grace
    // period. Either way the cell's processes are gone and the kernel answers within 5 s.
    checks.check("interrupt during a long Pool::map: answers within 5 s, cell's processes gone", || {
        let old_runtime = runtime_pid(&mut kernel);
        run_ok(
            &mut kernel,
            "fn slow(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(500)); x }",
        );
        let msg_id = kernel
            .send_execute("let pool = Pool::new(4)?;\nlet v = pool.map(slow, 0..400u64)?;")
            .unwrap();
        // Wait until the 4 workers run, then take the old runtime's process tree.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut workers = Vec::new();
        while Instant::now() < deadline {
            workers = procs::descendants(old_runtime);
            if workers.len() >= 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(workers.len() >= 4, "workers never started:\n{}", describe(&workers));
        std::thread::sleep(Duration::from_millis(500));
        let mut snapshot = procs::descendants(old_runtime);
        snapshot.extend(procs::process(old_runtime));

        let interrupted_at = Instant::now();
        let reply = kernel.interrupt().expect("interrupt_reply");
        let reply_after = interrupted_at.elapsed();
        let interrupted = kernel
            .wait_execute(&msg_id, Duration::from_secs(30))
            .expect("the interrupted cell ends");
        let cell_end_after = interrupted_at.elapsed();
        let new_runtime = runtime_pid(&mut kernel);
        let answered_after = interrupted_at.elapsed();
        if new_runtime == old_runtime {
            snapshot.retain(|p| p.pid != old_runtime);
        }
        let left = still_running(&snapshot, Duration::from_secs(5));
        eprintln!(
            "  interrupt: reply {:?} after {}, interrupted cell ended after {}, next cell \
             answered after {}; old runtime {old_runtime} ({} processes), new runtime {new_runtime}",
            reply.status,
            seconds(reply_after),
            seconds(cell_end_after),
            seconds(answered_after),
            snapshot.len()
        );
        assert!(interrupted.is_error(), "the interrupted cell did not fail: {interrupted:?}");
        assert!(answered_after < Duration::from_secs(5), "answered after {answered_after:?}");
        eprintln!(
            "  runtime {}",
            if new_runtime == old_runtime { "kept (variables kept)" } else { "killed and restarted" }
        );
        assert!(left.is_empty(), "old runtime's processes still running:\n{}", describe(&left));
        // Nothing in the kernel's process group outside the kernel's own tree (orphans).
        let tree: Vec<u32> = procs::descendants(kernel_pid).iter().map(|p| p.pid).collect();
        let orphans: Vec<_> = procs::in_process_group(kernel_pid)
            .into_iter()
            .filter(|p| p.pid != kernel_pid && !tree.contains(&p.pid) && !p.is_zombie())
            .collect();
        assert!(orphans.is_empty(), "orphans in the kernel's group:\n{}", describe(&orphans));
        let after = run_ok(&mut kernel, "let pool = Pool::new(2)?;\nprintln!(\"{:?}\", pool.map(slow, 0..2u64)?);");
        assert_eq!(after.stdout, "[0, 1]\n");
    });

    checks.finish();
}

/// Descriptor number -> kind of target ("pipe", "socket", "anon_inode:[eventfd]", a
/// path), so a pipe re-created with a new inode still counts as the same descriptor.
fn fd_kinds(fds: &BTreeMap<i32, String>) -> BTreeMap<i32, String> {
    fds.iter()
        .map(|(fd, target)| {
            let kind = target.split(":[").next().unwrap_or(target).to_string();
            (*fd, kind)
        })
        .collect()
}
