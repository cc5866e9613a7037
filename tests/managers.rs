//! `managers::Manager` and its proxies: CPython's `_TestContainers` / manager cases translated
//! (each named in a comment), and where we differ on purpose (the manager dying gives every proxy
//! `ManagerDied`; a client dying with a managed lock frees it). Each body runs in a fresh copy of
//! this binary (see `process_support`).

mod process_support;

use std::time::{Duration, Instant};

use multiprocessing::managers::Manager;
use multiprocessing::{active_children, Error};
use process_support::{child_pids, isolated, start};

// CPython: _TestContainers.test_list (without slicing and nested proxies).
#[test]
fn containers_test_list() {
    isolated!(containers_test_list);
    let m = Manager::new().unwrap();
    let a = m.list::<i32>().unwrap();
    a.extend(&(0..10).collect::<Vec<_>>()).unwrap();
    assert_eq!(a.to_vec().unwrap(), (0..10).collect::<Vec<_>>());
    let b = m.list::<i32>().unwrap();
    assert!(b.to_vec().unwrap().is_empty());
    b.extend(&[0, 1, 2, 3, 4]).unwrap();
    assert_eq!(b.get(2).unwrap(), 2);
    assert!(matches!(b.get(10), Err(Error::InvalidArgument { .. })));
    b.set(0, &100).unwrap();
    assert_eq!(b.pop().unwrap(), Some(4));
    assert_eq!(b.to_vec().unwrap(), [100, 1, 2, 3]);
    assert_eq!(a.len().unwrap(), 10);
    m.shutdown().unwrap();
}

// CPython: _TestContainers.test_dict.
#[test]
fn containers_test_dict() {
    isolated!(containers_test_dict);
    let m = Manager::new().unwrap();
    let d = m.dict::<u32, char>().unwrap();
    let indices: Vec<u32> = (65..70).collect();
    for &i in &indices {
        d.insert(&i, &char::from_u32(i).unwrap()).unwrap();
    }
    let items = d.items().unwrap();
    assert_eq!(
        items,
        indices
            .iter()
            .map(|&i| (i, char::from_u32(i).unwrap()))
            .collect::<Vec<_>>()
    );
    assert_eq!(d.keys().unwrap(), indices);
    assert_eq!(d.values().unwrap(), ['A', 'B', 'C', 'D', 'E']);
    assert_eq!(d.remove(&66).unwrap(), Some('B'));
    assert_eq!(d.keys().unwrap(), [65, 67, 68, 69]); // insertion order kept
    d.insert(&66, &'b').unwrap();
    assert_eq!(d.keys().unwrap(), [65, 67, 68, 69, 66]);
    assert!(d.contains_key(&69).unwrap());
    d.clear().unwrap();
    assert!(d.is_empty().unwrap());
}

// The README-style use: children update a managed dict, list, value under a managed lock.
#[test]
fn containers_shared_between_processes() {
    isolated!(containers_shared_between_processes);
    Manager::with(|m| {
        let d = m.dict::<String, u32>()?;
        let l = m.list::<u32>()?;
        let v = m.value(0u32)?;
        let lock = m.lock()?;
        let mut ps = Vec::new();
        for i in 0..4 {
            let (d, l, v, lock) = (d.clone(), l.clone(), v.clone(), lock.clone());
            ps.push(start(move || {
                for _ in 0..25 {
                    lock.with(|| v.set(&(v.get().unwrap() + 1)).unwrap())
                        .unwrap();
                }
                d.insert(&format!("w{i}"), &i).unwrap();
                l.push(&i).unwrap();
            }));
        }
        for p in &ps {
            assert_eq!(p.join()?, 0);
        }
        assert_eq!(v.get()?, 100);
        assert_eq!(d.len()?, 4);
        let mut items = l.to_vec()?;
        items.sort();
        assert_eq!(items, [0, 1, 2, 3]);
        Ok(())
    })
    .unwrap();
}

// CPython: _TestQueue.test_get / test_timeout on a manager's Queue, and
// TestManagerExceptions.test_queue_get (get_nowait on empty: queue.Empty).
#[test]
fn manager_queue_get_and_timeout() {
    isolated!(manager_queue_get_and_timeout);
    let m = Manager::new().unwrap();
    let q = m.queue::<String>().unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::Empty { .. })));
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(Error::Empty { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(190));
    let tx = q.clone();
    let p = start(move || {
        std::thread::sleep(Duration::from_millis(100));
        tx.put(&"late".to_owned()).unwrap();
    });
    // A get that waits in the manager does not block other clients (the child's put).
    assert_eq!(q.get().unwrap(), "late");
    p.join().unwrap();
    assert_eq!(q.qsize().unwrap(), 0);
}

// Differs on purpose: the manager killed -> every proxy returns ManagerDied at once (no hang),
// including a get waiting in the manager.
#[test]
fn manager_killed_gives_every_proxy_an_error() {
    isolated!(manager_killed_gives_every_proxy_an_error);
    let m = Manager::new().unwrap();
    let q = m.queue::<u8>().unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    let pid = m.pid();
    let killer = start(move || {
        std::thread::sleep(Duration::from_millis(200));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    });
    let t = Instant::now();
    assert!(matches!(q.get(), Err(Error::ManagerDied { .. })));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(matches!(d.len(), Err(Error::ManagerDied { .. })));
    assert!(matches!(d.insert(&1, &1), Err(Error::ManagerDied { .. })));
    killer.join().unwrap();
    drop(m); // shutting down a dead manager is fine
    assert!(child_pids().is_empty());
}

// Differs on purpose: a client killed holding a managed Lock: the next acquire gets
// LockOwnerDied, then the lock is free (Python's stays held).
#[test]
fn manager_lock_holder_killed() {
    isolated!(manager_lock_holder_killed);
    let m = Manager::new().unwrap();
    let lock = m.lock().unwrap();
    let ready = m.queue::<()>().unwrap();
    let (l, r) = (lock.clone(), ready.clone());
    let p = start(move || {
        let _g = l.acquire().unwrap();
        r.put(&()).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    });
    ready.get().unwrap();
    assert!(lock.try_acquire().unwrap().is_none());
    p.kill().unwrap();
    p.join().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match lock.acquire_timeout(Duration::from_millis(100)) {
            Err(Error::LockOwnerDied { pid }) => {
                assert_eq!(pid, p.pid().unwrap());
                break;
            }
            Ok(None) if Instant::now() < end => continue,
            other => panic!("expected LockOwnerDied, got {other:?}"),
        }
    }
    let _g = lock.acquire().unwrap();
}

// CPython: _TestManagerRestart.test_rapid_restart (start, use, shut down, five times) and the
// manager's name; nothing left running.
#[test]
fn manager_rapid_restart() {
    isolated!(manager_rapid_restart);
    for i in 0..5 {
        let m = Manager::new().unwrap();
        let names: Vec<String> = active_children()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(names, [format!("SyncManager-{}", i + 1)]);
        let v = m.value(i).unwrap();
        assert_eq!(v.get().unwrap(), i);
        m.shutdown().unwrap();
        assert!(child_pids().is_empty());
    }
}
