//! Queue with a maxsize (full, put_timeout, put_nowait, Full), close, JoinableQueue and
//! SimpleQueue: CPython's `_TestQueue` and `TestSimpleQueue` cases translated (each named in a
//! comment), and where we differ on purpose (a consumer that dies before `task_done`). Each body
//! runs in a fresh copy of this binary (see `process_support`).

mod process_support;

use std::time::{Duration, Instant};

use multiprocessing::{Error, Event, JoinableQueue, Process, Queue, SimpleQueue};
use process_support::{isolated, start};

fn about(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed + Duration::from_millis(10) >= expected
            && elapsed <= expected + Duration::from_millis(400),
        "took {elapsed:?}, expected about {expected:?}"
    );
}

// CPython: _TestQueue.test_put.
#[test]
fn queue_test_put() {
    isolated!(queue_test_put);
    const MAXSIZE: usize = 6;
    let queue = Queue::<i32>::with_maxsize(MAXSIZE).unwrap();
    let child_can_start = Event::new().unwrap();
    let parent_can_continue = Event::new().unwrap();
    let (q, start_ev, cont) = (
        queue.clone(),
        child_can_start.clone(),
        parent_can_continue.clone(),
    );
    let proc = start(move || {
        start_ev.wait().unwrap();
        for _ in 0..6 {
            q.get().unwrap();
        }
        cont.set().unwrap();
    });
    assert!(queue.empty());
    assert!(!queue.full());
    queue.put(&1).unwrap();
    queue.put(&2).unwrap();
    queue.put_timeout(&3, Duration::from_secs(1)).unwrap();
    queue.put_nowait(&4).unwrap();
    queue.put_nowait(&5).unwrap();
    queue.put_nowait(&6).unwrap();
    assert!(!queue.empty());
    assert!(queue.full());
    assert_eq!(queue.qsize(), 6);
    let t = Instant::now();
    assert!(matches!(
        queue.put_nowait(&7),
        Err(Error::Full { maxsize: 6 })
    ));
    about(t.elapsed(), Duration::ZERO);
    for timeout in [Duration::from_millis(100), Duration::from_millis(300)] {
        let t = Instant::now();
        assert!(matches!(
            queue.put_timeout(&7, timeout),
            Err(Error::Full { .. })
        ));
        about(t.elapsed(), timeout);
    }
    child_can_start.set().unwrap();
    parent_can_continue.wait().unwrap();
    assert!(queue.empty());
    assert!(!queue.full());
    assert_eq!(proc.join().unwrap(), 0);
}

// A full queue's put waits until a consumer makes room (Python's blocking put).
#[test]
fn queue_put_waits_for_room() {
    isolated!(queue_put_waits_for_room);
    let queue = Queue::<u32>::with_maxsize(2).unwrap();
    let q = queue.clone();
    let consumer = start(move || {
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..10 {
            assert_eq!(q.get().unwrap(), i);
        }
    });
    let t = Instant::now();
    for i in 0..10 {
        queue.put(&i).unwrap();
    }
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(consumer.join().unwrap(), 0);
}

// CPython: _TestQueue.test_qsize.
#[test]
fn queue_test_qsize() {
    isolated!(queue_test_qsize);
    let q = Queue::<i32>::new().unwrap();
    assert_eq!(q.qsize(), 0);
    q.put(&1).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(&5).unwrap();
    assert_eq!(q.qsize(), 2);
    q.get().unwrap();
    assert_eq!(q.qsize(), 1);
    q.get().unwrap();
    assert_eq!(q.qsize(), 0);
}

// CPython: _TestQueue.test_timeout.
#[test]
fn queue_test_timeout() {
    isolated!(queue_test_timeout);
    let q = Queue::<i32>::new().unwrap();
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(Error::Empty { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
}

// CPython: _TestQueue.test_closed_queue_put_get_exceptions (Queue and JoinableQueue).
#[test]
fn queue_test_closed_queue_put_get_exceptions() {
    isolated!(queue_test_closed_queue_put_get_exceptions);
    let q = Queue::<String>::new().unwrap();
    q.close();
    assert!(matches!(q.put(&"foo".into()), Err(Error::QueueClosed)));
    assert!(matches!(q.get(), Err(Error::QueueClosed)));
    let j = JoinableQueue::<String>::new().unwrap();
    j.close();
    assert!(matches!(j.put(&"foo".into()), Err(Error::QueueClosed)));
    assert!(matches!(j.get(), Err(Error::QueueClosed)));
    j.join().unwrap(); // the failed put is not counted as a task
}

// CPython: _TestQueue.test_task_done.
#[test]
fn queue_test_task_done() {
    isolated!(queue_test_task_done);
    let queue = JoinableQueue::<Option<u32>>::new().unwrap();
    let workers: Vec<Process> = (0..4)
        .map(|_| {
            let q = queue.clone();
            start(move || {
                while let Some(_obj) = q.get().unwrap() {
                    std::thread::sleep(Duration::from_millis(100));
                    q.task_done().unwrap();
                }
            })
        })
        .collect();
    for i in 0..10 {
        queue.put(&Some(i)).unwrap();
    }
    let t = Instant::now();
    queue.join().unwrap();
    // 10 tasks of 100 ms on 4 workers: at least 3 rounds.
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    for _ in &workers {
        queue.put(&None).unwrap();
    }
    for p in &workers {
        assert_eq!(p.join().unwrap(), 0);
    }
    // The four stop items were got but never marked done.
    for _ in 0..4 {
        queue.task_done().unwrap();
    }
    assert!(matches!(queue.task_done(), Err(Error::TaskDoneTooOften)));
    queue.join().unwrap();
}

// Differs on purpose: a consumer killed between get and task_done (Python's join waits forever).
#[test]
fn joinable_queue_consumer_dies_before_task_done() {
    isolated!(joinable_queue_consumer_dies_before_task_done);
    let queue = JoinableQueue::<u32>::new().unwrap();
    queue.put(&1).unwrap();
    queue.put(&2).unwrap();
    let q = queue.clone();
    let p = start(move || {
        q.get().unwrap();
        std::thread::sleep(Duration::from_secs(60)); // never calls task_done
    });
    while queue.qsize() != 1 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(queue.get().unwrap(), 2);
    queue.task_done().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    match queue.join() {
        Err(Error::HolderDied { pid, .. }) => assert_eq!(pid, p.pid().unwrap()),
        other => panic!("expected HolderDied, got {other:?}"),
    }
    queue.join().unwrap(); // nothing left
}

// CPython: TestSimpleQueue.test_empty.
#[test]
fn simple_queue_test_empty() {
    isolated!(simple_queue_test_empty);
    let queue = SimpleQueue::<bool>::new().unwrap();
    let child_can_start = Event::new().unwrap();
    let parent_can_continue = Event::new().unwrap();
    let (q, s, c) = (
        queue.clone(),
        child_can_start.clone(),
        parent_can_continue.clone(),
    );
    let proc = start(move || {
        s.wait().unwrap();
        q.put(&q.empty()).unwrap();
        q.put(&q.empty()).unwrap();
        c.set().unwrap();
    });
    assert!(queue.empty());
    child_can_start.set().unwrap();
    parent_can_continue.wait().unwrap();
    assert!(!queue.empty());
    assert!(queue.get().unwrap());
    assert!(!queue.get().unwrap());
    assert!(queue.empty());
    proc.join().unwrap();
}

// CPython: TestSimpleQueue.test_close (twice is fine) and test_empty_exceptions (closed: an error
// on put/get; our empty() stays a plain bool).
#[test]
fn simple_queue_test_close() {
    isolated!(simple_queue_test_close);
    let queue = SimpleQueue::<u8>::new().unwrap();
    queue.close();
    queue.close();
    assert!(matches!(queue.get(), Err(Error::QueueClosed)));
    assert!(matches!(queue.put(&1), Err(Error::QueueClosed)));
}
