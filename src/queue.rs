//! [`Queue`]: Python's `multiprocessing.Queue`, many producers and many consumers across forked
//! processes.
//!
//! | Python | Rust |
//! |---|---|
//! | `q = Queue()` | `let q = Queue::new()?;` or `Queue::<u64>::new()?` (one item type per queue) |
//! | `q.put(x)` | `q.put(&x)?` (any `Serialize`) |
//! | `q.get()` | `q.get()?` |
//! | `q.get(timeout=1)` | `q.get_timeout(Duration::from_secs(1))?` |
//! | `q.get_nowait()` | `q.get_nowait()?` |
//! | `queue.Empty` | [`Error::Empty`] |
//! | `q.empty()`, `q.qsize()` | `q.empty()`, `q.qsize()` (snapshots: other processes may change them at once) |
//! | `q = Queue(maxsize=2)`, `q.full()` | `let q = Queue::with_maxsize(2)?;`, `q.full()` |
//! | `q.put(x, timeout=1)`, `q.put_nowait(x)`, `queue.Full` | `q.put_timeout(&x, Duration::from_secs(1))?`, `q.put_nowait(&x)?`, [`Error::Full`] |
//! | `q.close()`; then `put`/`get` raise `ValueError` | `q.close()`; then [`Error::QueueClosed`] (in this process) |
//!
//! Inside: one pipe (1 MiB buffer where the system allows) carrying frames (an 8-byte length, then
//! the postcard bytes of the item), and two [`Lock`](crate::Lock)-like robust mutexes in shared
//! memory: one for writers, one for readers. A writer holds the write lock while it writes a whole
//! item and a reader holds the read lock while it reads one, so items of any size (far beyond
//! `PIPE_BUF`) never interleave between producers nor split between consumers.
//!
//! Differences from Python:
//! - No feeder thread (this crate never starts threads: they would make every later `fork` unsafe).
//!   `put` writes the item itself, so it waits while the pipe is full, until consumers `get`.
//!   Python's `put` returns at once, but its process then cannot end before the items are
//!   consumed; so, in both: get the items before you `join` the producers.
//! - A consumer killed while it *waits* in `get` harms nobody; a process killed in the middle of
//!   writing or reading an item (a rare moment) leaves the stream cut: every later call on that side
//!   returns [`Error::QueueBroken`] instead of garbage or a hang. Stop workers with a stop item rather
//!   than `terminate()`.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::semaphore::Semaphore;
use crate::shm::{Acquired, Shared, SharedGuard, Wait};
use crate::{wait, wire};

/// A FIFO queue of `T`s shared by the processes forked after it was made (Python's
/// `multiprocessing.Queue`). Clones are the same queue.
///
/// ```
/// use multiprocessing::{Process, Queue};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let q = Queue::<u64>::new()?;
/// let mut producers = Vec::new();
/// for i in 0..3 {
///     let q = q.clone();
///     let mut p = Process::new(move || q.put(&(i * i)).unwrap());
///     p.start()?;
///     producers.push(p);
/// }
/// let mut got: Vec<u64> = (0..3).map(|_| q.get()).collect::<Result<_, _>>()?;
/// for p in &producers {
///     p.join()?;
/// }
/// got.sort();
/// assert_eq!(got, [0, 1, 4]);
/// # Ok(())
/// # }
/// ```
pub struct Queue<T> {
    inner: Arc<Inner>,
    _item: PhantomData<fn(T) -> T>,
}

struct Inner {
    read: OwnedFd,
    write: OwnedFd,
    /// Held by the reader of an item; the flag is true while an item is half read.
    rlock: Shared<bool>,
    /// Held by the writer of an item; the flag is true while an item is half written. Its counter
    /// is the number of items in the pipe.
    wlock: Shared<bool>,
    /// Free places when the queue has a `maxsize` (Python's `_sem`): `put` takes one, `get` gives
    /// one back.
    slots: Option<Semaphore>,
    maxsize: usize,
    /// `close()` was called in this process (the flag lives in this process's memory, as Python's).
    closed: AtomicBool,
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Makes an empty queue.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::Queue::new()?;
    /// q.put(&"hello".to_owned())?;
    /// assert_eq!(q.get()?, "hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<Queue<T>> {
        Queue::with_maxsize(0)
    }

    /// Makes an empty queue that holds at most `maxsize` items (Python's `Queue(maxsize)`); 0 means
    /// no limit, as in Python. `put` waits while it is full; `put_timeout`/`put_nowait` return
    /// [`Error::Full`].
    ///
    /// ```
    /// use multiprocessing::{Error, Queue};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = Queue::with_maxsize(1)?;
    /// q.put(&1)?;
    /// assert!(q.full());
    /// assert!(matches!(q.put_nowait(&2), Err(Error::Full { maxsize: 1 })));
    /// assert_eq!(q.get()?, 1);
    /// q.put_nowait(&2)?; // room again
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_maxsize(maxsize: usize) -> Result<Queue<T>> {
        let slots = match maxsize {
            0 => None,
            n => Some(Semaphore::untracked(u32::try_from(n).map_err(|_| {
                Error::InvalidArgument {
                    name: "maxsize",
                    value: n.to_string(),
                    fix: "use a maxsize below 2^32 (or 0 for no limit)",
                }
            })?)?),
        };
        // The write end is nonblocking: a full pipe sends `put` into the waiting core (interruptible,
        // relaying children's output) instead of blocking in write(2).
        let (read, write) = wire::pipe(false, true, wire::Buffer::Large)?;
        Ok(Queue {
            inner: Arc::new(Inner {
                read,
                write,
                rlock: Shared::new(false)?,
                wlock: Shared::new(false)?,
                slots,
                maxsize,
                closed: AtomicBool::new(false),
            }),
            _item: PhantomData,
        })
    }

    /// Adds `item` at the end (Python's `put(obj)`). Waits while the queue's buffer is full, until a
    /// consumer gets items. [`Error::QueueBroken`] if a producer died in the middle of a `put`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::Queue::new()?;
    /// q.put(&vec![1.5f64; 100_000])?; // large items stay whole
    /// assert_eq!(q.get()?.len(), 100_000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, item: &T) -> Result<()> {
        self.put_until(item, None)
    }

    /// Like [`put`](Queue::put), waiting at most `timeout` for room in a queue with a `maxsize`
    /// (Python's `put(obj, timeout=...)`): [`Error::Full`] if none came.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{Error, Queue};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = Queue::with_maxsize(1)?;
    /// q.put_timeout(&'a', Duration::from_millis(10))?;
    /// assert!(matches!(q.put_timeout(&'b', Duration::from_millis(10)), Err(Error::Full { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        self.put_until(item, Some(timeout))
    }

    /// Puts `item` only if there is room now (Python's `put_nowait(obj)`): else [`Error::Full`].
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::Queue::with_maxsize(2)?;
    /// q.put_nowait(&1)?;
    /// q.put_nowait(&2)?;
    /// assert!(q.put_nowait(&3).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_nowait(&self, item: &T) -> Result<()> {
        self.put_until(item, Some(Duration::ZERO))
    }

    /// Whether a queue with a `maxsize` has no room now (Python's `full()`); always `false` without
    /// one. A snapshot.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::Queue::with_maxsize(1)?;
    /// assert!(!q.full());
    /// q.put(&0u8)?;
    /// assert!(q.full());
    /// # Ok(())
    /// # }
    /// ```
    pub fn full(&self) -> bool {
        self.inner
            .slots
            .as_ref()
            .is_some_and(|s| s.value().is_ok_and(|v| v == 0))
    }

    /// Closes the queue in this process (Python's `close()`): later `put`s and `get`s here return
    /// [`Error::QueueClosed`]. Other processes' handles are not affected. Items already put stay in
    /// the queue for the others.
    ///
    /// ```
    /// use multiprocessing::{Error, Queue};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = Queue::<u8>::new()?;
    /// q.close();
    /// assert!(matches!(q.put(&1), Err(Error::QueueClosed)));
    /// assert!(matches!(q.get(), Err(Error::QueueClosed)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::QueueClosed);
        }
        Ok(())
    }

    fn put_until(&self, item: &T, timeout: Option<Duration>) -> Result<()> {
        self.check_open()?;
        let frame = wire::encode_message(item)?;
        if let Some(slots) = &self.inner.slots {
            if !slots.acquire_for(timeout)? {
                return Err(Error::Full {
                    maxsize: self.inner.maxsize,
                });
            }
        }
        let written = self.write_frame(&frame);
        if written.is_err() {
            if let Some(slots) = &self.inner.slots {
                let _ = slots.release();
            }
        }
        written
    }

    fn write_frame(&self, frame: &[u8]) -> Result<()> {
        let Some(mut guard) = enter(&self.inner.wlock, Wait::Forever, "putting")? else {
            unreachable!("a lock without timeout waits until it is free");
        };
        *guard = true;
        let mut rest = frame;
        while !rest.is_empty() {
            match nix::unistd::write(&self.inner.write, rest) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    let sent = frame.len() - rest.len();
                    let waited = wait::fd_ready(
                        self.inner.write.as_fd(),
                        wait::WRITABLE,
                        None,
                        || Error::Interrupted {
                            waiting_for:
                                "room in the Queue (its buffer is full: nobody gets items)".into(),
                            state: if sent == 0 {
                                "the item was not put: call put() again to retry".into()
                            } else {
                                "the item was half written, so the Queue is broken (every later call returns QueueBroken): create a new Queue".into()
                            },
                        },
                    );
                    if let Err(e) = waited {
                        // Half written: the flag stays set, so every later put/get sees a cut stream.
                        *guard = sent > 0;
                        return Err(e);
                    }
                }
                Err(e) => return Err(Error::os("write", e)),
            }
        }
        *guard = false;
        self.inner.wlock.count().fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes and returns the first item, waiting for one as long as it takes (Python's `get()`).
    ///
    /// ```
    /// use multiprocessing::{Process, Queue};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = Queue::new()?;
    /// let tx = q.clone();
    /// let mut p = Process::new(move || tx.put(&(1, "from the child".to_owned())).unwrap());
    /// p.start()?;
    /// assert_eq!(q.get()?, (1, "from the child".to_owned()));
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> Result<T> {
        self.get_until(None, Duration::MAX)
    }

    /// Like [`get`](Queue::get), waiting at most `timeout`: [`Error::Empty`] when no item came
    /// (Python's `get(timeout=...)` raising `queue.Empty`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{Error, Queue};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = Queue::<i32>::new()?;
    /// let got = q.get_timeout(Duration::from_millis(20));
    /// assert!(matches!(got, Err(Error::Empty { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(Instant::now().checked_add(timeout), timeout)
    }

    /// Returns the first item if one is there now, else [`Error::Empty`] (Python's `get_nowait()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::Queue::new()?;
    /// assert!(q.get_nowait().is_err());
    /// q.put(&7u8)?;
    /// assert_eq!(q.get_nowait()?, 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.get_timeout(Duration::ZERO)
    }

    fn get_until(&self, deadline: Option<Instant>, waited: Duration) -> Result<T> {
        self.check_open()?;
        let empty = || Error::Empty {
            what: "the Queue",
            waited,
        };
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        let Some(mut guard) = enter(&self.inner.rlock, wait, "getting")? else {
            return Err(empty());
        };
        // Wait for the first byte without the "half read" flag: a consumer killed while it waits
        // leaves the stream intact.
        let ready = wait::fd_ready(self.inner.read.as_fd(), wait::READABLE, deadline, || {
            Error::Interrupted {
                waiting_for: "an item from the Queue".into(),
                state: "no item was taken: call get() again to keep waiting".into(),
            }
        })?;
        if !ready {
            return Err(empty());
        }
        *guard = true;
        let mut body = Vec::new();
        let got = wire::read_frame(self.inner.read.as_fd(), &mut body, "the Queue's producer")?;
        *guard = false;
        drop(guard);
        // This process holds the write end, so the pipe never reaches end of file.
        if !got {
            return Err(Error::QueueBroken { during: "getting" });
        }
        self.inner.wlock.count().fetch_sub(1, Ordering::Relaxed);
        if let Some(slots) = &self.inner.slots {
            let _ = slots.release();
        }
        wire::decode_message(&body)
    }

    /// Whether the queue has no item now (Python's `empty()`): a snapshot, since other processes may
    /// put or get at any moment.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::Queue::new()?;
    /// assert!(q.empty());
    /// q.put(&1u8)?;
    /// assert!(!q.empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn empty(&self) -> bool {
        let mut one = [libc::pollfd {
            fd: self.inner.read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        !matches!(crate::sys::poll(&mut one, 0), Ok(n) if n > 0)
    }

    /// About how many items are in the queue (Python's `qsize()`): items fully put and not yet got.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let q = multiprocessing::Queue::new()?;
    /// q.put(&'a')?;
    /// q.put(&'b')?;
    /// assert_eq!(q.qsize(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn qsize(&self) -> usize {
        self.inner.wlock.count().load(Ordering::Relaxed).max(0) as usize
    }
}

/// Takes one side's lock. `None` when the wait ran out. A holder that died between items is no
/// harm (the lock is made consistent); one that died inside an item leaves the lock unrecoverable.
fn enter<'a>(
    lock: &'a Shared<bool>,
    wait: Wait,
    during: &'static str,
) -> Result<Option<SharedGuard<'a, bool>>> {
    match lock.lock(wait, "this Queue's lock")? {
        // A put interrupted in the middle of an item left the flag set: the stream is cut.
        Acquired::Locked(guard) if *guard => Err(Error::QueueBroken { during }),
        Acquired::Locked(guard) => Ok(Some(guard)),
        Acquired::OwnerDied(guard, _) if !*guard => {
            guard.make_consistent();
            Ok(Some(guard))
        }
        // Dropped without make_consistent: the mutex becomes unrecoverable, for every process.
        Acquired::OwnerDied(..) | Acquired::Unrecoverable => Err(Error::QueueBroken { during }),
        Acquired::Busy => Ok(None),
        Acquired::Deadlock => Err(Error::WouldDeadlock {
            what: "this Queue's lock",
        }),
    }
}

impl<T> Clone for Queue<T> {
    /// Another handle to the same queue.
    fn clone(&self) -> Self {
        Queue {
            inner: Arc::clone(&self.inner),
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field(
                "qsize",
                &self.inner.wlock.count().load(Ordering::Relaxed).max(0),
            )
            .finish()
    }
}
