//! What a `Process` child inherits of its parent's descriptors. Python's fork children inherit them
//! all; this crate's standard is "no leaked descriptor": a child keeps what it can use (stdio, what
//! the program opened itself, the `Pipe`s and `Queue`s it may use), not the parent's pool pipes and
//! payload memfds, its siblings' output pipes and pidfds, or the read ends of its own output pipes.

#[path = "process_support/mod.rs"]
mod process_support;

use std::time::Duration;

use multiprocessing::{Manager, Pipe, Pool, Process, Queue};
use process_support::{isolate, open_fds};

fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn cubes(n: u64) -> u64 {
    n.pow(3)
}

/// "fd -> target" without the fd number.
fn target(line: &str) -> &str {
    line.split_once(" -> ").map_or(line, |(_, t)| t)
}

fn number(line: &str) -> i32 {
    line.split_once(" -> ")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(-1)
}

/// The child lists its descriptors while its parent holds: a pool that moved big payloads (so it
/// keeps spare memfds), a second pool (captured by the child's closure), a manager it has talked
/// to, a running sibling, a Pipe and a Queue. It holds nothing of the crate's but stdio, the Pipe and the Queue; the numbers it
/// released point at /dev/null, so the captured pool's copy, dropped in the child, closes only
/// those (a Pipe the child opened before is not hit). The parent's pools still work after.
#[test]
fn a_process_child_keeps_only_what_it_can_use() {
    if let Some(out) = isolate("a_process_child_keeps_only_what_it_can_use") {
        out.assert_success();
        assert!(out.stdout.contains("child fds checked"), "{}", out.stdout);
        return;
    }
    let before = open_fds();
    let (here, there) = Pipe::new().unwrap();
    let queue = Queue::<u32>::new().unwrap();
    let user: Vec<String> = open_fds()
        .into_iter()
        .filter(|l| !before.contains(l) && !target(l).starts_with("/proc/"))
        .collect();
    assert_eq!(user.len(), 4, "a Pipe and a Queue: {user:#?}");

    let pool = Pool::new(2).unwrap();
    let big = pool.map(echo, vec![vec![7u8; 2 << 20]; 4]).unwrap();
    assert_eq!(big.len(), 4);
    let captured = Pool::new(1).unwrap();
    let manager = Manager::new().unwrap();
    let shared = manager.dict::<String, u32>().unwrap();
    shared.insert(&"seen".to_string(), &1).unwrap(); // this process's connection to the manager
    let mut sibling = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    sibling.start().unwrap();
    let parent = open_fds();
    for kind in ["/memfd:", "anon_inode:[pidfd]"] {
        assert!(
            parent.iter().any(|l| target(l).starts_with(kind)),
            "the parent holds {kind}: {parent:#?}"
        );
    }

    let child_queue = queue.clone();
    let mut child = Process::new(move || {
        let fds = open_fds();
        // The manager's proxy works: the child opens its own connection.
        assert_eq!(shared.get(&"seen".to_string()).unwrap(), Some(1));
        // A Pipe opened in the child, then the captured pool's copy dropped: its descriptors were
        // released to /dev/null, not closed, so dropping it closes none of the new Pipe's.
        let (a, b) = Pipe::new().unwrap();
        drop(captured);
        a.send(5u32).unwrap();
        let through: u32 = b.recv().unwrap();
        there.send((fds, through)).unwrap();
        child_queue.put(&1).unwrap();
    });
    child.start().unwrap();
    let (child_fds, through): (Vec<String>, u32) = here.recv().unwrap();
    assert_eq!(queue.get().unwrap(), 1);
    assert_eq!(child.join().unwrap(), 0);
    assert_eq!(
        through, 5,
        "a Pipe opened in the child works after the pool copy's drop"
    );

    let mut kept = Vec::new();
    let mut released = 0;
    for line in &child_fds {
        let t = target(line);
        if number(line) <= 2 || before.contains(line) || user.contains(line) {
            continue; // stdio, the harness's, the Pipe and the Queue
        }
        if t.starts_with("/proc/") && t.ends_with("/fd") {
            continue; // the listing itself
        }
        if t == "/dev/null" {
            released += 1;
            continue;
        }
        kept.push(line.clone());
    }
    assert!(
        kept.is_empty(),
        "the child kept descriptors it cannot use: {kept:#?}\nparent: {parent:#?}\nchild: {child_fds:#?}"
    );
    // Two pools: 3 worker ends each for 3 workers, the first pool's spare memfds, the manager link.
    assert!(released >= 11, "released {released}: {child_fds:#?}");

    // The parent's descriptors are untouched by what the child did with its copies.
    assert_eq!(pool.map(cubes, 0..4).unwrap(), [0, 1, 8, 27]);
    assert_eq!(
        pool.map(echo, vec![vec![1u8; 2 << 20]; 2]).unwrap().len(),
        2
    );
    sibling.kill().unwrap();
    assert_eq!(sibling.join().unwrap(), -9);
    println!("child fds checked");
}
