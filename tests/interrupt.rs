//! The kernel's interrupt, without the kernel (see `process_support::interrupt`): every kind of wait
//! must return `Error::Interrupted` promptly, and what it waited on must be usable afterwards. Each
//! body runs in a fresh copy of this binary (see `process_support`), so the variable stays there.

mod process_support;

use std::time::Duration;

use multiprocessing::{Error, Lock, Pipe, Pool, Process, Queue, Value};
use process_support::interrupt::{interrupt_pipe, interrupted};
use process_support::isolate;

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn cubes(n: u64) -> u64 {
    n.pow(3)
}

fn pid(_: u8) -> u32 {
    std::process::id()
}

/// join and join_timeout: Interrupted; the child is sent SIGINT (as ipykernel's interrupt or a
/// terminal's Ctrl-C does to Python's children) and ends with -2, a child that ignores SIGINT keeps
/// running and can be joined or killed afterwards. Children never see the variable.
#[test]
fn process_waits_are_interrupted_and_the_child_gets_sigint() {
    if let Some(out) = isolate("process_waits_are_interrupted_and_the_child_gets_sigint") {
        out.assert_success();
        assert!(
            out.stdout.contains("child: no interrupt pipe"),
            "{}",
            out.stdout
        );
        return;
    }
    let pipe = interrupt_pipe();
    let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    p.start().unwrap();
    let err = interrupted(&pipe, "join", || p.join());
    assert!(err.to_string().contains("sent SIGINT"), "{err}");
    assert_eq!(p.join_timeout(Duration::from_secs(10)).unwrap(), Some(-2));

    // A child that ignores SIGINT goes on after the interrupt, as Python's would.
    let mut stubborn = Process::new(|| {
        // SAFETY: SIG_IGN installs no handler code; the child is single-threaded here.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        std::thread::sleep(Duration::from_secs(30));
    });
    stubborn.start().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    interrupted(&pipe, "join_timeout", || {
        stubborn.join_timeout(Duration::from_secs(20))
    });
    assert!(stubborn.is_alive().unwrap());
    stubborn.kill().unwrap();
    assert_eq!(stubborn.join().unwrap(), -9);

    let mut c = Process::new(|| {
        let seen = std::env::var("RUST_MP_INTERRUPT_FD");
        println!(
            "child: {}",
            if seen.is_err() {
                "no interrupt pipe"
            } else {
                "sees the pipe"
            }
        );
    });
    c.start().unwrap();
    assert_eq!(c.join().unwrap(), 0);
    // Nothing left over: a wait after an interrupt waits normally.
    let mut quick = Process::new(|| ());
    quick.start().unwrap();
    assert_eq!(
        quick.join_timeout(Duration::from_secs(10)).unwrap(),
        Some(0)
    );
}

/// map, apply, AsyncResult get/wait, imap: Interrupted; the busy workers are replaced, the pool's
/// unfinished results fail with the same error, and the pool runs new work at once.
#[test]
fn pool_waits_are_interrupted_and_the_pool_stays_usable() {
    if let Some(out) = isolate("pool_waits_are_interrupted_and_the_pool_stays_usable") {
        out.assert_success();
        return;
    }
    let pipe = interrupt_pipe();
    let pool = Pool::new(2).unwrap();
    let before = pool.workers();
    let err = interrupted(&pipe, "map", || {
        pool.map(sleep_ms, [20_000, 20_000, 20_000])
    });
    assert!(err.to_string().contains("usable"), "{err}");
    let after = pool.workers();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|w| !before.contains(w)),
        "busy workers replaced"
    );
    assert_eq!(pool.map(cubes, 0..100u64).unwrap()[99], 99u64.pow(3));

    interrupted(&pipe, "apply", || pool.apply(sleep_ms, 20_000));
    assert_eq!(pool.apply(cubes, 3).unwrap(), 27);

    let other = pool.apply_async(sleep_ms, 20_000).unwrap();
    let r = pool.apply_async(sleep_ms, 20_000).unwrap();
    interrupted(&pipe, "AsyncResult::get", || r.get());
    assert!(
        matches!(other.get(), Err(Error::Interrupted { .. })),
        "every unfinished task of the pool was cancelled"
    );
    let r = pool.apply_async(sleep_ms, 20_000).unwrap();
    interrupted(&pipe, "AsyncResult::wait", || r.wait());
    drop(r);

    let mut it = pool.imap(sleep_ms, vec![20_000u64; 4]).unwrap();
    interrupted(&pipe, "imap next", || it.next().unwrap());
    drop(it);
    let mut unordered = pool.imap_unordered(sleep_ms, vec![20_000u64; 4]).unwrap();
    interrupted(&pipe, "imap_unordered next", || unordered.next().unwrap());
    drop(unordered);

    assert_eq!(pool.map(cubes, 0..10u64).unwrap().len(), 10);
    let mut pids = pool.map(pid, vec![0u8; 50]).unwrap();
    pids.sort();
    pids.dedup();
    assert!(pids.len() <= 2);
    pool.close();
    pool.join().unwrap();
}

/// Pipe recv/send, Queue get/put, Lock acquire, a Value's lock.
#[test]
fn ipc_waits_are_interrupted() {
    if let Some(out) = isolate("ipc_waits_are_interrupted") {
        out.assert_success();
        return;
    }
    let pipe = interrupt_pipe();

    let (a, b) = Pipe::new().unwrap();
    interrupted(&pipe, "Connection::recv", || b.recv::<u64>());
    a.send(7u64).unwrap();
    assert_eq!(b.recv::<u64>().unwrap(), 7, "the connection still works");
    interrupted(&pipe, "Connection::recv_timeout", || {
        b.recv_timeout::<u64>(Duration::from_secs(20))
    });
    // Fill the socket: a send then waits for room.
    let big = vec![1u8; 4 << 20];
    let err = interrupted(&pipe, "Connection::send", || a.send(&big));
    assert!(err.to_string().contains("create a new Pipe"), "{err}");

    let q = Queue::<u64>::new().unwrap();
    interrupted(&pipe, "Queue::get", || q.get());
    q.put(&5).unwrap();
    assert_eq!(q.get().unwrap(), 5, "the queue still works");
    interrupted(&pipe, "Queue::get_timeout", || {
        q.get_timeout(Duration::from_secs(20))
    });

    // An item bigger than the queue's pipe: put waits for a consumer, in the middle of the item.
    let full = Queue::<Vec<u8>>::new().unwrap();
    let err = interrupted(&pipe, "Queue::put", || full.put(&vec![3u8; 2 << 20]));
    assert!(err.to_string().contains("create a new Queue"), "{err}");
    assert!(matches!(full.put(&vec![1]), Err(Error::QueueBroken { .. })));

    let lock = Lock::new().unwrap();
    let value = Value::new(0u64).unwrap();
    let (held_tx, held_rx) = Pipe::new().unwrap();
    let (l2, v2) = (lock.clone(), value.clone());
    // The holder ignores SIGINT, so it outlives the interrupts below (which send SIGINT to every
    // running Process child, as Ctrl-C does) and keeps holding the lock.
    let mut holder = Process::new(move || {
        // SAFETY: SIG_IGN installs no handler code; the child is single-threaded here.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        let _g = l2.acquire().unwrap();
        let _v = v2.lock();
        held_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(30));
    });
    holder.start().unwrap();
    held_rx.recv::<()>().unwrap();
    interrupted(&pipe, "Lock::acquire", || lock.acquire().map(|_| ()));
    interrupted(&pipe, "Lock::acquire_timeout", || {
        lock.acquire_timeout(Duration::from_secs(20))
            .map(|g| g.is_some())
    });
    // A Value's lock returns no Result: its wait panics with the Interrupted message.
    interrupted(&pipe, "Value::lock", || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| value.get())).map_err(|payload| {
            Error::Interrupted {
                waiting_for: payload
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_default(),
                state: String::new(),
            }
        })
    });
    holder.kill().unwrap();
    holder.join().unwrap();
    // The dead holder's lock is recovered.
    assert!(matches!(lock.acquire(), Err(Error::LockOwnerDied { .. })));
    assert!(lock.acquire().is_ok());
    assert_eq!(value.get(), 0);
}

/// One child table: pool workers are children too, as in Python (`active_children()` lists
/// `ForkPoolWorker-N`), and a `Process`'s wait relays their output.
#[test]
fn active_children_lists_pool_workers() {
    if let Some(out) = isolate("active_children_lists_pool_workers") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();
    let mut names: Vec<String> = multiprocessing::active_children()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ForkPoolWorker-1", "ForkPoolWorker-2"]);
    assert!(multiprocessing::active_children()
        .iter()
        .all(|c| c.daemon()));
    pool.terminate();
    pool.join().unwrap();
    assert!(multiprocessing::active_children().is_empty());
}
