//! Big payloads (1 MiB and more per chunk) travel through shared memory (a memfd passed on a side
//! socket) instead of the pipes: the values must arrive intact both ways, errors must still name the
//! task, and no descriptor may be left behind. Each body runs in a fresh copy of this binary.

mod process_support;

use multiprocessing::{Error, Pool};
use process_support::{isolate, open_fds};

fn echo(b: Vec<u8>) -> Vec<u8> {
    b
}

fn reversed(mut v: Vec<f64>) -> Vec<f64> {
    v.reverse();
    v
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

fn fails_on_seven(b: Vec<u8>) -> usize {
    assert!(b[0] != 7, "seven");
    b.len()
}

#[test]
fn big_payloads_arrive_intact_both_ways_and_leave_no_descriptor() {
    if let Some(out) = isolate("big_payloads_arrive_intact_both_ways_and_leave_no_descriptor") {
        out.assert_success();
        return;
    }
    let before = open_fds();
    let pool = Pool::new(2).unwrap();
    let bufs: Vec<Vec<u8>> = (0..24u8).map(|i| vec![i; (3 << 20) + i as usize]).collect();
    assert_eq!(pool.map(echo, bufs.clone()).unwrap(), bufs);
    let vecs: Vec<Vec<f64>> = (0..8)
        .map(|i| (0..300_000).map(|j| (i * j) as f64).collect())
        .collect();
    let back = pool.map(reversed, vecs.clone()).unwrap();
    for (v, b) in vecs.iter().zip(&back) {
        assert!(v.iter().rev().eq(b.iter()));
    }
    let words: Vec<String> = (0..300_000).map(|i| format!("w{i}")).collect();
    let upper = pool.map(shout, words).unwrap();
    assert_eq!(upper[299_999], "W299999");
    match pool.map(fails_on_seven, bufs.clone()) {
        Err(Error::TaskPanicked { index, .. }) => assert_eq!(index, 7),
        other => panic!("expected TaskPanicked, got {other:?}"),
    }
    assert_eq!(
        pool.apply(echo, vec![9u8; 5 << 20]).unwrap(),
        vec![9u8; 5 << 20]
    );
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert_eq!(open_fds(), before, "no memfd, socket or pipe left open");
}

/// When (microseconds since the Unix epoch) a task started: one clock for every process.
fn started_at(b: Vec<u8>) -> (u128, usize) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    (now, b.len())
}

/// A worker makes the socket that carries big payloads only when the first one comes; the parent
/// must not leave `map_async`'s big chunks waiting for it until the next call that waits: the
/// workers start them while the parent is busy elsewhere, as Python's task thread lets them.
#[test]
fn big_chunks_of_map_async_start_before_anyone_waits() {
    if let Some(out) = isolate("big_chunks_of_map_async_start_before_anyone_waits") {
        out.assert_success();
        return;
    }
    let pool = Pool::new(2).unwrap();
    let bufs: Vec<Vec<u8>> = (0..2u8).map(|i| vec![i; 2 << 20]).collect();
    let job = pool.chunked(1).map_async(started_at, bufs).unwrap();
    // Busy elsewhere, not in any call of the pool.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let waited_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let out = job.get().unwrap();
    assert_eq!(out.len(), 2);
    for (started, len) in out {
        assert_eq!(len, 2 << 20);
        assert!(
            started < waited_at,
            "a big chunk started {} ms after the parent began waiting",
            (started - waited_at) / 1000
        );
    }
}

/// An input that counts how often one is dropped in this process.
#[derive(serde::Serialize, serde::Deserialize)]
struct Counted(Vec<u8>);

static DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn slow_len(c: Counted) -> usize {
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.0.len()
}

/// `map` owns its inputs: those of a chunk already sent to a worker are freed while the rest
/// still wait, not all at the end (a map over hundreds of MiB does not hold its inputs and its
/// results at once).
#[test]
fn inputs_of_sent_chunks_are_freed_while_the_map_runs() {
    if let Some(out) = isolate("inputs_of_sent_chunks_are_freed_while_the_map_runs") {
        out.assert_success();
        return;
    }
    use std::sync::atomic::Ordering::SeqCst;
    let pool = Pool::new(1).unwrap();
    let inputs: Vec<Counted> = (0..4).map(|i| Counted(vec![i; 1 << 20])).collect();
    let job = pool.chunked(1).map_async(slow_len, inputs).unwrap();
    // The worker holds at most two chunks of 300 ms tasks: the first two are out, the other two
    // wait in the pool.
    let early = DROPPED.load(SeqCst);
    assert!(
        (1..=2).contains(&early),
        "{early} of 4 inputs freed while the first tasks run (expected the sent chunks' but the last)"
    );
    assert_eq!(job.get().unwrap(), vec![1 << 20; 4]);
    assert_eq!(DROPPED.load(SeqCst), 4, "every input freed once");
}

/// Workers replaced after each task (`maxtasksperchild=1`) each make their own side socket for
/// their big payload, in and out, while earlier workers' sockets are gone; workers killed by a
/// task mid-chunk leave the pool usable for big payloads; nothing is left open.
#[test]
fn big_payloads_through_replaced_and_killed_workers() {
    if let Some(out) = isolate("big_payloads_through_replaced_and_killed_workers") {
        out.assert_success();
        return;
    }
    let before = open_fds();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let bufs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; (1 << 20) + i as usize]).collect();
    assert_eq!(pool.chunked(1).map(echo, bufs.clone()).unwrap(), bufs);
    drop(pool);

    let pool = Pool::new(2).unwrap();
    let died = pool.chunked(1).map(dies_on_three, bufs.clone());
    assert!(
        matches!(died, Err(Error::WorkerDied { .. })),
        "expected WorkerDied, got {died:?}"
    );
    assert_eq!(pool.chunked(1).map(echo, bufs.clone()).unwrap(), bufs);
    drop(pool);
    assert_eq!(open_fds(), before, "no memfd, socket or pipe left open");
}

fn dies_on_three(b: Vec<u8>) -> Vec<u8> {
    if b[0] == 3 {
        std::process::abort();
    }
    b
}
