//! 20 pools created, used (a killed worker, a panic, an abandoned result included) and dropped leave
//! this process's open descriptors and child list exactly as they were: no leaked fd, no zombie, no
//! orphan.

#[path = "process_support/mod.rs"]
mod process_support;

use std::time::Duration;

use multiprocessing::Pool;
use process_support::{child_pids, isolate, open_fds};

fn cubes(n: u64) -> u64 {
    n.pow(3)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn panics(_: u8) -> u8 {
    panic!("on purpose")
}

#[test]
fn twenty_pools_leave_no_fd_and_no_child() {
    if let Some(out) = isolate("twenty_pools_leave_no_fd_and_no_child") {
        out.assert_success();
        return;
    }
    let fds_before = open_fds();
    let children_before = child_pids();
    let mut worker_pids = Vec::new();
    for cycle in 0..20 {
        let pool = Pool::new(2).unwrap();
        worker_pids.extend(pool.workers().into_iter().map(|(_, pid)| pid));
        assert_eq!(pool.map(cubes, 0..50).unwrap().len(), 50);
        match cycle % 4 {
            0 => {
                let r = pool.apply_async(sleep_ms, 10_000).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                let pid = pool.workers()[0].1;
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
                assert!(r.get().is_err());
                worker_pids.extend(pool.workers().into_iter().map(|(_, pid)| pid));
            }
            1 => assert!(pool.apply(panics, 0).is_err()),
            2 => drop(pool.apply_async(sleep_ms, 10_000).unwrap()),
            _ => {
                pool.close();
                pool.join().unwrap();
            }
        }
        drop(pool);
        assert_eq!(child_pids(), children_before, "cycle {cycle}");
    }
    assert_eq!(open_fds(), fds_before);
    assert_eq!(child_pids(), children_before);
    for pid in worker_pids {
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "worker {pid} still exists (zombie or orphan)"
        );
    }
}
