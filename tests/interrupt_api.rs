//! The kernel's interrupt on the waits of Event, Semaphore, RLock, Condition, Barrier, the
//! Manager's proxies and concurrent futures: each returns `Error::Interrupted` promptly and leaves
//! its primitive usable (as `tests/interrupt.rs` does for the older primitives). Each body runs in a
//! fresh copy of this binary (see `process_support`).

mod process_support;

use std::time::Duration;

use multiprocessing::futures::ProcessPoolExecutor;
use multiprocessing::managers::Manager;
use multiprocessing::{Barrier, Condition, Error, Event, Process, RLock, Semaphore};
use process_support::interrupt::{interrupt_pipe, interrupted};
use process_support::isolate;

#[test]
fn sync_waits_are_interrupted_and_stay_usable() {
    if let Some(out) = isolate("sync_waits_are_interrupted_and_stay_usable") {
        out.assert_success();
        return;
    }
    let pipe = interrupt_pipe();

    let e = Event::new().unwrap();
    interrupted(&pipe, "Event::wait", || e.wait());
    e.set().unwrap();
    e.wait().unwrap();

    let s = Semaphore::new(0).unwrap();
    interrupted(&pipe, "Semaphore::acquire", || s.acquire());
    s.release().unwrap();
    s.acquire().unwrap();

    let r = RLock::new().unwrap();
    let held = r.clone();
    let ready = Event::new().unwrap();
    let go = ready.clone();
    let mut holder = Process::new(move || {
        let _g = held.acquire().unwrap();
        go.set().unwrap();
        std::thread::sleep(Duration::from_secs(30));
    });
    holder.start().unwrap();
    ready.wait().unwrap();
    interrupted(&pipe, "RLock::acquire", || r.acquire().map(|_| ()));
    holder.kill().unwrap();
    holder.join().unwrap();
    assert!(matches!(r.acquire(), Err(Error::LockOwnerDied { .. })));
    drop(r.acquire().unwrap());

    // Condition::wait: interrupted with the lock free -> the guard holds it again.
    let c = Condition::new().unwrap();
    let mut g = c.acquire().unwrap();
    interrupted(&pipe, "Condition::wait", || g.wait());
    let other = c.clone();
    let mut p = Process::new(move || {
        assert!(other
            .acquire()
            .map(|g| {
                drop(g);
            })
            .is_ok());
    });
    p.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(p.is_alive().unwrap()); // waits for the lock the guard holds again
    drop(g);
    assert_eq!(p.join().unwrap(), 0);

    // Barrier::wait: interrupted -> broken, as Python's when a wait raises.
    let b = Barrier::new(2).unwrap();
    interrupted(&pipe, "Barrier::wait", || b.wait());
    assert!(b.broken().unwrap());
    b.reset().unwrap();
    assert!(!b.broken().unwrap());
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn manager_and_futures_waits_are_interrupted() {
    if let Some(out) = isolate("manager_and_futures_waits_are_interrupted") {
        out.assert_success();
        return;
    }
    let pipe = interrupt_pipe();
    let m = Manager::new().unwrap();
    let q = m.queue::<u32>().unwrap();
    interrupted(&pipe, "QueueProxy::get", || q.get());
    q.put(&5).unwrap();
    assert_eq!(q.get().unwrap(), 5); // the abandoned get took nothing
    m.shutdown().unwrap();

    let ex = ProcessPoolExecutor::new(1).unwrap();
    let f = ex.submit(nap, 3000).unwrap();
    interrupted(&pipe, "Future::result", || f.result());
    assert_eq!(ex.submit(nap, 1).unwrap().result().unwrap(), 1);
}
