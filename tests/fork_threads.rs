//! Forking from a parent whose other threads use `std::env` at the same time (here: spawning
//! programs, which holds `std::env`'s lock across the spawn's own fork). A thread of the parent that
//! holds that lock at the instant of our fork does not exist in the child, so in the child the lock
//! stays held forever: the crate must never need it while setting a child up or numbering, naming
//! and reaping the child's own children (it once wrote its state with `std::env::set_var` there, and
//! such a child hung). The body runs in a fresh copy of this binary (see `process_support`).

mod process_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use multiprocessing::{current_process, Pool, Process};

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn children_start_while_another_thread_spawns_programs() {
    process_support::isolated!(children_start_while_another_thread_spawns_programs);
    let stop = Arc::new(AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
                spawned += 1;
            }
            spawned
        })
    };
    for round in 0..150 {
        let mut p = Process::new(move || {
            // A child of the child: numbered, forked and reaped inside the child.
            let mut grandchild = Process::new(|| ());
            grandchild.start().unwrap();
            assert_eq!(grandchild.join().unwrap(), 0);
            let me = current_process();
            assert!(me.name().starts_with("Process-"), "{}", me.name());
        });
        p.start().unwrap();
        let code = p.join_timeout(Duration::from_secs(20)).unwrap();
        if code.is_none() {
            p.kill().unwrap();
            panic!("round {round}: the child hung (stuck on a lock inherited from the parent)");
        }
        assert_eq!(code, Some(0), "round {round}");
    }
    let pool = Pool::new(2).unwrap();
    for _ in 0..20 {
        assert_eq!(pool.map(square, 0..50u64).unwrap()[7], 49);
    }
    stop.store(true, Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    println!("the other thread spawned {spawned} programs meanwhile");
}
