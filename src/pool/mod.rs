//! `Pool`: a fixed set of worker processes that run a function over many inputs, as Python's
//! `multiprocessing.Pool` -- without its hangs.
//!
//! ```
//! use multiprocessing::Pool;
//!
//! fn cubes(n: u64) -> u64 { n.pow(3) }
//!
//! // Python: with Pool(processes=4) as pool: out = pool.map(cubes, [1, 2, 3, 4, 5])
//! let out = Pool::with(4, |pool| pool.map(cubes, 1..=5))?;
//! assert_eq!(out, [1, 8, 27, 64, 125]);
//! # Ok::<(), multiprocessing::Error>(())
//! ```
//!
//! # Which functions a pool accepts
//!
//! A pool runs **plain `fn` items and closures that capture nothing** (they coerce to `fn(T) -> R`).
//! A closure that captures a variable is refused at compile time ("closures can only be coerced to
//! `fn` types if they do not capture any variables"): a worker is a separate process, forked when the
//! pool was created, and what the closure captured later does not exist there. Pass the data as the
//! argument instead (a tuple for several values), or capture it in the pool's `initializer`, which
//! runs in each worker.
//!
//! ```compile_fail
//! use multiprocessing::Pool;
//! let pool = Pool::new(2)?;
//! let offset = 10;
//! pool.map(|x: u64| x + offset, 0..5)?; // error: closures can only be coerced to `fn` types if they do not capture any variables
//! # Ok::<(), multiprocessing::Error>(())
//! ```
//!
//! Arguments and results cross the process boundary with serde (postcard), so both must implement
//! `Serialize` and `Deserialize`; any other type is a compile error. Each argument is serialized in
//! the notebook, sent through a pipe, and deserialized in the worker; results come back the same way.
//!
//! ```compile_fail
//! use multiprocessing::Pool;
//! struct Handle(std::fs::File); // no Serialize: cannot be sent to another process
//! fn size(h: Handle) -> u64 { h.0.metadata().map_or(0, |m| m.len()) }
//! let pool = Pool::new(1)?;
//! pool.apply(size, Handle(std::fs::File::open("/etc/hostname")?))?; // error: `Handle: Serialize` is not satisfied
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a notebook, a pool created in one cell can run a function defined in a later cell: evcxr loads
//! each cell as a new shared library, and the worker loads that library by path (`dlopen`) the first
//! time it needs it. If it cannot, the call returns [`Error::FunctionUnavailable`]; creating the pool
//! after defining the function always works.
//!
//! # What is different from Python, on purpose
//!
//! - A task that panics returns [`Error::TaskPanicked`] with the message, the task's index and the
//!   worker's name; the pool stays usable. The worker also prints a short report on the cell's
//!   stderr ("Process ForkPoolWorker-1:", then `panicked at src/..:line:` and the message): it names
//!   the line. (A function from a library with its own copy of std keeps that std's hook.)
//! - A worker that dies (killed, aborted, crashed) returns [`Error::WorkerDied`] at once, naming it,
//!   its pid, the signal and the task; the pool starts a replacement. Python's `Pool` hangs forever
//!   there (bpo-22393).
//! - Nothing runs in the background of the notebook: there is no thread; the pool sends tasks and
//!   collects results while one of its calls waits (`map`, `get`, iterating `imap`, `join`).
//! - Interrupting the kernel while a pool call waits returns [`Error::Interrupted`]: every
//!   unfinished task of the pool is cancelled, the busy workers are killed and replaced, and the
//!   pool is usable at once (Python raises `KeyboardInterrupt`).
//! - The workers are children like any [`Process`](crate::Process): `active_children()` lists them.
//! - Workers' `print!`s reach the cell as whole lines while a call waits.
//! - Dropping a `Pool` (or leaving [`Pool::with`]) terminates it, as Python's `with` block does:
//!   workers are killed and reaped. When the kernel is interrupted or shut down, no destructor runs,
//!   but every worker dies with the process that created it (`PR_SET_PDEATHSIG`).

mod async_result;
mod function;
mod imap;
mod inner;
mod watch;
mod worker;

use std::cell::{RefCell, RefMut};
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use async_result::AsyncResult;
pub(crate) use async_result::{wait_any, JobRef};
pub use imap::IMap;
use watch::CallWatch;
pub use watch::{Progress, TaskRecord, TaskStream};

use function::{trampoline_addr, Binary, Shape, Unary};
use inner::{ChunkSource, Inner};

use crate::error::{Error, Result};

/// A pool of worker processes (Python: `multiprocessing.Pool`).
///
/// Workers are forked when the pool is created and named `ForkPoolWorker-1`, `ForkPoolWorker-2`, ...
/// (the numbering is shared with [`Process`](crate::Process), as in Python).
///
/// ```
/// use multiprocessing::Pool;
///
/// fn worker_function(n: u64) -> u64 { n * n }
///
/// let pool = Pool::new(4)?;
/// let results = pool.map(worker_function, [1, 2, 3, 4, 5])?;
/// pool.close();
/// pool.join()?;
/// assert_eq!(results, [1, 4, 9, 16, 25]);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub struct Pool {
    inner: Rc<RefCell<Inner>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.try_borrow() {
            Ok(inner) => inner.fmt(f),
            Err(_) => f.write_str("Pool { <busy> }"),
        }
    }
}

/// Options for a [`Pool`]: number of processes, initializer, `maxtasksperchild`.
///
/// ```
/// use multiprocessing::Pool;
///
/// fn add_one(x: i32) -> i32 { x + 1 }
///
/// let pool = Pool::builder()
///     .processes(2)
///     .initializer(|| println!("worker ready"))
///     .maxtasksperchild(100)
///     .build()?;
/// assert_eq!(pool.apply(add_one, 1)?, 2);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
#[derive(Default)]
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<Rc<dyn Fn()>>,
    maxtasksperchild: Option<usize>,
    progress: Progress,
    /// `Some(false)`: no task stream.
    record_tasks: Option<bool>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.initializer.is_some())
            .field("maxtasksperchild", &self.maxtasksperchild)
            .field("progress", &self.progress)
            .field("record_tasks", &self.record_tasks)
            .finish()
    }
}

impl PoolBuilder {
    /// Number of worker processes (Python: `processes=`); without it, one per CPU.
    ///
    /// ```
    /// let pool = multiprocessing::Pool::builder().processes(3).build()?;
    /// assert_eq!(pool.processes(), 3);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Runs `init` once in each worker when it starts (Python: `initializer=`, `initargs=`). Unlike
    /// the pool's functions it may capture values: each worker is forked with a copy of them. If it
    /// panics, the pool stops with [`Error::InitializerFailed`] (Python would restart workers forever).
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn name(_: u8) -> String { std::env::var("GREETING").unwrap_or_default() }
    ///
    /// let greeting = "hello";
    /// let pool = Pool::builder().processes(1).initializer(move || std::env::set_var("GREETING", greeting)).build()?;
    /// assert_eq!(pool.apply(name, 0)?, "hello");
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn initializer(mut self, init: impl Fn() + 'static) -> Self {
        self.initializer = Some(Rc::new(init));
        self
    }

    /// Replaces each worker with a fresh one after it has run this many tasks (chunks) (Python:
    /// `maxtasksperchild=`). Zero is [`Error::InvalidArgument`].
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn pid(_: u32) -> u32 { std::process::id() }
    ///
    /// let pool = Pool::builder().processes(1).maxtasksperchild(1).build()?;
    /// let (a, b) = (pool.apply(pid, 0)?, pool.apply(pid, 0)?);
    /// assert_ne!(a, b, "each task ran in a new worker");
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn maxtasksperchild(mut self, tasks: usize) -> Self {
        self.maxtasksperchild = Some(tasks);
        self
    }

    /// When the pool's calls show live progress: [`Progress::Auto`] (default: in a notebook only),
    /// [`Progress::Always`], [`Progress::Never`]. See also [`Pool::with_progress`] for one call.
    ///
    /// ```
    /// use multiprocessing::{Pool, Progress};
    /// let pool = Pool::builder().processes(2).progress(Progress::Never).build()?;
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn progress(mut self, mode: Progress) -> Self {
        self.progress = mode;
        self
    }

    /// Whether the pool records the chunks its calls run for [`Pool::task_stream`] (default: yes;
    /// the last 10 000 chunks). See also [`Chunked::record_tasks`] for one call.
    ///
    /// ```
    /// use multiprocessing::Pool;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::builder().processes(2).record_tasks(false).build()?;
    /// pool.map(double, 0..10)?;
    /// assert!(pool.task_stream().records().is_empty());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn record_tasks(mut self, record: bool) -> Self {
        self.record_tasks = Some(record);
        self
    }

    /// Forks the workers. In a daemonic process (a pool worker, or a `Process` made with
    /// `daemon(true)`) it is [`Error::DaemonChildren`], as Python refuses it.
    ///
    /// ```
    /// let pool = multiprocessing::Pool::builder().build()?;
    /// assert!(pool.processes() >= 1);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn build(self) -> Result<Pool> {
        let processes = match self.processes {
            Some(0) => return Err(Error::ZeroProcesses),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.maxtasksperchild == Some(0) {
            return Err(Error::InvalidArgument {
                name: "maxtasksperchild",
                value: "0".into(),
                fix: "use a positive number, or leave it out to keep workers for the pool's life",
            });
        }
        // Python's rule, as for `Process::start`: a daemonic process (a pool worker, say) is killed,
        // not joined, when its parent ends, so it may not have workers of its own.
        let me = crate::session::load();
        if me.daemon {
            return Err(Error::DaemonChildren { name: me.name });
        }
        let mut inner = Inner::new(processes, self.initializer, self.maxtasksperchild)?;
        inner.watch.set_mode(self.progress);
        inner.watch.set_record(self.record_tasks.unwrap_or(true));
        Ok(Pool {
            inner: Rc::new(RefCell::new(inner)),
        })
    }
}

/// Borrows the pool's engine; fails (instead of panicking) if a call is re-entered from inside the
/// pool's own loop, e.g. from an `imap` input iterator.
pub(crate) fn borrow(inner: &Rc<RefCell<Inner>>) -> Result<PoolRef<'_>> {
    let inner = inner.try_borrow_mut().map_err(|_| Error::PoolBusy)?;
    if !inner.is_owner() {
        return Err(Error::PoolOfAnotherProcess {
            creator: inner.owner(),
        });
    }
    Ok(PoolRef { inner: Some(inner) })
}

/// The pool, borrowed by one call. When the call releases it, the `callback`s /
/// `error_callback`s of async calls that finished meanwhile run, here in the notebook's process
/// (Python runs them in the pool's result-handler thread; this crate has no thread): so they run
/// inside whichever pool call was waiting, and may use the pool themselves.
pub(crate) struct PoolRef<'a> {
    inner: Option<RefMut<'a, Inner>>,
}

impl std::ops::Deref for PoolRef<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.inner.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for PoolRef<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.inner.as_mut().expect("held until drop")
    }
}

impl Drop for PoolRef<'_> {
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        let ready = inner.take_ready_callbacks();
        drop(inner);
        if !std::thread::panicking() {
            for callback in ready {
                callback();
            }
        }
    }
}

/// Decodes one chunk's results.
pub(crate) fn decode_chunk<R: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<Vec<R>> {
    let mut out = Vec::new();
    decode_chunk_into(bytes, &mut out)?;
    Ok(out)
}

/// Decodes one chunk's results onto the end of `out`.
pub(crate) fn decode_chunk_into<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    out: &mut Vec<R>,
) -> Result<()> {
    crate::wire::decode_seq_into(bytes, out).map_err(|e| Error::Codec {
        direction: "deserialize",
        what: "task results",
        message: e.to_string(),
    })
}

fn encode_items<T: Serialize + 'static>(
    items: &[T],
    spares: &crate::wire::Spares,
) -> Result<crate::wire::Encoded> {
    crate::wire::encode_chunk(items, spares)
}

/// The pool's spare memfds for a new job's source (none if the pool is borrowed right now: the
/// call then fails with `PoolBusy` anyway, and spares are only an optimisation).
fn spares(inner: &Rc<RefCell<Inner>>) -> crate::wire::Spares {
    inner
        .try_borrow()
        .map(|inner| inner.spares.clone())
        .unwrap_or_default()
}

/// Chunks of an owned list of inputs.
///
/// The inputs of a chunk are dropped when the next chunk is taken (its encoded copy is then on
/// its way): a map over many heap-owning values (strings) frees them a chunk at a time while the
/// workers run, not all at once when the last chunk is out.
struct VecChunks<T> {
    items: std::vec::IntoIter<T>,
    /// How many of `items` (at the front) the last chunk encoded.
    taken: usize,
    chunksize: usize,
    next: usize,
    spares: crate::wire::Spares,
}

impl<T> VecChunks<T> {
    fn new(items: Vec<T>, chunksize: usize, spares: crate::wire::Spares) -> Self {
        VecChunks {
            items: items.into_iter(),
            taken: 0,
            chunksize,
            next: 0,
            spares,
        }
    }
}

impl<T: Serialize + 'static> Iterator for VecChunks<T> {
    type Item = Result<(usize, crate::wire::Encoded)>;

    fn next(&mut self) -> Option<Self::Item> {
        // `nth` drops the items it passes over in place, in one step for numbers.
        if let Some(last) = self.taken.checked_sub(1) {
            self.items.nth(last);
        }
        let rest = self.items.as_slice();
        if rest.is_empty() {
            self.taken = 0;
            return None;
        }
        let first = self.next;
        self.taken = self.chunksize.min(rest.len());
        self.next += self.taken;
        Some(encode_items(&rest[..self.taken], &self.spares).map(|bytes| (first, bytes)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.items.len() - self.taken).div_ceil(self.chunksize);
        (left, Some(left))
    }
}

/// Where a panic of an `imap` input iterator waits for the [`IMap`] to resume it.
pub(crate) type InputPanic = Rc<std::cell::Cell<Option<Box<dyn std::any::Any + Send>>>>;

/// Chunks of an iterator, taken lazily.
struct IterChunks<I> {
    iter: I,
    chunksize: usize,
    next: usize,
    spares: crate::wire::Spares,
    /// A panic of `iter` is caught here, not unwound through the pool's engine (which pulls inputs
    /// inside whichever call drives the pool, in the middle of its bookkeeping): the iteration ends
    /// there, and the `IMap` resumes the panic after the results of the chunks before it (Python
    /// raises the iterable's exception from `next()` at that point).
    panicked: InputPanic,
    failed: bool,
}

impl<T: Serialize + 'static, I: Iterator<Item = T>> Iterator for IterChunks<I> {
    type Item = Result<(usize, crate::wire::Encoded)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let (iter, chunksize) = (&mut self.iter, self.chunksize);
        let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            iter.take(chunksize).collect::<Vec<T>>()
        }));
        let items = match taken {
            Ok(items) => items,
            // As Python's `imap`, the chunk the iterator failed in is dropped whole.
            Err(payload) => {
                self.failed = true;
                self.panicked.set(Some(payload));
                return None;
            }
        };
        if items.is_empty() {
            return None;
        }
        let first = self.next;
        self.next += items.len();
        Some(encode_items(&items, &self.spares).map(|bytes| (first, bytes)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.iter.size_hint().0.div_ceil(self.chunksize), None)
    }
}

/// Python's default chunk size for `map`: `chunksize, extra = divmod(len, 4 * processes); if extra:
/// chunksize += 1`.
fn default_chunksize(len: usize, processes: usize) -> usize {
    let workers = 4 * processes.max(1);
    len / workers + usize::from(len % workers != 0)
}

/// The chunk size a call uses: the one given (`pool.chunked(n)`), checked; else Python's default,
/// [`default_chunksize`] for the maps (`len`: how many items) and 1 for the `imap`s (`None`).
fn chunksize_for(given: Option<usize>, len: Option<usize>, processes: usize) -> Result<usize> {
    match (given, len) {
        (Some(0), _) => Err(Error::InvalidArgument {
            name: "chunksize",
            value: "0".into(),
            fix: "use a chunksize of 1 or more, or leave it out for the default",
        }),
        (Some(chunksize), _) => Ok(chunksize),
        (None, Some(len)) => Ok(default_chunksize(len, processes).max(1)),
        (None, None) => Ok(1),
    }
}

impl Pool {
    /// A pool of `processes` workers (Python: `Pool(processes)`); zero is [`Error::ZeroProcesses`].
    ///
    /// ```
    /// use multiprocessing::{Error, Pool};
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// assert!(matches!(Pool::new(0), Err(Error::ZeroProcesses)));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// Options beyond the number of processes: see [`PoolBuilder`].
    ///
    /// ```
    /// let pool = multiprocessing::Pool::builder().processes(1).build()?;
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Python's `with Pool(processes) as pool: ...`: creates a pool, runs `body` with it, then
    /// terminates it (as Python's `__exit__` does), whatever `body` returned.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: i64) -> i64 { n.pow(3) }
    ///
    /// let out = Pool::with(4, |pool| pool.map(cubes, [1, 2, 3, 4, 5]))?;
    /// println!("{out:?}");
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn with<R>(processes: usize, body: impl FnOnce(&Pool) -> Result<R>) -> Result<R> {
        let pool = Pool::new(processes)?;
        let result = body(&pool);
        pool.terminate();
        result
    }

    /// Number of worker processes.
    ///
    /// ```
    /// assert_eq!(multiprocessing::Pool::new(2)?.processes(), 2);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.inner.try_borrow().map_or(0, |i| i.processes)
    }

    /// Names and pids of the current workers (replaced workers get new ones).
    ///
    /// ```
    /// let pool = multiprocessing::Pool::new(2)?;
    /// let workers = pool.workers();
    /// assert!(workers[0].0.starts_with("ForkPoolWorker-"));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn workers(&self) -> Vec<(String, i32)> {
        self.inner
            .try_borrow()
            .map(|i| i.worker_info())
            .unwrap_or_default()
    }

    /// The chunk size `map` uses for `len` inputs, Python's rule:
    /// `chunksize, extra = divmod(len, 4 * processes); if extra: chunksize += 1`.
    ///
    /// ```
    /// let pool = multiprocessing::Pool::new(2)?;
    /// assert_eq!(pool.default_chunksize(1_000_000), 125_000);
    /// assert_eq!(pool.default_chunksize(5), 1);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn default_chunksize(&self, len: usize) -> usize {
        default_chunksize(len, self.processes())
    }

    /// The one code path of `map`, `starmap`, `map_async` and the `imap`s: [`Chunked`] with no
    /// chunk size given (the default: Python's rule for the maps, 1 for the `imap`s).
    fn options(&self) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: None,
            watch: CallWatch::default(),
        }
    }

    /// Calls with an explicit chunk size (Python: `chunksize=`): `pool.chunked(100).map(f, items)`.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn half(x: u32) -> u32 { x / 2 }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.chunked(3).map(half, 0..10)?, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn chunked(&self, chunksize: usize) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: Some(chunksize),
            watch: CallWatch::default(),
        }
    }

    fn submit<S: Shape>(
        &self,
        func: usize,
        source: ChunkSource,
        stop_on_error: bool,
    ) -> Result<u64> {
        borrow(&self.inner)?.submit(trampoline_addr::<S>(), func, source, stop_on_error)
    }

    fn run_map<S: Shape>(
        &self,
        func: usize,
        items: Vec<S::In>,
        chunksize: Option<usize>,
        call: CallWatch,
    ) -> Result<Vec<S::Out>> {
        let mut inner = borrow(&self.inner)?;
        inner.check_running()?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let chunksize = chunksize_for(chunksize, Some(items.len()), inner.processes)?;
        let total = items.len();
        let source = Box::new(VecChunks::new(items, chunksize, inner.spares.clone()));
        let job = inner.submit(trampoline_addr::<S>(), func, source, true)?;
        inner.watch.plan(job, "map", Some(total), chunksize, call);
        // Results are decoded straight into `out` in input order as soon as the chunks before them
        // are in (one vector, no copy at the end); a chunk that arrives early waits, encoded.
        let mut out: Vec<S::Out> = Vec::with_capacity(total);
        let mut early = std::collections::BTreeMap::new();
        let outcome = (|| loop {
            inner.drive(None, |i| i.job_has_news(job))?;
            let (arrived, failure) = inner.take(job);
            if let Some(e) = failure {
                return Err(e);
            }
            for a in arrived {
                early.insert(a.first, a.result?);
            }
            while let Some(entry) = early.first_entry() {
                if *entry.key() != out.len() {
                    break;
                }
                decode_chunk_into(entry.remove().bytes(), &mut out)?;
            }
            if inner.job_finished(job) {
                // Normally nothing is left; a chunk with fewer results than tasks would leave the
                // ones after it here: keep them, in order, as before.
                for (_, rest) in std::mem::take(&mut early) {
                    decode_chunk_into(rest.bytes(), &mut out)?;
                }
                return Ok(());
            }
        })();
        if let Err(e) = outcome {
            inner.watch.ended(job, watch::Outcome::Failed(&e));
            inner.abandon(job);
            return Err(e);
        }
        Ok(out)
    }

    /// Applies `f` to every input in the workers and returns the results in input order (Python:
    /// `pool.map(f, iterable)`). Inputs are sent in chunks of [`default_chunksize`](Self::default_chunksize).
    /// The first failing task ends the call with its error ([`Error::TaskPanicked`],
    /// [`Error::WorkerDied`], ...); the pool stays usable.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.map(cubes, vec![1, 2, 3])?, [1, 8, 27]);
    /// assert_eq!(pool.map(|s: String| s.len(), ["a".to_string(), "bcd".to_string()])?, [1, 3]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn map<T, R>(&self, f: fn(T) -> R, items: impl IntoIterator<Item = T>) -> Result<Vec<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.options().map(f, items)
    }

    /// Like [`map`](Self::map) for a two-argument function over pairs (Python: `pool.starmap(f,
    /// [(a, b), ...])`). For more arguments, take a tuple and use `map`.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn power(base: u64, exp: u32) -> u64 { base.pow(exp) }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.starmap(power, [(2, 3), (3, 2)])?, [8, 9]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.options().starmap(f, items)
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python: `pool.apply(f, (arg,))`).
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(1)?;
    /// assert_eq!(pool.apply(cubes, 3)?, 27);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn apply<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<R>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let mut out =
            self.run_map::<Unary<T, R>>(f as usize, vec![arg], Some(1), CallWatch::default())?;
        out.pop().ok_or_else(|| Error::Codec {
            direction: "deserialize",
            what: "task results",
            message: "the worker sent no result".into(),
        })
    }

    /// Starts `f(arg)` in a worker and returns at once (Python: `pool.apply_async(f, (arg,))`);
    /// collect the result with [`AsyncResult::get`].
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// let r = pool.apply_async(cubes, 4)?;
    /// assert_eq!(r.get()?, 64);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn apply_async<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<AsyncResult<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let source = Box::new(VecChunks::new(vec![arg], 1, spares(&self.inner)));
        let job = self.submit::<Unary<T, R>>(f as usize, source, true)?;
        Ok(AsyncResult::new(
            self.inner.clone(),
            job,
            async_result::decode_one::<R>,
        ))
    }

    /// Starts a [`map`](Self::map) and returns at once (Python: `pool.map_async(f, iterable)`).
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// let r = pool.map_async(cubes, 1..=3)?;
    /// assert_eq!(r.get()?, [1, 8, 27]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn map_async<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.options().map_async(f, items)
    }

    /// Starts a [`starmap`](Self::starmap) and returns at once (Python:
    /// `pool.starmap_async(f, iterable)`).
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn power(base: u64, exp: u32) -> u64 { base.pow(exp) }
    ///
    /// let pool = Pool::new(2)?;
    /// let r = pool.starmap_async(power, [(2, 3), (3, 2)])?;
    /// assert_eq!(r.get()?, [8, 9]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.options().starmap_async(f, items)
    }

    /// A lazy [`map`](Self::map): an iterator of results in input order, each available as soon as
    /// it and those before it are done (Python: `pool.imap(f, iterable)`, chunksize 1). Inputs are
    /// taken from `items` only as workers have room.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// for (n, cube) in (1..=3).zip(pool.imap(cubes, 1..=3)?) {
    ///     println!("{n}^3 = {}", cube?);
    /// }
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn imap<T, R, I>(&self, f: fn(T) -> R, items: I) -> Result<IMap<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        self.options().imap(f, items)
    }

    /// Like [`imap`](Self::imap), but results come in the order they finish (Python:
    /// `pool.imap_unordered(f, iterable)`).
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// let mut all: Vec<u64> = pool.imap_unordered(cubes, 1..=4)?.collect::<Result<_, _>>()?;
    /// all.sort();
    /// assert_eq!(all, [1, 8, 27, 64]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn imap_unordered<T, R, I>(&self, f: fn(T) -> R, items: I) -> Result<IMap<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        self.options().imap_unordered(f, items)
    }

    /// Takes no more work; the workers exit once the work already given is done (Python: `close()`).
    /// Then call [`join`](Self::join).
    ///
    /// ```
    /// use multiprocessing::{Error, Pool, PoolState};
    ///
    /// fn id(x: u8) -> u8 { x }
    ///
    /// let pool = Pool::new(1)?;
    /// pool.close();
    /// assert!(matches!(pool.apply(id, 1), Err(Error::PoolNotRunning { state: PoolState::Closed })));
    /// pool.join()?;
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn close(&self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.close();
        }
    }

    /// Stops the workers now (SIGKILL) and reaps them (Python: `terminate()`, which sends SIGTERM).
    /// Unfinished results become [`Error::PoolNotRunning`]. Dropping the pool does the same.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// let pool = Pool::new(2)?;
    /// pool.terminate();
    /// pool.join()?;
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn terminate(&self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.terminate();
        }
    }

    /// Waits for the workers to exit after [`close`](Self::close) (all given work done first) or
    /// [`terminate`](Self::terminate) (Python: `join()`); on a running pool,
    /// [`Error::PoolStillRunning`].
    ///
    /// ```
    /// use multiprocessing::{Error, Pool};
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// assert!(matches!(pool.join(), Err(Error::PoolStillRunning)));
    /// let pending = pool.map_async(cubes, 1..=5)?;
    /// pool.close();
    /// pool.join()?;
    /// assert!(pending.ready());
    /// assert_eq!(pending.get()?, [1, 8, 27, 64, 125]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        borrow(&self.inner)?.join()
    }
}

impl Drop for Pool {
    /// Terminates the pool (as Python's `with` block does on exit): workers are killed and reaped.
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A [`Pool`]'s call with options: an explicit chunk size (from [`Pool::chunked`], Python's
/// `chunksize=` argument), its own progress setting ([`Chunked::progress`], also
/// [`Pool::with_progress`]), whether the task stream records it ([`Chunked::record_tasks`]).
/// `Pool::map` and the rest are this with every option left at the pool's default.
///
/// ```
/// use multiprocessing::Pool;
///
/// fn cubes(n: u64) -> u64 { n.pow(3) }
///
/// let pool = Pool::new(2)?;
/// let out: Vec<u64> = pool.chunked(2).imap(cubes, 1..=4)?.collect::<Result<_, _>>()?;
/// assert_eq!(out, [1, 8, 27, 64]);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Chunked<'a> {
    pool: &'a Pool,
    /// `None`: the default (Python's rule for the maps, 1 for the `imap`s).
    chunksize: Option<usize>,
    /// Progress and task stream for this call (`None`s: the pool's settings).
    watch: CallWatch,
}

impl<'a> Chunked<'a> {
    /// This call's progress display, over the pool's setting ([`PoolBuilder::progress`]):
    /// `pool.chunked(10).progress(Progress::Never).map(f, items)`.
    ///
    /// ```
    /// use multiprocessing::{Pool, Progress};
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.chunked(1).progress(Progress::Never).map(double, [1, 2])?, [2, 4]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn progress(mut self, mode: Progress) -> Chunked<'a> {
        self.watch.progress = Some(mode);
        self
    }

    /// Whether this call's chunks go into the task stream, over the pool's setting
    /// ([`PoolBuilder::record_tasks`]).
    ///
    /// ```
    /// use multiprocessing::Pool;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::new(2)?;
    /// pool.chunked(5).map(double, 0..10)?;
    /// pool.chunked(5).record_tasks(false).map(double, 0..10)?;
    /// assert_eq!(pool.task_stream().records().len(), 2); // the first call's two chunks only
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn record_tasks(mut self, record: bool) -> Chunked<'a> {
        self.watch.record = Some(record);
        self
    }

    /// [`Pool::map`] with this chunk size. A chunk size of zero is [`Error::InvalidArgument`].
    ///
    /// ```
    /// use multiprocessing::{Error, Pool};
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.chunked(1).map(cubes, 1..=3)?, [1, 8, 27]);
    /// assert!(matches!(pool.chunked(0).map(cubes, 1..=3), Err(Error::InvalidArgument { .. })));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn map<T, R>(&self, f: fn(T) -> R, items: impl IntoIterator<Item = T>) -> Result<Vec<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        chunksize_for(self.chunksize, None, 1)?; // a chunk size of 0 is refused before the items are read
        self.pool.run_map::<Unary<T, R>>(
            f as usize,
            items.into_iter().collect(),
            self.chunksize,
            self.watch,
        )
    }

    /// [`Pool::starmap`] with this chunk size.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.chunked(2).starmap(add, [(1, 2), (3, 4), (5, 6)])?, [3, 7, 11]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        chunksize_for(self.chunksize, None, 1)?; // a chunk size of 0 is refused before the items are read
        self.pool.run_map::<Binary<A, B, R>>(
            f as usize,
            items.into_iter().collect(),
            self.chunksize,
            self.watch,
        )
    }

    /// [`Pool::map_async`] with this chunk size.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// assert_eq!(pool.chunked(10).map_async(cubes, 1..=3)?.get()?, [1, 8, 27]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn map_async<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let items: Vec<T> = items.into_iter().collect();
        self.submit_async::<Unary<T, R>>(f as usize, items, "map_async")
    }

    /// [`Pool::starmap_async`] with this chunk size.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn add(a: u64, b: u64) -> u64 { a + b }
    ///
    /// let pool = Pool::new(2)?;
    /// let mut r = pool.chunked(2).starmap_async(add, [(1, 2), (3, 4), (5, 6)])?;
    /// assert_eq!(r.get()?, [3, 7, 11]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        B: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let items: Vec<(A, B)> = items.into_iter().collect();
        self.submit_async::<Binary<A, B, R>>(f as usize, items, "starmap_async")
    }

    /// The one path of `map_async` and `starmap_async`: submits `items` in chunks of this size
    /// (or the default) and tells the progress display about the call, named `what`.
    fn submit_async<S: Shape>(
        &self,
        func: usize,
        items: Vec<S::In>,
        what: &'static str,
    ) -> Result<AsyncResult<Vec<S::Out>>> {
        let chunksize = chunksize_for(self.chunksize, Some(items.len()), self.pool.processes())?;
        let total = items.len();
        let source = Box::new(VecChunks::new(items, chunksize, spares(&self.pool.inner)));
        let job = self.pool.submit::<S>(func, source, true)?;
        borrow(&self.pool.inner)?
            .watch
            .plan(job, what, Some(total), chunksize, self.watch);
        Ok(AsyncResult::new(
            self.pool.inner.clone(),
            job,
            async_result::decode_all::<S::Out>,
        ))
    }

    /// [`Pool::imap`] with this chunk size.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// let out: Vec<u64> = pool.chunked(100).imap(cubes, 0..1000)?.collect::<Result<_, _>>()?;
    /// assert_eq!(out[10], 1000);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn imap<T, R, I>(&self, f: fn(T) -> R, items: I) -> Result<IMap<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        self.imap_in_order(f, items, true)
    }

    /// [`Pool::imap_unordered`] with this chunk size.
    ///
    /// ```
    /// use multiprocessing::Pool;
    ///
    /// fn cubes(n: u64) -> u64 { n.pow(3) }
    ///
    /// let pool = Pool::new(2)?;
    /// let n = pool.chunked(100).imap_unordered(cubes, 0..1000)?.count();
    /// assert_eq!(n, 1000);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn imap_unordered<T, R, I>(&self, f: fn(T) -> R, items: I) -> Result<IMap<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        self.imap_in_order(f, items, false)
    }

    fn imap_in_order<T, R, I>(&self, f: fn(T) -> R, items: I, ordered: bool) -> Result<IMap<R>>
    where
        T: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        let iter = items.into_iter();
        // Known only when the iterator says exactly how many it holds.
        let total = match iter.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let chunksize = chunksize_for(self.chunksize, None, self.pool.processes())?;
        let panicked = InputPanic::default();
        let source = Box::new(IterChunks {
            iter,
            chunksize,
            next: 0,
            spares: spares(&self.pool.inner),
            panicked: panicked.clone(),
            failed: false,
        });
        let job = self.pool.submit::<Unary<T, R>>(f as usize, source, false)?;
        let what = if ordered { "imap" } else { "imap_unordered" };
        borrow(&self.pool.inner)?
            .watch
            .plan(job, what, total, chunksize, self.watch);
        Ok(IMap::new(self.pool.inner.clone(), job, ordered, panicked))
    }
}
