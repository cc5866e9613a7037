//! One-way pipes, send_bytes/recv_bytes, connection::wait, Process::sentinel and Process::close:
//! CPython's `_TestConnection`, `_TestProcess` and `TestWait` cases translated (each named in a
//! comment). Each body runs in a fresh copy of this binary (see `process_support`).

mod process_support;

use std::time::{Duration, Instant};

use multiprocessing::{connection, Error, Event, Pipe, PipeEnd, Process, Queue, Semaphore};
use process_support::{isolated, start};

// CPython: _TestConnection.test_duplex_false.
#[test]
fn connection_test_duplex_false() {
    isolated!(connection_test_duplex_false);
    let (reader, writer) = Pipe::one_way().unwrap();
    writer.send(1).unwrap();
    assert_eq!(reader.recv::<i32>().unwrap(), 1);
    assert!(matches!(
        reader.send(2),
        Err(Error::WrongDirection {
            allowed: PipeEnd::ReadOnly
        })
    ));
    assert!(matches!(
        writer.recv::<i32>(),
        Err(Error::WrongDirection {
            allowed: PipeEnd::WriteOnly
        })
    ));
    assert!(matches!(
        writer.poll(Duration::ZERO),
        Err(Error::WrongDirection { .. })
    ));
}

// CPython: _TestConnection.test_sendbytes (offsets are slices in Rust: `&msg[5..]`).
#[test]
fn connection_test_sendbytes() {
    isolated!(connection_test_sendbytes);
    let msg = b"abcdefghijklmnopqrstuvwxyz";
    let (a, b) = Pipe::new().unwrap();
    a.send_bytes(msg).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), msg);
    a.send_bytes(&msg[5..]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[5..]);
    a.send_bytes(&msg[7..7 + 8]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[7..15]);
    a.send_bytes(&msg[26..]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
    // Across processes, and large.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    let expect = big.clone();
    let p = start(move || a.send_bytes(&big).unwrap());
    assert_eq!(b.recv_bytes().unwrap(), expect);
    p.join().unwrap();
    assert!(matches!(b.recv_bytes(), Err(Error::Disconnected { .. })));
}

// CPython: _TestProcess.test_sentinel.
#[test]
fn process_test_sentinel() {
    isolated!(process_test_sentinel);
    let event = Event::new().unwrap();
    let e = event.clone();
    let mut p = Process::new(move || e.wait().unwrap());
    assert!(matches!(p.sentinel(), Err(Error::NotStarted { .. })));
    p.start().unwrap();
    let sentinel = p.sentinel().unwrap();
    assert!(connection::wait(&[&sentinel], Some(Duration::ZERO))
        .unwrap()
        .is_empty());
    event.set().unwrap();
    p.join().unwrap();
    assert_eq!(
        connection::wait(&[&sentinel], Some(Duration::from_secs(1))).unwrap(),
        [0]
    );
    // A sentinel taken after the end is ready too.
    assert_eq!(
        connection::wait(&[&p.sentinel().unwrap()], Some(Duration::ZERO)).unwrap(),
        [0]
    );
}

// CPython: _TestProcess.test_close.
#[test]
fn process_test_close() {
    isolated!(process_test_close);
    let q = Queue::<()>::new().unwrap();
    let rx = q.clone();
    let mut p = Process::new(move || rx.get().unwrap());
    p.set_daemon(true).unwrap();
    p.start().unwrap();
    assert!(p.is_alive().unwrap());
    assert!(matches!(p.close(), Err(Error::StillRunning { .. })));
    q.put(&()).unwrap();
    p.join().unwrap();
    assert!(!p.is_alive().unwrap());
    assert_eq!(p.exitcode(), Some(0));
    p.close().unwrap();
    assert!(matches!(p.is_alive(), Err(Error::ProcessClosed { .. })));
    assert!(matches!(p.join(), Err(Error::ProcessClosed { .. })));
    assert!(matches!(p.terminate(), Err(Error::ProcessClosed { .. })));
    assert!(matches!(p.close(), Err(Error::ProcessClosed { .. })));
}

// CPython: TestWait.test_wait and test_wait_slow (four one-way pipes, children send 10 messages
// each, the parent waits on all readers until each says end of file).
#[test]
fn wait_test_wait() {
    isolated!(wait_test_wait);
    for slow in [false, true] {
        let mut readers = Vec::new();
        let mut procs = Vec::new();
        for _ in 0..4 {
            let (r, w) = Pipe::one_way().unwrap();
            procs.push(start(move || {
                for i in 0..10u32 {
                    if slow {
                        std::thread::sleep(Duration::from_millis((i as u64 * 37) % 100));
                    }
                    w.send((i, std::process::id())).unwrap();
                }
            }));
            readers.push(r);
        }
        let mut messages = Vec::new();
        while !readers.is_empty() {
            let refs: Vec<&dyn std::os::fd::AsFd> = readers
                .iter()
                .map(|r| r as &dyn std::os::fd::AsFd)
                .collect();
            let ready = connection::wait(&refs, None).unwrap();
            drop(refs);
            let mut gone = Vec::new();
            for i in ready {
                match readers[i].recv::<(u32, u32)>() {
                    Ok(m) => messages.push(m),
                    Err(Error::Disconnected { .. }) => gone.push(i),
                    Err(e) => panic!("{e}"),
                }
            }
            for i in gone.into_iter().rev() {
                readers.remove(i);
            }
        }
        messages.sort();
        let mut expected: Vec<(u32, u32)> = procs
            .iter()
            .flat_map(|p| (0..10).map(move |i| (i, p.pid().unwrap() as u32)))
            .collect();
        expected.sort();
        assert_eq!(messages, expected);
        for p in &procs {
            p.join().unwrap();
        }
    }
}

// CPython: TestWait.test_wait_timeout (5 s there, 500 ms here).
#[test]
fn wait_test_wait_timeout() {
    isolated!(wait_test_wait_timeout);
    let (a, b) = Pipe::new().unwrap();
    let t = Instant::now();
    assert!(
        connection::wait(&[&a, &b], Some(Duration::from_millis(500)))
            .unwrap()
            .is_empty()
    );
    assert!(t.elapsed() >= Duration::from_millis(490));
    b.send(()).unwrap();
    assert_eq!(
        connection::wait(&[&a, &b], Some(Duration::from_secs(20))).unwrap(),
        [0]
    );
}

// CPython: TestWait.test_wait_integer (connections and a process sentinel together; 1 s instead
// of 3 s).
#[test]
fn wait_test_wait_integer() {
    isolated!(wait_test_wait_integer);
    let sem = Semaphore::new(0).unwrap();
    let s = sem.clone();
    let (a, b) = Pipe::new().unwrap();
    let p = start(move || {
        s.release().unwrap();
        std::thread::sleep(Duration::from_secs(1));
    });
    let sentinel = p.sentinel().unwrap();
    assert!(sem.acquire_timeout(Duration::from_secs(20)).unwrap());
    let t = Instant::now();
    let res = connection::wait(&[&a, &sentinel, &b], Some(Duration::from_secs(21))).unwrap();
    assert_eq!(res, [1]);
    assert!(t.elapsed() > Duration::from_millis(500) && t.elapsed() < Duration::from_secs(3));
    a.send(()).unwrap();
    let t = Instant::now();
    assert_eq!(
        connection::wait(&[&a, &sentinel, &b], Some(Duration::from_secs(20))).unwrap(),
        [1, 2]
    );
    assert!(t.elapsed() < Duration::from_millis(400));
    b.send(()).unwrap();
    assert_eq!(
        connection::wait(&[&a, &sentinel, &b], Some(Duration::from_secs(20))).unwrap(),
        [0, 1, 2]
    );
    p.join().unwrap();
}
