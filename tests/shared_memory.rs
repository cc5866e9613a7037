//! `shared_memory::SharedMemory`: CPython's `_TestSharedMemory` cases translated (each named in a
//! comment), plus the clean-up guarantees: nothing left in /dev/shm once the creator is gone, even
//! killed. Each body runs in a fresh copy of this binary (see `process_support`).

mod process_support;

use std::path::Path;
use std::time::{Duration, Instant};

use multiprocessing::shared_memory::SharedMemory;
use multiprocessing::{Error, Queue};
use process_support::{isolated, start};

fn gone_soon(name: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if !Path::new(&format!("/dev/shm/{name}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

// CPython: _TestSharedMemory.test_shared_memory_basics.
#[test]
fn shared_memory_basics() {
    isolated!(shared_memory_basics);
    let name = unique("test01_tsmb");
    let sms = SharedMemory::create_named(&name, 512).unwrap();
    assert_eq!(sms.name(), name);
    assert!(sms.size() >= 512);
    let repr = format!("{sms:?}");
    assert!(repr.contains(&name) && repr.contains("512"));
    sms.write(0, &[42]).unwrap();
    assert_eq!(sms.read(0, 1).unwrap(), [42]);
    let also = SharedMemory::attach(&name).unwrap();
    assert_eq!(also.read(0, 1).unwrap(), [42]);
    also.close();
    // A leading '/' names the same block (POSIX style).
    let slash = SharedMemory::attach(&format!("/{name}")).unwrap();
    assert_eq!(slash.size(), 512);
    // Creating it again: FileExistsError.
    assert!(matches!(
        SharedMemory::create_named(&name, 512),
        Err(Error::SharedMemoryExists { .. })
    ));
    sms.unlink().unwrap();
    // Attaching after unlink: FileNotFoundError; unlinking twice too.
    assert!(matches!(
        SharedMemory::attach(&name),
        Err(Error::SharedMemoryNotFound { .. })
    ));
    assert!(matches!(
        sms.unlink(),
        Err(Error::SharedMemoryNotFound { .. })
    ));
    // The mapping stays usable after unlink.
    sms.write(1, &[7]).unwrap();
    assert_eq!(slash.read(1, 1).unwrap(), [7]);
}

// CPython: _TestSharedMemory.test_invalid_shared_memory_creation (size 0; negative sizes do not
// type-check in Rust) and bad names.
#[test]
fn invalid_shared_memory_creation() {
    isolated!(invalid_shared_memory_creation);
    assert!(matches!(
        SharedMemory::create(0),
        Err(Error::InvalidArgument { name: "size", .. })
    ));
    for bad in ["", "a/b", "x\0y"] {
        assert!(matches!(
            SharedMemory::create_named(bad, 1),
            Err(Error::InvalidArgument { .. })
        ));
    }
    let sms = SharedMemory::create(4).unwrap();
    assert!(sms.read(3, 2).is_err());
    assert!(sms.write(4, &[1]).is_err());
    sms.unlink().unwrap();
}

// CPython: _TestSharedMemory.test_shared_memory_across_processes (by name, and by a copy of the
// handle in a forked child, Python's pickled SharedMemory).
#[test]
fn shared_memory_across_processes() {
    isolated!(shared_memory_across_processes);
    let sms = SharedMemory::create(512).unwrap();
    let name = sms.name().to_owned();
    let p = start(move || {
        SharedMemory::attach(&name)
            .unwrap()
            .write(0, b"howdy")
            .unwrap()
    });
    p.join().unwrap();
    assert_eq!(sms.read(0, 5).unwrap(), b"howdy");
    let copy = sms.clone();
    let p = start(move || copy.write(0, b"HELLO").unwrap());
    p.join().unwrap();
    assert_eq!(sms.read(0, 5).unwrap(), b"HELLO");
    sms.unlink().unwrap();
}

// CPython: _TestSharedMemory.test_shared_memory_cleaned_after_process_termination (SIGKILL, where
// CPython sends SIGTERM).
#[test]
fn shared_memory_cleaned_after_process_termination() {
    isolated!(shared_memory_cleaned_after_process_termination);
    let names = Queue::<String>::new().unwrap();
    let tx = names.clone();
    let p = start(move || {
        let sm = SharedMemory::create(10).unwrap();
        tx.put(&sm.name().to_owned()).unwrap();
        std::thread::sleep(Duration::from_secs(100));
    });
    let name = names.get().unwrap();
    assert!(Path::new(&format!("/dev/shm/{name}")).exists());
    p.kill().unwrap();
    p.join().unwrap();
    assert!(
        gone_soon(&name),
        "/dev/shm/{name} leaked after its creator was killed"
    );
}

// The name lives until unlink() or the end of the creating process, as in Python: dropping every
// handle keeps it; the creator exiting normally removes it.
#[test]
fn shared_memory_name_lives_until_creator_ends() {
    isolated!(shared_memory_name_lives_until_creator_ends);
    let names = Queue::<String>::new().unwrap();
    let tx = names.clone();
    let go = Queue::<()>::new().unwrap();
    let rx = go.clone();
    let p = start(move || {
        let sm = SharedMemory::create(10).unwrap();
        sm.write(0, &[5]).unwrap();
        tx.put(&sm.name().to_owned()).unwrap();
        drop(sm); // Python's close(): the block stays
        rx.get().unwrap();
    });
    let name = names.get().unwrap();
    assert_eq!(
        SharedMemory::attach(&name).unwrap().read(0, 1).unwrap(),
        [5]
    );
    go.put(&()).unwrap();
    p.join().unwrap();
    assert!(gone_soon(&name));
}

// The watcher of an unlinked block never removes a newer block that reused its name.
#[test]
fn shared_memory_watcher_spares_a_reused_name() {
    isolated!(shared_memory_watcher_spares_a_reused_name);
    let name = unique("reused");
    let go = Queue::<()>::new().unwrap();
    let rx = go.clone();
    let created = Queue::<()>::new().unwrap();
    let tx = created.clone();
    let n = name.clone();
    let p = start(move || {
        let _sm = SharedMemory::create_named(&n, 8).unwrap();
        tx.put(&()).unwrap();
        rx.get().unwrap(); // keeps its watcher waiting
    });
    created.get().unwrap();
    SharedMemory::attach(&name).unwrap().unlink().unwrap();
    let newer = SharedMemory::create_named(&name, 8).unwrap();
    go.put(&()).unwrap();
    p.join().unwrap(); // the old watcher wakes up now
    std::thread::sleep(Duration::from_millis(300));
    assert!(Path::new(&format!("/dev/shm/{name}")).exists());
    newer.unlink().unwrap();
}
