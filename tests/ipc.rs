//! Pipe, Queue, Lock and Value, each through real forked `Process`es. Each test body runs in a fresh
//! copy of this binary (see `process_support`).

mod process_support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use multiprocessing::{Error, Lock, Pipe, Process, Queue, Value};
use process_support::{isolate, open_fds, start};

/// Parent and child play ping-pong; when the child ends, the parent's recv is `Disconnected`
/// (Python: `EOFError`), and so is a send.
#[test]
fn pipe_ping_pong_then_disconnected_when_child_ends() {
    if let Some(out) = isolate("pipe_ping_pong_then_disconnected_when_child_ends") {
        out.assert_success();
        return;
    }
    let (parent, child) = Pipe::new().unwrap();
    let p = start(move || {
        while let Ok(n) = child.recv::<u64>() {
            if n == 100 {
                break;
            }
            child.send(n + 1).unwrap();
        }
        child.send("bye").unwrap();
    });
    let mut n = 0u64;
    while n < 100 {
        parent.send(n).unwrap();
        let back: u64 = parent.recv().unwrap();
        assert_eq!(back, n + 1);
        n = back + 1;
    }
    parent.send(100u64).unwrap();
    assert_eq!(parent.recv::<String>().unwrap(), "bye");
    assert_eq!(p.join().unwrap(), 0);
    // The child's end was closed with it (and the parent's copy when the child started).
    assert!(
        parent.poll(Duration::ZERO).unwrap(),
        "end of file is readable"
    );
    match parent.recv::<u64>() {
        Err(Error::Disconnected { message, .. }) => {
            assert!(message.contains("closed"), "{message}")
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(matches!(parent.send(1u8), Err(Error::Disconnected { .. })));
}

/// A megabyte each way through one Pipe. The child cannot wait for the parent to close its end:
/// it holds an inherited copy of that end itself (as with Python's fork), so the last message says
/// "done" explicitly.
#[test]
fn pipe_large_messages_both_ways() {
    if let Some(out) = isolate("pipe_large_messages_both_ways") {
        out.assert_success();
        return;
    }
    let (parent, child) = Pipe::new().unwrap();
    let p = start(move || {
        while let Some(data) = child.recv::<Option<Vec<u32>>>().unwrap() {
            let reversed: Vec<u32> = data.into_iter().rev().collect();
            child.send(&reversed).unwrap();
        }
        multiprocessing::exit(7);
    });
    for round in 0..2u32 {
        let data: Vec<u32> = (round..300_000).collect();
        parent.send(Some(&data)).unwrap();
        let back: Vec<u32> = parent.recv().unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back.iter().rev().eq(data.iter()));
    }
    parent.send(&None::<Vec<u32>>).unwrap();
    assert_eq!(p.join().unwrap(), 7);
}

/// recv_timeout and poll give up after the timeout; a message that comes later is kept.
#[test]
fn pipe_timeouts() {
    if let Some(out) = isolate("pipe_timeouts") {
        out.assert_success();
        return;
    }
    let (a, b) = Pipe::new().unwrap();
    let t = Instant::now();
    assert!(!b.poll(Duration::from_millis(50)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(50));
    let t = Instant::now();
    match b.recv_timeout::<u8>(Duration::from_millis(80)) {
        Err(Error::Empty { waited, .. }) => assert_eq!(waited, Duration::from_millis(80)),
        other => panic!("expected Empty, got {other:?}"),
    }
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(80) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let p = start(move || {
        std::thread::sleep(Duration::from_millis(100));
        a.send(5u8).unwrap();
    });
    assert!(b.recv_timeout::<u8>(Duration::ZERO).is_err());
    assert_eq!(b.recv_timeout::<u8>(Duration::from_secs(30)).unwrap(), 5);
    p.join().unwrap();
}

type Item = Option<(u8, u32, Vec<u8>)>;

fn payload(producer: u8, seq: u32) -> Vec<u8> {
    let len = match seq % 50 {
        0 => 65_536 + 1 + (seq as usize * 37) % 100_000, // > 64 KiB
        1..=4 => 4_096 + seq as usize % 3000,            // > PIPE_BUF
        _ => seq as usize % 200,
    };
    (0..len)
        .map(|i| (producer as usize * 31 + seq as usize * 7 + i) as u8)
        .collect()
}

/// 4 producers × 1000 items of mixed sizes (some over 64 KiB), 2 consumers: every item arrives
/// exactly once, intact, and each producer's items in the order it put them.
#[test]
fn queue_four_producers_two_consumers_every_item_once_and_intact() {
    if let Some(out) = isolate("queue_four_producers_two_consumers_every_item_once_and_intact") {
        out.assert_success();
        return;
    }
    const PRODUCERS: u8 = 4;
    const ITEMS: u32 = 1000;
    let q = Queue::<Item>::new().unwrap();
    let results = Queue::<Vec<(u8, u32)>>::new().unwrap();
    let consumers: Vec<Process> = (0..2)
        .map(|_| {
            let (q, results) = (q.clone(), results.clone());
            start(move || {
                let mut seen = Vec::new();
                while let Some((producer, seq, data)) = q.get().unwrap() {
                    assert!(
                        data == payload(producer, seq),
                        "item {producer}/{seq} corrupted"
                    );
                    seen.push((producer, seq));
                }
                results.put(&seen).unwrap();
            })
        })
        .collect();
    let producers: Vec<Process> = (0..PRODUCERS)
        .map(|producer| {
            let q = q.clone();
            start(move || {
                for seq in 0..ITEMS {
                    q.put(&Some((producer, seq, payload(producer, seq))))
                        .unwrap();
                }
            })
        })
        .collect();
    for p in &producers {
        assert_eq!(p.join().unwrap(), 0);
    }
    q.put(&None).unwrap();
    q.put(&None).unwrap();
    let mut all = Vec::new();
    for _ in 0..2 {
        let seen = results.get_timeout(Duration::from_secs(60)).unwrap();
        for producer in 0..PRODUCERS {
            let seqs: Vec<u32> = seen
                .iter()
                .filter(|(p, _)| *p == producer)
                .map(|&(_, s)| s)
                .collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "FIFO per producer");
        }
        all.extend(seen);
    }
    for c in &consumers {
        assert_eq!(c.join().unwrap(), 0);
    }
    all.sort_unstable();
    let expected: Vec<(u8, u32)> = (0..PRODUCERS)
        .flat_map(|p| (0..ITEMS).map(move |s| (p, s)))
        .collect();
    assert_eq!(all.len(), expected.len());
    assert!(all == expected, "every item exactly once");
    assert!(q.empty());
    assert_eq!(q.qsize(), 0);
}

/// get_timeout on an empty queue is `Empty` after the timeout, also while another process waits in
/// get() holding the readers' lock; a consumer killed while it waits leaves the queue usable.
#[test]
fn queue_timeouts_and_a_killed_waiting_consumer() {
    if let Some(out) = isolate("queue_timeouts_and_a_killed_waiting_consumer") {
        out.assert_success();
        return;
    }
    let q = Queue::<u32>::new().unwrap();
    let t = Instant::now();
    match q.get_timeout(Duration::from_millis(60)) {
        Err(Error::Empty { waited, .. }) => assert_eq!(waited, Duration::from_millis(60)),
        other => panic!("expected Empty, got {other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(60));
    assert!(matches!(q.get_nowait(), Err(Error::Empty { .. })));

    // A consumer that waits in get() forever, holding the readers' lock.
    let waiting = {
        let q = q.clone();
        start(move || {
            let _ = q.get();
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(100)),
        Err(Error::Empty { .. })
    ));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    waiting.kill().unwrap();
    waiting.join().unwrap();

    // Killed while waiting, not inside an item: the queue goes on.
    q.put(&1).unwrap();
    q.put(&2).unwrap();
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert!(q.empty());
}

/// 4 processes × 10 000 increments: exactly 40 000, both with `Value::update` and with a separate
/// `Lock` around `get` + `set`.
#[test]
fn lock_and_value_four_processes_count_to_40000() {
    if let Some(out) = isolate("lock_and_value_four_processes_count_to_40000") {
        out.assert_success();
        return;
    }
    let by_update = Value::new(0u64).unwrap();
    let by_lock = Value::new(0u64).unwrap();
    let lock = Lock::new().unwrap();
    let workers: Vec<Process> = (0..4)
        .map(|_| {
            let (by_update, by_lock, lock) = (by_update.clone(), by_lock.clone(), lock.clone());
            start(move || {
                for _ in 0..10_000 {
                    by_update.update(|n| *n += 1);
                    lock.with(|| by_lock.set(by_lock.get() + 1)).unwrap();
                }
            })
        })
        .collect();
    for w in &workers {
        assert_eq!(w.join().unwrap(), 0);
    }
    assert_eq!(by_update.get(), 40_000);
    assert_eq!(by_lock.get(), 40_000);
}

/// `get()` then `set()` is two steps: with the interleaving forced (through pipes), one of two
/// increments is lost; `update` cannot be split that way.
#[test]
fn value_get_then_set_loses_an_update_when_interleaved() {
    if let Some(out) = isolate("value_get_then_set_loses_an_update_when_interleaved") {
        out.assert_success();
        return;
    }
    let v = Value::new(0i32).unwrap();
    let (a_here, a_there) = Pipe::new().unwrap();
    let (b_here, b_there) = Pipe::new().unwrap();
    let a = {
        let v = v.clone();
        start(move || {
            let seen = v.get(); // reads 0
            a_there.send(()).unwrap(); // let B run
            a_there.recv::<()>().unwrap(); // B has written 1
            v.set(seen + 1); // writes 1 over B's 1
        })
    };
    let b = {
        let v = v.clone();
        start(move || {
            b_there.recv::<()>().unwrap();
            let seen = v.get(); // reads 0 too
            v.set(seen + 1);
            b_there.send(()).unwrap();
        })
    };
    a_here.recv::<()>().unwrap();
    b_here.send(()).unwrap();
    b_here.recv::<()>().unwrap();
    a_here.send(()).unwrap();
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(v.get(), 1, "two increments, one lost");
}

/// A plain variable (even an `Rc<Cell>`) changed in a child is unchanged in the parent; a `Value`
/// is shared.
#[test]
fn value_is_shared_a_plain_variable_is_not() {
    if let Some(out) = isolate("value_is_shared_a_plain_variable_is_not") {
        out.assert_success();
        return;
    }
    let plain = Rc::new(Cell::new(0));
    let shared = Value::new((0i32, 0.0f64)).unwrap();
    let (plain_c, shared_c) = (plain.clone(), shared.clone());
    let p = start(move || {
        plain_c.set(5);
        shared_c.set((5, 2.5));
    });
    p.join().unwrap();
    assert_eq!(plain.get(), 0);
    assert_eq!(shared.get(), (5, 2.5));
}

/// A holder that exits or is killed with the lock: the next acquire is `LockOwnerDied` naming it,
/// then the lock is free. Acquiring twice in one process is `WouldDeadlock`; timeouts give `None`.
#[test]
fn lock_owner_death_deadlock_and_timeouts() {
    if let Some(out) = isolate("lock_owner_death_deadlock_and_timeouts") {
        out.assert_success();
        return;
    }
    let lock = Lock::new().unwrap();
    // Exits holding it.
    let p = {
        let lock = lock.clone();
        start(move || {
            std::mem::forget(lock.acquire().unwrap());
            multiprocessing::exit(0);
        })
    };
    p.join().unwrap();
    match lock.acquire() {
        Err(Error::LockOwnerDied { pid }) => assert_eq!(Some(pid), p.pid()),
        other => panic!("expected LockOwnerDied, got {other:?}"),
    }
    drop(lock.acquire().unwrap());

    // Holds it for a while, then is killed holding it.
    let (here, there) = Pipe::new().unwrap();
    let p = {
        let lock = lock.clone();
        start(move || {
            let _guard = lock.acquire().unwrap();
            there.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        })
    };
    here.recv::<()>().unwrap();
    assert!(lock.try_acquire().unwrap().is_none());
    let t = Instant::now();
    assert!(lock
        .acquire_timeout(Duration::from_millis(80))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(80));
    assert!(format!("{lock:?}").contains("held_by_pid"));
    p.kill().unwrap();
    p.join().unwrap();
    assert!(matches!(lock.acquire(), Err(Error::LockOwnerDied { .. })));

    let guard = lock.acquire().unwrap();
    assert!(matches!(lock.acquire(), Err(Error::WouldDeadlock { .. })));
    assert!(lock.try_acquire().unwrap().is_none());
    guard.release();
    assert!(lock
        .acquire_timeout(Duration::from_millis(1))
        .unwrap()
        .is_some());
}

/// 200 create / use / drop cycles of each type leave the open descriptors and the memory mappings
/// exactly as they were.
#[test]
fn two_hundred_cycles_leak_no_fd_and_no_mapping() {
    if let Some(out) = isolate("two_hundred_cycles_leak_no_fd_and_no_mapping") {
        out.assert_success();
        return;
    }
    let maps = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count()
    };
    // Warm up allocator and lazily-initialised state first.
    {
        let (a, b) = Pipe::new().unwrap();
        a.send(1u8).unwrap();
        b.recv::<u8>().unwrap();
        let q = Queue::new().unwrap();
        q.put(&1u8).unwrap();
        q.get().unwrap();
    }
    let fds_before = open_fds();
    let maps_before = maps();
    for i in 0..200u32 {
        let (a, b) = Pipe::new().unwrap();
        a.send(i).unwrap();
        assert_eq!(b.recv::<u32>().unwrap(), i);
        let q = Queue::new().unwrap();
        q.put(&i).unwrap();
        assert_eq!(q.clone().get().unwrap(), i);
        let lock = Lock::new().unwrap();
        drop(lock.acquire().unwrap());
        let v = Value::new(i).unwrap();
        v.update(|x| *x += 1);
        assert_eq!(v.clone().get(), i + 1);
    }
    assert_eq!(open_fds(), fds_before);
    assert_eq!(maps(), maps_before);
}

/// Waiting in `Queue::get`, `Connection::recv` or `Lock::acquire` relays the children's output as
/// `join` does: a child that prints far more than a pipe holds before it puts, sends or releases
/// does not block, and every line arrives.
#[test]
fn waits_relay_children_output() {
    if let Some(out) = isolate("waits_relay_children_output") {
        out.assert_success();
        let lines = out.lines();
        for who in ["queue", "pipe", "lock"] {
            let n = lines.iter().filter(|l| l.starts_with(who)).count();
            assert_eq!(n, 3000, "{who} lines");
        }
        return;
    }
    fn chatter(who: &str) {
        for i in 0..3000 {
            println!("{who} line {i:5} {}", "x".repeat(100));
        }
    }
    let q = Queue::<u8>::new().unwrap();
    let tx = q.clone();
    let p = start(move || {
        chatter("queue");
        tx.put(&1).unwrap();
    });
    assert_eq!(q.get().unwrap(), 1);
    p.join().unwrap();

    let (here, there) = Pipe::new().unwrap();
    let p = start(move || {
        chatter("pipe");
        there.send(2u8).unwrap();
    });
    assert_eq!(here.recv::<u8>().unwrap(), 2);
    p.join().unwrap();

    let lock = Lock::new().unwrap();
    let (here, there) = Pipe::new().unwrap();
    let p = {
        let lock = lock.clone();
        start(move || {
            let _guard = lock.acquire().unwrap();
            there.send(()).unwrap();
            chatter("lock");
        })
    };
    here.recv::<()>().unwrap();
    drop(lock.acquire().unwrap());
    p.join().unwrap();
}
