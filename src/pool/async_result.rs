//! [`AsyncResult`]: the handle `apply_async` and `map_async` return, as Python's `AsyncResult`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::borrow;
use super::inner::{Arrived, Inner};
use crate::error::{Error, Result};

/// The result of [`Pool::apply_async`](crate::Pool::apply_async) or
/// [`Pool::map_async`](crate::Pool::map_async), to be collected later with [`get`](Self::get).
///
/// As in Python, the work starts at once; nothing runs in the background of the notebook, though:
/// the pool moves tasks and results whenever one of its calls waits (`get`, `wait`, `ready`, `map`, ...).
/// Dropping an `AsyncResult` without `get` discards its result (the tasks still run).
///
/// ```
/// use multiprocessing::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = Pool::new(2)?;
/// let results: Vec<_> = (0..5).map(|i| pool.apply_async(square, i)).collect::<Result<_, _>>()?;
/// let squares: Vec<u64> = results.iter().map(|r| r.get()).collect::<Result<_, _>>()?;
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub struct AsyncResult<R> {
    pool: Rc<RefCell<Inner>>,
    job: u64,
    decode: fn(Vec<Arrived>) -> Result<R>,
    /// A `callback` or `error_callback` waits for this job: dropping the handle must keep it.
    has_callbacks: bool,
    /// `None` until the result is handed over by `get`; then whether the call succeeded, for
    /// `successful()` and `ready()` afterwards. A `Cell`, so that `get` takes `&self` as Python's
    /// `r.get()` reads (no `let mut r`).
    taken: Cell<Option<bool>>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("job", &self.job)
            .field("taken", &self.taken.get().is_some())
            .finish()
    }
}

impl<R> AsyncResult<R> {
    pub(crate) fn new(
        pool: Rc<RefCell<Inner>>,
        job: u64,
        decode: fn(Vec<Arrived>) -> Result<R>,
    ) -> Self {
        AsyncResult {
            pool,
            job,
            decode,
            has_callbacks: false,
            taken: Cell::new(None),
        }
    }

    /// Calls `callback` with the result once the call succeeds (Python's `callback=` argument of
    /// `apply_async`, `map_async`, `starmap_async`). It runs in this process, inside whichever
    /// pool call is waiting when the result arrives (`get`, `wait`, `join`, another `map`, ...):
    /// the pool has no thread. It runs even if this handle is dropped; `get` still returns the
    /// result. Register it before `get`.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use multiprocessing::Pool;
    ///
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let pool = Pool::new(2)?;
    /// let results = Rc::new(RefCell::new(Vec::new()));
    /// for i in 0..4 {
    ///     let sink = results.clone();
    ///     // Python: pool.apply_async(square, (i,), callback=results.append)
    ///     pool.apply_async(square, i)?.callback(move |r| sink.borrow_mut().push(*r));
    /// }
    /// pool.close();
    /// pool.join()?; // the callbacks run while join waits
    /// results.borrow_mut().sort();
    /// assert_eq!(*results.borrow(), [0, 1, 4, 9]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn callback(self, callback: impl FnOnce(&R) + 'static) -> Self
    where
        R: 'static,
    {
        let decode = self.decode;
        self.register(Box::new(
            move |arrived: &[Arrived], failure: Option<&Error>| {
                let result = match failure {
                    Some(_) => None,
                    None => decode(arrived.to_vec()).ok(),
                };
                Box::new(move || {
                    if let Some(value) = result {
                        callback(&value);
                    }
                })
            },
        ))
    }

    /// Calls `error_callback` with the error once the call fails (Python's `error_callback=`);
    /// runs as [`callback`](Self::callback) does.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use multiprocessing::Pool;
    ///
    /// fn fails(_: u8) -> u8 { panic!("no") }
    ///
    /// let pool = Pool::new(1)?;
    /// let seen = Rc::new(RefCell::new(String::new()));
    /// let sink = seen.clone();
    /// let r = pool.apply_async(fails, 0)?.error_callback(move |e| *sink.borrow_mut() = e.to_string());
    /// assert!(r.get().is_err());
    /// assert!(seen.borrow().contains("panicked"));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn error_callback(self, error_callback: impl FnOnce(&Error) + 'static) -> Self
    where
        R: 'static,
    {
        let decode = self.decode;
        self.register(Box::new(
            move |arrived: &[Arrived], failure: Option<&Error>| {
                let error = match failure {
                    Some(e) => Some(e.clone()),
                    None => decode(arrived.to_vec()).err(),
                };
                Box::new(move || {
                    if let Some(e) = error {
                        error_callback(&e);
                    }
                })
            },
        ))
    }

    fn register(mut self, prepare: super::inner::Prepare) -> Self {
        if let Ok(mut inner) = borrow(&self.pool) {
            if self.taken.get().is_none() {
                inner.add_callback(self.job, prepare);
                self.has_callbacks = true;
            }
        }
        self
    }

    /// Waits for the result and returns it (Python: `get()`). The error of a failed task
    /// ([`Error::TaskPanicked`], [`Error::WorkerDied`], ...) is returned here. The result is handed
    /// over once: a second `get` returns [`Error::ResultTaken`].
    ///
    /// ```
    /// use multiprocessing::{Error, Pool};
    ///
    /// fn fails(_: u8) -> u8 { panic!("no") }
    ///
    /// let pool = Pool::new(1)?;
    /// let r = pool.apply_async(fails, 0)?;
    /// assert!(matches!(r.get(), Err(Error::TaskPanicked { index: 0, .. })));
    /// assert!(matches!(r.get(), Err(Error::ResultTaken)));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn get(&self) -> Result<R> {
        self.collect(None)
    }

    /// Like [`get`](Self::get), waiting at most `timeout` (Python: `get(timeout)`); then
    /// [`Error::Timeout`], and the result can still be collected later. A zero timeout checks
    /// without waiting, as Python's `get(0)` does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{Error, Pool};
    ///
    /// fn slow(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// let pool = Pool::new(1)?;
    /// let r = pool.apply_async(slow, 300)?;
    /// assert!(matches!(r.get_timeout(Duration::from_millis(10)), Err(Error::Timeout { .. })));
    /// assert_eq!(r.get_timeout(Duration::from_secs(10))?, 300);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        self.collect(Some(timeout))
    }

    fn collect(&self, timeout: Option<Duration>) -> Result<R> {
        if self.taken.get().is_some() {
            return Err(Error::ResultTaken);
        }
        let job = self.job;
        let mut inner = borrow(&self.pool)?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if !inner.drive(deadline, |i| i.job_finished(job))? {
            return Err(Error::Timeout {
                waited: timeout.unwrap_or_default(),
                what: "the async result".into(),
            });
        }
        let (arrived, failure) = inner.take(job);
        drop(inner);
        if let Some(e) = failure {
            self.taken.set(Some(false));
            return Err(e);
        }
        let result = (self.decode)(arrived);
        self.taken.set(Some(result.is_ok()));
        result
    }

    /// Waits until the result is ready (Python: `wait()`), without taking it.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn double(x: i32) -> i32 { 2 * x }
    ///
    /// let pool = Pool::new(1)?;
    /// let r = pool.apply_async(double, 21)?;
    /// r.wait()?;
    /// assert!(r.ready());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn wait(&self) -> Result<()> {
        let job = self.job;
        borrow(&self.pool)?.drive(None, |i| i.job_finished(job))?;
        Ok(())
    }

    /// Waits at most `timeout` (Python: `wait(timeout)`); `Ok(true)` if the result is ready.
    /// A zero timeout checks without waiting.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::Pool;
    ///
    /// fn double(x: i32) -> i32 { 2 * x }
    ///
    /// let pool = Pool::new(1)?;
    /// let r = pool.apply_async(double, 21)?;
    /// assert!(r.wait_timeout(Duration::from_secs(10))?);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        let job = self.job;
        borrow(&self.pool)?.drive(Instant::now().checked_add(timeout), |i| i.job_finished(job))
    }

    /// True once the result is ready, successful or not (Python: `ready()`). Never waits.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn double(x: i32) -> i32 { 2 * x }
    ///
    /// let pool = Pool::new(1)?;
    /// let r = pool.apply_async(double, 21)?;
    /// while !r.ready() {}
    /// assert_eq!(r.get()?, 42);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn ready(&self) -> bool {
        if self.taken.get().is_some() {
            return true;
        }
        let job = self.job;
        match borrow(&self.pool) {
            Ok(mut inner) => inner
                .drive(Some(Instant::now()), |i| i.job_finished(job))
                .unwrap_or(true),
            Err(_) => false,
        }
    }

    /// Whether the call completed without error (Python: `successful()`); [`Error::ResultNotReady`]
    /// before it is ready, as Python raises `ValueError`. After `get()` it still answers, as Python's.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn fails(_: u8) -> u8 { panic!("no") }
    ///
    /// let pool = Pool::new(1)?;
    /// let r = pool.apply_async(fails, 0)?;
    /// r.wait()?;
    /// assert!(!r.successful()?);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn successful(&self) -> Result<bool> {
        if let Some(ok) = self.taken.get() {
            return Ok(ok);
        }
        if !self.ready() {
            return Err(Error::ResultNotReady);
        }
        Ok(borrow(&self.pool)?.job_ok(self.job))
    }
}

impl<R> Drop for AsyncResult<R> {
    fn drop(&mut self) {
        if self.taken.get().is_none() {
            if let Ok(mut inner) = self.pool.try_borrow_mut() {
                if self.has_callbacks {
                    inner.detach(self.job);
                } else {
                    inner.abandon(self.job);
                }
            }
        }
    }
}

/// Decodes the one result of an `apply_async`.
pub(crate) fn decode_one<R: DeserializeOwned + 'static>(arrived: Vec<Arrived>) -> Result<R> {
    decode_all::<R>(arrived)?.pop().ok_or_else(|| Error::Codec {
        direction: "deserialize",
        what: "task results",
        message: "the worker sent no result".into(),
    })
}

/// Decodes and orders the results of a `map_async`.
pub(crate) fn decode_all<R: DeserializeOwned + 'static>(
    mut arrived: Vec<Arrived>,
) -> Result<Vec<R>> {
    arrived.sort_by_key(|a| a.first);
    let mut out = Vec::new();
    for a in arrived {
        super::decode_chunk_into::<R>(a.result?.bytes(), &mut out)?;
    }
    Ok(out)
}

/// A handle on an async result's job without its type, so that [`crate::futures`] can wait for the
/// first of several results of one pool.
#[derive(Clone)]
pub(crate) struct JobRef {
    pool: Rc<RefCell<Inner>>,
    job: u64,
}

impl<R> AsyncResult<R> {
    /// The job this result belongs to.
    pub(crate) fn job_ref(&self) -> JobRef {
        JobRef {
            pool: self.pool.clone(),
            job: self.job,
        }
    }
}

/// Drives the pool of `jobs` (all of one pool) until one of them is finished or `deadline` passes;
/// true if one is finished. Polls at least once.
pub(crate) fn wait_any(jobs: &[JobRef], deadline: Option<Instant>) -> Result<bool> {
    let Some(first) = jobs.first() else {
        return Ok(false);
    };
    let ids: Vec<u64> = jobs.iter().map(|j| j.job).collect();
    borrow(&first.pool)?.drive(deadline, |i| ids.iter().any(|&j| i.job_finished(j)))
}
