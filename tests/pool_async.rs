//! Pool::starmap_async and the `callback` / `error_callback` of async calls: CPython's `_TestPool`
//! and `_TestPoolWorkerErrors` cases translated (each named in a comment). Callbacks run in this
//! process, inside whichever pool call waits (the pool has no thread). Each body runs in a fresh
//! copy of this binary (see `process_support`).

mod process_support;

use std::cell::RefCell;
use std::rc::Rc;

use multiprocessing::{Error, Pool};
use process_support::isolated;

fn mul(x: i64, y: i64) -> i64 {
    x * y
}

fn parse(s: String) -> i64 {
    s.parse().expect("invalid literal for int()")
}

fn raising(_: ()) -> u8 {
    panic!("KeyError: key")
}

fn square(x: u64) -> u64 {
    x * x
}

// CPython: _TestPool.test_starmap_async.
#[test]
fn pool_test_starmap_async() {
    isolated!(pool_test_starmap_async);
    let pool = Pool::new(2).unwrap();
    let tuples: Vec<(i64, i64)> = (0..100).zip((0..100).rev()).collect();
    let want: Vec<i64> = tuples.iter().map(|&(a, b)| a * b).collect();
    assert_eq!(
        pool.starmap_async(mul, tuples).unwrap().get().unwrap(),
        want
    );
}

/// What a callback saw.
#[derive(Debug)]
enum Seen {
    Ok(Vec<i64>),
    Err(Error),
}

// CPython: _TestPool.test_map_async_callbacks.
#[test]
fn pool_test_map_async_callbacks() {
    isolated!(pool_test_map_async_callbacks);
    let pool = Pool::new(2).unwrap();
    let call_args: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let (ok, err) = (call_args.clone(), call_args.clone());
    pool.map_async(parse, ["1".to_owned()])
        .unwrap()
        .callback(move |r| ok.borrow_mut().push(Seen::Ok(r.clone())))
        .error_callback(move |e| err.borrow_mut().push(Seen::Err(e.clone())))
        .wait()
        .unwrap();
    assert_eq!(call_args.borrow().len(), 1);
    assert!(matches!(&call_args.borrow()[0], Seen::Ok(v) if v == &[1]));
    let (ok, err) = (call_args.clone(), call_args.clone());
    pool.map_async(parse, ["a".to_owned()])
        .unwrap()
        .callback(move |r| ok.borrow_mut().push(Seen::Ok(r.clone())))
        .error_callback(move |e| err.borrow_mut().push(Seen::Err(e.clone())))
        .wait()
        .unwrap();
    assert_eq!(call_args.borrow().len(), 2);
    assert!(matches!(
        &call_args.borrow()[1],
        Seen::Err(Error::TaskPanicked { .. })
    ));
}

// CPython: _TestPoolWorkerErrors.test_async_error_callback.
#[test]
fn pool_test_async_error_callback() {
    isolated!(pool_test_async_error_callback);
    let p = Pool::new(2).unwrap();
    let scratchpad: Rc<RefCell<Option<Error>>> = Rc::default();
    let pad = scratchpad.clone();
    let res = p
        .apply_async(raising, ())
        .unwrap()
        .error_callback(move |e| *pad.borrow_mut() = Some(e.clone()));
    assert!(matches!(res.get(), Err(Error::TaskPanicked { .. })));
    assert!(matches!(
        *scratchpad.borrow(),
        Some(Error::TaskPanicked { .. })
    ));
    p.close();
    p.join().unwrap();
}

// Python's usual pattern: fire-and-forget apply_async with a callback, then close + join. The
// callbacks run inside join (or any other waiting pool call), in this process, and may use the
// pool themselves.
#[test]
fn pool_callbacks_run_while_join_waits() {
    isolated!(pool_callbacks_run_while_join_waits);
    let pool = Rc::new(Pool::new(2).unwrap());
    let results: Rc<RefCell<Vec<u64>>> = Rc::default();
    for i in 0..10 {
        let sink = results.clone();
        let me = std::process::id();
        pool.apply_async(square, i).unwrap().callback(move |r| {
            assert_eq!(std::process::id(), me); // in the notebook's process
            sink.borrow_mut().push(*r);
        });
    }
    // A callback that uses the pool (Python's callbacks run in a thread and may too).
    let p2 = pool.clone();
    let chained = Rc::new(RefCell::new(None));
    let c2 = chained.clone();
    let r = pool.apply_async(square, 3).unwrap().callback(move |r| {
        *c2.borrow_mut() = Some(p2.apply(square, *r).unwrap());
    });
    r.wait().unwrap(); // the callback runs as wait releases the pool
    assert_eq!(*chained.borrow(), Some(81));
    pool.close();
    pool.join().unwrap();
    let mut got = results.borrow().clone();
    got.sort();
    assert_eq!(got, (0..10).map(|i| i * i).collect::<Vec<_>>());
    assert_eq!(*chained.borrow(), Some(81));
}

fn cube(x: u64) -> u64 {
    x * x * x
}

// Regression: the seed notebook's `Pool::with(4, |pool| { map; close; join })` hung about once in
// 20-100 runs: settling one exited worker reaped another one after the pool had looked at it, which
// then stayed listed with nothing left to poll. 300 rounds, each must finish.
#[test]
fn pool_close_join_never_hangs() {
    isolated!(pool_close_join_never_hangs);
    for _ in 0..300 {
        let out = Pool::with(4, |pool| {
            let out = pool.map(cube, vec![1, 2, 3, 4, 5])?;
            pool.close();
            pool.join()?;
            Ok(out)
        })
        .unwrap();
        assert_eq!(out, [1, 8, 27, 64, 125]);
    }
}
