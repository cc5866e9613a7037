//! [`Lock`]: Python's `multiprocessing.Lock`, shared by the processes forked after it was made.
//!
//! | Python | Rust |
//! |---|---|
//! | `lock = Lock()` | `let lock = Lock::new()?;` (clone it into each `Process` closure) |
//! | `with lock: ...` | `{ let _guard = lock.acquire()?; ... }`, or `lock.with(\|\| ...)?` |
//! | `lock.acquire()` / `lock.release()` | `let guard = lock.acquire()?;` / `guard.release()` (or let it drop) |
//! | `lock.acquire(block=False)` | `lock.try_acquire()?` (`Some(guard)` or `None`) |
//! | `lock.locked()` | `lock.locked()` |
//! | `lock.acquire(timeout=1)` | `lock.acquire_timeout(Duration::from_secs(1))?` (`None` when it ran out) |
//!
//! The lock is a glibc process-shared, robust, error-checking mutex in a page of memory shared by
//! `fork` (see `src/shm.rs`). Two differences from Python, both instead of a hang:
//! - acquiring it again while this process holds it is [`Error::WouldDeadlock`];
//! - when the process holding it dies (killed, or exited inside the `with`), the next `acquire` gets
//!   [`Error::LockOwnerDied`] and the lock is free again: acquire once more to go on. Python's lock
//!   would stay locked forever.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::shm::{Acquired, Shared, SharedGuard, Wait};

/// A lock shared between processes (Python's `multiprocessing.Lock`). Clones are the same lock; so is
/// the copy a forked child gets. Only processes forked *after* `Lock::new()` share it.
///
/// ```
/// use multiprocessing::{Lock, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let lock = Lock::new()?;
/// let mut children = Vec::new();
/// for i in 0..3 {
///     let lock = lock.clone();
///     let mut p = Process::new(move || {
///         let _guard = lock.acquire().unwrap(); // `with lock:`
///         println!("process {i} has the lock");
///     });
///     p.start()?;
///     children.push(p);
/// }
/// for p in &children {
///     assert_eq!(p.join()?, 0);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Lock {
    shared: Arc<Shared<()>>,
}

/// Proof that this process holds a [`Lock`]; the lock is released when the guard is dropped (the
/// end of Python's `with lock:` block) or [`release`](LockGuard::release)d.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let lock = multiprocessing::Lock::new()?;
/// let guard = lock.acquire()?;
/// assert!(lock.try_acquire()?.is_none()); // held
/// guard.release();
/// assert!(lock.try_acquire()?.is_some()); // free again
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped: keep it in a variable (`let guard = lock.acquire()?;`, not `let _ =`) for as long as you need the lock"]
pub struct LockGuard<'a> {
    _guard: SharedGuard<'a, ()>,
}

impl Lock {
    /// Makes a new, unlocked lock (one shared memory page).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let lock = multiprocessing::Lock::new()?;
    /// lock.with(|| println!("only one process at a time prints here"))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            shared: Arc::new(Shared::new(())?),
        })
    }

    /// Waits until the lock is free, takes it and returns the guard that holds it.
    ///
    /// Errors instead of hanging: [`Error::WouldDeadlock`] if this process already holds it;
    /// [`Error::LockOwnerDied`] if its holder died holding it (the lock is free again: call
    /// `acquire()` once more).
    ///
    /// ```
    /// use multiprocessing::{Error, Lock, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let lock = Lock::new()?;
    /// let held = lock.clone();
    /// // A child takes the lock and exits without releasing it.
    /// let mut p = Process::new(move || {
    ///     std::mem::forget(held.acquire().unwrap());
    ///     multiprocessing::exit(0);
    /// });
    /// p.start()?;
    /// p.join()?;
    /// assert!(matches!(lock.acquire(), Err(Error::LockOwnerDied { .. })));
    /// let _guard = lock.acquire()?; // free again
    /// assert!(matches!(lock.acquire(), Err(Error::WouldDeadlock { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        match self.take(Wait::Forever)? {
            Some(guard) => Ok(guard),
            None => unreachable!("a lock without timeout waits until it is free"),
        }
    }

    /// Takes the lock if it is free now (Python's `acquire(block=False)`): `None` when another process
    /// (or this one) holds it.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let lock = multiprocessing::Lock::new()?;
    /// let first = lock.try_acquire()?;
    /// assert!(first.is_some());
    /// assert!(lock.try_acquire()?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<Option<LockGuard<'_>>> {
        match self.take(Wait::No) {
            Err(Error::WouldDeadlock { .. }) => Ok(None),
            other => other,
        }
    }

    /// Waits at most `timeout` for the lock (Python's `acquire(timeout=...)`): `None` when it ran out.
    /// Errors as [`acquire`](Lock::acquire).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let lock = multiprocessing::Lock::new()?;
    /// assert!(lock.acquire_timeout(Duration::from_millis(10))?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.take(Wait::Until(deadline)),
            None => self.take(Wait::Forever),
        }
    }

    /// Runs `f` while holding the lock (Python's `with lock: f()`), and returns what it returned. The
    /// lock is released even if `f` panics. Errors as [`acquire`](Lock::acquire).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let lock = multiprocessing::Lock::new()?;
    /// let answer = lock.with(|| 6 * 7)?;
    /// assert_eq!(answer, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let _guard = self.acquire()?;
        Ok(f())
    }

    /// Whether some living process holds the lock now (Python 3.13's `lock.locked()`): a snapshot,
    /// for looking, not for deciding (it may change right after). A lock whose holder died counts
    /// as free: the next `acquire` takes it (with [`Error::LockOwnerDied`]).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let lock = multiprocessing::Lock::new()?;
    /// assert!(!lock.locked());
    /// let guard = lock.acquire()?;
    /// assert!(lock.locked());
    /// drop(guard);
    /// assert!(!lock.locked());
    /// # Ok(())
    /// # }
    /// ```
    pub fn locked(&self) -> bool {
        let holder = self.shared.holder();
        holder != 0 && crate::waiters::pid_alive(holder)
    }

    fn take(&self, wait: Wait) -> Result<Option<LockGuard<'_>>> {
        match self.shared.lock(wait, "a Lock")? {
            Acquired::Locked(guard) => Ok(Some(LockGuard { _guard: guard })),
            Acquired::OwnerDied(guard, pid) => {
                guard.make_consistent();
                drop(guard);
                Err(Error::LockOwnerDied { pid })
            }
            Acquired::Busy => Ok(None),
            Acquired::Deadlock => Err(Error::WouldDeadlock { what: "this Lock" }),
            Acquired::Unrecoverable => Err(Error::os(
                "pthread_mutex_lock",
                nix::errno::Errno::ENOTRECOVERABLE,
            )),
        }
    }
}

impl LockGuard<'_> {
    /// Releases the lock now (Python's `lock.release()`); the same as dropping the guard.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let lock = multiprocessing::Lock::new()?;
    /// let guard = lock.acquire()?;
    /// guard.release();
    /// # Ok(())
    /// # }
    /// ```
    pub fn release(self) {}
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holder = self.shared.holder();
        let mut d = f.debug_struct("Lock");
        if holder == 0 {
            d.field("held", &false);
        } else {
            d.field("held_by_pid", &holder);
        }
        d.finish()
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
