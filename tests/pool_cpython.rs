//! CPython's `_TestPool`, `_TestPoolWorkerLifetime` and `_TestPoolWorkerErrors`
//! (Lib/test/_test_multiprocessing.py) translated, each test named in a `// CPython:` comment.
//! `sqr`, `mul`, `identity` and `raise_large_valuerror` are CPython's helpers of the same names.
//! Where Python raises an exception from the input iterable, Rust's nearest is an iterator that
//! panics: the panic reaches the caller, which the tests catch. Timing assertions that CPython
//! turns off (`CHECK_TIMINGS = False`) are kept only as generous upper bounds that catch a hang.
//! Each body runs in a fresh copy of this binary (see `process_support`).

mod process_support;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use multiprocessing::{Error, Pool, PoolState};
use process_support::{isolate, isolated};
use serde::{Deserialize, Serialize};

/// CPython's `TIMEOUT1`, `TIMEOUT2`.
const TIMEOUT1: Duration = Duration::from_millis(100);
const TIMEOUT2: Duration = Duration::from_millis(100);
/// CPython's `support.SHORT_TIMEOUT` (30 s): long enough that a test never sees it end.
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// An upper bound that only a hang exceeds on a busy 2-core machine.
const HANG: Duration = Duration::from_secs(20);

fn sqr(x: i64) -> i64 {
    x * x
}

/// CPython's `sqr(x, wait)`: sleeps `wait` first.
fn sqr_wait((x, wait): (i64, Duration)) -> i64 {
    std::thread::sleep(wait);
    x * x
}

fn mul(x: i64, y: i64) -> i64 {
    x * y
}

fn sleep_secs(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

/// CPython's `raise_large_valuerror(wait)`: sleeps, then fails with a 1 MiB message.
fn raise_large_valuerror(wait: u64) {
    std::thread::sleep(Duration::from_secs(wait));
    panic!("ValueError: {}", "x".repeat(1024 * 1024));
}

/// CPython's `_test_traceback`: `raise RuntimeError(123) # some comment`.
fn test_traceback_target(_: ()) {
    panic!("RuntimeError(123)"); // some comment
}

/// CPython's `exception_throwing_generator(total, when)`: yields `0..total`, but "raises"
/// (panics with SayWhenError) when it reaches `when` (`None`: at once, CPython's `when == -1`).
fn exception_throwing_generator(total: i64, when: Option<i64>) -> impl Iterator<Item = i64> {
    if when.is_none() {
        panic!("SayWhenError: Somebody said when");
    }
    (0..total).inspect(move |&i| {
        if Some(i) == when {
            panic!("SayWhenError: Somebody said when");
        }
    })
}

/// Runs `f`, expecting it to panic with CPython's `SayWhenError`; hides the expected panic's report.
fn assert_says_when<R>(f: impl FnOnce() -> R) {
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let payload = match result {
        Ok(_) => panic!("expected SayWhenError"),
        Err(payload) => payload,
    };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.starts_with("SayWhenError"), "{message}");
}

/// CPython's class-wide `cls.pool = cls.Pool(4)`.
fn pool4() -> Pool {
    Pool::new(4).unwrap()
}

// CPython: _TestPool.test_apply (keyword arguments do not exist in Rust: one form).
#[test]
fn pool_test_apply() {
    isolated!(pool_test_apply);
    let pool = pool4();
    assert_eq!(pool.apply(sqr, 5).unwrap(), sqr(5));
    assert_eq!(pool.apply(sqr, 3).unwrap(), sqr(3));
}

// CPython: _TestPool.test_map.
#[test]
fn pool_test_map() {
    isolated!(pool_test_map);
    let pool = pool4();
    assert_eq!(
        pool.map(sqr, 0..10).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.chunked(20).map(sqr, 0..100).unwrap(),
        (0..100).map(sqr).collect::<Vec<_>>()
    );
}

// CPython: _TestPool.test_starmap.
#[test]
fn pool_test_starmap() {
    isolated!(pool_test_starmap);
    let pool = pool4();
    let tuples: Vec<(i64, i64)> = (0..10).zip((0..10).rev()).collect();
    let want: Vec<i64> = tuples.iter().map(|&(a, b)| mul(a, b)).collect();
    assert_eq!(pool.starmap(mul, tuples).unwrap(), want);
    let tuples: Vec<(i64, i64)> = (0..100).zip((0..100).rev()).collect();
    let want: Vec<i64> = tuples.iter().map(|&(a, b)| mul(a, b)).collect();
    assert_eq!(pool.chunked(20).starmap(mul, tuples).unwrap(), want);
}

// CPython: _TestPool.test_map_async.
#[test]
fn pool_test_map_async() {
    isolated!(pool_test_map_async);
    let pool = pool4();
    assert_eq!(
        pool.map_async(sqr, 0..10).unwrap().get().unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

/// A value whose serialization fails (CPython's `A` with a `__reduce__` that raises).
#[derive(Debug, Clone, Deserialize)]
struct Unpicklable;

impl Serialize for Unpicklable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot pickle"))
    }
}

fn take_unpicklable(_: Unpicklable) -> i64 {
    0
}

// CPython: _TestPool.test_map_unplicklable (failure to serialize is an error, not a hang).
#[test]
fn pool_test_map_unpicklable() {
    isolated!(pool_test_map_unpicklable);
    let pool = pool4();
    let r = pool.map(take_unpicklable, vec![Unpicklable; 10]);
    assert!(
        matches!(
            &r,
            Err(Error::Codec {
                direction: "serialize",
                what: "task arguments",
                ..
            })
        ),
        "{r:?}"
    );
    // The pool is still usable.
    assert_eq!(
        pool.map(sqr, 0..10).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

// CPython: _TestPool.test_map_chunksize (an empty input with a chunksize does not stall).
#[test]
fn pool_test_map_chunksize() {
    isolated!(pool_test_map_chunksize);
    let pool = pool4();
    let r = pool.chunked(1).map_async(sqr, Vec::new()).unwrap();
    assert_eq!(r.get_timeout(TIMEOUT1).unwrap(), Vec::<i64>::new());
}

// CPython: _TestPool.test_map_handle_iterable_exception (the iterator panics instead of raising;
// the panic reaches the caller, and the pool works again after it).
#[test]
fn pool_test_map_handle_iterable_exception() {
    isolated!(pool_test_map_handle_iterable_exception);
    let pool = pool4();
    assert_says_when(|| {
        pool.chunked(1)
            .map(sqr, exception_throwing_generator(1, None))
    });
    // again, make sure it's reentrant
    assert_says_when(|| {
        pool.chunked(1)
            .map(sqr, exception_throwing_generator(1, None))
    });
    assert_says_when(|| {
        pool.chunked(1)
            .map(sqr, exception_throwing_generator(10, Some(3)))
    });
    assert_eq!(
        pool.map(sqr, 0..10).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

// CPython: _TestPool.test_async.
#[test]
fn pool_test_async() {
    isolated!(pool_test_async);
    let pool = pool4();
    let res = pool.apply_async(sqr_wait, (7, TIMEOUT1)).unwrap();
    let t = Instant::now();
    assert_eq!(res.get().unwrap(), 49);
    assert!(t.elapsed() < HANG);
}

// CPython: _TestPool.test_async_timeout.
#[test]
fn pool_test_async_timeout() {
    isolated!(pool_test_async_timeout);
    let p = Pool::new(3).unwrap();
    let res = p
        .apply_async(sqr_wait, (6, TIMEOUT2 + SHORT_TIMEOUT))
        .unwrap();
    let t = Instant::now();
    assert!(matches!(
        res.get_timeout(TIMEOUT2),
        Err(Error::Timeout { .. })
    ));
    let elapsed = t.elapsed();
    assert!(elapsed >= TIMEOUT2 && elapsed < HANG, "{elapsed:?}");
    // terminate() kills the worker that sleeps: the test does not wait SHORT_TIMEOUT.
    let t = Instant::now();
    p.terminate();
    p.join().unwrap();
    assert!(t.elapsed() < HANG);
}

// CPython: _TestPool.test_imap.
#[test]
fn pool_test_imap() {
    isolated!(pool_test_imap);
    let pool = pool4();
    let it = pool.imap(sqr, 0..10).unwrap();
    assert_eq!(
        it.collect::<Result<Vec<_>, _>>().unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );

    let mut it = pool.imap(sqr, 0..10).unwrap();
    for i in 0..10 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    assert!(it.next().is_none()); // StopIteration

    let mut it = pool.chunked(100).imap(sqr, 0..1000).unwrap();
    for i in 0..1000 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    assert!(it.next().is_none());
}

// CPython: _TestPool.test_imap_handle_iterable_exception (the iterator panics: the panic reaches
// the caller of `next()` after the results before it, and the pool is usable again).
#[test]
fn pool_test_imap_handle_iterable_exception() {
    isolated!(pool_test_imap_handle_iterable_exception);
    let pool = pool4();
    // SayWhenError seen at the very first of the iterable (Rust: when the generator is made)
    assert_says_when(|| {
        pool.chunked(1)
            .imap(sqr, exception_throwing_generator(1, None))
    });
    // again, make sure it's reentrant
    assert_says_when(|| {
        pool.chunked(1)
            .imap(sqr, exception_throwing_generator(1, None))
    });

    let mut it = pool
        .chunked(1)
        .imap(sqr, exception_throwing_generator(10, Some(3)))
        .unwrap();
    for i in 0..3 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    assert_says_when(|| it.next());
    drop(it);

    // SayWhenError seen at start of problematic chunk's results
    let mut it = pool
        .chunked(2)
        .imap(sqr, exception_throwing_generator(20, Some(7)))
        .unwrap();
    for i in 0..6 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    assert_says_when(|| it.next());
    drop(it);
    let mut it = pool
        .chunked(4)
        .imap(sqr, exception_throwing_generator(20, Some(7)))
        .unwrap();
    for i in 0..4 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    assert_says_when(|| it.next());
    drop(it);
    assert_eq!(
        pool.map(sqr, 0..10).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

// CPython: _TestPool.test_imap_unordered.
#[test]
fn pool_test_imap_unordered() {
    isolated!(pool_test_imap_unordered);
    let pool = pool4();
    let mut got: Vec<i64> = pool
        .imap_unordered(sqr, 0..10)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    got.sort();
    assert_eq!(got, (0..10).map(sqr).collect::<Vec<_>>());
    let mut got: Vec<i64> = pool
        .chunked(100)
        .imap_unordered(sqr, 0..1000)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    got.sort();
    assert_eq!(got, (0..1000).map(sqr).collect::<Vec<_>>());
}

// CPython: _TestPool.test_imap_unordered_handle_iterable_exception.
#[test]
fn pool_test_imap_unordered_handle_iterable_exception() {
    isolated!(pool_test_imap_unordered_handle_iterable_exception);
    let pool = pool4();
    assert_says_when(|| {
        pool.chunked(1)
            .imap_unordered(sqr, exception_throwing_generator(1, None))
    });
    // again, make sure it's reentrant
    assert_says_when(|| {
        pool.chunked(1)
            .imap_unordered(sqr, exception_throwing_generator(1, None))
    });

    for (total, when, chunksize) in [(10, 3, 1), (20, 7, 2)] {
        let mut it = pool
            .chunked(chunksize)
            .imap_unordered(sqr, exception_throwing_generator(total, Some(when)))
            .unwrap();
        let mut expected_values: Vec<i64> = (0..total).map(sqr).collect();
        // imap_unordered makes it difficult to anticipate the SayWhenError
        assert_says_when(|| {
            for _ in 0..total {
                let value = it.next().unwrap().unwrap();
                let at = expected_values.iter().position(|&v| v == value);
                expected_values.remove(at.expect("an expected value"));
            }
        });
    }
    assert_eq!(
        pool.map(sqr, 0..10).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

// CPython: _TestPool.test_make_pool (`Pool(-1)` cannot be written: the count is a `usize`).
#[test]
fn pool_test_make_pool() {
    isolated!(pool_test_make_pool);
    assert!(matches!(Pool::new(0), Err(Error::ZeroProcesses)));
    let p = Pool::new(3).unwrap();
    assert_eq!(p.processes(), 3);
    assert_eq!(p.workers().len(), 3);
    p.close();
    p.join().unwrap();
}

// CPython: _TestPool.test_terminate.
#[test]
fn pool_test_terminate() {
    isolated!(pool_test_terminate);
    // Simulate slow tasks which take "forever" to complete (CPython: support.LONG_TIMEOUT)
    let p = Pool::new(3).unwrap();
    let result = p
        .chunked(1)
        .map_async(sleep_secs, vec![300; 10_000])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200)); // give some tasks a chance to start
    let t = Instant::now();
    p.terminate();
    p.join().unwrap();
    assert!(t.elapsed() < HANG);
    // The crate's documented answer for the unfinished result (Python's never becomes ready).
    assert!(matches!(
        result.get(),
        Err(Error::PoolNotRunning {
            state: PoolState::Terminated
        })
    ));
}

// CPython: _TestPool.test_empty_iterable.
#[test]
fn pool_test_empty_iterable() {
    isolated!(pool_test_empty_iterable);
    let p = Pool::new(1).unwrap();
    assert_eq!(p.map(sqr, Vec::new()).unwrap(), Vec::<i64>::new());
    assert_eq!(p.imap(sqr, Vec::new()).unwrap().count(), 0);
    assert_eq!(p.imap_unordered(sqr, Vec::new()).unwrap().count(), 0);
    assert_eq!(
        p.map_async(sqr, Vec::new()).unwrap().get().unwrap(),
        Vec::<i64>::new()
    );
    p.close();
    p.join().unwrap();
}

// CPython: _TestPool.test_context (`with Pool(2) as p` is `Pool::with`; the pool after the block
// is the same pool terminated, as `__exit__` leaves it).
#[test]
fn pool_test_context() {
    isolated!(pool_test_context);
    let l: Vec<i64> = (0..10).collect();
    let expected: Vec<i64> = l.iter().copied().map(sqr).collect();
    let got = Pool::with(2, |p| p.map_async(sqr, l.clone())?.get()).unwrap();
    assert_eq!(got, expected);

    let p = Pool::new(2).unwrap();
    assert_eq!(
        p.map_async(sqr, l.clone()).unwrap().get().unwrap(),
        expected
    );
    p.terminate(); // what `__exit__` does
    p.join().unwrap();
    assert!(matches!(
        p.map_async(sqr, l),
        Err(Error::PoolNotRunning {
            state: PoolState::Terminated
        })
    ));
}

// CPython: _TestPool.test_traceback, as far as it maps: the task's panic message reaches the
// caller (`TaskPanicked`), the worker's report on stderr names the line that panicked; and an
// error of the caller's own input iterator is the caller's own panic, not a task's error.
#[test]
fn pool_test_traceback() {
    if let Some(out) = isolate("pool_test_traceback") {
        out.assert_success();
        assert!(
            out.stderr.contains("RuntimeError(123)") && out.stderr.contains("pool_cpython.rs"),
            "the worker's report names the message and the file:\n{}",
            out.stderr
        );
        return;
    }
    let p = Pool::new(1).unwrap();
    let exc = p.apply(test_traceback_target, ()).unwrap_err();
    assert!(
        matches!(&exc, Error::TaskPanicked { index: 0, message, .. } if message.contains("RuntimeError(123)")),
        "{exc:?}"
    );
    assert!(exc.to_string().contains("RuntimeError(123)"), "{exc}");
    p.terminate();
    p.join().unwrap();

    let p = Pool::new(1).unwrap();
    assert_says_when(|| p.chunked(1).map(sqr, exception_throwing_generator(1, None)));
    p.terminate();
    p.join().unwrap();
}

// CPython: _TestPool.test_wrapped_exception.
#[test]
fn pool_test_wrapped_exception() {
    isolated!(pool_test_wrapped_exception);
    let r = Pool::with(1, |p| p.apply(test_traceback_target, ()));
    assert!(matches!(r, Err(Error::TaskPanicked { .. })), "{r:?}");
}

// CPython: _TestPool.test_map_no_failfast (a failed map leaves the other task to finish; close and
// join then wait for it instead of deadlocking on its large error).
#[test]
fn pool_test_map_no_failfast() {
    isolated!(pool_test_map_no_failfast);
    let t_start = Instant::now();
    let p = Pool::new(2).unwrap();
    let r = p.chunked(1).map(raise_large_valuerror, [0, 1]);
    assert!(
        matches!(&r, Err(Error::TaskPanicked { message, .. }) if message.starts_with("ValueError: xxx")),
        "{:?}",
        r.as_ref()
            .map_err(|e| e.to_string().chars().take(200).collect::<String>())
    );
    std::thread::sleep(Duration::from_millis(500));
    p.close();
    p.join().unwrap();
    // check that we indeed waited for all jobs
    let elapsed = t_start.elapsed();
    assert!(elapsed > Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < HANG, "{elapsed:?}");
}

/// CPython's `CountedObject`: counts the instances alive in this process.
static N_INSTANCES: AtomicIsize = AtomicIsize::new(0);

#[derive(Serialize)]
struct CountedObject;

impl CountedObject {
    fn new() -> Self {
        N_INSTANCES.fetch_add(1, Ordering::SeqCst);
        CountedObject
    }
}

impl<'de> Deserialize<'de> for CountedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d)?;
        Ok(CountedObject::new())
    }
}

impl Drop for CountedObject {
    fn drop(&mut self) {
        N_INSTANCES.fetch_sub(1, Ordering::SeqCst);
    }
}

fn identity(x: CountedObject) -> CountedObject {
    x
}

// CPython: _TestPool.test_release_task_refs (the pool keeps neither the arguments nor the copies
// it returned).
#[test]
fn pool_test_release_task_refs() {
    isolated!(pool_test_release_task_refs);
    let pool = pool4();
    let objs: Vec<CountedObject> = (0..10).map(|_| CountedObject::new()).collect();
    assert_eq!(N_INSTANCES.load(Ordering::SeqCst), 10);
    let back = pool.map(identity, objs).unwrap();
    assert_eq!(back.len(), 10);
    drop(back);
    assert_eq!(N_INSTANCES.load(Ordering::SeqCst), 0);
}

// CPython: _TestPool.test_enter (a pool that `with` terminated refuses to be used again).
#[test]
fn pool_test_enter() {
    isolated!(pool_test_enter);
    let pool = Pool::new(1).unwrap();
    pool.terminate(); // the end of `with pool:`
                      // pool is no longer running
    assert!(matches!(
        pool.apply(sqr, 1),
        Err(Error::PoolNotRunning {
            state: PoolState::Terminated
        })
    ));
    pool.join().unwrap();
}

/// CPython's `unpickleable_result()`: a result that cannot be sent back.
fn unpickleable_result(_: ()) -> Unpicklable {
    Unpicklable
}

// CPython: _TestPoolWorkerErrors.test_unpickleable_result (a result that fails to serialize is an
// error for get and error_callback, twenty times, and the pool keeps its workers).
#[test]
fn pool_worker_errors_test_unpickleable_result() {
    isolated!(pool_worker_errors_test_unpickleable_result);
    let p = Pool::new(2).unwrap();
    let workers = p.workers();
    // Make sure we don't lose pool processes because of encoding errors.
    for _ in 0..20 {
        let scratchpad: Rc<RefCell<Option<Error>>> = Rc::default();
        let sink = scratchpad.clone();
        let res = p
            .apply_async(unpickleable_result, ())
            .unwrap()
            .error_callback(move |e| *sink.borrow_mut() = Some(e.clone()));
        let r = res.get();
        assert!(
            matches!(
                &r,
                Err(Error::Codec {
                    direction: "serialize",
                    what: "task results",
                    ..
                })
            ),
            "{r:?}"
        );
        let wrapped = scratchpad.borrow_mut().take();
        assert!(
            matches!(
                &wrapped,
                Some(Error::Codec {
                    direction: "serialize",
                    what: "task results",
                    ..
                })
            ),
            "{wrapped:?}"
        );
    }
    assert_eq!(p.workers(), workers);
    p.close();
    p.join().unwrap();
}

// CPython: _TestPoolWorkerLifetime.test_pool_worker_lifetime.
#[test]
fn pool_worker_lifetime_test_pool_worker_lifetime() {
    isolated!(pool_worker_lifetime_test_pool_worker_lifetime);
    let p = Pool::builder()
        .processes(3)
        .maxtasksperchild(10)
        .build()
        .unwrap();
    assert_eq!(p.workers().len(), 3);
    let origworkerpids: Vec<i32> = p.workers().iter().map(|w| w.1).collect();
    // Run many tasks so each worker gets replaced (hopefully)
    let results: Vec<_> = (0..100).map(|i| p.apply_async(sqr, i).unwrap()).collect();
    // Fetch the results and verify we got the right answers, also ensuring all the tasks have
    // completed.
    for (j, res) in results.iter().enumerate() {
        assert_eq!(res.get().unwrap(), sqr(j as i64));
    }
    let finalworkerpids: Vec<i32> = p.workers().iter().map(|w| w.1).collect();
    // All pids should be assigned.  See issue #7805.
    assert_eq!(finalworkerpids.len(), 3);
    assert!(origworkerpids
        .iter()
        .chain(&finalworkerpids)
        .all(|&pid| pid > 0));
    // Finally, check that the worker pids have changed
    let (mut a, mut b) = (origworkerpids, finalworkerpids);
    a.sort();
    b.sort();
    assert_ne!(a, b);
    p.close();
    p.join().unwrap();
}

// CPython: _TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close.
#[test]
fn pool_worker_lifetime_test_pool_worker_lifetime_early_close() {
    isolated!(pool_worker_lifetime_test_pool_worker_lifetime_early_close);
    // Issue #10332: closing a pool whose workers have limited lifetimes before all the tasks
    // completed would make join() hang.
    let p = Pool::builder()
        .processes(3)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let results: Vec<_> = (0..6)
        .map(|i| {
            p.apply_async(sqr_wait, (i, Duration::from_millis(300)))
                .unwrap()
        })
        .collect();
    p.close();
    p.join().unwrap();
    // check the results
    for (j, res) in results.iter().enumerate() {
        assert_eq!(res.get().unwrap(), sqr(j as i64));
    }
}

// CPython: _TestPoolWorkerLifetime.test_pool_maxtasksperchild_invalid (0 is the one invalid value
// a `usize` can hold; -1, 0.5 and "12" do not compile).
#[test]
fn pool_worker_lifetime_test_pool_maxtasksperchild_invalid() {
    isolated!(pool_worker_lifetime_test_pool_maxtasksperchild_invalid);
    let r = Pool::builder().processes(3).maxtasksperchild(0).build();
    assert!(matches!(
        r,
        Err(Error::InvalidArgument {
            name: "maxtasksperchild",
            ..
        })
    ));
}

// CPython: _TestPoolWorkerLifetime.test_worker_finalization_via_atexit_handler_of_multiprocessing
// (a pool still alive when the program ends: the program exits 0 and leaves no worker behind).
#[test]
fn pool_worker_lifetime_test_worker_finalization_via_atexit_handler_of_multiprocessing() {
    const NAME: &str =
        "pool_worker_lifetime_test_worker_finalization_via_atexit_handler_of_multiprocessing";
    if let Some(out) = isolate(NAME) {
        out.assert_success();
        let pids: Vec<i32> = out
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("worker "))
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 1, "{}", out.stdout);
        let deadline = Instant::now() + HANG;
        while !pids.iter().all(|&pid| process_support::is_dead(pid)) {
            assert!(Instant::now() < deadline, "a worker outlived its program");
            std::thread::sleep(Duration::from_millis(10));
        }
        return;
    }
    fn float(x: i64) -> f64 {
        x as f64
    }
    // CPython keeps the pool in a global (`problem.pool`): never dropped here.
    let pool: &'static Pool = Box::leak(Box::new(Pool::new(1).unwrap()));
    assert_eq!(pool.map(float, 0..10).unwrap().len(), 10);
    for (_, pid) in pool.workers() {
        println!("worker {pid}");
    }
}

// Not CPython's: the input iterator of an `imap` panics while another call drives the pool (the
// pool takes inputs for every running call whenever one waits): that call is not hurt, and the
// panic reaches the `imap`'s own `next()`, after its earlier results; then the iteration is over.
#[test]
fn pool_imap_input_panic_during_another_call() {
    isolated!(pool_imap_input_panic_during_another_call);
    let pool = Pool::new(2).unwrap();
    let mut it = pool
        .chunked(1)
        .imap(sqr, exception_throwing_generator(50, Some(20)))
        .unwrap();
    // Drives the pool: the imap's inputs are taken meanwhile, as workers have room.
    assert_eq!(
        pool.map(sqr_wait, (0..4).map(|i| (i, Duration::from_millis(50))))
            .unwrap(),
        [0, 1, 4, 9]
    );
    for i in 0..20 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    assert_says_when(|| it.next());
    assert!(it.next().is_none());
    assert_eq!(
        pool.map(sqr, 0..10).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

fn nested_pool(_: ()) -> String {
    match Pool::new(1) {
        Err(Error::DaemonChildren { name }) => format!("refused in {name}"),
        other => format!("{other:?}"),
    }
}

// Not a CPython test, CPython's rule: a pool worker is daemonic, and a daemonic process may not
// have children, so `Pool(1)` inside a task fails (AssertionError: daemonic processes are not
// allowed to have children), as `Process::start` there does.
#[test]
fn pool_in_a_pool_worker_is_refused() {
    isolated!(pool_in_a_pool_worker_is_refused);
    let pool = Pool::new(1).unwrap();
    let name = pool.workers()[0].0.clone();
    assert_eq!(
        pool.apply(nested_pool, ()).unwrap(),
        format!("refused in {name}")
    );
    let mut daemonic = multiprocessing::Process::builder()
        .daemon(true)
        .target(|| assert!(matches!(Pool::new(1), Err(Error::DaemonChildren { .. }))))
        .unwrap();
    daemonic.start().unwrap();
    assert_eq!(daemonic.join().unwrap(), 0);
}

/// The tasks (threads count) that run as `uid`: what RLIMIT_NPROC limits.
fn tasks_of_user(uid: u32) -> u64 {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(tasks) = std::fs::read_dir(entry.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            let real = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|u| u.parse::<u32>().ok());
            n += u64::from(real == Some(uid));
        }
    }
    n
}

// CPython: TestPoolNotLeakOnFailure.test_release_unused_processes (when a worker cannot be
// created, the pool creation fails and the workers already created are not left running). Here
// fork itself fails, with RLIMIT_NPROC set a few processes above what the user runs now (as root
// the limit is not enforced, so the inner run drops to user `nobody`).
#[test]
fn pool_not_leak_on_failure_test_release_unused_processes() {
    isolated!(pool_not_leak_on_failure_test_release_unused_processes);
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if nix::unistd::geteuid().is_root() {
        nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).unwrap();
        nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).unwrap();
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NPROC).unwrap();
    let running = tasks_of_user(nix::unistd::getuid().as_raw());
    setrlimit(Resource::RLIMIT_NPROC, running + 3, hard).unwrap();
    // Fifty workers: the fourth fork or so fails, whatever else this user starts or ends meanwhile.
    let r = Pool::new(50);
    setrlimit(Resource::RLIMIT_NPROC, soft, hard).unwrap();
    assert!(
        matches!(&r, Err(Error::Fork { source, .. }) if *source == nix::errno::Errno::EAGAIN),
        "{r:?}"
    );
    assert_eq!(process_support::child_pids(), Vec::<i32>::new());
    assert!(multiprocessing::active_children().is_empty());
    // Once the limit allows, a pool starts.
    let pool = Pool::new(3).unwrap();
    assert_eq!(
        pool.map(sqr, 0..10).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

// CPython: TestInitializers.test_pool_initializer (the initializer runs once in the pool's one
// worker; CPython counts in a manager's Namespace, here a shared Value). `initializer=1` (not
// callable) does not compile.
#[test]
fn initializers_test_pool_initializer() {
    isolated!(initializers_test_pool_initializer);
    let ns = multiprocessing::Value::new(0i32).unwrap();
    let counter = ns.clone();
    let p = Pool::builder()
        .processes(1)
        .initializer(move || counter.update(|test| *test += 1))
        .build()
        .unwrap();
    p.close();
    p.join().unwrap();
    assert_eq!(ns.get(), 1);
}

/// CPython's `_this_sub_process(q)`: a non-blocking get on an empty queue.
fn this_sub_process(q: &multiprocessing::Queue<i32>) {
    assert!(matches!(q.get_nowait(), Err(Error::Empty { .. })));
}

// CPython: TestStdinBadfiledescriptor.test_queue_in_process (a process starts a daemonic process
// that uses a Queue; the child's stdin is /dev/null, as CPython's).
#[test]
fn stdin_badfiledescriptor_test_queue_in_process() {
    isolated!(stdin_badfiledescriptor_test_queue_in_process);
    let mut proc = multiprocessing::Process::new(|| {
        let queue: multiprocessing::Queue<i32> = multiprocessing::Queue::new().unwrap();
        let mut sub_proc = multiprocessing::Process::builder()
            .daemon(true)
            .target(move || this_sub_process(&queue))
            .unwrap();
        sub_proc.start().unwrap();
        assert_eq!(sub_proc.join().unwrap(), 0);
    });
    proc.start().unwrap();
    assert_eq!(proc.join().unwrap(), 0);
}

fn afunc(x: i64) -> i64 {
    x * x
}

// CPython: TestStdinBadfiledescriptor.test_pool_in_process (a Pool inside a Process).
#[test]
fn stdin_badfiledescriptor_test_pool_in_process() {
    isolated!(stdin_badfiledescriptor_test_pool_in_process);
    let mut p = multiprocessing::Process::new(|| {
        let pool = Pool::new(4).unwrap();
        let x = pool.map(afunc, [1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(x, [1, 4, 9, 16, 25, 36, 49]);
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
}
