//! Python's semantics where the crate used to differ without a reason. Each body runs in a fresh copy
//! of this binary (see `process_support`).

mod process_support;

use multiprocessing::{Error, Pool, Process};
use process_support::isolate;

fn cubes(n: u64) -> u64 {
    n.pow(3)
}

fn fails(_: u8) -> u8 {
    panic!("no")
}

/// Python: `successful()` after `get()` still answers (True / False).
#[test]
fn successful_answers_after_get() {
    if let Some(out) = isolate("successful_answers_after_get") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(1).unwrap();
    let ok = pool.apply_async(cubes, 2).unwrap();
    assert_eq!(ok.get().unwrap(), 8);
    assert!(ok.successful().unwrap());
    assert!(ok.ready());
    let bad = pool.apply_async(fails, 0).unwrap();
    assert!(matches!(bad.get(), Err(Error::TaskPanicked { .. })));
    assert!(!bad.successful().unwrap());
    assert!(matches!(bad.get(), Err(Error::ResultTaken)));
}

/// Python: a Process created inside a daemonic process is daemonic too (and cannot be started).
#[test]
fn a_process_made_in_a_daemon_inherits_the_flag() {
    if let Some(out) = isolate("a_process_made_in_a_daemon_inherits_the_flag") {
        out.assert_success();
        assert!(
            out.stdout.contains("inner daemon=true refused=true"),
            "{}",
            out.stdout
        );
        return;
    }
    assert!(!Process::new(|| ()).daemon());
    let mut p = Process::builder()
        .daemon(true)
        .target(|| {
            let mut inner = Process::new(|| ());
            let refused = matches!(inner.start(), Err(Error::DaemonChildren { .. }));
            println!("inner daemon={} refused={refused}", inner.daemon());
        })
        .unwrap();
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
}
