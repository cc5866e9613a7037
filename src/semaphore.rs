//! [`Semaphore`] and [`BoundedSemaphore`]: Python's `multiprocessing.Semaphore` and
//! `BoundedSemaphore`, a counter of free units shared by processes.
//!
//! | Python | Rust |
//! |---|---|
//! | `s = Semaphore(2)`, `BoundedSemaphore(2)` | `let s = Semaphore::new(2)?;`, `BoundedSemaphore::new(2)?` |
//! | `s.acquire()`, `s.release()` | `s.acquire()?`, `s.release()?` |
//! | `with s: ...` | `s.with(\|\| ...)?` |
//! | `s.acquire(block=False)`, `s.acquire(timeout=1)` | `s.try_acquire()?`, `s.acquire_timeout(Duration::from_secs(1))?` (`bool`) |
//! | `s.get_value()` | `s.value()?` |
//! | `ValueError: Semaphore released too many times` (bounded) | `Err(Error::ReleasedTooOften { .. })` |
//!
//! Differs from Python on purpose: a process that dies holding units (acquired, not released) would
//! keep them forever in Python, and waiters would hang. Here a process that finds no free unit
//! looks for dead holders; their units are given back and that `acquire` returns
//! [`Error::HolderDied`]: acquire again to go on. Units are counted per
//! process (up to 64 processes holding at once; beyond that, units are not tracked); a release by a
//! process that holds none (a semaphore used as a signal) just adds a unit.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::shm::{Doorbell, Shared};
use crate::waiters::{deadline, interrupted, lock_state, wait_on, Look, Table, Who};

#[derive(Clone, Copy)]
#[repr(C)]
struct State {
    value: u32,
    /// `Some(n)`: a bounded semaphore, whose value may not exceed n.
    bound: Option<u32>,
    /// Whether units are counted per holding process (to give back a dead holder's units). Not for
    /// a `Queue`'s free slots: a producer takes one and a consumer gives it back.
    track: bool,
    holders: Table,
}

/// A counter of free units shared between processes (Python's `multiprocessing.Semaphore`):
/// `acquire` takes one (waiting while there is none), `release` gives one back. Clones are the same
/// semaphore; so is the copy a forked child gets.
///
/// ```
/// use multiprocessing::{Process, Semaphore};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let slots = Semaphore::new(2)?; // at most two children in the section at once
/// let mut children = Vec::new();
/// for i in 0..4 {
///     let slots = slots.clone();
///     let mut p = Process::new(move || {
///         slots.with(|| println!("child {i} is in")).unwrap(); // Python: with slots: ...
///     });
///     p.start()?;
///     children.push(p);
/// }
/// for p in &children {
///     assert_eq!(p.join()?, 0);
/// }
/// assert_eq!(slots.value()?, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    state: Arc<Shared<State>>,
    bell: Arc<Doorbell>,
}

/// A [`Semaphore`] that may not be released more often than acquired (Python's
/// `multiprocessing.BoundedSemaphore`): a release above the initial value is
/// [`Error::ReleasedTooOften`].
///
/// ```
/// use multiprocessing::{BoundedSemaphore, Error};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let s = BoundedSemaphore::new(1)?;
/// s.acquire()?;
/// s.release()?;
/// assert!(matches!(s.release(), Err(Error::ReleasedTooOften { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl Semaphore {
    /// A semaphore with `value` free units (Python's `Semaphore(value)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::Semaphore::new(3)?;
    /// assert_eq!(s.value()?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(value: u32) -> Result<Semaphore> {
        Semaphore::make(value, None)
    }

    /// A bounded semaphore whose units belong to nobody (a `Queue`'s free slots).
    pub(crate) fn untracked(value: u32) -> Result<Semaphore> {
        Semaphore::make_with(value, Some(value), false)
    }

    fn make(value: u32, bound: Option<u32>) -> Result<Semaphore> {
        Semaphore::make_with(value, bound, true)
    }

    fn make_with(value: u32, bound: Option<u32>, track: bool) -> Result<Semaphore> {
        Ok(Semaphore {
            state: Arc::new(Shared::new(State {
                value,
                bound,
                track,
                holders: Table::new(),
            })?),
            bell: Arc::new(Doorbell::new()?),
        })
    }

    /// Takes a unit, waiting while there is none (Python's `s.acquire()`).
    ///
    /// [`Error::HolderDied`] when, instead of a free unit, it found that a process holding units had
    /// died: they are free again, acquire once more.
    ///
    /// ```
    /// use multiprocessing::{Error, Process, Semaphore};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = Semaphore::new(1)?;
    /// let held = s.clone();
    /// let mut p = Process::new(move || held.acquire().unwrap()); // exits holding the unit
    /// p.start()?;
    /// p.join()?;
    /// assert!(matches!(s.acquire(), Err(Error::HolderDied { .. })));
    /// s.acquire()?; // the unit is back
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(&self) -> Result<()> {
        self.take(None).map(|_| ())
    }

    /// Takes a unit if one is free now (Python's `s.acquire(block=False)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::Semaphore::new(1)?;
    /// assert!(s.try_acquire()?);
    /// assert!(!s.try_acquire()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<bool> {
        self.take(Some(Duration::ZERO))
    }

    /// Acquire with an optional timeout (`None`: no limit), for the crate's own users.
    pub(crate) fn acquire_for(&self, timeout: Option<Duration>) -> Result<bool> {
        self.take(timeout)
    }

    /// Waits at most `timeout` for a unit (Python's `s.acquire(timeout=...)`): `false` if none came.
    /// Errors as [`acquire`](Semaphore::acquire).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::Semaphore::new(0)?;
    /// assert!(!s.acquire_timeout(Duration::from_millis(10))?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.take(Some(timeout))
    }

    fn take(&self, timeout: Option<Duration>) -> Result<bool> {
        let me = Who::me();
        let until = timeout.and_then(deadline);
        let no_wait = timeout == Some(Duration::ZERO);
        wait_on(
            &self.state,
            &self.bell,
            until,
            |s, expired| {
                if s.value > 0 {
                    s.value -= 1;
                    if s.track {
                        s.holders.add(&me, 1);
                    }
                    return Look::Done(Ok(true));
                }
                if let Some((dead, units)) = s.holders.remove_dead() {
                    s.value = s.value.saturating_add(units);
                    if let Some(bound) = s.bound {
                        s.value = s.value.min(bound);
                    }
                    self.bell.ring();
                    return Look::Done(Err(Error::HolderDied {
                        what: "units of this Semaphore",
                        pid: dead.pid,
                    }));
                }
                if expired || no_wait {
                    Look::Done(Ok(false))
                } else {
                    Look::Wait
                }
            },
            |_| {
                interrupted(
                    "a unit of a Semaphore",
                    "no unit was taken: acquire again to keep waiting",
                )
            },
        )?
    }

    /// Gives a unit back and wakes a waiter (Python's `s.release()`). Any process may release, as in
    /// Python.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::Semaphore::new(0)?;
    /// s.release()?;
    /// assert_eq!(s.value()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn release(&self) -> Result<()> {
        let me = Who::me();
        let mut s = lock_state(&self.state)?;
        if let Some(bound) = s.bound {
            if s.value >= bound {
                return Err(Error::ReleasedTooOften { bound });
            }
        }
        s.value += 1;
        s.holders.take_one(&me);
        drop(s);
        self.bell.ring();
        Ok(())
    }

    /// The number of free units now (Python's `s.get_value()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::Semaphore::new(2)?;
    /// s.acquire()?;
    /// assert_eq!(s.value()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(&self) -> Result<u32> {
        Ok(lock_state(&self.state)?.value)
    }

    /// Runs `f` holding a unit (Python's `with s: f()`), released even if `f` panics. Errors as
    /// [`acquire`](Semaphore::acquire).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::Semaphore::new(1)?;
    /// assert_eq!(s.with(|| 6 * 7)?, 42);
    /// assert_eq!(s.value()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        self.acquire()?;
        struct Release<'a>(&'a Semaphore);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let _ = self.0.release();
            }
        }
        let _release = Release(self);
        Ok(f())
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` free units, never more (Python's `BoundedSemaphore(value)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::BoundedSemaphore::new(2)?;
    /// assert_eq!(s.value()?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            inner: Semaphore::make(value, Some(value))?,
        })
    }

    /// As [`Semaphore::acquire`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::BoundedSemaphore::new(1)?;
    /// s.acquire()?;
    /// assert_eq!(s.value()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(&self) -> Result<()> {
        self.inner.acquire()
    }

    /// As [`Semaphore::try_acquire`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::BoundedSemaphore::new(1)?;
    /// assert!(s.try_acquire()?);
    /// assert!(!s.try_acquire()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<bool> {
        self.inner.try_acquire()
    }

    /// As [`Semaphore::acquire_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::BoundedSemaphore::new(1)?;
    /// assert!(s.acquire_timeout(Duration::from_millis(10))?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.acquire_timeout(timeout)
    }

    /// As [`Semaphore::release`], but [`Error::ReleasedTooOften`] when the value is at its bound
    /// (Python: `ValueError: Semaphore released too many times`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::BoundedSemaphore::new(1)?;
    /// assert!(s.release().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn release(&self) -> Result<()> {
        self.inner.release()
    }

    /// As [`Semaphore::value`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::BoundedSemaphore::new(4)?.value()?, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(&self) -> Result<u32> {
        self.inner.value()
    }

    /// As [`Semaphore::with`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let s = multiprocessing::BoundedSemaphore::new(1)?;
    /// s.with(|| println!("inside"))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        self.inner.with(f)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value().ok())
            .finish()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value().ok())
            .finish()
    }
}
