//! Leaks and orphans: 1000 start/join cycles leave fds and the process table as they were; a child
//! dies within a second of its parent being SIGKILLed.

mod process_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multiprocessing::Process;
use process_support::{child_pids, is_dead, isolate};

/// 1000 start/join cycles: same open fds, no child left.
#[test]
fn thousand_start_join_cycles_leak_nothing() {
    if let Some(out) = isolate("thousand_start_join_cycles_leak_nothing") {
        out.assert_success();
        for line in out.lines() {
            println!("{line}");
        }
        return;
    }
    // A first cycle creates the process-wide state (the registry); leaks are counted after it.
    let mut warm = Process::new(|| ());
    warm.start().unwrap();
    warm.join().unwrap();
    drop(warm);
    let fds_before = process_support::open_fds();
    let children_before = child_pids();
    let started = Instant::now();
    for i in 0..1000 {
        let mut p = Process::new(move || {
            if i % 250 == 0 {
                println!("cycle {i}");
            }
        });
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
    }
    let elapsed = started.elapsed();
    let fds_after = process_support::open_fds();
    let children_after = child_pids();
    println!(
        "open fds before: {} after: {}",
        fds_before.len(),
        fds_after.len()
    );
    println!("children before: {children_before:?} after: {children_after:?}");
    println!("1000 start/join cycles in {elapsed:?}");
    assert_eq!(fds_before, fds_after);
    assert_eq!(children_before, children_after);
    assert!(children_after.is_empty());
}

/// The inner "parent" for the next test: starts a child that would sleep for a minute, prints its
/// pid, then sleeps itself until killed.
#[test]
fn sigkilled_parent_inner() {
    if std::env::var("MULTIPROCESSING_TEST_INNER").as_deref() != Ok("sigkilled_parent_inner") {
        return; // only meaningful when run by `child_dies_within_a_second_of_its_parent_sigkill`
    }
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(60)));
    p.start().unwrap();
    println!("child pid {}", p.pid().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

/// A parent killed with SIGKILL (a kernel interrupt): its child is gone within a second.
#[test]
fn child_dies_within_a_second_of_its_parent_sigkill() {
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args([
            "sigkilled_parent_inner",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("MULTIPROCESSING_TEST_INNER", "sigkilled_parent_inner")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(parent.stdout.take().unwrap()).lines();
    let child_pid: i32 = loop {
        let line = lines
            .next()
            .expect("the inner parent printed its child's pid")
            .unwrap();
        if let Some((_, pid)) = line.split_once("child pid ") {
            break pid.trim().parse().unwrap();
        }
    };
    assert!(!is_dead(child_pid));
    let killed = Instant::now();
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    while !is_dead(child_pid) {
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "child {child_pid} still alive 1 s after its parent's SIGKILL"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    println!(
        "child {child_pid} died {:?} after its parent was SIGKILLed",
        killed.elapsed()
    );
}
