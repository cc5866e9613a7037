//! [`Event`]: Python's `multiprocessing.Event`, a flag that processes wait for.
//!
//! | Python | Rust |
//! |---|---|
//! | `e = Event()` | `let e = Event::new()?;` (clone it into each `Process` closure) |
//! | `e.set()`, `e.clear()`, `e.is_set()` | `e.set()?`, `e.clear()?`, `e.is_set()?` |
//! | `e.wait()` | `e.wait()?` |
//! | `e.wait(timeout=0.5)` (returns the flag) | `e.wait_timeout(Duration::from_millis(500))?` (`bool`) |
//!
//! An event has no holder, so no process can die holding it; a process killed in the middle of
//! `set()` leaves the flag either set or not, never a stuck event.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::shm::{Doorbell, Shared};
use crate::waiters::{deadline, interrupted, lock_state, wait_on, Look};

const NOT_SET: &str = "it was not set yet: call wait() again to keep waiting";

/// A flag shared between processes (Python's `multiprocessing.Event`): `wait` returns once another
/// process `set`s it. Clones are the same event; so is the copy a forked child gets.
///
/// ```
/// use multiprocessing::{Event, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let ready = Event::new()?;
/// let go = ready.clone();
/// let mut p = Process::new(move || {
///     go.wait().unwrap(); // Python: ready.wait()
///     println!("child: the parent said go");
/// });
/// p.start()?;
/// ready.set()?; // Python: ready.set()
/// assert_eq!(p.join()?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Event {
    state: Arc<Shared<bool>>,
    bell: Arc<Doorbell>,
}

impl Event {
    /// A new event, not set (Python's `Event()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let e = multiprocessing::Event::new()?;
    /// assert!(!e.is_set()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<Event> {
        Ok(Event {
            state: Arc::new(Shared::new(false)?),
            bell: Arc::new(Doorbell::new()?),
        })
    }

    /// Sets the flag and wakes every waiting process (Python's `e.set()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let e = multiprocessing::Event::new()?;
    /// e.set()?;
    /// assert!(e.is_set()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self) -> Result<()> {
        *lock_state(&self.state)? = true;
        self.bell.ring();
        Ok(())
    }

    /// Clears the flag (Python's `e.clear()`): later `wait`s wait again.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let e = multiprocessing::Event::new()?;
    /// e.set()?;
    /// e.clear()?;
    /// assert!(!e.is_set()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear(&self) -> Result<()> {
        *lock_state(&self.state)? = false;
        Ok(())
    }

    /// Whether the flag is set (Python's `e.is_set()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let e = multiprocessing::Event::new()?;
    /// assert!(!e.is_set()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_set(&self) -> Result<bool> {
        Ok(*lock_state(&self.state)?)
    }

    /// Waits until the flag is set (Python's `e.wait()`); returns at once if it is set already.
    /// Relays children's output while it waits.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let e = multiprocessing::Event::new()?;
    /// e.set()?;
    /// e.wait()?; // set: returns at once
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(&self) -> Result<()> {
        wait_on(
            &self.state,
            &self.bell,
            None,
            |set, _| {
                if *set {
                    Look::Done(())
                } else {
                    Look::Wait
                }
            },
            |_| interrupted("an Event", NOT_SET),
        )
    }

    /// Waits at most `timeout` for the flag (Python's `e.wait(timeout)`): returns the flag, `false`
    /// if the time ran out first.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let e = multiprocessing::Event::new()?;
    /// assert!(!e.wait_timeout(Duration::from_millis(10))?);
    /// e.set()?;
    /// assert!(e.wait_timeout(Duration::from_millis(10))?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        wait_on(
            &self.state,
            &self.bell,
            deadline(timeout),
            |set, expired| {
                if *set || expired {
                    Look::Done(*set)
                } else {
                    Look::Wait
                }
            },
            |_| interrupted("an Event", NOT_SET),
        )
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set().ok())
            .finish()
    }
}
