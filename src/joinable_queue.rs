//! [`JoinableQueue`]: Python's `multiprocessing.JoinableQueue`, a [`Queue`] that counts unfinished
//! tasks: consumers call `task_done()` per item, and `join()` waits until every item put was done.
//!
//! | Python | Rust |
//! |---|---|
//! | `q = JoinableQueue()` | `let q = JoinableQueue::new()?;` (or `with_maxsize(n)`) |
//! | `q.put(x)`, `q.get()` | `q.put(&x)?`, `q.get()?` (and the other [`Queue`] calls) |
//! | `q.task_done()` | `q.task_done()?` |
//! | `q.join()` | `q.join()?` |
//! | `ValueError: task_done() called too many times` | `Err(Error::TaskDoneTooOften)` |
//!
//! Differs from Python on purpose: a consumer that dies after `get` and before `task_done` would
//! make Python's `join` wait forever. Here the items each process got and has not marked done are
//! counted per process (up to 64 consumers at once); `join` notices a dead one, forgets its tasks
//! and returns [`Error::HolderDied`] (call `join` again to wait for the
//! rest).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::queue::Queue;
use crate::shm::{Doorbell, Shared};
use crate::waiters::{interrupted, lock_state, wait_on, Look, Table, Who};

#[derive(Clone, Copy)]
#[repr(C)]
struct Tasks {
    /// Items put and not yet marked done.
    unfinished: u64,
    /// Per process: items got and not yet marked done.
    got: Table,
}

/// A queue whose consumers mark each item done, so that a producer can wait for all of them
/// (Python's `multiprocessing.JoinableQueue`). Clones are the same queue.
///
/// ```
/// use multiprocessing::{JoinableQueue, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let q = JoinableQueue::<u32>::new()?;
/// let work = q.clone();
/// let mut consumer = Process::new(move || loop {
///     let n = work.get().unwrap();
///     println!("did {n}");
///     work.task_done().unwrap(); // Python: q.task_done()
/// });
/// consumer.set_daemon(true)?;
/// consumer.start()?;
/// for n in 0..3 {
///     q.put(&n)?;
/// }
/// q.join()?; // Python: q.join(): every item was got and done
/// consumer.terminate()?;
/// consumer.join()?;
/// # Ok(())
/// # }
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
    tasks: Arc<Shared<Tasks>>,
    bell: Arc<Doorbell>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
            tasks: self.tasks.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An empty joinable queue without size limit (Python's `JoinableQueue()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::<u8>::new()?;
    /// q.join()?; // nothing put: returns at once
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<JoinableQueue<T>> {
        JoinableQueue::with_maxsize(0)
    }

    /// An empty joinable queue holding at most `maxsize` items (0: no limit).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::with_maxsize(1)?;
    /// q.put(&1u8)?;
    /// assert!(q.full());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_maxsize(maxsize: usize) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::with_maxsize(maxsize)?,
            tasks: Arc::new(Shared::new(Tasks {
                unfinished: 0,
                got: Table::new(),
            })?),
            bell: Arc::new(Doorbell::new()?),
        })
    }

    /// Counts the item as unfinished *before* it is put (a consumer may get it and call
    /// `task_done` before `put` returns), and takes the count back if the put failed.
    fn count_put(&self, put: impl FnOnce() -> Result<()>) -> Result<()> {
        lock_state(&self.tasks)?.unfinished += 1;
        let result = put();
        if result.is_err() {
            let mut tasks = lock_state(&self.tasks)?;
            tasks.unfinished = tasks.unfinished.saturating_sub(1);
            let all_done = tasks.unfinished == 0;
            drop(tasks);
            if all_done {
                self.bell.ring();
            }
        }
        result
    }

    fn count_got(&self, got: Result<T>) -> Result<T> {
        if got.is_ok() {
            lock_state(&self.tasks)?.got.add(&Who::me(), 1);
        }
        got
    }

    /// As [`Queue::put`]; the item counts as unfinished until a `task_done()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::new()?;
    /// q.put(&"job".to_owned())?;
    /// assert_eq!(q.qsize(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, item: &T) -> Result<()> {
        self.count_put(|| self.queue.put(item))
    }

    /// As [`Queue::put_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::with_maxsize(1)?;
    /// q.put_timeout(&1u8, Duration::from_millis(5))?;
    /// assert!(q.put_timeout(&2u8, Duration::from_millis(5)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        self.count_put(|| self.queue.put_timeout(item, timeout))
    }

    /// As [`Queue::put_nowait`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::new()?;
    /// q.put_nowait(&1u8)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_nowait(&self, item: &T) -> Result<()> {
        self.count_put(|| self.queue.put_nowait(item))
    }

    /// As [`Queue::get`]; call [`task_done`](Self::task_done) once the item is dealt with.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::new()?;
    /// q.put(&5u8)?;
    /// assert_eq!(q.get()?, 5);
    /// q.task_done()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> Result<T> {
        self.count_got(self.queue.get())
    }

    /// As [`Queue::get_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::<u8>::new()?;
    /// assert!(q.get_timeout(Duration::from_millis(5)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.count_got(self.queue.get_timeout(timeout))
    }

    /// As [`Queue::get_nowait`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::<u8>::new()?;
    /// assert!(q.get_nowait().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.count_got(self.queue.get_nowait())
    }

    /// As [`Queue::qsize`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::JoinableQueue::<u8>::new()?.qsize(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn qsize(&self) -> usize {
        self.queue.qsize()
    }

    /// As [`Queue::empty`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert!(multiprocessing::JoinableQueue::<u8>::new()?.empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// As [`Queue::full`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert!(!multiprocessing::JoinableQueue::<u8>::new()?.full());
    /// # Ok(())
    /// # }
    /// ```
    pub fn full(&self) -> bool {
        self.queue.full()
    }

    /// As [`Queue::close`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::<u8>::new()?;
    /// q.close();
    /// assert!(q.put(&1).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) {
        self.queue.close()
    }

    /// Marks one item got from the queue as done (Python's `q.task_done()`);
    /// [`Error::TaskDoneTooOften`] if every item put is done already.
    ///
    /// ```
    /// use multiprocessing::{Error, JoinableQueue};
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = JoinableQueue::<u8>::new()?;
    /// assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn task_done(&self) -> Result<()> {
        let mut tasks = lock_state(&self.tasks)?;
        if tasks.unfinished == 0 {
            return Err(Error::TaskDoneTooOften);
        }
        tasks.unfinished -= 1;
        tasks.got.take_one(&Who::me());
        let all_done = tasks.unfinished == 0;
        drop(tasks);
        if all_done {
            self.bell.ring();
        }
        Ok(())
    }

    /// Waits until every item put was marked done (Python's `q.join()`). [`Error::HolderDied`] if a
    /// process died with items it got and never marked done: they are forgotten; call `join` again
    /// for the rest.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::JoinableQueue::new()?;
    /// q.put(&1u8)?;
    /// q.get()?;
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn join(&self) -> Result<()> {
        wait_on(
            &self.tasks,
            &self.bell,
            None,
            |tasks, _| {
                if tasks.unfinished == 0 {
                    return Look::Done(Ok(()));
                }
                if let Some((dead, count)) = tasks.got.remove_dead() {
                    tasks.unfinished = tasks.unfinished.saturating_sub(count as u64);
                    return Look::Done(Err(Error::HolderDied {
                        what: "items of this JoinableQueue it got and never marked done",
                        pid: dead.pid,
                    }));
                }
                Look::Wait
            },
            |_| {
                interrupted(
                    "the JoinableQueue's unfinished tasks",
                    "nothing changed: call join() again to keep waiting",
                )
            },
        )?
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unfinished = lock_state(&self.tasks).map(|t| t.unfinished).ok();
        f.debug_struct("JoinableQueue")
            .field("unfinished", &unfinished)
            .finish()
    }
}
