//! [`Condition`]: Python's `multiprocessing.Condition`, waiting for a change another process
//! announces, under a re-entrant lock.
//!
//! | Python | Rust |
//! |---|---|
//! | `c = Condition()` | `let c = Condition::new()?;` |
//! | `with c: c.wait()` | `let mut g = c.acquire()?; g.wait()?;` |
//! | `c.wait(timeout=1)` (`False` on timeout) | `g.wait_timeout(Duration::from_secs(1))?` |
//! | `c.wait_for(pred, timeout)` | `g.wait_for(\|\| pred())?`, `g.wait_for_timeout(\|\| pred(), d)?` |
//! | `c.notify()`, `c.notify(n)`, `c.notify_all()` | `g.notify()?`, `g.notify_n(n)?`, `g.notify_all()?` |
//! | `c.wait()` without holding the lock: `RuntimeError` | does not compile: `wait` is on the guard |
//!
//! The lock is the condition's own [`RLock`](crate::RLock)-like lock (Python's default). Differs from
//! Python on purpose: a process that dies holding it gives the next acquirer
//! [`Error::LockOwnerDied`]; a waiter that dies is forgotten (a `notify` goes to a living waiter).
//!
//! ```compile_fail
//! # fn main() -> multiprocessing::Result<()> {
//! let c = multiprocessing::Condition::new()?;
//! c.notify()?; // Python: RuntimeError (cannot notify on un-acquired lock); here: no such method
//! # Ok(())
//! # }
//! ```

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rlock::{Owner, Take};
use crate::shm::{Doorbell, Shared};
use crate::waiters::{deadline, interrupted, lock_state, wait_on, Look, Who, TABLE};

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Waiter {
    who: Who,
    /// 0: an empty slot; else the order in which the waiters came.
    ticket: u64,
    notified: bool,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct State {
    lock: Owner,
    waiters: [Waiter; TABLE],
    next_ticket: u64,
}

/// A condition variable shared between processes (Python's `multiprocessing.Condition`). Clones are
/// the same condition; so is the copy a forked child gets.
///
/// ```
/// use multiprocessing::{Condition, Process, Value};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let cond = Condition::new()?;
/// let items = Value::new(0u32)?;
/// let (c, v) = (cond.clone(), items.clone());
/// let mut producer = Process::new(move || {
///     let g = c.acquire().unwrap(); // Python: with cond:
///     v.set(5);
///     g.notify_all().unwrap();
/// });
/// producer.start()?;
/// let mut g = cond.acquire()?;
/// g.wait_for(|| items.get() == 5)?; // Python: cond.wait_for(lambda: items.value == 5)
/// drop(g);
/// producer.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Condition {
    state: Arc<Shared<State>>,
    bell: Arc<Doorbell>,
}

/// The lock of a [`Condition`], held by this thread: wait and notify through it. Released (one
/// level) when dropped.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let c = multiprocessing::Condition::new()?;
/// let g = c.acquire()?;
/// g.notify()?; // nobody waits: nothing happens
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped: keep it in a variable (`let guard = condition.acquire()?;`, not `let _ =`) for as long as you need the lock"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    /// False after an interrupted `wait` could not take the lock back: dropping releases nothing.
    held: Cell<bool>,
    _not_send: PhantomData<*const ()>,
}

impl Condition {
    /// A new condition with its own re-entrant lock (Python's `Condition()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// drop(c.acquire()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<Condition> {
        Ok(Condition {
            state: Arc::new(Shared::new(State {
                lock: Owner::default(),
                waiters: [Waiter::default(); TABLE],
                next_ticket: 1,
            })?),
            bell: Arc::new(Doorbell::new()?),
        })
    }

    /// Takes the condition's lock, waiting for it (Python's `c.acquire()` / `with c:`).
    /// [`Error::LockOwnerDied`] if its holder died holding it: it is free now, acquire again.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// let _outer = c.acquire()?;
    /// let _inner = c.acquire()?; // re-entrant, as Python's default RLock
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(&self) -> Result<ConditionGuard<'_>> {
        let me = Who::me();
        wait_on(
            &self.state,
            &self.bell,
            None,
            |s, _| match s.lock.take(&me, 1) {
                Take::Took => Look::Done(Ok(())),
                Take::Dead(pid) => Look::Done(Err(Error::LockOwnerDied { pid })),
                Take::Busy => Look::Wait,
            },
            |_| {
                interrupted(
                    "a Condition's lock",
                    "it was not acquired: acquire again to keep waiting",
                )
            },
        )??;
        Ok(ConditionGuard {
            cond: self,
            held: Cell::new(true),
            _not_send: PhantomData,
        })
    }
}

impl ConditionGuard<'_> {
    /// Releases the lock, waits for a `notify`, and takes the lock again (Python's `c.wait()`).
    /// [`Error::LockOwnerDied`] if, to take the lock back, it had to take it from a process that died
    /// holding it: the lock is held again, but what it protected may be half-updated.
    ///
    /// ```
    /// use multiprocessing::{Condition, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = Condition::new()?;
    /// let mut g = c.acquire()?;
    /// let in_child = c.clone();
    /// let mut p = Process::new(move || in_child.acquire().unwrap().notify().unwrap());
    /// p.start()?;
    /// g.wait()?; // lets the child take the lock and notify
    /// drop(g);
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(&mut self) -> Result<()> {
        self.wait_until(None).map(|_| ())
    }

    /// Like [`wait`](Self::wait), at most `timeout`: `false` if no notify came (Python's
    /// `c.wait(timeout)`). The lock is held again either way.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// let mut g = c.acquire()?;
    /// assert!(!g.wait_timeout(Duration::from_millis(10))?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool> {
        self.wait_until(deadline(timeout))
    }

    /// Waits until `predicate()` is true, checking it with the lock held before each wait (Python's
    /// `c.wait_for(predicate)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// let mut g = c.acquire()?;
    /// g.wait_for(|| true)?; // already true: returns at once
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for(&mut self, mut predicate: impl FnMut() -> bool) -> Result<()> {
        while !predicate() {
            self.wait()?;
        }
        Ok(())
    }

    /// Like [`wait_for`](Self::wait_for), at most `timeout`; returns the predicate's last value
    /// (Python's `c.wait_for(predicate, timeout)`).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// let mut g = c.acquire()?;
    /// assert!(!g.wait_for_timeout(|| false, Duration::from_millis(20))?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for_timeout(
        &mut self,
        mut predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool> {
        let end = deadline(timeout);
        loop {
            if predicate() {
                return Ok(true);
            }
            if end.is_some_and(|e| Instant::now() >= e) {
                return Ok(false);
            }
            self.wait_until(end)?;
        }
    }

    fn wait_until(&mut self, until: Option<Instant>) -> Result<bool> {
        let me = Who::me();
        let cond = self.cond;
        let (ticket, depth) = {
            let mut s = lock_state(&cond.state)?;
            let Some(slot) = s.waiters.iter().position(|w| w.ticket == 0) else {
                return Err(Error::InvalidArgument {
                    name: "number of processes waiting on this Condition",
                    value: format!("more than {TABLE}"),
                    fix: "let fewer processes wait at once, or use a Queue to hand out work",
                });
            };
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.waiters[slot] = Waiter {
                who: me,
                ticket,
                notified: false,
            };
            let depth = s.lock.depth;
            s.lock = Owner::default();
            (ticket, depth)
        };
        cond.bell.ring(); // the lock is free
        let mut notified = None;
        let held = &self.held;
        let on_interrupt = |s: &mut State| {
            if let Some(w) = s.waiters.iter_mut().find(|w| w.ticket == ticket) {
                *w = Waiter::default();
            }
            if s.lock.who.is_empty() || s.lock.who == me {
                s.lock = Owner { who: me, depth };
                interrupted(
                    "a Condition",
                    "the lock is held again (the guard is valid): wait again to keep waiting",
                )
            } else {
                held.set(false);
                interrupted(
                    "a Condition",
                    "the lock is NOT held (another process has it): drop this guard and acquire() again",
                )
            }
        };
        let look = |s: &mut State, expired: bool| {
            if notified.is_none() {
                let slot = s.waiters.iter_mut().find(|w| w.ticket == ticket);
                match slot {
                    Some(w) if w.notified || expired => {
                        notified = Some(w.notified);
                        *w = Waiter::default();
                    }
                    Some(_) => return Look::Wait,
                    None => notified = Some(false),
                }
            }
            // Take the lock back, without limit (Python does the same after a timeout).
            match s.lock.take(&me, depth) {
                Take::Took => Look::Done(Ok(notified.unwrap_or(false))),
                Take::Dead(pid) => {
                    s.lock = Owner { who: me, depth };
                    Look::Done(Err(Error::LockOwnerDied { pid }))
                }
                Take::Busy => Look::Wait,
            }
        };
        wait_on(&cond.state, &cond.bell, until, look, on_interrupt)?
    }

    /// Wakes one waiting process (Python's `c.notify()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// c.acquire()?.notify()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1)
    }

    /// Wakes up to `n` waiting processes, longest waiting first (Python's `c.notify(n)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// c.acquire()?.notify_n(3)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn notify_n(&self, n: usize) -> Result<()> {
        let mut s = lock_state(&self.cond.state)?;
        let mut woken = 0;
        while woken < n {
            let next = s
                .waiters
                .iter_mut()
                .filter(|w| w.ticket != 0 && !w.notified)
                .min_by_key(|w| w.ticket);
            let Some(w) = next else { break };
            if w.who.is_dead() {
                *w = Waiter::default();
                continue;
            }
            w.notified = true;
            woken += 1;
        }
        drop(s);
        self.cond.bell.ring();
        Ok(())
    }

    /// Wakes every waiting process (Python's `c.notify_all()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let c = multiprocessing::Condition::new()?;
    /// c.acquire()?.notify_all()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn notify_all(&self) -> Result<()> {
        self.notify_n(usize::MAX)
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        if !self.held.get() {
            return;
        }
        if let Ok(mut s) = lock_state(&self.cond.state) {
            s.lock.depth = s.lock.depth.saturating_sub(1);
            if s.lock.depth == 0 {
                s.lock = Owner::default();
            }
        }
        self.cond.bell.ring();
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = lock_state(&self.state)
            .map(|s| s.waiters.iter().filter(|w| w.ticket != 0).count())
            .ok();
        f.debug_struct("Condition")
            .field("waiting", &waiting)
            .finish()
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}
