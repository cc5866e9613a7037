//! [`Barrier`]: Python's `multiprocessing.Barrier`, a meeting point for a fixed number of processes.
//!
//! | Python | Rust |
//! |---|---|
//! | `b = Barrier(3)`, `Barrier(3, timeout=1)` | `let b = Barrier::new(3)?;`, `Barrier::new(3)?.with_timeout(Duration::from_secs(1))` |
//! | `i = b.wait()` (0..parties) | `let i = b.wait()?;` |
//! | `b.wait(timeout=1)` | `b.wait_timeout(Duration::from_secs(1))?` |
//! | `b.parties`, `b.n_waiting`, `b.broken` | `b.parties()`, `b.n_waiting()?`, `b.broken()?` |
//! | `b.abort()`, `b.reset()` | `b.abort()?`, `b.reset()?` |
//! | `threading.BrokenBarrierError` | `Err(Error::BrokenBarrier { .. })` |
//!
//! Differs from Python on purpose: a process that dies while it waits at the barrier breaks it, so
//! the others get [`Error::BrokenBarrier`] instead of waiting forever. (A process that dies before it
//! reaches the barrier cannot be told from a slow one: use a timeout for that.) No `action`
//! argument: run the action in the process whose `wait` returned 0.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::shm::{Doorbell, Shared};
use crate::waiters::{deadline, interrupted, lock_state, wait_on, Look, Table, Who};

#[derive(Clone, Copy)]
#[repr(C)]
struct State {
    parties: u32,
    /// How many wait in the current round.
    count: u32,
    /// Bumped each time the barrier lets a round through (or is reset).
    round: u64,
    broken: bool,
    /// The round that `reset()` ended while processes waited in it (those get BrokenBarrier).
    reset_round: Option<u64>,
    /// The processes waiting in the current round.
    waiting: Table,
}

/// A barrier shared between processes (Python's `multiprocessing.Barrier`): each of `parties`
/// processes calls `wait`, and all return once the last one arrives. Clones are the same barrier; so
/// is the copy a forked child gets.
///
/// ```
/// use multiprocessing::{Barrier, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let barrier = Barrier::new(3)?;
/// let mut children = Vec::new();
/// for i in 0..2 {
///     let b = barrier.clone();
///     let mut p = Process::new(move || {
///         println!("child {i} before");
///         b.wait().unwrap(); // Python: barrier.wait()
///         println!("child {i} after");
///     });
///     p.start()?;
///     children.push(p);
/// }
/// barrier.wait()?; // the third party
/// for p in &children {
///     assert_eq!(p.join()?, 0);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Barrier {
    state: Arc<Shared<State>>,
    bell: Arc<Doorbell>,
    timeout: Option<Duration>,
}

impl Barrier {
    /// A barrier for `parties` processes (Python's `Barrier(parties)`); `parties` must be at least 1.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let b = multiprocessing::Barrier::new(1)?;
    /// assert_eq!(b.wait()?, 0); // one party: passes at once
    /// assert!(multiprocessing::Barrier::new(0).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(parties: u32) -> Result<Barrier> {
        if parties == 0 || parties as usize > crate::waiters::TABLE {
            return Err(Error::InvalidArgument {
                name: "parties",
                value: parties.to_string(),
                fix: "use between 1 and 64 parties",
            });
        }
        Ok(Barrier {
            state: Arc::new(Shared::new(State {
                parties,
                count: 0,
                round: 0,
                broken: false,
                reset_round: None,
                waiting: Table::new(),
            })?),
            bell: Arc::new(Doorbell::new()?),
            timeout: None,
        })
    }

    /// The default timeout of [`wait`](Self::wait) (Python's `Barrier(parties, timeout=...)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{Barrier, Error};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let b = Barrier::new(2)?.with_timeout(Duration::from_millis(10));
    /// assert!(matches!(b.wait(), Err(Error::BrokenBarrier { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    /// Waits until all parties called `wait` (Python's `b.wait()`); returns this process's arrival
    /// index, 0 to parties - 1 (the first to arrive gets 0, as in Python: let one index do the
    /// round's one-off work).
    /// [`Error::BrokenBarrier`] if the barrier is or becomes broken: aborted, reset while waiting,
    /// timed out, or a waiting process died.
    ///
    /// ```
    /// use multiprocessing::{Barrier, Error, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let b = Barrier::new(3)?;
    /// let in_child = b.clone();
    /// // A child waits at the barrier and is killed there.
    /// let mut p = Process::new(move || { in_child.wait().unwrap(); });
    /// p.start()?;
    /// while b.n_waiting()? == 0 {
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// }
    /// p.kill()?;
    /// p.join()?;
    /// assert!(matches!(b.wait(), Err(Error::BrokenBarrier { .. }))); // Python: hangs
    /// b.reset()?; // usable again
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(&self) -> Result<u32> {
        self.wait_for(self.timeout)
    }

    /// Like [`wait`](Self::wait), at most `timeout`; when it runs out the barrier breaks (as in
    /// Python) and every waiter gets [`Error::BrokenBarrier`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let b = multiprocessing::Barrier::new(2)?;
    /// assert!(b.wait_timeout(Duration::from_millis(10)).is_err());
    /// assert!(b.broken()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_for(Some(timeout))
    }

    fn wait_for(&self, timeout: Option<Duration>) -> Result<u32> {
        let me = Who::me();
        let broken = |why: &'static str| Error::BrokenBarrier { why };
        let (index, round) = {
            let mut s = lock_state(&self.state)?;
            if s.broken {
                return Err(broken("it was broken before this wait"));
            }
            let index = s.count;
            s.count += 1;
            if s.count == s.parties {
                s.count = 0;
                s.round += 1;
                s.waiting.clear();
                drop(s);
                self.bell.ring();
                return Ok(index);
            }
            s.waiting.add(&me, 1);
            (index, s.round)
        };
        wait_on(
            &self.state,
            &self.bell,
            timeout.and_then(deadline),
            |s, expired| {
                if s.round != round {
                    return if s.reset_round == Some(round) {
                        Look::Done(Err(broken("it was reset while this process waited")))
                    } else {
                        Look::Done(Ok(index))
                    };
                }
                if s.broken {
                    return Look::Done(Err(broken("it was aborted, timed out, or a waiter died")));
                }
                if s.waiting.remove_dead().is_some() {
                    s.broken = true;
                    self.bell.ring();
                    return Look::Done(Err(broken("a process waiting at it died")));
                }
                if expired {
                    s.broken = true;
                    self.bell.ring();
                    return Look::Done(Err(broken("this wait timed out")));
                }
                Look::Wait
            },
            |s| {
                // As Python's Barrier when a wait raises: break it, so the others do not hang.
                s.broken = true;
                interrupted(
                    "a Barrier",
                    "the barrier is broken now (the other parties get BrokenBarrier): reset() it before using it again",
                )
            },
        )?
    }

    /// The number of processes needed to pass (Python's `b.parties`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::Barrier::new(4)?.parties(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn parties(&self) -> u32 {
        lock_state(&self.state).map_or(0, |s| s.parties)
    }

    /// How many processes wait at the barrier now (Python's `b.n_waiting`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::Barrier::new(2)?.n_waiting()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn n_waiting(&self) -> Result<u32> {
        let s = lock_state(&self.state)?;
        Ok(if s.broken { 0 } else { s.count })
    }

    /// Whether the barrier is broken (Python's `b.broken`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let b = multiprocessing::Barrier::new(2)?;
    /// b.abort()?;
    /// assert!(b.broken()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broken(&self) -> Result<bool> {
        Ok(lock_state(&self.state)?.broken)
    }

    /// Breaks the barrier (Python's `b.abort()`): waiting and later `wait`s get
    /// [`Error::BrokenBarrier`] until [`reset`](Self::reset).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let b = multiprocessing::Barrier::new(2)?;
    /// b.abort()?;
    /// assert!(b.wait().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn abort(&self) -> Result<()> {
        lock_state(&self.state)?.broken = true;
        self.bell.ring();
        Ok(())
    }

    /// Makes the barrier new again (Python's `b.reset()`); processes waiting at it now get
    /// [`Error::BrokenBarrier`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let b = multiprocessing::Barrier::new(1)?;
    /// b.abort()?;
    /// b.reset()?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reset(&self) -> Result<()> {
        let mut s = lock_state(&self.state)?;
        if s.count > 0 && !s.broken {
            s.reset_round = Some(s.round);
        }
        s.round += 1;
        s.count = 0;
        s.broken = false;
        s.waiting.clear();
        drop(s);
        self.bell.ring();
        Ok(())
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting().ok())
            .field("broken", &self.broken().ok())
            .finish()
    }
}
