//! [`SimpleQueue`]: Python's `multiprocessing.SimpleQueue`, the plain queue: `put`, `get`,
//! `empty`, `close`, nothing else.
//!
//! | Python | Rust |
//! |---|---|
//! | `q = SimpleQueue()` | `let q = SimpleQueue::new()?;` |
//! | `q.put(x)`, `q.get()`, `q.empty()`, `q.close()` | `q.put(&x)?`, `q.get()?`, `q.empty()`, `q.close()` |
//!
//! It is a [`Queue`] without the extras (Python's is a pipe and two locks without a feeder thread;
//! ours are all like that).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::queue::Queue;

/// A plain queue shared by forked processes (Python's `multiprocessing.SimpleQueue`). Clones are
/// the same queue.
///
/// ```
/// use multiprocessing::{Process, SimpleQueue};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let q = SimpleQueue::new()?;
/// let tx = q.clone();
/// let mut p = Process::new(move || tx.put(&"hi".to_owned()).unwrap());
/// p.start()?;
/// assert_eq!(q.get()?, "hi");
/// p.join()?;
/// # Ok(())
/// # }
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// An empty queue (Python's `SimpleQueue()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::SimpleQueue::<u8>::new()?;
    /// assert!(q.empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<SimpleQueue<T>> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }

    /// Adds `item` (Python's `q.put(obj)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::SimpleQueue::new()?;
    /// q.put(&1u8)?;
    /// assert!(!q.empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, item: &T) -> Result<()> {
        self.queue.put(item)
    }

    /// Takes the first item, waiting for one (Python's `q.get()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::SimpleQueue::new()?;
    /// q.put(&2u8)?;
    /// assert_eq!(q.get()?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }

    /// Whether it is empty now (Python's `q.empty()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert!(multiprocessing::SimpleQueue::<u8>::new()?.empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// Closes it in this process (Python's `q.close()`): later calls here return
    /// [`Error::QueueClosed`](crate::Error::QueueClosed).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::SimpleQueue::<u8>::new()?;
    /// q.close();
    /// assert!(q.get().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) {
        self.queue.close()
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue").finish_non_exhaustive()
    }
}
