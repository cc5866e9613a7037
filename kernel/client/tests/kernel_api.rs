//! The installed kernel, through the client: one cell per primitive of issue 13 (Event,
//! Semaphore, BoundedSemaphore, RLock, Condition, Barrier, Lock::locked, Array/RawArray/RawValue,
//! SharedMemory, concurrent futures (submit, as_completed, map, wait, cancel, shutdown), Manager
//! (dict, list, value, queue, lock), Queue maxsize/JoinableQueue/SimpleQueue, one-way Pipe with
//! connection::wait and sentinels, Pool starmap_async, callback and error_callback). Each cell's children print; the check is that
//! their lines land in that cell, that nothing is left running after it (no child of the runtime,
//! no shared-memory watcher, nothing in /dev/shm), and that the next cell shows only its own
//! output. One kernel is shared by these checks.

mod common;

use std::time::Duration;

use common::{describe, run_ok, runtime_pid, start_kernel, Checks};
use kernel_client::{procs, KernelClient};

/// Runs `cell`, checks that every line of `expected` is in its stdout, and that afterwards no
/// process of the runtime's tree is running and the next cell's output is its own.
fn cell_runs_clean(kernel: &mut KernelClient, cell: &str, expected: &[&str]) {
    let runtime = runtime_pid(kernel);
    let outcome = run_ok(kernel, cell);
    for line in expected {
        assert!(
            outcome.stdout.lines().any(|l| l == *line),
            "missing line {line:?} in the cell's stdout:\n{}\nstderr:\n{}",
            outcome.stdout,
            outcome.stderr
        );
    }
    let left = procs::wait_until_none(Duration::from_secs(5), || {
        procs::descendants(runtime)
            .into_iter()
            .filter(|p| !p.is_zombie())
            .collect()
    });
    assert!(
        left.is_empty(),
        "still running after the cell:\n{}",
        describe(&left)
    );
    let next = run_ok(kernel, "println!(\"next cell\");");
    assert_eq!(
        next.stdout, "next cell\n",
        "output leaked into the next cell"
    );
}

#[test]
fn each_new_primitive_works_in_a_cell_and_leaves_nothing_running() {
    let mut kernel = start_kernel("api");
    let mut checks = Checks::default();

    checks.check(
        "Event, Semaphore, BoundedSemaphore, Lock::locked, RLock",
        || {
            cell_runs_clean(
                &mut kernel,
                r#"{
let go = Event::new()?;
let slots = Semaphore::new(1)?;
let lock = Lock::new()?;
let rlock = RLock::new()?;
let mut children = Vec::new();
for i in 0..3 {
    let (go, slots, rlock) = (go.clone(), slots.clone(), rlock.clone());
    let mut p = Process::new(move || {
        go.wait().unwrap();
        slots.with(|| println!("child {i} has the slot")).unwrap();
        let _a = rlock.acquire().unwrap();
        let _b = rlock.acquire().unwrap();
        println!("child {i} holds the rlock twice");
    });
    p.start()?;
    children.push(p);
}
go.set()?;
for p in &children { p.join()?; }
let g = lock.acquire()?;
println!("locked {}", lock.locked());
drop(g);
println!("locked {}", lock.locked());
let bounded = BoundedSemaphore::new(1)?;
let child_bounded = bounded.clone();
let mut p = Process::new(move || {
    child_bounded.acquire().unwrap();
    println!("child took the bounded unit, value {}", child_bounded.value().unwrap());
    child_bounded.release().unwrap();
});
p.start()?;
p.join()?;
match bounded.release() {
    Err(Error::ReleasedTooOften { bound }) => println!("released too often (bound {bound})"),
    other => println!("unexpected: {other:?}"),
}
}"#,
                &[
                    "child 0 has the slot",
                    "child 2 holds the rlock twice",
                    "locked true",
                    "locked false",
                    "child took the bounded unit, value 0",
                    "released too often (bound 1)",
                ],
            )
        },
    );

    checks.check("Condition and Barrier", || {
        cell_runs_clean(
            &mut kernel,
            r#"{
let cond = Condition::new()?;
let ready = Value::new(false)?;
let barrier = Barrier::new(3)?;
let mut children = Vec::new();
for i in 0..2 {
    let (c, r, b) = (cond.clone(), ready.clone(), barrier.clone());
    let mut p = Process::new(move || {
        let mut g = c.acquire().unwrap();
        g.wait_for(|| r.get()).unwrap();
        drop(g);
        println!("child {i} saw ready");
        let n = b.wait().unwrap();
        println!("child {i} passed the barrier ({n})");
    });
    p.start()?;
    children.push(p);
}
{
    let g = cond.acquire()?;
    ready.set(true);
    g.notify_all()?;
}
barrier.wait()?;
for p in &children { p.join()?; }
println!("broken {}", barrier.broken()?);
}"#,
            &["child 0 saw ready", "child 1 saw ready", "broken false"],
        )
    });

    checks.check("Array, RawArray, RawValue", || {
        cell_runs_clean(
            &mut kernel,
            r#"{
let squares = Array::filled(4, 0u64)?;
let raw = RawArray::filled(4, 0i32)?;
let flag = RawValue::new(false)?;
let mut children = Vec::new();
for i in 0..4 {
    let (s, r, f) = (squares.clone(), raw.clone(), flag.clone());
    let mut p = Process::new(move || {
        s.set(i, (i * i) as u64).unwrap();
        r.set(i, -(i as i32)).unwrap();
        f.set(true);
        println!("child {i} wrote");
    });
    p.start()?;
    children.push(p);
}
for p in &children { p.join()?; }
println!("{:?} {:?} {}", squares.to_vec(), raw.to_vec(), flag.get());
}"#,
            &["child 3 wrote", "[0, 1, 4, 9] [0, -1, -2, -3] true"],
        )
    });

    checks.check(
        "SharedMemory: attach by name, unlink, nothing left in /dev/shm",
        || {
            let outcome_name = "kernel_api_shm_block";
            cell_runs_clean(
                &mut kernel,
                &format!(
                    r#"{{
use multiprocessing::shared_memory::SharedMemory;
let shm = SharedMemory::create_named("{outcome_name}", 64)?;
let name = shm.name().to_owned();
let mut p = Process::new(move || {{
    let other = SharedMemory::attach(&name).unwrap();
    other.write(0, b"howdy").unwrap();
    println!("child wrote to {{}}", other.name());
}});
p.start()?;
p.join()?;
println!("{{}}", String::from_utf8_lossy(&shm.read(0, 5)?));
shm.unlink()?;
}}"#
                ),
                &["child wrote to kernel_api_shm_block", "howdy"],
            );
            std::thread::sleep(Duration::from_millis(200));
            assert!(!std::path::Path::new(&format!("/dev/shm/{outcome_name}")).exists());
        },
    );

    checks.check(
        "concurrent futures: submit, as_completed, map, shutdown",
        || {
            cell_runs_clean(
                &mut kernel,
                r#"use multiprocessing::futures::{as_completed, ProcessPoolExecutor};
fn cube(x: u64) -> u64 { println!("worker cubes {x}"); x * x * x }
{
let total = ProcessPoolExecutor::with(2, |ex| {
    let futs: Vec<_> = (1..=3).map(|x| ex.submit(cube, x)).collect::<Result<_, _>>()?;
    let mut sum = 0;
    for f in as_completed(&futs, None) { sum += f?.result()?; }
    let mapped: Vec<u64> = ex.map(cube, 4..=5)?.collect::<Result<_, _>>()?;
    Ok(sum + mapped.iter().sum::<u64>())
})?;
println!("total {total}");
}"#,
                &["worker cubes 1", "worker cubes 5", "total 225"],
            )
        },
    );

    checks.check(
        "concurrent futures: wait FIRST_COMPLETED / ALL_COMPLETED, cancel, shutdown(cancel_futures)",
        || {
            cell_runs_clean(
                &mut kernel,
                r#"use multiprocessing::futures::{wait, ProcessPoolExecutor, ReturnWhen};
fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); println!("napped {ms} ms"); ms }
{
ProcessPoolExecutor::with(2, |ex| {
    let fast = ex.submit(nap, 10)?;
    let slow = ex.submit(nap, 1500)?;
    let w = wait(&[fast, slow], None, ReturnWhen::FirstCompleted)?;
    println!("first completed: {} done, {} not done", w.done.len(), w.not_done.len());
    Ok(())
})?;
// One worker: two calls go to the pool (max_workers + 1), the other two wait in the executor.
let ex = ProcessPoolExecutor::new(1)?;
let futs: Vec<_> = [10, 300, 1000, 1000].into_iter().map(|ms| ex.submit(nap, ms)).collect::<Result<_, _>>()?;
println!("cancel the last, still queued: {}", futs[3].cancel());
ex.shutdown(true, true)?;
println!("after shutdown: done {} {}, cancelled {} {}", futs[0].done(), futs[1].done(), futs[2].cancelled(), futs[3].cancelled());
let all = wait(&futs, None, ReturnWhen::AllCompleted)?;
println!("all completed: {} done, {} not done", all.done.len(), all.not_done.len());
}"#,
                &[
                    "napped 10 ms",
                    "first completed: 1 done, 1 not done",
                    "napped 1500 ms",
                    "cancel the last, still queued: true",
                    "napped 300 ms",
                    "after shutdown: done true true, cancelled true true",
                    "all completed: 4 done, 0 not done",
                ],
            )
        },
    );

    checks.check(
        "Manager: dict, list, value, queue, lock through proxies",
        || {
            cell_runs_clean(
                &mut kernel,
                r#"{
use multiprocessing::managers::Manager;
Manager::with(|m| {
    let d = m.dict::<String, u32>()?;
    let l = m.list::<u32>()?;
    let q = m.queue::<String>()?;
    let lock = m.lock()?;
    let total = m.value(0u32)?;
    let mut children = Vec::new();
    for i in 0..3 {
        let (d, l, q, lock, total) = (d.clone(), l.clone(), q.clone(), lock.clone(), total.clone());
        let mut p = Process::new(move || {
            lock.with(|| {
                println!("child {i} holds the managed lock");
                total.set(&(total.get().unwrap() + i)).unwrap();
            }).unwrap();
            d.insert(&format!("k{i}"), &i).unwrap();
            l.push(&i).unwrap();
            q.put(&format!("hello from {i}")).unwrap();
        });
        p.start()?;
        children.push(p);
    }
    for _ in 0..3 { println!("{}", q.get()?); }
    for p in &children { p.join()?; }
    println!("dict has {} keys, list has {} items, value is {}", d.len()?, l.len()?, total.get()?);
    Ok(())
})?;
}"#,
                &[
                    "child 1 holds the managed lock",
                    "hello from 2",
                    "dict has 3 keys, list has 3 items, value is 3",
                ],
            )
        },
    );

    checks.check("Queue maxsize, JoinableQueue, SimpleQueue", || {
        cell_runs_clean(
            &mut kernel,
            r#"{
let q = Queue::<u32>::with_maxsize(1)?;
q.put(&1)?;
println!("full {} {:?}", q.full(), q.put_nowait(&2).is_err());
let jobs = JoinableQueue::<Option<u32>>::new()?;
let worker_jobs = jobs.clone();
let mut worker = Process::new(move || {
    while let Some(n) = worker_jobs.get().unwrap() {
        println!("job {n} done");
        worker_jobs.task_done().unwrap();
    }
    worker_jobs.task_done().unwrap();
});
worker.start()?;
for n in 0..3 { jobs.put(&Some(n))?; }
jobs.put(&None)?;
jobs.join()?;
worker.join()?;
let simple = SimpleQueue::new()?;
simple.put(&"simple".to_owned())?;
println!("{}", simple.get()?);
}"#,
            &["full true true", "job 0 done", "job 2 done", "simple"],
        )
    });

    checks.check(
        "one-way Pipe, send_bytes, connection::wait, sentinel, close",
        || {
            cell_runs_clean(
                &mut kernel,
                r#"{
let (reader, writer) = Pipe::one_way()?;
let mut p = Process::new(move || {
    println!("child sends");
    writer.send_bytes(b"bytes").unwrap();
});
p.start()?;
let sentinel = p.sentinel()?;
let ready = multiprocessing::connection::wait(&[&reader], None)?;
println!("ready {ready:?} {}", String::from_utf8_lossy(&reader.recv_bytes()?));
multiprocessing::connection::wait(&[&sentinel], None)?;
p.join()?;
p.close()?;
println!("closed");
}"#,
                &["child sends", "ready [0] bytes", "closed"],
            )
        },
    );

    checks.check("Pool starmap_async and callbacks run in the notebook", || {
        cell_runs_clean(
            &mut kernel,
            r#"fn mul(a: u64, b: u64) -> u64 { a * b }
fn square(x: u64) -> u64 { x * x }
fn fails(x: u64) -> u64 { panic!("no {x}") }
{
let pool = Pool::new(2)?;
let me = std::process::id();
let r = pool.starmap_async(mul, [(2, 3), (4, 5)])?;
println!("starmap {:?}", r.get()?);
for i in 1..=2u64 {
    pool.apply_async(square, i)?.callback(move |v| println!("callback {v} in notebook {}", std::process::id() == me));
}
let failed = pool.apply_async(fails, 7)?.error_callback(|e| println!("error callback: panicked {}", matches!(e, Error::TaskPanicked { .. })));
println!("get after the error callback: {}", failed.get().is_err());
pool.close();
pool.join()?;
}"#,
            &[
                "starmap [6, 20]",
                "callback 1 in notebook true",
                "callback 4 in notebook true",
                "error callback: panicked true",
                "get after the error callback: true",
            ],
        )
    });

    checks.finish();
}
