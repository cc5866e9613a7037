//! `multiprocessing::futures` (Python's `concurrent.futures` with processes): CPython's
//! `Lib/test/test_concurrent_futures/` cases translated (each named in a comment), and where we
//! differ on purpose (a killed worker fails only its own future). Each body runs in a fresh copy of
//! this binary (see `process_support`).

mod process_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use multiprocessing::futures::{as_completed, wait, Future, ProcessPoolExecutor, ReturnWhen};
use multiprocessing::Error;
use process_support::{child_pids, isolated};

fn mul((x, y): (i64, i64)) -> i64 {
    x * y
}

fn pow((x, y): (u64, u32)) -> u64 {
    x.pow(y)
}

/// Sleeps `ms`, returns it (CPython's `time.sleep` tasks).
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// CPython's `sleep_and_raise` / `divmod(x, 0)`: fails after `ms`.
fn nap_and_fail(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    panic!("this is an exception")
}

/// CPython's SUCCESSFUL_FUTURE, EXCEPTION_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, built on a
/// one-worker executor kept busy: done, failed, cancelled.
fn finished_futures(ex: &ProcessPoolExecutor) -> (Future<u64>, Future<u64>, Future<u64>) {
    let ok = ex.submit(nap, 0).unwrap();
    ok.result().unwrap();
    let failed = ex.submit(nap_and_fail, 0).unwrap();
    assert!(failed.exception().unwrap().is_some());
    // Fill the pool (max_workers + 1 handed over) so that the next one stays queued: cancellable.
    let busy: Vec<_> = (0..ex.workers().len() + 1)
        .map(|_| ex.submit(nap, 200).unwrap())
        .collect();
    let cancelled = ex.submit(nap, 0).unwrap();
    assert!(cancelled.cancel());
    for b in busy {
        b.result().unwrap();
    }
    (ok, failed, cancelled)
}

// CPython: ExecutorTest.test_submit.
#[test]
fn executor_test_submit() {
    isolated!(executor_test_submit);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    assert_eq!(ex.submit(pow, (2, 8)).unwrap().result().unwrap(), 256);
}

// CPython: ExecutorTest.test_map.
#[test]
fn executor_test_map() {
    isolated!(executor_test_map);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let got: Vec<u64> = ex
        .map(pow, (0..10).map(|i| (i, i as u32)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: Vec<u64> = (0..10u64).map(|i| i.pow(i as u32)).collect();
    assert_eq!(got, want);
}

fn divmod((a, b): (i32, i32)) -> (i32, i32) {
    (a / b, a % b)
}

// CPython: ExecutorTest.test_map_exception (the error comes in its place; Python raises there).
#[test]
fn executor_test_map_exception() {
    isolated!(executor_test_map_exception);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let mut it = ex.map(divmod, [(1, 2), (1, 3), (1, 0), (1, 5)]).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), (0, 1));
    assert_eq!(it.next().unwrap().unwrap(), (0, 1));
    assert!(matches!(
        it.next().unwrap(),
        Err(Error::TaskPanicked { .. })
    ));
}

// CPython: FutureTests.test_result_with_timeout / test_exception_with_timeout.
#[test]
fn future_test_result_with_timeout() {
    isolated!(future_test_result_with_timeout);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let f = ex.submit(nap, 500).unwrap();
    let t = Instant::now();
    assert!(matches!(
        f.result_timeout(Duration::from_millis(50)),
        Err(Error::Timeout { .. })
    ));
    assert!(t.elapsed() < Duration::from_millis(400));
    assert!(!f.done());
    assert!(f.running());
    assert_eq!(f.result().unwrap(), 500);
    assert!(f.exception().unwrap().is_none());
}

// CPython: FutureTests.test_cancel, test_cancelled, test_done, test_running, test_result_with_cancel.
#[test]
fn future_test_cancel() {
    isolated!(future_test_cancel);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let first = ex.submit(nap, 300).unwrap();
    let second = ex.submit(nap, 10).unwrap();
    let third = ex.submit(nap, 10).unwrap();
    assert!(first.running());
    assert!(!first.cancel()); // running: cannot be cancelled
    assert!(third.cancel()); // pending
    assert!(third.cancel()); // again: still true, as Python
    assert!(third.cancelled() && third.done() && !third.running());
    assert!(matches!(third.result(), Err(Error::Cancelled)));
    assert!(matches!(third.exception().unwrap(), Some(Error::Cancelled)));
    assert_eq!(first.result().unwrap(), 300);
    assert_eq!(second.result().unwrap(), 10);
    assert!(!first.cancel() && !first.cancelled());
}

// CPython: FutureTests.test_done_callback_with_result, _with_exception, _with_cancel,
// _already_successful.
#[test]
fn future_test_done_callbacks() {
    isolated!(future_test_done_callbacks);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let busy = ex.submit(nap, 200).unwrap();
    let ok = ex.submit(nap, 5).unwrap();
    ok.add_done_callback(move |f| s1.borrow_mut().push(format!("ok {}", f.result().unwrap())));
    let bad = ex.submit(nap_and_fail, 5).unwrap();
    bad.add_done_callback(move |f| {
        s2.borrow_mut()
            .push(format!("bad {}", f.exception().unwrap().is_some()))
    });
    bad.cancel(); // handed to the pool already (max_workers + 1): not cancelled
    let cancelled = ex.submit(nap, 5).unwrap();
    cancelled
        .add_done_callback(move |f| s3.borrow_mut().push(format!("cancelled {}", f.cancelled())));
    assert!(cancelled.cancel());
    busy.result().unwrap();
    ok.result().unwrap();
    let _ = bad.result();
    ok.add_done_callback(move |_| s4.borrow_mut().push("already".into()));
    let mut seen = seen.borrow().clone();
    seen.sort();
    assert_eq!(seen, ["already", "bad true", "cancelled true", "ok 5"]);
}

// CPython: WaitTests.test_20369 (the same future twice).
#[test]
fn wait_test_20369() {
    isolated!(wait_test_20369);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let f = ex.submit(nap, 300).unwrap();
    let w = wait(&[f.clone(), f.clone()], None, ReturnWhen::AllCompleted).unwrap();
    assert_eq!(w.done.len(), 1);
    assert!(w.not_done.is_empty());
}

// CPython: WaitTests.test_first_completed.
#[test]
fn wait_test_first_completed() {
    isolated!(wait_test_first_completed);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let f1 = ex.submit(nap, 0).unwrap();
    let f2 = ex.submit(nap, 1500).unwrap();
    let w = wait(&[f1.clone(), f2.clone()], None, ReturnWhen::FirstCompleted).unwrap();
    assert_eq!(w.done.len(), 1);
    assert_eq!(w.done[0].result().unwrap(), 0);
    assert_eq!(w.not_done.len(), 1);
    assert!(!w.not_done[0].done());
    assert!(f1.done() && !f2.done());
}

// CPython: WaitTests.test_first_completed_some_already_completed.
#[test]
fn wait_test_first_completed_some_already_completed() {
    isolated!(wait_test_first_completed_some_already_completed);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let (ok, _failed, cancelled) = finished_futures(&ex);
    let f1 = ex.submit(nap, 1500).unwrap();
    let t = Instant::now();
    let w = wait(&[cancelled, ok, f1], None, ReturnWhen::FirstCompleted).unwrap();
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!(w.done.len(), 2);
    assert_eq!(w.not_done.len(), 1);
}

// CPython: WaitTests.test_first_exception.
#[test]
fn wait_test_first_exception() {
    isolated!(wait_test_first_exception);
    let ex = ProcessPoolExecutor::new(3).unwrap();
    let f1 = ex.submit(nap, 0).unwrap();
    let f2 = ex.submit(nap_and_fail, 300).unwrap();
    let f3 = ex.submit(nap, 3000).unwrap();
    let w = wait(&[f1, f2, f3], None, ReturnWhen::FirstException).unwrap();
    assert_eq!(w.done.len(), 2);
    assert_eq!(w.not_done.len(), 1);
    assert!(!w.not_done[0].done());
}

// CPython: WaitTests.test_first_exception_one_already_failed.
#[test]
fn wait_test_first_exception_one_already_failed() {
    isolated!(wait_test_first_exception_one_already_failed);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let (_ok, failed, _cancelled) = finished_futures(&ex);
    let f1 = ex.submit(nap, 2000).unwrap();
    let t = Instant::now();
    let w = wait(&[failed, f1], None, ReturnWhen::FirstException).unwrap();
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!((w.done.len(), w.not_done.len()), (1, 1));
}

// CPython: WaitTests.test_all_completed.
#[test]
fn wait_test_all_completed() {
    isolated!(wait_test_all_completed);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let (ok, failed, cancelled) = finished_futures(&ex);
    let f1 = ex.submit(nap_and_fail, 0).unwrap();
    let f2 = ex.submit(nap, 10).unwrap();
    let w = wait(
        &[ok, cancelled, failed, f1, f2],
        None,
        ReturnWhen::AllCompleted,
    )
    .unwrap();
    assert_eq!(w.done.len(), 5);
    assert!(w.not_done.is_empty());
}

// CPython: WaitTests.test_timeout.
#[test]
fn wait_test_timeout() {
    isolated!(wait_test_timeout);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let (ok, failed, cancelled) = finished_futures(&ex);
    let f = ex.submit(nap, 500).unwrap();
    let t = Instant::now();
    let w = wait(
        &[cancelled, failed, ok, f],
        Some(Duration::from_millis(50)),
        ReturnWhen::AllCompleted,
    )
    .unwrap();
    assert!(t.elapsed() < Duration::from_millis(400));
    assert_eq!((w.done.len(), w.not_done.len()), (3, 1));
}

// CPython: AsCompletedTests.test_no_timeout.
#[test]
fn as_completed_test_no_timeout() {
    isolated!(as_completed_test_no_timeout);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let (ok, failed, cancelled) = finished_futures(&ex);
    let f1 = ex.submit(nap, 20).unwrap();
    let f2 = ex.submit(nap, 10).unwrap();
    let all = [cancelled, failed, ok, f1, f2];
    let completed: Vec<_> = as_completed(&all, None).collect::<Result<_, _>>().unwrap();
    assert_eq!(completed.len(), 5);
    assert!(completed.iter().all(|f| f.done()));
}

// CPython: AsCompletedTests.test_future_times_out (timeouts 0 and 100 ms).
#[test]
fn as_completed_test_future_times_out() {
    isolated!(as_completed_test_future_times_out);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let (ok, failed, cancelled) = finished_futures(&ex);
    for timeout in [Duration::ZERO, Duration::from_millis(100)] {
        let slow = ex.submit(nap, 1000).unwrap();
        let all = [cancelled.clone(), failed.clone(), ok.clone(), slow];
        let mut completed = 0;
        let mut timed_out = false;
        for f in as_completed(&all, Some(timeout)) {
            match f {
                Ok(_) => completed += 1,
                Err(Error::Timeout { .. }) => timed_out = true,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(completed, 3);
        assert!(timed_out);
    }
}

// CPython: AsCompletedTests.test_duplicate_futures.
#[test]
fn as_completed_test_duplicate_futures() {
    isolated!(as_completed_test_duplicate_futures);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    let f = ex.submit(nap, 200).unwrap();
    let completed = as_completed(&[f.clone(), f.clone(), f], None).count();
    assert_eq!(completed, 1);
}

// CPython: ProcessPoolExecutorTest.test_killed_child -- differs on purpose: Python breaks the whole
// executor (BrokenProcessPool for every future and every later submit); here only the killed
// worker's future fails, with WorkerDied, and the executor goes on.
#[test]
fn process_pool_test_killed_child() {
    isolated!(process_pool_test_killed_child);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let f1 = ex.submit(nap, 3000).unwrap();
    let f2 = ex.submit(nap, 300).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Kill the worker running f1: the first worker got the first task.
    let (_, pid) = ex.workers()[0].clone();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(matches!(f1.result(), Err(Error::WorkerDied { .. })));
    assert_eq!(f2.result().unwrap(), 300);
    assert_eq!(ex.submit(pow, (2, 8)).unwrap().result().unwrap(), 256);
}

// CPython: ExecutorShutdownTest.test_run_after_shutdown.
#[test]
fn shutdown_test_run_after_shutdown() {
    isolated!(shutdown_test_run_after_shutdown);
    let ex = ProcessPoolExecutor::new(1).unwrap();
    ex.shutdown(true, false).unwrap();
    assert!(matches!(
        ex.submit(pow, (2, 5)),
        Err(Error::PoolNotRunning { .. })
    ));
}

// CPython: ExecutorShutdownTest.test_cancel_futures.
#[test]
fn shutdown_test_cancel_futures() {
    isolated!(shutdown_test_cancel_futures);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let fs: Vec<_> = (0..50).map(|_| ex.submit(nap, 100).unwrap()).collect();
    ex.shutdown(true, true).unwrap();
    let cancelled = fs.iter().filter(|f| f.cancelled()).count();
    assert!(cancelled > 20, "{cancelled}");
    let others: Vec<_> = fs.iter().filter(|f| !f.cancelled()).collect();
    assert!(!others.is_empty());
    for f in others {
        assert!(f.done());
        assert!(f.exception().unwrap().is_none());
    }
}

// CPython: ProcessPoolShutdownTest.test_processes_terminate and test_context_manager_shutdown:
// after shutdown(wait=True) every worker is gone.
#[test]
fn shutdown_test_processes_terminate() {
    isolated!(shutdown_test_processes_terminate);
    let got = ProcessPoolExecutor::with(3, |ex| {
        assert_eq!(child_pids().len(), 3);
        ex.submit(mul, (6, 7))?.result()
    })
    .unwrap();
    assert_eq!(got, 42);
    assert!(child_pids().is_empty());
}

// CPython: ProcessPoolShutdownTest.test_shutdown_no_wait: returns at once; the futures still
// complete (moved along when waited on).
#[test]
fn shutdown_test_shutdown_no_wait() {
    isolated!(shutdown_test_shutdown_no_wait);
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let fs: Vec<_> = (0..4).map(|_| ex.submit(nap, 200).unwrap()).collect();
    let t = Instant::now();
    ex.shutdown(false, false).unwrap();
    assert!(t.elapsed() < Duration::from_millis(150));
    for f in &fs {
        assert_eq!(f.result().unwrap(), 200);
    }
}
