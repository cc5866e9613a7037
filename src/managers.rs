//! [`Manager`]: Python's `multiprocessing.Manager()`, a server process that holds a dict, a list, a
//! value, a queue or a lock for the other processes, which use them through proxies.
//!
//! | Python | Rust |
//! |---|---|
//! | `with Manager() as m: ...` | `Manager::with(\|m\| ...)?` (shuts the manager down at the end) |
//! | `m = Manager()`, `m.shutdown()` | `let m = Manager::new()?;`, `m.shutdown()?` |
//! | `d = m.dict()`; `d[k] = v`; `d[k]`; `d.get(k)`; `del d[k]` | `let d = m.dict::<K, V>()?;` `d.insert(&k, &v)?`; `d.get(&k)?` (`Option<V>`); `d.remove(&k)?` |
//! | `k in d`, `len(d)`, `d.keys()`, `d.values()`, `d.items()`, `d.clear()` | `d.contains_key(&k)?`, `d.len()?`, `d.keys()?`, `d.values()?`, `d.items()?`, `d.clear()?` |
//! | `l = m.list()`; `l.append(x)`; `l.extend(xs)`; `l[i]`; `l[i] = x`; `l.pop()`; `list(l)`; `len(l)` | `let l = m.list::<T>()?;` `l.push(&x)?`; `l.extend(&xs)?`; `l.get(i)?`; `l.set(i, &x)?`; `l.pop()?`; `l.to_vec()?`; `l.len()?` |
//! | `v = m.Value('i', 0)`; `v.value`; `v.value = 1` | `let v = m.value(0i32)?;` `v.get()?`; `v.set(&1)?` |
//! | `q = m.Queue()`; `q.put(x)`; `q.get()`; `q.get(timeout=1)`; `q.qsize()` | `let q = m.queue::<T>()?;` `q.put(&x)?`; `q.get()?`; `q.get_timeout(d)?`; `q.qsize()?` |
//! | `lock = m.Lock()`; `with lock: ...` | `let lock = m.lock()?;` `lock.with(\|\| ...)?` or `let _g = lock.acquire()?;` |
//!
//! Values cross to the manager with serde, as everywhere in this crate (Python pickles them); a
//! proxy is typed (`DictProxy<String, i32>`), so reading what another process wrote with another
//! type is an [`Error::Codec`]. Proxies are cheap handles: clone them into `Process` closures; each
//! process talks to the manager over its own connection (a Unix socket in the abstract namespace,
//! open to this user only).
//!
//! Differs from Python on purpose:
//! - The manager dying (killed, crashed) gives every proxy call [`Error::ManagerDied`] (Python: a
//!   `ConnectionRefusedError`, `EOFError` or `BrokenPipeError`, depending on the call).
//! - A process that dies holding a managed lock does not keep it forever: the manager releases it
//!   and the next `acquire` gets [`Error::LockOwnerDied`], then the lock is free.
//! - Like everything in this crate there is no thread: the manager is one process running one poll
//!   loop; a `get` on an empty queue waits in the manager without blocking other clients.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::process::Process;
use crate::{wait, wire};

/// The kinds of shared objects.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
enum Kind {
    Dict,
    List,
    Value,
    Queue,
    Lock,
}

/// A request from a proxy. Values are postcard bytes, opaque to the manager.
#[derive(Debug, Serialize, Deserialize)]
enum Req {
    New(Kind, Vec<u8>),
    DictSet(u64, Vec<u8>, Vec<u8>),
    DictGet(u64, Vec<u8>),
    DictRemove(u64, Vec<u8>),
    DictItems(u64),
    Len(u64),
    Clear(u64),
    ListPush(u64, Vec<Vec<u8>>),
    ListGet(u64, u64),
    ListSet(u64, u64, Vec<u8>),
    ListPop(u64),
    ListItems(u64),
    ValueGet(u64),
    ValueSet(u64, Vec<u8>),
    QueuePut(u64, Vec<u8>),
    /// Timeout in milliseconds; `None` waits without limit.
    QueueGet(u64, Option<u64>),
    LockAcquire(u64, Option<u64>),
    LockRelease(u64),
    Shutdown,
}

/// The manager's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Resp {
    Done,
    Id(u64),
    Maybe(Option<Vec<u8>>),
    Len(u64),
    Items(Vec<Vec<u8>>),
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    /// A queue get or lock acquire that timed out.
    TimedOut,
    IndexOutOfRange(u64),
    /// The lock's previous holder died holding it (its pid); the lock is free now.
    OwnerDied(i32),
    NotHeld,
    NoSuchObject,
}

/// Where a manager listens, and this process's connection to it.
struct Link {
    address: String,
    manager_pid: i32,
    conn: RefCell<Option<(u32, UnixStream)>>,
}

impl Link {
    fn died(&self, how: &str) -> Error {
        Error::ManagerDied {
            pid: self.manager_pid,
            how: how.to_owned(),
        }
    }

    /// Sends `req` and waits for the answer, relaying children's output while it waits.
    fn call(&self, req: &Req) -> Result<Resp> {
        let me = std::process::id();
        let mut conn = self.conn.borrow_mut();
        // A connection inherited from the parent across fork is the parent's: open our own.
        if conn.as_ref().is_none_or_pid(me) {
            let addr = SocketAddr::from_abstract_name(self.address.as_bytes())
                .map_err(|e| Error::os("socket address", errno_of(&e)))?;
            let stream = UnixStream::connect_addr(&addr)
                .map_err(|_| self.died("refuses connections (it has ended)"))?;
            // This process's connection: a child forked later releases its copy (it opens its own).
            crate::registry::lock().note_parent_ends(self.manager_pid, &[stream.as_fd()]);
            *conn = Some((me, stream));
        }
        let (_, stream) = conn.as_ref().expect("connected above");
        wire::send_all(stream.as_fd(), &wire::encode_message(req)?)
            .map_err(|_| self.died("closed the connection"))?;
        let waited = wait::fd_ready(stream.as_fd(), wait::READABLE, None, || {
            Error::Interrupted {
            waiting_for: "the manager's answer".into(),
            state: "the request was sent and may still complete in the manager (a get may take an \
                    item, an acquire the lock, which is released when this process ends); call again"
                .into(),
        }
        });
        if let Err(e) = waited {
            // The answer, when it comes, must not be read as the answer to a later request.
            *conn = None;
            return Err(e);
        }
        let mut body = Vec::new();
        match wire::read_frame(stream.as_fd(), &mut body, "the manager") {
            Ok(true) => wire::decode_message(&body),
            _ => {
                *conn = None;
                Err(self.died("closed the connection"))
            }
        }
    }
}

/// `Option<(pid, _)>`: none, or made in another process.
trait PidCheck {
    fn is_none_or_pid(&self, me: u32) -> bool;
}

impl PidCheck for Option<&(u32, UnixStream)> {
    fn is_none_or_pid(&self, me: u32) -> bool {
        self.map_or(true, |(pid, _)| *pid != me)
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn unexpected(resp: Resp) -> Error {
    Error::Codec {
        direction: "deserialize",
        what: "the manager's answer",
        message: format!("unexpected answer {resp:?}"),
    }
}

fn millis(timeout: Duration) -> u64 {
    timeout.as_millis().min(u64::MAX as u128) as u64
}

/// A manager process holding shared objects for other processes (Python's
/// `multiprocessing.Manager()`, a `SyncManager`). Every process forked after it (and this one) can
/// use its proxies.
///
/// ```
/// use multiprocessing::{managers::Manager, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// Manager::with(|m| {
///     let d = m.dict::<String, u32>()?; // Python: d = manager.dict()
///     let l = m.list::<u32>()?; // Python: l = manager.list()
///     let mut children = Vec::new();
///     for i in 0..3 {
///         let (d, l) = (d.clone(), l.clone());
///         let mut p = Process::new(move || {
///             d.insert(&format!("child {i}"), &(i * i)).unwrap(); // d[f"child {i}"] = i * i
///             l.push(&i).unwrap(); // l.append(i)
///         });
///         p.start()?;
///         children.push(p);
///     }
///     for p in &children {
///         p.join()?;
///     }
///     assert_eq!(d.get(&"child 2".to_owned())?, Some(4));
///     let mut items = l.to_vec()?;
///     items.sort();
///     assert_eq!(items, [0, 1, 2]);
///     Ok(())
/// })
/// # }
/// ```
pub struct Manager {
    link: Rc<Link>,
    process: Option<Process>,
    creator: u32,
}

impl Manager {
    /// Starts a manager process, named `SyncManager-N` as in Python (Python's `Manager()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// m.shutdown()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Result<Manager> {
        let mut random = [0u8; 8];
        let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random));
        let address = format!(
            "rust-multiprocessing-manager-{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(random)
        );
        let addr = SocketAddr::from_abstract_name(address.as_bytes())
            .map_err(|e| Error::os("socket address", errno_of(&e)))?;
        let listener =
            UnixListener::bind_addr(&addr).map_err(|e| Error::os("bind", errno_of(&e)))?;
        let mut process = Process::new(move || serve(listener));
        let name = process.name().replacen("Process-", "SyncManager-", 1);
        process.set_name(name)?;
        process.start()?;
        let manager_pid = process.pid().unwrap_or(0);
        Ok(Manager {
            link: Rc::new(Link {
                address,
                manager_pid,
                conn: RefCell::new(None),
            }),
            process: Some(process),
            creator: std::process::id(),
        })
    }

    /// Runs `body` with a new manager, then shuts it down (Python's `with Manager() as m:`).
    ///
    /// ```
    /// use multiprocessing::managers::Manager;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let n = Manager::with(|m| {
    ///     let v = m.value(41)?;
    ///     v.set(&(v.get()? + 1))?;
    ///     v.get()
    /// })?;
    /// assert_eq!(n, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with<R>(body: impl FnOnce(&Manager) -> Result<R>) -> Result<R> {
        let m = Manager::new()?;
        let out = body(&m);
        m.shutdown()?;
        out
    }

    /// The manager process's pid.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert!(m.pid() > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pid(&self) -> i32 {
        self.link.manager_pid
    }

    fn new_object(&self, kind: Kind, init: Vec<u8>) -> Result<Handle> {
        match self.link.call(&Req::New(kind, init))? {
            Resp::Id(id) => Ok(Handle {
                link: self.link.clone(),
                id,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// A dict held by the manager (Python's `m.dict()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, String>()?;
    /// d.insert(&1, &"one".to_owned())?;
    /// assert_eq!(d.items()?, [(1, "one".to_owned())]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        Ok(DictProxy {
            handle: self.new_object(Kind::Dict, Vec::new())?,
            _types: PhantomData,
        })
    }

    /// A list held by the manager (Python's `m.list()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let l = m.list::<i32>()?;
    /// l.extend(&[1, 2, 3])?;
    /// assert_eq!(l.to_vec()?, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>> {
        Ok(ListProxy {
            handle: self.new_object(Kind::List, Vec::new())?,
            _types: PhantomData,
        })
    }

    /// A value held by the manager, starting at `value` (Python's `m.Value(typecode, value)`); any
    /// serde type, not only numbers.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let v = m.value("start".to_owned())?;
    /// assert_eq!(v.get()?, "start");
    /// # Ok(())
    /// # }
    /// ```
    pub fn value<T: Serialize + DeserializeOwned>(&self, value: T) -> Result<ValueProxy<T>> {
        Ok(ValueProxy {
            handle: self.new_object(Kind::Value, postcard_bytes(&value)?)?,
            _types: PhantomData,
        })
    }

    /// A queue held by the manager (Python's `m.Queue()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let q = m.queue::<u8>()?;
    /// q.put(&9)?;
    /// assert_eq!(q.get()?, 9);
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>> {
        Ok(QueueProxy {
            handle: self.new_object(Kind::Queue, Vec::new())?,
            _types: PhantomData,
        })
    }

    /// A lock held by the manager (Python's `m.Lock()`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let lock = m.lock()?;
    /// lock.with(|| println!("inside"))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self) -> Result<LockProxy> {
        Ok(LockProxy {
            handle: self.new_object(Kind::Lock, Vec::new())?,
        })
    }

    /// Stops the manager process and waits for it (Python's `m.shutdown()`). Proxies used later get
    /// [`Error::ManagerDied`].
    ///
    /// ```
    /// use multiprocessing::{managers::Manager, Error};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = Manager::new()?;
    /// let l = m.list::<u8>()?;
    /// m.shutdown()?;
    /// assert!(matches!(l.len(), Err(Error::ManagerDied { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(process) = self.process.take() else {
            return Ok(());
        };
        if std::process::id() != self.creator {
            return Ok(());
        }
        let _ = self.link.call(&Req::Shutdown);
        *self.link.conn.borrow_mut() = None;
        if process.join_timeout(Duration::from_secs(5))?.is_none() {
            process.kill()?;
            process.join()?;
        }
        Ok(())
    }
}

impl Drop for Manager {
    /// Shuts the manager down (Python does so when the manager object is collected).
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("pid", &self.link.manager_pid)
            .finish()
    }
}

fn postcard_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Codec {
        direction: "serialize",
        what: "a value for the manager",
        message: e.to_string(),
    })
}

fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Codec {
        direction: "deserialize",
        what: "a value from the manager (written with another type?)",
        message: e.to_string(),
    })
}

/// One shared object: its manager and its id there.
#[derive(Clone)]
struct Handle {
    link: Rc<Link>,
    id: u64,
}

impl Handle {
    fn call(&self, req: Req) -> Result<Resp> {
        match self.link.call(&req)? {
            Resp::NoSuchObject => Err(self.link.died("lost this object")),
            other => Ok(other),
        }
    }

    fn len(&self) -> Result<usize> {
        match self.call(Req::Len(self.id))? {
            Resp::Len(n) => Ok(n as usize),
            other => Err(unexpected(other)),
        }
    }
}

/// A proxy for a dict held by a [`Manager`] (Python's `DictProxy`). Clones are the same dict.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let m = multiprocessing::managers::Manager::new()?;
/// let d = m.dict::<String, f64>()?;
/// d.insert(&"pi".to_owned(), &3.14)?; // Python: d["pi"] = 3.14
/// assert_eq!(d.get(&"pi".to_owned())?, Some(3.14)); // d.get("pi")
/// assert_eq!(d.len()?, 1);
/// # Ok(())
/// # }
/// ```
pub struct DictProxy<K, V> {
    handle: Handle,
    _types: PhantomData<KeyValue<K, V>>,
}

/// The key and value types of a [`DictProxy`] (a `fn` type: the proxy owns neither).
type KeyValue<K, V> = fn(K, V) -> (K, V);

impl<K, V> Clone for DictProxy<K, V> {
    fn clone(&self) -> Self {
        DictProxy {
            handle: self.handle.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// Sets `d[key] = value`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&1, &2)?;
    /// d.insert(&1, &3)?; // replaces
    /// assert_eq!(d.get(&1)?, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn insert(&self, key: &K, value: &V) -> Result<()> {
        self.handle
            .call(Req::DictSet(
                self.handle.id,
                postcard_bytes(key)?,
                postcard_bytes(value)?,
            ))
            .map(|_| ())
    }

    /// `d.get(key)`: the value, or `None` (Python's `d[key]` raises `KeyError` instead).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, u8>()?;
    /// assert_eq!(d.get(&1)?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        match self
            .handle
            .call(Req::DictGet(self.handle.id, postcard_bytes(key)?))?
        {
            Resp::Maybe(v) => v.map(|b| from_bytes(&b)).transpose(),
            other => Err(unexpected(other)),
        }
    }

    /// `d.pop(key, None)` / `del d[key]`: removes the key, returning its value.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&1, &2)?;
    /// assert_eq!(d.remove(&1)?, Some(2));
    /// assert_eq!(d.remove(&1)?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        match self
            .handle
            .call(Req::DictRemove(self.handle.id, postcard_bytes(key)?))?
        {
            Resp::Maybe(v) => v.map(|b| from_bytes(&b)).transpose(),
            other => Err(unexpected(other)),
        }
    }

    /// `key in d`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&1, &2)?;
    /// assert!(d.contains_key(&1)? && !d.contains_key(&2)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// `len(d)`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert_eq!(m.dict::<u8, u8>()?.len()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.handle.len()
    }

    /// `len(d) == 0`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert!(m.dict::<u8, u8>()?.is_empty()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `list(d.items())`, in insertion order (as Python's dict).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, char>()?;
    /// d.insert(&2, &'b')?;
    /// d.insert(&1, &'a')?;
    /// assert_eq!(d.items()?, [(2, 'b'), (1, 'a')]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.handle.call(Req::DictItems(self.handle.id))? {
            Resp::Pairs(pairs) => pairs
                .iter()
                .map(|(k, v)| Ok((from_bytes(k)?, from_bytes(v)?)))
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// `list(d.keys())`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&5, &0)?;
    /// assert_eq!(d.keys()?, [5]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys(&self) -> Result<Vec<K>> {
        Ok(self.items()?.into_iter().map(|(k, _)| k).collect())
    }

    /// `list(d.values())`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&5, &6)?;
    /// assert_eq!(d.values()?, [6]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn values(&self) -> Result<Vec<V>> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }

    /// `d.clear()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&5, &6)?;
    /// d.clear()?;
    /// assert!(d.is_empty()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.handle.call(Req::Clear(self.handle.id)).map(|_| ())
    }
}

/// A proxy for a list held by a [`Manager`] (Python's `ListProxy`). Clones are the same list.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let m = multiprocessing::managers::Manager::new()?;
/// let l = m.list::<String>()?;
/// l.push(&"a".to_owned())?; // Python: l.append("a")
/// assert_eq!(l.get(0)?, "a"); // l[0]
/// # Ok(())
/// # }
/// ```
pub struct ListProxy<T> {
    handle: Handle,
    _types: PhantomData<fn(T) -> T>,
}

impl<T> Clone for ListProxy<T> {
    fn clone(&self) -> Self {
        ListProxy {
            handle: self.handle.clone(),
            _types: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// `l.append(item)`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let l = m.list()?;
    /// l.push(&1u8)?;
    /// assert_eq!(l.len()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn push(&self, item: &T) -> Result<()> {
        self.handle
            .call(Req::ListPush(self.handle.id, vec![postcard_bytes(item)?]))
            .map(|_| ())
    }

    /// `l.extend(items)`, in one step (no other process's item lands in between).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let l = m.list()?;
    /// l.extend(&[1u8, 2])?;
    /// assert_eq!(l.to_vec()?, [1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn extend(&self, items: &[T]) -> Result<()> {
        let items = items.iter().map(postcard_bytes).collect::<Result<_>>()?;
        self.handle
            .call(Req::ListPush(self.handle.id, items))
            .map(|_| ())
    }

    /// `l[index]`; [`Error::InvalidArgument`] out of range (Python's `IndexError`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let l = m.list::<u8>()?;
    /// assert!(l.get(0).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, index: usize) -> Result<T> {
        match self
            .handle
            .call(Req::ListGet(self.handle.id, index as u64))?
        {
            Resp::Maybe(Some(b)) => from_bytes(&b),
            Resp::IndexOutOfRange(len) => Err(out_of_range(index, len)),
            other => Err(unexpected(other)),
        }
    }

    /// `l[index] = item`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let l = m.list()?;
    /// l.push(&1u8)?;
    /// l.set(0, &5)?;
    /// assert_eq!(l.get(0)?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, index: usize, item: &T) -> Result<()> {
        match self.handle.call(Req::ListSet(
            self.handle.id,
            index as u64,
            postcard_bytes(item)?,
        ))? {
            Resp::Done => Ok(()),
            Resp::IndexOutOfRange(len) => Err(out_of_range(index, len)),
            other => Err(unexpected(other)),
        }
    }

    /// `l.pop()`: the last item, or `None` when empty (Python raises `IndexError`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let l = m.list()?;
    /// l.push(&1u8)?;
    /// assert_eq!(l.pop()?, Some(1));
    /// assert_eq!(l.pop()?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pop(&self) -> Result<Option<T>> {
        match self.handle.call(Req::ListPop(self.handle.id))? {
            Resp::Maybe(v) => v.map(|b| from_bytes(&b)).transpose(),
            other => Err(unexpected(other)),
        }
    }

    /// `list(l)`: a copy of all items.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert!(m.list::<u8>()?.to_vec()?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>> {
        match self.handle.call(Req::ListItems(self.handle.id))? {
            Resp::Items(items) => items.iter().map(|b| from_bytes(b)).collect(),
            other => Err(unexpected(other)),
        }
    }

    /// `len(l)`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert_eq!(m.list::<u8>()?.len()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.handle.len()
    }

    /// `len(l) == 0`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert!(m.list::<u8>()?.is_empty()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `l.clear()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let l = m.list()?;
    /// l.push(&1u8)?;
    /// l.clear()?;
    /// assert!(l.is_empty()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.handle.call(Req::Clear(self.handle.id)).map(|_| ())
    }
}

fn out_of_range(index: usize, len: u64) -> Error {
    Error::InvalidArgument {
        name: "index",
        value: format!("{index} (length {len})"),
        fix: "use an index below len()",
    }
}

/// A proxy for a value held by a [`Manager`] (Python's `ValueProxy`). Clones are the same value.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let m = multiprocessing::managers::Manager::new()?;
/// let v = m.value(1.5f64)?; // Python: v = m.Value('d', 1.5)
/// v.set(&2.5)?; // v.value = 2.5
/// assert_eq!(v.get()?, 2.5); // v.value
/// # Ok(())
/// # }
/// ```
pub struct ValueProxy<T> {
    handle: Handle,
    _types: PhantomData<fn(T) -> T>,
}

impl<T> Clone for ValueProxy<T> {
    fn clone(&self) -> Self {
        ValueProxy {
            handle: self.handle.clone(),
            _types: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// `v.value`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert_eq!(m.value(3u8)?.get()?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> Result<T> {
        match self.handle.call(Req::ValueGet(self.handle.id))? {
            Resp::Maybe(Some(b)) => from_bytes(&b),
            other => Err(unexpected(other)),
        }
    }

    /// `v.value = value`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let v = m.value(3u8)?;
    /// v.set(&4)?;
    /// assert_eq!(v.get()?, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, value: &T) -> Result<()> {
        self.handle
            .call(Req::ValueSet(self.handle.id, postcard_bytes(value)?))
            .map(|_| ())
    }
}

/// A proxy for a queue held by a [`Manager`] (Python's `m.Queue()` proxy). Clones are the same
/// queue.
///
/// ```
/// use multiprocessing::{managers::Manager, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let m = Manager::new()?;
/// let q = m.queue::<String>()?;
/// let tx = q.clone();
/// let mut p = Process::new(move || tx.put(&"from the child".to_owned()).unwrap());
/// p.start()?;
/// assert_eq!(q.get()?, "from the child");
/// p.join()?;
/// # Ok(())
/// # }
/// ```
pub struct QueueProxy<T> {
    handle: Handle,
    _types: PhantomData<fn(T) -> T>,
}

impl<T> Clone for QueueProxy<T> {
    fn clone(&self) -> Self {
        QueueProxy {
            handle: self.handle.clone(),
            _types: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    /// `q.put(item)` (the queue has no size limit).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let q = m.queue()?;
    /// q.put(&1u8)?;
    /// assert_eq!(q.qsize()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, item: &T) -> Result<()> {
        self.handle
            .call(Req::QueuePut(self.handle.id, postcard_bytes(item)?))
            .map(|_| ())
    }

    fn take(&self, timeout: Option<Duration>) -> Result<T> {
        match self
            .handle
            .call(Req::QueueGet(self.handle.id, timeout.map(millis)))?
        {
            Resp::Maybe(Some(b)) => from_bytes(&b),
            Resp::TimedOut => Err(Error::Empty {
                what: "the managed Queue",
                waited: timeout.unwrap_or_default(),
            }),
            other => Err(unexpected(other)),
        }
    }

    /// `q.get()`: waits (in the manager) for an item.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let q = m.queue()?;
    /// q.put(&'x')?;
    /// assert_eq!(q.get()?, 'x');
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> Result<T> {
        self.take(None)
    }

    /// `q.get(timeout=...)`: [`Error::Empty`] if nothing came in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let q = m.queue::<u8>()?;
    /// assert!(q.get_timeout(Duration::from_millis(10)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.take(Some(timeout))
    }

    /// `q.get_nowait()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let q = m.queue::<u8>()?;
    /// assert!(q.get_nowait().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.take(Some(Duration::ZERO))
    }

    /// `q.qsize()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert_eq!(m.queue::<u8>()?.qsize()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn qsize(&self) -> Result<usize> {
        self.handle.len()
    }

    /// `q.empty()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert!(m.queue::<u8>()?.empty()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn empty(&self) -> Result<bool> {
        Ok(self.qsize()? == 0)
    }
}

/// A proxy for a lock held by a [`Manager`] (Python's `m.Lock()` proxy). Clones are the same lock.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let m = multiprocessing::managers::Manager::new()?;
/// let lock = m.lock()?;
/// let guard = lock.acquire()?; // Python: lock.acquire()
/// assert!(lock.try_acquire()?.is_none());
/// drop(guard); // lock.release()
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LockProxy {
    handle: Handle,
}

/// Proof that this process holds a [`LockProxy`]'s lock; released when dropped.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let m = multiprocessing::managers::Manager::new()?;
/// let lock = m.lock()?;
/// lock.acquire()?.release()?;
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped: keep it in a variable (`let guard = lock.acquire()?;`, not `let _ =`) for as long as you need the lock"]
pub struct ManagedLockGuard<'a> {
    lock: &'a LockProxy,
    released: bool,
}

impl LockProxy {
    fn take(&self, timeout: Option<Duration>) -> Result<Option<ManagedLockGuard<'_>>> {
        match self
            .handle
            .call(Req::LockAcquire(self.handle.id, timeout.map(millis)))?
        {
            Resp::Done => Ok(Some(ManagedLockGuard {
                lock: self,
                released: false,
            })),
            Resp::TimedOut => Ok(None),
            Resp::OwnerDied(pid) => Err(Error::LockOwnerDied { pid }),
            other => Err(unexpected(other)),
        }
    }

    /// `lock.acquire()`: waits (in the manager) until it is free. [`Error::LockOwnerDied`] if its
    /// holder died holding it: it is free now, acquire again.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let lock = m.lock()?;
    /// let _g = lock.acquire()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire(&self) -> Result<ManagedLockGuard<'_>> {
        self.take(None)
            .map(|g| g.expect("waits without limit until it has the lock"))
    }

    /// `lock.acquire(False)`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let lock = m.lock()?;
    /// assert!(lock.try_acquire()?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(&self) -> Result<Option<ManagedLockGuard<'_>>> {
        self.take(Some(Duration::ZERO))
    }

    /// `lock.acquire(timeout=...)`: `None` when it ran out.
    ///
    /// ```
    /// use std::time::Duration;
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// let lock = m.lock()?;
    /// let _g = lock.acquire()?;
    /// assert!(lock.acquire_timeout(Duration::from_millis(10))?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<ManagedLockGuard<'_>>> {
        self.take(Some(timeout))
    }

    /// `with lock: f()`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// assert_eq!(m.lock()?.with(|| 7)?, 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let g = self.acquire()?;
        let out = f();
        g.release()?;
        Ok(out)
    }
}

impl ManagedLockGuard<'_> {
    /// `lock.release()`, reporting a dead manager (dropping the guard releases too, silently).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let m = multiprocessing::managers::Manager::new()?;
    /// m.lock()?.acquire()?.release()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        match self
            .lock
            .handle
            .call(Req::LockRelease(self.lock.handle.id))?
        {
            Resp::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

impl Drop for ManagedLockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.lock.handle.call(Req::LockRelease(self.lock.handle.id));
        }
    }
}

macro_rules! debug_proxy {
    ($($t:ident),*) => { $(
        impl<T> std::fmt::Debug for $t<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("id", &self.handle.id).finish()
            }
        }
    )* };
}
debug_proxy!(ListProxy, ValueProxy, QueueProxy);

impl<K, V> std::fmt::Debug for DictProxy<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DictProxy")
            .field("id", &self.handle.id)
            .finish()
    }
}

impl std::fmt::Debug for LockProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockProxy")
            .field("id", &self.handle.id)
            .finish()
    }
}

impl std::fmt::Debug for ManagedLockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedLockGuard").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// The manager process.

/// A shared object, in the manager.
enum Object {
    Dict {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        index: HashMap<Vec<u8>, usize>,
    },
    List(Vec<Vec<u8>>),
    Value(Vec<u8>),
    Queue(VecDeque<Vec<u8>>),
    Lock {
        /// The connection holding it.
        holder: Option<u64>,
        /// Set when a holder died: the next acquirer is told (and the lock is free).
        died: Option<i32>,
    },
}

/// A client connection.
struct Client {
    stream: UnixStream,
    pid: i32,
    /// A request that waits: a queue get or a lock acquire, with its deadline.
    parked: Option<(Req, Option<Instant>)>,
}

struct Server {
    objects: HashMap<u64, Object>,
    next_id: u64,
    clients: HashMap<u64, Client>,
    next_client: u64,
}

/// The manager process's loop: accepts clients, answers their requests, parks waiting ones.
fn serve(listener: UnixListener) {
    // An interrupt of the notebook sends SIGINT to running `Process` children (as Ctrl-C does):
    // the manager ignores it, as Python's manager server does, so every proxy stays usable.
    crate::sys::ignore_signal(nix::sys::signal::Signal::SIGINT);
    let mut server = Server {
        objects: HashMap::new(),
        next_id: 1,
        clients: HashMap::new(),
        next_client: 1,
    };
    // This process's user (the owner of /proc/self): only its processes may connect.
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
    };
    loop {
        // Answer parked requests that can go on now (or timed out).
        let ids: Vec<u64> = server.clients.keys().copied().collect();
        for cid in ids {
            server.retry_parked(cid);
        }
        let now = Instant::now();
        let next_deadline = server
            .clients
            .values()
            .filter_map(|c| c.parked.as_ref().and_then(|(_, d)| *d))
            .min();
        let timeout = next_deadline.map_or(PollTimeout::NONE, |d| {
            let ms = d.saturating_duration_since(now).as_millis().max(1);
            PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
        });
        let order: Vec<u64> = server.clients.keys().copied().collect();
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        for cid in &order {
            fds.push(PollFd::new(
                server.clients[cid].stream.as_fd(),
                PollFlags::POLLIN,
            ));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            if let Ok((stream, _)) = listener.accept() {
                let creds = nix::sys::socket::getsockopt(
                    &stream,
                    nix::sys::socket::sockopt::PeerCredentials,
                );
                if let Ok(creds) = creds {
                    if creds.uid() == uid {
                        let cid = server.next_client;
                        server.next_client += 1;
                        server.clients.insert(
                            cid,
                            Client {
                                stream,
                                pid: creds.pid(),
                                parked: None,
                            },
                        );
                    }
                }
            }
        }
        for (i, cid) in order.iter().enumerate() {
            if !ready[i + 1] {
                continue;
            }
            let mut body = Vec::new();
            let message = match server.clients.get(cid) {
                Some(c) => wire::read_frame(c.stream.as_fd(), &mut body, "a client"),
                None => continue,
            };
            match message {
                Ok(true) => match wire::decode_message::<Req>(&body) {
                    Ok(Req::Shutdown) => {
                        server.reply(*cid, &Resp::Done);
                        return;
                    }
                    Ok(req) => server.handle(*cid, req, Instant::now()),
                    Err(_) => server.drop_client(*cid),
                },
                _ => server.drop_client(*cid),
            }
        }
    }
}

impl Server {
    /// Sends `resp`; false (and the client is dropped) if it cannot be sent.
    fn reply(&mut self, cid: u64, resp: &Resp) -> bool {
        let sent = match (self.clients.get(&cid), wire::encode_message(resp)) {
            (Some(c), Ok(frame)) => wire::send_all(c.stream.as_fd(), &frame).is_ok(),
            _ => false,
        };
        if !sent {
            self.drop_client(cid);
        }
        sent
    }

    /// A client is gone: forget its parked request, free the locks it held (telling the next
    /// acquirer).
    fn drop_client(&mut self, cid: u64) {
        let Some(client) = self.clients.remove(&cid) else {
            return;
        };
        for object in self.objects.values_mut() {
            if let Object::Lock { holder, died } = object {
                if *holder == Some(cid) {
                    *holder = None;
                    *died = Some(client.pid);
                }
            }
        }
    }

    fn retry_parked(&mut self, cid: u64) {
        let Some(client) = self.clients.get_mut(&cid) else {
            return;
        };
        let Some((req, deadline)) = client.parked.take() else {
            return;
        };
        let now = Instant::now();
        let expired = deadline.is_some_and(|d| now >= d);
        match self.try_wait(cid, &req) {
            Some(resp) => {
                if !self.reply(cid, &resp) {
                    self.undo(&req, resp);
                }
            }
            None if expired => {
                self.reply(cid, &Resp::TimedOut);
            }
            None => {
                if let Some(client) = self.clients.get_mut(&cid) {
                    client.parked = Some((req, deadline));
                }
            }
        }
    }

    /// A waiting request's answer could not be delivered (its client is gone): put back what it
    /// took, so that no item is lost.
    fn undo(&mut self, req: &Req, resp: Resp) {
        match (req, resp) {
            (Req::QueueGet(id, _), Resp::Maybe(Some(item))) => {
                if let Some(Object::Queue(items)) = self.objects.get_mut(id) {
                    items.push_front(item);
                }
            }
            (Req::LockAcquire(id, _), Resp::Done) => {
                if let Some(Object::Lock { holder, .. }) = self.objects.get_mut(id) {
                    *holder = None;
                }
            }
            _ => {}
        }
    }

    /// For a request that may wait: its answer now, or `None` to wait.
    fn try_wait(&mut self, cid: u64, req: &Req) -> Option<Resp> {
        match req {
            Req::QueueGet(id, _) => match self.objects.get_mut(id) {
                Some(Object::Queue(items)) => items.pop_front().map(|b| Resp::Maybe(Some(b))),
                _ => Some(Resp::NoSuchObject),
            },
            Req::LockAcquire(id, _) => match self.objects.get_mut(id) {
                Some(Object::Lock { holder, died }) => {
                    if let Some(pid) = died.take() {
                        return Some(Resp::OwnerDied(pid));
                    }
                    if holder.is_none() {
                        *holder = Some(cid);
                        Some(Resp::Done)
                    } else {
                        None
                    }
                }
                _ => Some(Resp::NoSuchObject),
            },
            _ => None,
        }
    }

    fn handle(&mut self, cid: u64, req: Req, now: Instant) {
        let resp = match req {
            Req::QueueGet(_, timeout) | Req::LockAcquire(_, timeout) => {
                match self.try_wait(cid, &req) {
                    Some(resp) => {
                        if !self.reply(cid, &resp) {
                            self.undo(&req, resp);
                        }
                        return;
                    }
                    None if timeout == Some(0) => Resp::TimedOut,
                    None => {
                        let deadline =
                            timeout.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
                        if let Some(c) = self.clients.get_mut(&cid) {
                            c.parked = Some((req, deadline));
                        }
                        return;
                    }
                }
            }
            req => self.answer(cid, req),
        };
        self.reply(cid, &resp);
    }

    fn answer(&mut self, cid: u64, req: Req) -> Resp {
        if let Req::New(kind, init) = req {
            let id = self.next_id;
            self.next_id += 1;
            let object = match kind {
                Kind::Dict => Object::Dict {
                    entries: Vec::new(),
                    index: HashMap::new(),
                },
                Kind::List => Object::List(Vec::new()),
                Kind::Value => Object::Value(init),
                Kind::Queue => Object::Queue(VecDeque::new()),
                Kind::Lock => Object::Lock {
                    holder: None,
                    died: None,
                },
            };
            self.objects.insert(id, object);
            return Resp::Id(id);
        }
        let id = match &req {
            Req::DictSet(id, ..)
            | Req::DictGet(id, _)
            | Req::DictRemove(id, _)
            | Req::DictItems(id)
            | Req::Len(id)
            | Req::Clear(id)
            | Req::ListPush(id, _)
            | Req::ListGet(id, _)
            | Req::ListSet(id, ..)
            | Req::ListPop(id)
            | Req::ListItems(id)
            | Req::ValueGet(id)
            | Req::ValueSet(id, _)
            | Req::QueuePut(id, _)
            | Req::QueueGet(id, _)
            | Req::LockAcquire(id, _)
            | Req::LockRelease(id) => *id,
            Req::New(..) | Req::Shutdown => return Resp::Done,
        };
        let Some(object) = self.objects.get_mut(&id) else {
            return Resp::NoSuchObject;
        };
        match (object, req) {
            (Object::Dict { entries, index }, Req::DictSet(_, k, v)) => {
                match index.get(&k) {
                    Some(&i) => entries[i].1 = v,
                    None => {
                        index.insert(k.clone(), entries.len());
                        entries.push((k, v));
                    }
                }
                Resp::Done
            }
            (Object::Dict { entries, index }, Req::DictGet(_, k)) => {
                Resp::Maybe(index.get(&k).map(|&i| entries[i].1.clone()))
            }
            (Object::Dict { entries, index }, Req::DictRemove(_, k)) => match index.remove(&k) {
                Some(i) => {
                    let (_, v) = entries.remove(i);
                    for slot in index.values_mut() {
                        if *slot > i {
                            *slot -= 1;
                        }
                    }
                    Resp::Maybe(Some(v))
                }
                None => Resp::Maybe(None),
            },
            (Object::Dict { entries, .. }, Req::DictItems(_)) => Resp::Pairs(entries.clone()),
            (Object::Dict { entries, .. }, Req::Len(_)) => Resp::Len(entries.len() as u64),
            (Object::Dict { entries, index }, Req::Clear(_)) => {
                entries.clear();
                index.clear();
                Resp::Done
            }
            (Object::List(items), Req::ListPush(_, new)) => {
                items.extend(new);
                Resp::Done
            }
            (Object::List(items), Req::ListGet(_, i)) => match items.get(i as usize) {
                Some(b) => Resp::Maybe(Some(b.clone())),
                None => Resp::IndexOutOfRange(items.len() as u64),
            },
            (Object::List(items), Req::ListSet(_, i, v)) => match items.get_mut(i as usize) {
                Some(slot) => {
                    *slot = v;
                    Resp::Done
                }
                None => Resp::IndexOutOfRange(items.len() as u64),
            },
            (Object::List(items), Req::ListPop(_)) => Resp::Maybe(items.pop()),
            (Object::List(items), Req::ListItems(_)) => Resp::Items(items.clone()),
            (Object::List(items), Req::Len(_)) => Resp::Len(items.len() as u64),
            (Object::List(items), Req::Clear(_)) => {
                items.clear();
                Resp::Done
            }
            (Object::Value(v), Req::ValueGet(_)) => Resp::Maybe(Some(v.clone())),
            (Object::Value(v), Req::ValueSet(_, new)) => {
                *v = new;
                Resp::Done
            }
            (Object::Queue(items), Req::QueuePut(_, v)) => {
                items.push_back(v);
                Resp::Done
            }
            (Object::Queue(items), Req::Len(_)) => Resp::Len(items.len() as u64),
            (Object::Lock { holder, .. }, Req::LockRelease(_)) => {
                if *holder == Some(cid) {
                    *holder = None;
                    Resp::Done
                } else {
                    Resp::NotHeld
                }
            }
            _ => Resp::NoSuchObject,
        }
    }
}
