//! [`RLock`]: Python's `multiprocessing.RLock`, a lock the thread holding it may take again.
//!
//! | Python | Rust |
//! |---|---|
//! | `r = RLock()` | `let r = RLock::new()?;` |
//! | `with r: with r: ...` | `let _a = r.acquire()?; let _b = r.acquire()?;` (released when both guards drop) |
//! | `r.acquire(block=False)`, `r.acquire(timeout=1)` | `r.try_acquire()?`, `r.acquire_timeout(Duration::from_secs(1))?` (`Option<RLockGuard>`) |
//! | `r.release()` by a thread that does not hold it: `RuntimeError` | impossible: only a guard releases |
//!
//! Differs from Python on purpose: when the process holding it dies, the next `acquire` gets
//! [`Error::LockOwnerDied`] and the lock is free again (Python's stays held forever).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::shm::{Doorbell, Shared};
use crate::waiters::{deadline, interrupted, lock_state, wait_on, Look, Who};

/// Who holds a re-entrant lock, and how many times (shared by [`RLock`] and
/// [`Condition`](crate::Condition)).
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Owner {
    pub who: Who,
    pub depth: u32,
}

/// What [`Owner::take`] found.
pub(crate) enum Take {
    Took,
    /// The holder (this pid) died: the lock was cleared, not taken.
    Dead(i32),
    Busy,
}

impl Owner {
    /// Takes the lock `depth` times if it is free or `me`'s.
    pub(crate) fn take(&mut self, me: &Who, depth: u32) -> Take {
        if self.who.is_empty() {
            *self = Owner { who: *me, depth };
            Take::Took
        } else if self.who == *me {
            self.depth += depth;
            Take::Took
        } else if self.who.is_dead() {
            let pid = self.who.pid;
            *self = Owner::default();
            Take::Dead(pid)
        } else {
            Take::Busy
        }
    }
}

/// A re-entrant lock shared between processes (Python's `multiprocessing.RLock`): the thread that
/// holds it may acquire it again; it is free once every guard is dropped. Clones are the same lock;
/// so is the copy a forked child gets.
///
/// ```
/// use multiprocessing::{Process, RLock};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let lock = RLock::new()?;
/// let outer = lock.acquire()?;
/// let inner = lock.acquire()?; // the same thread: no deadlock
/// let in_child = lock.clone();
/// let mut p = Process::new(move || {
///     let _g = in_child.acquire().unwrap(); // waits until the parent let go of both
///     println!("child has it");
/// });
/// p.start()?;
/// drop(inner);
/// drop(outer);
/// assert_eq!(p.join()?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RLock {
    state: Arc<Shared<Owner>>,
    bell: Arc<Doorbell>,
}

/// One level of an [`RLock`] held by this thread; dropping it releases that level.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let r = multiprocessing::RLock::new()?;
/// let g = r.acquire()?;
/// g.release(); // same as drop(g)
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped: keep it in a variable (`let guard = rlock.acquire()?;`, not `let _ =`) for as long as you need the lock"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl RLock {
    /// A new, free re-entrant lock (Python's `RLock()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RLock::new()?;
    /// r.with(|| println!("held"))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            state: Arc::new(Shared::new(Owner::default())?),
            bell: Arc::new(Doorbell::new()?),
        })
    }

    /// Waits until the lock is free or this thread's, and takes it (Python's `r.acquire()`).
    /// [`Error::LockOwnerDied`] if its holder died holding it: it is free now, acquire again.
    ///
    /// ```
    /// use multiprocessing::{Error, Process, RLock};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = RLock::new()?;
    /// let held = r.clone();
    /// let mut p = Process::new(move || std::mem::forget(held.acquire().unwrap()));
    /// p.start()?;
    /// p.join()?;
    /// assert!(matches!(r.acquire(), Err(Error::LockOwnerDied { .. })));
    /// let _g = r.acquire()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(&self) -> Result<RLockGuard<'_>> {
        self.take(None)
            .map(|g| g.expect("waits without limit until it has the lock"))
    }

    /// Takes the lock if it is free or this thread's now (Python's `r.acquire(block=False)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RLock::new()?;
    /// let a = r.try_acquire()?;
    /// let b = r.try_acquire()?; // re-entrant
    /// assert!(a.is_some() && b.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<Option<RLockGuard<'_>>> {
        self.take(Some(Duration::ZERO))
    }

    /// Waits at most `timeout` (Python's `r.acquire(timeout=...)`); `None` when it ran out.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RLock::new()?;
    /// assert!(r.acquire_timeout(Duration::from_millis(10))?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<RLockGuard<'_>>> {
        self.take(Some(timeout))
    }

    fn take(&self, timeout: Option<Duration>) -> Result<Option<RLockGuard<'_>>> {
        let me = Who::me();
        let no_wait = timeout == Some(Duration::ZERO);
        let got = wait_on(
            &self.state,
            &self.bell,
            timeout.and_then(deadline),
            |owner, expired| match owner.take(&me, 1) {
                Take::Took => Look::Done(Ok(true)),
                Take::Dead(pid) => Look::Done(Err(Error::LockOwnerDied { pid })),
                Take::Busy if expired || no_wait => Look::Done(Ok(false)),
                Take::Busy => Look::Wait,
            },
            |_| {
                interrupted(
                    "an RLock",
                    "it was not acquired: acquire again to keep waiting",
                )
            },
        )??;
        Ok(got.then_some(RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }))
    }

    /// Runs `f` holding the lock (Python's `with r: f()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RLock::new()?;
    /// let n = r.with(|| r.with(|| 1).unwrap() + 1)?; // nested: fine
    /// assert_eq!(n, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let _g = self.acquire()?;
        Ok(f())
    }
}

impl RLockGuard<'_> {
    /// Releases this level now (Python's `r.release()`); the same as dropping the guard.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RLock::new()?;
    /// r.acquire()?.release();
    /// # Ok(())
    /// # }
    /// ```
    pub fn release(self) {}
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut owner) = lock_state(&self.lock.state) {
            owner.depth = owner.depth.saturating_sub(1);
            if owner.depth == 0 {
                *owner = Owner::default();
            }
        }
        self.lock.bell.ring();
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = lock_state(&self.state).map(|o| *o).unwrap_or_default();
        let mut d = f.debug_struct("RLock");
        if owner.who.is_empty() {
            d.field("held", &false);
        } else {
            d.field("held_by_pid", &owner.who.pid)
                .field("depth", &owner.depth);
        }
        d.finish()
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}
