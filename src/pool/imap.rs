//! [`IMap`]: the lazy iterator `imap` and `imap_unordered` return.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::inner::{Inner, Payload};
use super::{borrow, decode_chunk, InputPanic};
use crate::error::{Error, Result};

/// Results of [`Pool::imap`](crate::Pool::imap) (in input order) or
/// [`Pool::imap_unordered`](crate::Pool::imap_unordered) (in order of completion), one at a time as
/// they come: an `Iterator<Item = Result<R>>`.
///
/// Lazy on both sides: inputs are taken from your iterator only as workers have room for them (so
/// `0..` works, with `take`), and each `next()` waits only for the result it returns. A failed
/// task yields its `Err` in its place and the iteration goes on. Dropping the iterator discards the
/// rest. If your input iterator panics, no more inputs are taken, and `next()` resumes that panic
/// once the results of the chunks before it are handed out (Python's `next()` raises the
/// iterable's exception there); the pool stays usable.
///
/// ```
/// use multiprocessing::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pool = Pool::new(2)?;
/// let first: Vec<u64> = pool.imap(square, 0..)?.take(4).collect::<Result<_, _>>()?;
/// assert_eq!(first, [0, 1, 4, 9]);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub struct IMap<R> {
    pool: Rc<RefCell<Inner>>,
    job: u64,
    ordered: bool,
    next_seq: usize,
    arrivals: usize,
    pending: BTreeMap<usize, Result<Payload>>,
    buffer: VecDeque<R>,
    done: bool,
    /// A panic of the input iterator, resumed once the results before it are handed out.
    input_panic: InputPanic,
    _results: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for IMap<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IMap")
            .field("job", &self.job)
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl<R: DeserializeOwned + 'static> IMap<R> {
    pub(crate) fn new(
        pool: Rc<RefCell<Inner>>,
        job: u64,
        ordered: bool,
        input_panic: InputPanic,
    ) -> Self {
        IMap {
            pool,
            job,
            ordered,
            next_seq: 0,
            arrivals: 0,
            pending: BTreeMap::new(),
            buffer: VecDeque::new(),
            done: false,
            input_panic,
            _results: PhantomData,
        }
    }

    /// The next result, waiting at most `timeout` (Python: `next(timeout)`): `Some(Err(Error::Timeout))`
    /// when it runs out (call again to keep waiting). A zero timeout checks without waiting.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::Pool;
    ///
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// let pool = Pool::new(1)?;
    /// let mut it = pool.imap(square, vec![3])?;
    /// assert_eq!(it.next_timeout(Duration::from_secs(10)).unwrap()?, 9);
    /// assert!(it.next_timeout(Duration::from_secs(10)).is_none());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        // A timeout too large to represent waits without limit.
        self.next_until(Instant::now().checked_add(timeout), timeout)
    }

    fn next_until(&mut self, deadline: Option<Instant>, timeout: Duration) -> Option<Result<R>> {
        loop {
            if let Some(r) = self.buffer.pop_front() {
                return Some(Ok(r));
            }
            // Once the job is over every remaining chunk is here: lowest sequence number first.
            let entry = if self.ordered && !self.done {
                let e = self.pending.remove(&self.next_seq);
                if e.is_some() {
                    self.next_seq += 1;
                }
                e
            } else {
                self.pending.pop_first().map(|(_, e)| e)
            };
            if let Some(result) = entry {
                match result.and_then(|p| decode_chunk::<R>(p.bytes())) {
                    Ok(values) => self.buffer.extend(values),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            if self.done {
                if let Some(payload) = self.input_panic.take() {
                    std::panic::resume_unwind(payload);
                }
                return None;
            }
            let job = self.job;
            let mut inner = match borrow(&self.pool) {
                Ok(inner) => inner,
                Err(e) => return Some(Err(e)),
            };
            match inner.drive(deadline, |i| i.job_has_news(job)) {
                Ok(true) => {}
                Ok(false) => {
                    return Some(Err(Error::Timeout {
                        waited: timeout,
                        what: "the next imap result".into(),
                    }))
                }
                Err(e) => return Some(Err(e)),
            }
            let (arrived, failure) = inner.take(job);
            let finished = inner.job_finished(job);
            drop(inner);
            for a in arrived {
                let key = if self.ordered { a.seq } else { self.arrivals };
                self.arrivals += 1;
                self.pending.insert(key, a.result);
            }
            if let Some(e) = failure {
                self.done = true;
                self.pending.clear();
                return Some(Err(e));
            }
            if finished {
                self.done = true;
            }
        }
    }
}

impl<R: DeserializeOwned + 'static> Iterator for IMap<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.next_until(None, Duration::ZERO)
    }
}

impl<R> Drop for IMap<R> {
    fn drop(&mut self) {
        if !self.done {
            if let Ok(mut inner) = self.pool.try_borrow_mut() {
                inner.abandon(self.job);
            }
        }
    }
}
