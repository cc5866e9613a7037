//! Python's `concurrent.futures` with processes: [`ProcessPoolExecutor`], [`Future`], [`wait`] and
//! [`as_completed`], on this crate's [`Pool`].
//!
//! | Python | Rust |
//! |---|---|
//! | `with ProcessPoolExecutor(4) as ex: ...` | `ProcessPoolExecutor::with(4, \|ex\| ...)?` (shuts down, waiting, at the end) |
//! | `ex = ProcessPoolExecutor(max_workers=4)` | `let ex = ProcessPoolExecutor::new(4)?;` |
//! | `fut = ex.submit(f, x)` | `let fut = ex.submit(f, x)?;` (`f` a `fn`, `x` one argument: a tuple for several) |
//! | `fut.result()`, `fut.result(timeout=1)` | `fut.result()?`, `fut.result_timeout(Duration::from_secs(1))?` |
//! | `fut.done()`, `fut.running()`, `fut.cancelled()` | `fut.done()`, `fut.running()`, `fut.cancelled()` |
//! | `fut.cancel()` | `fut.cancel()` (`true` if it had not started) |
//! | `fut.exception()` | `fut.exception()?` (`Option<Error>`) |
//! | `fut.add_done_callback(fn)` | `fut.add_done_callback(\|f\| ...)` |
//! | `for f in as_completed(fs): ...` | `for f in as_completed(&fs, None) { let f = f?; ... }` |
//! | `done, not_done = wait(fs, return_when=FIRST_COMPLETED)` | `let w = wait(&fs, None, ReturnWhen::FirstCompleted)?;` (`w.done`, `w.not_done`) |
//! | `FIRST_EXCEPTION`, `ALL_COMPLETED` | `ReturnWhen::FirstException`, `ReturnWhen::AllCompleted` |
//! | `ex.map(f, xs)` | `ex.map(f, xs)?` (an iterator of `Result<R>`, in input order) |
//! | `ex.shutdown(wait=True, cancel_futures=False)` | `ex.shutdown(true, false)?` |
//! | `CancelledError`, `TimeoutError` | `Err(Error::Cancelled)`, `Err(Error::Timeout { .. })` |
//!
//! Differs from Python on purpose:
//! - A worker that dies (killed, crashed) fails only the future it was running, with
//!   [`Error::WorkerDied`]; the pool replaces the worker and the other futures go on. Python marks
//!   the whole executor broken (`BrokenProcessPool`) and fails every pending future.
//! - There is no background thread: futures make progress while one of this module's calls waits
//!   (`result`, `wait`, `as_completed`, `shutdown(true, ..)`, `done`, ...). Done-callbacks run in the
//!   notebook process, inside whichever of those calls saw the future finish.
//! - Up to `max_workers + 1` futures are handed to the pool at a time (as Python's call queue); the
//!   others wait in the executor and can be cancelled.
//! - Dropping the executor terminates its pool at once (Python's executor lives on while futures
//!   refer to it): a future not done by then answers `result()` with
//!   [`Error::PoolNotRunning`] (`PoolState::Terminated`). Shut down with `wait` first, or use
//!   [`ProcessPoolExecutor::with`], to let the calls finish.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, PoolState, Result};
use crate::pool::{wait_any, AsyncResult, JobRef, Pool};

/// What [`wait`] waits for (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// Returns as soon as one future is done (or cancelled).
    FirstCompleted,
    /// Returns when one future fails, or all are done.
    FirstException,
    /// Returns when all are done.
    AllCompleted,
}

/// The state of one submitted call.
enum Slot<T, R> {
    /// In the executor's queue, not yet given to the pool: can be cancelled.
    Queued(T),
    /// Given to the pool.
    Running(AsyncResult<R>),
    Finished(Result<R>),
    Cancelled,
    /// Transient, while moving between states.
    Moving,
}

type Callback<R> = Box<dyn FnOnce(&Future<R>)>;

struct Call<T, R> {
    f: fn(T) -> R,
    slot: RefCell<Slot<T, R>>,
    callbacks: RefCell<Vec<Callback<R>>>,
    exec: std::rc::Weak<Exec>,
}

/// The executor's view of a call, whatever its types.
trait Task {
    /// Gives a queued call to the pool; false if it was cancelled meanwhile.
    fn start(&self, pool: &Pool) -> bool;
    /// The pool job of a running call.
    fn job(&self) -> Option<JobRef>;
    /// If running and its result is in, takes it: the call is finished. True if finished now.
    fn collect(self: Rc<Self>) -> bool;
    fn is_done(&self) -> bool;
    fn cancel_if_queued(self: Rc<Self>) -> bool;
}

/// The typed view of a call, for its [`Future`].
trait Outcome<R>: Task {
    fn outcome(&self) -> Option<Result<R>>;
    fn is_running(&self) -> bool;
    fn is_cancelled(&self) -> bool;
    fn push_callback(&self, cb: Callback<R>);
    fn exec(&self) -> Option<Rc<Exec>>;
}

impl<T, R> Task for Call<T, R>
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Clone + 'static,
{
    fn start(&self, pool: &Pool) -> bool {
        let mut slot = self.slot.borrow_mut();
        match std::mem::replace(&mut *slot, Slot::Moving) {
            Slot::Queued(arg) => {
                *slot = match pool.apply_async(self.f, arg) {
                    Ok(r) => Slot::Running(r),
                    Err(e) => Slot::Finished(Err(e)),
                };
                true
            }
            other => {
                *slot = other;
                false
            }
        }
    }

    fn job(&self) -> Option<JobRef> {
        match &*self.slot.borrow() {
            Slot::Running(r) => Some(r.job_ref()),
            _ => None,
        }
    }

    fn collect(self: Rc<Self>) -> bool {
        let finished = {
            let mut slot = self.slot.borrow_mut();
            match &mut *slot {
                Slot::Running(r) if r.ready() => {
                    let result = r.get();
                    *slot = Slot::Finished(result);
                    true
                }
                Slot::Finished(_) | Slot::Cancelled => true,
                _ => false,
            }
        };
        if finished {
            self.run_callbacks();
        }
        finished
    }

    fn is_done(&self) -> bool {
        matches!(&*self.slot.borrow(), Slot::Finished(_) | Slot::Cancelled)
    }

    fn cancel_if_queued(self: Rc<Self>) -> bool {
        let cancelled = {
            let mut slot = self.slot.borrow_mut();
            match &*slot {
                Slot::Queued(_) => {
                    *slot = Slot::Cancelled;
                    true
                }
                Slot::Cancelled => true,
                _ => false,
            }
        };
        if cancelled {
            self.run_callbacks();
        }
        cancelled
    }
}

impl<T, R> Call<T, R>
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Clone + 'static,
{
    fn run_callbacks(self: &Rc<Self>) {
        let callbacks = std::mem::take(&mut *self.callbacks.borrow_mut());
        if callbacks.is_empty() {
            return;
        }
        let me: Rc<dyn Outcome<R>> = self.clone();
        let future = Future { call: me };
        for cb in callbacks {
            cb(&future);
        }
    }
}

impl<T, R> Outcome<R> for Call<T, R>
where
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Clone + 'static,
{
    fn outcome(&self) -> Option<Result<R>> {
        match &*self.slot.borrow() {
            Slot::Finished(r) => Some(r.clone()),
            Slot::Cancelled => Some(Err(Error::Cancelled)),
            _ => None,
        }
    }

    fn is_running(&self) -> bool {
        matches!(&*self.slot.borrow(), Slot::Running(_))
    }

    fn is_cancelled(&self) -> bool {
        matches!(&*self.slot.borrow(), Slot::Cancelled)
    }

    fn push_callback(&self, cb: Callback<R>) {
        self.callbacks.borrow_mut().push(cb);
    }

    fn exec(&self) -> Option<Rc<Exec>> {
        self.exec.upgrade()
    }
}

/// The executor's state, shared with its futures.
struct Exec {
    pool: Pool,
    in_flight: usize,
    queued: RefCell<VecDeque<Rc<dyn Task>>>,
    running: RefCell<Vec<Rc<dyn Task>>>,
    shut_down: std::cell::Cell<bool>,
}

impl Exec {
    /// Moves calls along: collects finished ones, hands queued ones to the pool. Then, until `until`
    /// holds or `deadline` passes, waits for a running call to finish and does it again. True if
    /// `until` holds.
    fn progress(&self, deadline: Option<Instant>, until: &dyn Fn() -> bool) -> Result<bool> {
        loop {
            let running: Vec<Rc<dyn Task>> = self.running.borrow().clone();
            let mut still = Vec::new();
            for task in running {
                if !task.clone().collect() {
                    still.push(task);
                }
            }
            *self.running.borrow_mut() = still;
            loop {
                if self.running.borrow().len() >= self.in_flight {
                    break;
                }
                let Some(next) = self.queued.borrow_mut().pop_front() else {
                    break;
                };
                if next.start(&self.pool) {
                    if next.clone().collect() {
                        continue;
                    }
                    self.running.borrow_mut().push(next);
                }
            }
            if until() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let jobs: Vec<JobRef> = self
                .running
                .borrow()
                .iter()
                .filter_map(|t| t.job())
                .collect();
            if jobs.is_empty() {
                // Nothing runs, so nothing will change.
                return Ok(until());
            }
            wait_any(&jobs, deadline)?;
        }
    }
}

/// A pool of worker processes that runs submitted calls and hands back [`Future`]s (Python's
/// `concurrent.futures.ProcessPoolExecutor`).
///
/// ```
/// use multiprocessing::futures::ProcessPoolExecutor;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// // Python: with ProcessPoolExecutor(2) as ex: fut = ex.submit(square, 7); print(fut.result())
/// let answer = ProcessPoolExecutor::with(2, |ex| {
///     let fut = ex.submit(square, 7)?;
///     fut.result()
/// })?;
/// assert_eq!(answer, 49);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub struct ProcessPoolExecutor {
    exec: Rc<Exec>,
}

/// The result of a call submitted to a [`ProcessPoolExecutor`], to come (Python's
/// `concurrent.futures.Future`). Clones are the same future.
///
/// ```
/// use multiprocessing::futures::ProcessPoolExecutor;
///
/// fn add((a, b): (i32, i32)) -> i32 { a + b }
///
/// let ex = ProcessPoolExecutor::new(1)?;
/// let fut = ex.submit(add, (2, 3))?;
/// assert_eq!(fut.result()?, 5);
/// assert!(fut.done());
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub struct Future<R> {
    call: Rc<dyn Outcome<R>>,
}

impl<R> Clone for Future<R> {
    fn clone(&self) -> Self {
        Future {
            call: self.call.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.call.is_cancelled() {
            "cancelled"
        } else if self.call.is_done() {
            "finished"
        } else if self.call.is_running() {
            "running"
        } else {
            "pending"
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl ProcessPoolExecutor {
    /// Starts `max_workers` worker processes (Python's `ProcessPoolExecutor(max_workers)`).
    /// [`Error::ZeroProcesses`] for 0.
    ///
    /// ```
    /// let ex = multiprocessing::futures::ProcessPoolExecutor::new(2)?;
    /// ex.shutdown(true, false)?;
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn new(max_workers: usize) -> Result<ProcessPoolExecutor> {
        let pool = Pool::new(max_workers)?;
        Ok(ProcessPoolExecutor {
            exec: Rc::new(Exec {
                pool,
                in_flight: max_workers + 1,
                queued: RefCell::new(VecDeque::new()),
                running: RefCell::new(Vec::new()),
                shut_down: std::cell::Cell::new(false),
            }),
        })
    }

    /// Runs `body` with a new executor, then shuts it down, waiting for every call (Python's
    /// `with ProcessPoolExecutor(n) as ex:`).
    ///
    /// ```
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn double(x: i32) -> i32 { 2 * x }
    ///
    /// let out: Vec<i32> = ProcessPoolExecutor::with(2, |ex| ex.map(double, 1..=3)?.collect())?;
    /// assert_eq!(out, [2, 4, 6]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn with<R>(
        max_workers: usize,
        body: impl FnOnce(&ProcessPoolExecutor) -> Result<R>,
    ) -> Result<R> {
        let ex = ProcessPoolExecutor::new(max_workers)?;
        let out = body(&ex);
        ex.shutdown(true, false)?;
        out
    }

    /// Schedules `f(arg)` and returns its [`Future`] at once (Python's `ex.submit(f, arg)`).
    /// [`Error::PoolNotRunning`] after [`shutdown`](Self::shutdown).
    ///
    /// ```
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn shout(s: String) -> String { s.to_uppercase() }
    ///
    /// let ex = ProcessPoolExecutor::new(2)?;
    /// let fut = ex.submit(shout, "hi".to_owned())?;
    /// assert_eq!(fut.result()?, "HI");
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn submit<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<Future<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Clone + 'static,
    {
        if self.exec.shut_down.get() {
            return Err(Error::PoolNotRunning {
                state: PoolState::ShutDown,
            });
        }
        let call = Rc::new(Call {
            f,
            slot: RefCell::new(Slot::Queued(arg)),
            callbacks: RefCell::new(Vec::new()),
            exec: Rc::downgrade(&self.exec),
        });
        self.exec.queued.borrow_mut().push_back(call.clone());
        self.exec.progress(Some(Instant::now()), &|| true)?;
        Ok(Future { call })
    }

    /// Submits `f(x)` for every `x` and returns an iterator of the results in input order (Python's
    /// `ex.map(f, xs)`); each item waits for its call. A failed call gives its error in its place.
    ///
    /// ```
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn cube(x: u64) -> u64 { x.pow(3) }
    ///
    /// let ex = ProcessPoolExecutor::new(2)?;
    /// let cubes: Vec<u64> = ex.map(cube, 1..=4)?.collect::<Result<_, _>>()?;
    /// assert_eq!(cubes, [1, 8, 27, 64]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn map<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<impl Iterator<Item = Result<R>>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Clone + 'static,
    {
        let futures = items
            .into_iter()
            .map(|x| self.submit(f, x))
            .collect::<Result<Vec<_>>>()?;
        Ok(futures.into_iter().map(|fut| fut.result()))
    }

    /// Stops taking calls (Python's `ex.shutdown(wait, cancel_futures)`). With `cancel_futures`,
    /// calls not yet started are cancelled. With `wait`, waits for the others, then stops the
    /// workers; without it, returns at once and the calls still run, moved along whenever one of
    /// their futures is waited on (no thread does it in the background).
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let futs: Vec<_> = (0..5).map(|_| ex.submit(nap, 50)).collect::<Result<_, _>>()?;
    /// ex.shutdown(true, true)?;
    /// assert!(futs[0].done());
    /// assert!(futs[4].cancelled()); // never started
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) -> Result<()> {
        self.exec.shut_down.set(true);
        if cancel_futures {
            let queued: Vec<_> = self.exec.queued.borrow_mut().drain(..).collect();
            for task in queued {
                task.cancel_if_queued();
            }
        }
        if wait {
            let exec = &self.exec;
            exec.progress(None, &|| {
                exec.queued.borrow().is_empty() && exec.running.borrow().is_empty()
            })?;
            exec.pool.close();
            exec.pool.join()?;
        }
        Ok(())
    }
}

impl ProcessPoolExecutor {
    /// The name and pid of each worker process (Python keeps them in `ex._processes`).
    ///
    /// ```
    /// let ex = multiprocessing::futures::ProcessPoolExecutor::new(2)?;
    /// assert_eq!(ex.workers().len(), 2);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn workers(&self) -> Vec<(String, i32)> {
        self.exec.pool.workers()
    }
}

impl std::fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("queued", &self.exec.queued.borrow().len())
            .field("running", &self.exec.running.borrow().len())
            .field("shut_down", &self.exec.shut_down.get())
            .finish()
    }
}

impl<R: Clone + 'static> Future<R> {
    fn progress(&self, deadline: Option<Instant>) -> Result<bool> {
        match self.call.exec() {
            Some(exec) => exec.progress(deadline, &|| self.call.is_done()),
            None => Ok(self.call.is_done()),
        }
    }

    /// Waits for the call and returns its result (Python's `fut.result()`): the call's error (e.g.
    /// [`Error::TaskPanicked`], [`Error::WorkerDied`]) or [`Error::Cancelled`]. May be called again.
    ///
    /// ```
    /// use multiprocessing::{futures::ProcessPoolExecutor, Error};
    ///
    /// fn fails(_: u8) -> u8 { panic!("no") }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let fut = ex.submit(fails, 0)?;
    /// assert!(matches!(fut.result(), Err(Error::TaskPanicked { .. })));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn result(&self) -> Result<R> {
        self.progress(None)?;
        self.call.outcome().unwrap_or(Err(Error::PoolNotRunning {
            state: PoolState::Terminated,
        }))
    }

    /// Like [`result`](Self::result), waiting at most `timeout`: then [`Error::Timeout`], and the
    /// call goes on (Python's `fut.result(timeout)` raising `TimeoutError`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{futures::ProcessPoolExecutor, Error};
    ///
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let fut = ex.submit(nap, 300)?;
    /// assert!(matches!(fut.result_timeout(Duration::from_millis(10)), Err(Error::Timeout { .. })));
    /// assert_eq!(fut.result()?, 300);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<R> {
        if !self.progress(Instant::now().checked_add(timeout))? {
            return Err(Error::Timeout {
                waited: timeout,
                what: "the future".into(),
            });
        }
        self.result()
    }

    /// Waits for the call; its error, or `None` if it succeeded (Python's `fut.exception()`).
    ///
    /// ```
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn fine(x: u8) -> u8 { x }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// assert!(ex.submit(fine, 1)?.exception()?.is_none());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn exception(&self) -> Result<Option<Error>> {
        self.progress(None)?;
        Ok(self.call.outcome().and_then(|r| r.err()))
    }

    /// Whether the call finished or was cancelled (Python's `fut.done()`). Never waits, but moves
    /// calls along.
    ///
    /// ```
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn id(x: u8) -> u8 { x }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let fut = ex.submit(id, 1)?;
    /// fut.result()?;
    /// assert!(fut.done());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn done(&self) -> bool {
        self.progress(Some(Instant::now())).unwrap_or(true)
    }

    /// Whether the call was handed to a worker and is not finished (Python's `fut.running()`).
    ///
    /// ```
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn id(x: u8) -> u8 { x }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let fut = ex.submit(id, 1)?;
    /// fut.result()?;
    /// assert!(!fut.running());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn running(&self) -> bool {
        let _ = self.progress(Some(Instant::now()));
        self.call.is_running()
    }

    /// Whether the call was cancelled (Python's `fut.cancelled()`).
    ///
    /// ```
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn id(x: u8) -> u8 { x }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// assert!(!ex.submit(id, 1)?.cancelled());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        self.call.is_cancelled()
    }

    /// Cancels the call if it has not been handed to a worker yet (Python's `fut.cancel()`):
    /// `true` if it is cancelled now, `false` if it runs or ran.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{futures::ProcessPoolExecutor, Error};
    ///
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let first = ex.submit(nap, 100)?; // handed to the worker
    /// let _second = ex.submit(nap, 100)?; // queued in the pool (max_workers + 1)
    /// let third = ex.submit(nap, 100)?; // waits in the executor
    /// assert!(!first.cancel());
    /// assert!(third.cancel());
    /// assert!(matches!(third.result(), Err(Error::Cancelled)));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.call.clone().cancel_if_queued()
    }

    /// Runs `callback` with this future once it is done, in this process, from whichever call
    /// notices (Python's `fut.add_done_callback(fn)`, which runs it in the executor's thread);
    /// at once if it is done already.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use multiprocessing::futures::ProcessPoolExecutor;
    ///
    /// fn id(x: u8) -> u8 { x }
    ///
    /// let ex = ProcessPoolExecutor::new(1)?;
    /// let seen = Rc::new(Cell::new(0));
    /// let fut = ex.submit(id, 7)?;
    /// let s = seen.clone();
    /// fut.add_done_callback(move |f| s.set(f.result().unwrap()));
    /// fut.result()?;
    /// assert_eq!(seen.get(), 7);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<R>) + 'static) {
        if self.call.is_done() {
            callback(self);
        } else {
            self.call.push_callback(Box::new(callback));
        }
    }
}

/// What [`wait`] returns: the futures that are done and those that are not (Python's
/// `DoneAndNotDoneFutures`), each in the order given.
#[derive(Debug)]
pub struct Waited<R> {
    /// Finished or cancelled.
    pub done: Vec<Future<R>>,
    /// Still queued or running.
    pub not_done: Vec<Future<R>>,
}

/// Waits until `return_when` holds for `futures` or `timeout` passes (`None`: no limit), and splits
/// them into done and not done (Python's `concurrent.futures.wait`). Never a timeout error: look at
/// `not_done`.
///
/// ```
/// use std::time::Duration;
/// use multiprocessing::futures::{wait, ProcessPoolExecutor, ReturnWhen};
///
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futs = vec![ex.submit(nap, 10)?, ex.submit(nap, 2000)?];
/// let w = wait(&futs, None, ReturnWhen::FirstCompleted)?;
/// assert_eq!(w.done.len(), 1);
/// assert_eq!(w.done[0].result()?, 10);
/// let w = wait(&futs, None, ReturnWhen::AllCompleted)?;
/// assert!(w.not_done.is_empty());
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub fn wait<R: Clone + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> Result<Waited<R>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    // The same future given twice counts once (Python works on sets).
    let mut unique: Vec<Future<R>> = Vec::new();
    for f in futures {
        if !unique.iter().any(|u| Rc::ptr_eq(&u.call, &f.call)) {
            unique.push(f.clone());
        }
    }
    let futures = &unique[..];
    let holds = || {
        let done = futures.iter().filter(|f| f.call.is_done()).count();
        match return_when {
            ReturnWhen::AllCompleted => done == futures.len(),
            ReturnWhen::FirstCompleted => done > 0 || futures.is_empty(),
            ReturnWhen::FirstException => {
                done == futures.len()
                    || futures
                        .iter()
                        .any(|f| matches!(f.call.outcome(), Some(Err(ref e)) if !matches!(e, Error::Cancelled)))
            }
        }
    };
    let execs: Vec<Rc<Exec>> = {
        let mut v: Vec<Rc<Exec>> = Vec::new();
        for f in futures {
            if let Some(e) = f.call.exec() {
                if !v.iter().any(|x| Rc::ptr_eq(x, &e)) {
                    v.push(e);
                }
            }
        }
        v
    };
    match execs.as_slice() {
        [] => {}
        [one] => {
            one.progress(deadline, &holds)?;
        }
        many => loop {
            // Futures of several executors: move each along in short turns.
            let mut any = false;
            for e in many {
                let turn = Instant::now() + Duration::from_millis(20);
                let until = deadline.map_or(turn, |d| d.min(turn));
                any |= e.progress(Some(until), &holds)?;
            }
            if any || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        },
    }
    let (done, not_done) = futures.iter().cloned().partition(|f| f.call.is_done());
    Ok(Waited { done, not_done })
}

/// An iterator over futures as they finish (Python's `concurrent.futures.as_completed`), from
/// [`as_completed`].
pub struct AsCompleted<R> {
    left: Vec<Future<R>>,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

/// Yields each of `futures` as soon as it is done (finished or cancelled), those already done
/// first (Python's `as_completed(fs, timeout)`). When `timeout` runs out first, yields one
/// [`Error::Timeout`] and ends.
///
/// ```
/// use std::time::Duration;
/// use multiprocessing::futures::{as_completed, ProcessPoolExecutor};
///
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futs = vec![ex.submit(nap, 400)?, ex.submit(nap, 10)?];
/// let order: Vec<u64> = as_completed(&futs, None)
///     .map(|f| f?.result())
///     .collect::<Result<_, _>>()?;
/// assert_eq!(order, [10, 400]);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub fn as_completed<R: Clone + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
) -> AsCompleted<R> {
    AsCompleted {
        left: futures.to_vec(),
        deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        timeout,
    }
}

impl<R: Clone + 'static> Iterator for AsCompleted<R> {
    type Item = Result<Future<R>>;

    fn next(&mut self) -> Option<Result<Future<R>>> {
        if self.left.is_empty() {
            return None;
        }
        let w = match wait(
            &self.left,
            self.deadline
                .map(|d| d.saturating_duration_since(Instant::now())),
            ReturnWhen::FirstCompleted,
        ) {
            Ok(w) => w,
            Err(e) => {
                self.left.clear();
                return Some(Err(e));
            }
        };
        match w.done.into_iter().next() {
            Some(first) => {
                self.left.retain(|f| !Rc::ptr_eq(&f.call, &first.call));
                Some(Ok(first))
            }
            None => {
                let waited = self.timeout.unwrap_or_default();
                self.left.clear();
                Some(Err(Error::Timeout {
                    waited,
                    what: format!("{} futures", w.not_done.len()),
                }))
            }
        }
    }
}
