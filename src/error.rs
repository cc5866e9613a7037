//! Errors: one typed [`Error`] for the whole crate, each variant saying what went wrong and how to fix it.
//!
//! Python raises `ValueError`, `AssertionError` or hangs; this crate returns an [`Error`] instead, so a
//! notebook cell can use `?` and a test can match on the variant.

use std::time::Duration;

/// Why a pool takes no more work ([`Error::PoolNotRunning`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolState {
    /// `close()` was called: the work already given finishes, nothing new is taken.
    Closed,
    /// `terminate()` was called (or the pool was dropped): the workers are gone.
    Terminated,
    /// An executor's `shutdown()` was called.
    ShutDown,
}

impl std::fmt::Display for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolState::Closed => "closed",
            PoolState::Terminated => "terminated",
            PoolState::ShutDown => "shut down",
        })
    }
}

/// What the end of a one-way `Pipe` allows, when the other call was made on it
/// ([`Error::WrongDirection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipeEnd {
    /// The first end of `Pipe::one_way()`: it only receives.
    ReadOnly,
    /// The second end of `Pipe::one_way()`: it only sends.
    WriteOnly,
}

impl std::fmt::Display for PipeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PipeEnd::ReadOnly => "read-only",
            PipeEnd::WriteOnly => "write-only",
        })
    }
}

/// Everything that can go wrong when starting, joining or talking to processes and pools.
///
/// Every message names the fix, so a learner who sees it in a notebook knows what to change.
///
/// ```
/// use multiprocessing::{Error, Process};
///
/// let mut p = Process::new(|| ());
/// // Joining a process that was never started is a typed error, not a panic:
/// assert!(matches!(p.join(), Err(Error::NotStarted { .. })));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `start()` was called on a process that was already started.
    #[error("process {name} was already started; a Process runs once: create a new Process to run the target again")]
    AlreadyStarted {
        /// The process's name.
        name: String,
    },

    /// `join()` (or another call that needs a running child) came before `start()`.
    #[error("process {name} has not been started; call start() before {call}()")]
    NotStarted {
        /// The process's name.
        name: String,
        /// The call that needed a started process.
        call: &'static str,
    },

    /// A call on a `Process` made from a process other than the one that created it (a forked child
    /// holding a copy of the value): `start`, `join`, `is_alive`, `terminate`, `kill`, `sentinel`,
    /// `close`. Python asserts the same: "can only start a process object created by current
    /// process", "can only join a child process", "can only test a child process".
    #[error("only process {creator}, which created process {name}, can call {call}() on it (this is a copy of the value in another process); call {call}() in process {creator} and send what you need through a Pipe or Queue, or create the Process in the process that uses it")]
    NotOwner {
        /// The process's name.
        name: String,
        /// The pid of the process that created it.
        creator: i32,
        /// The call that was refused.
        call: &'static str,
    },

    /// A setting that must be chosen before `start()` was changed after it (Python: "process has already started").
    #[error("cannot set {what} of process {name}: it has already started; set it before start()")]
    SetAfterStart {
        /// The process's name.
        name: String,
        /// The setting, e.g. "daemon".
        what: &'static str,
    },

    /// A process name that cannot be used.
    #[error("invalid process name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected, and what is allowed.
        reason: &'static str,
    },

    /// A daemonic process (a pool worker is one) tried to start a child or create a `Pool` (Python:
    /// "daemonic processes are not allowed to have children").
    #[error("daemonic process {name} is not allowed to have children; start processes and pools from a non-daemonic one, or create the parent with daemon(false)")]
    DaemonChildren {
        /// The daemonic process that tried.
        name: String,
    },

    /// `fork(2)` failed.
    #[error("fork failed: {source}; {hint}")]
    Fork {
        /// The OS error (EAGAIN: too many processes, ENOMEM: out of memory).
        source: nix::Error,
        /// What to do about it.
        hint: &'static str,
    },

    /// Another system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The call that failed, e.g. "pipe2" or "waitpid".
        call: &'static str,
        /// The OS error.
        source: nix::Error,
    },

    /// A timeout that cannot be honoured. No call of this crate returns it any more (zero timeouts
    /// check without waiting, as Python's do); kept so that code matching on it still compiles.
    #[error("invalid timeout {timeout:?}: {reason}")]
    InvalidTimeout {
        /// The rejected timeout.
        timeout: Duration,
        /// Why, and what to use instead.
        reason: &'static str,
    },

    /// A wait with a timeout ran out before the result was ready.
    #[error("timed out after {waited:?} waiting for {what}; the work goes on: wait again, or terminate()")]
    Timeout {
        /// How long was waited.
        waited: Duration,
        /// What was waited for.
        what: String,
    },

    /// A pool was created with zero worker processes.
    #[error("a pool needs at least one worker process; use Pool::new(n) with n >= 1, or Pool::builder().build() for one per CPU")]
    ZeroProcesses,

    /// Work was submitted to a pool (or an executor) after `close()`, `terminate()` or `shutdown()`,
    /// or a result was asked of one that was terminated first.
    #[error("the pool was {state}; it takes no new work: create a new Pool")]
    PoolNotRunning {
        /// Why it stopped.
        state: PoolState,
    },

    /// A pool used in a process other than the one that created it (a forked child holding a copy
    /// of the value): its workers belong to the creator.
    #[error("this Pool was created by process {creator}; a forked copy cannot use it (its workers belong to the creator): create a Pool in this process")]
    PoolOfAnotherProcess {
        /// The pid of the process that created the pool.
        creator: u32,
    },

    /// `join()` on a pool that is still running (Python: "ValueError: Pool is still running").
    #[error("the pool is still running; call close() or terminate() before join()")]
    PoolStillRunning,

    /// A task's function panicked in a worker. The pool stays usable.
    #[error("task {index} panicked in {worker}: {message}")]
    TaskPanicked {
        /// The index of the task in its call (the position of its input).
        index: usize,
        /// The name of the worker that ran it, e.g. "ForkPoolWorker-2".
        worker: String,
        /// The panic message.
        message: String,
    },

    /// A worker process died (killed by a signal, aborted, crashed, or exited) while it held tasks.
    /// The pool replaces the worker and stays usable; Python's Pool hangs forever here (bpo-22393).
    #[error("{worker} (pid {pid}) {how} while running task {task}; the pool replaced it: run the call again, or find what killed it")]
    WorkerDied {
        /// The worker's name.
        worker: String,
        /// The worker's pid.
        pid: i32,
        /// "was killed by signal 9 (SIGKILL)" or "exited with code 3".
        how: String,
        /// The index of the task it was running.
        task: usize,
    },

    /// A function given to a pool cannot be reached from its worker processes.
    #[error("the pool's workers cannot run this function: {reason}")]
    FunctionUnavailable {
        /// What went wrong and how to fix it.
        reason: String,
    },

    /// A pool worker's initializer panicked. The pool stops: every call returns this error (Python
    /// would start new workers forever).
    #[error("the initializer panicked in {worker}: {message}; fix the initializer and create a new Pool")]
    InitializerFailed {
        /// The worker whose initializer failed.
        worker: String,
        /// The panic message.
        message: String,
    },

    /// `successful()` on an async result that is not ready yet (Python: `ValueError`).
    #[error("the result is not ready yet; call wait() or get() first, or check ready()")]
    ResultNotReady,

    /// `get()` on an async result whose value was already taken by an earlier `get()`.
    #[error(
        "this result was already taken by an earlier get(); keep the value that get() returned"
    )]
    ResultTaken,

    /// An argument outside its allowed range, e.g. a chunksize of 0.
    #[error("invalid {name} {value}: {fix}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// The rejected value.
        value: String,
        /// What to use instead.
        fix: &'static str,
    },

    /// A value could not be serialized or deserialized on its way between processes.
    #[error("could not {direction} {what} between processes: {message}")]
    Codec {
        /// "serialize" or "deserialize".
        direction: &'static str,
        /// What was being moved, e.g. "task arguments".
        what: &'static str,
        /// The serializer's message.
        message: String,
    },

    /// The connection to a child process broke (it closed its end or died).
    #[error("lost the connection to {peer}: {message}")]
    Disconnected {
        /// Who was on the other end.
        peer: String,
        /// What happened.
        message: String,
    },

    /// Nothing arrived within the timeout: `Queue::get_timeout` on an empty queue (Python's
    /// `queue.Empty`), or `Connection::recv_timeout` with no message.
    #[error("nothing arrived in {what} within {waited:?}; the sender has not sent yet: wait longer, check first (empty() / poll()), or call get() / recv() to wait without a limit")]
    Empty {
        /// What was read from, e.g. "the Queue".
        what: &'static str,
        /// How long was waited.
        waited: Duration,
    },

    /// This thread already holds the lock it tries to acquire again (Python would hang forever).
    #[error("this process already holds {what} (a guard of it is still alive), so acquiring it again would wait forever; drop the guard (or call release()) first, or use the guard you have")]
    WouldDeadlock {
        /// What was locked, e.g. "this Lock".
        what: &'static str,
    },

    /// The process holding a `Lock` died (killed, or exited) without releasing it. The lock is free
    /// again; what it protected may be half-updated. Python's `Lock` would stay locked forever.
    #[error("process {pid} died while holding this Lock; the lock is released now, but what it protected may be half-updated: check that data, then acquire() again")]
    LockOwnerDied {
        /// The pid of the process that died holding the lock (0 if unknown).
        pid: i32,
    },

    /// A process died in the middle of putting or getting an item, so the queue's stream of bytes is
    /// cut inside an item: every later call on that queue returns this error.
    #[error("a process died in the middle of {during} an item on this Queue, so its stream of bytes is cut; create a new Queue, and stop producers and consumers only between put()s and get()s (e.g. send them a stop item instead of terminate())")]
    QueueBroken {
        /// "putting" or "getting".
        during: &'static str,
    },

    /// The user interrupted the kernel (Jupyter's stop button, `I I`) while this call waited. Python
    /// raises `KeyboardInterrupt` here. The message says what the wait left behind: e.g. a pool's
    /// unfinished tasks are cancelled and its busy workers replaced (the pool stays usable); every
    /// running `Process` child is sent SIGINT, as ipykernel's interrupt or Ctrl-C does to Python's.
    #[error("interrupted while waiting for {waiting_for}; {state}")]
    Interrupted {
        /// What the call was waiting for.
        waiting_for: String,
        /// In what state things were left, and what to do next.
        state: String,
    },

    /// A pool call was made from inside one of the pool's own input iterators (e.g. an `imap`
    /// input that calls the pool): the pool is busy running that call.
    #[error("the pool is busy: it was called from inside one of its own input iterators; compute the inputs first (collect them into a Vec), then call the pool")]
    PoolBusy,

    /// A process died holding units of a `Semaphore` (acquired, never released). They are free again.
    /// Python's semaphore would keep them forever, and its waiters would hang.
    #[error("process {pid} died holding {what}; they are free again, but what they guarded may be half-done: check it, then acquire() again")]
    HolderDied {
        /// What it held, e.g. "units of this Semaphore".
        what: &'static str,
        /// The pid of the process that died.
        pid: i32,
    },

    /// `release()` on a `BoundedSemaphore` already at its initial value (Python: `ValueError:
    /// Semaphore released too many times`).
    #[error("this BoundedSemaphore was released more often than acquired (its value is already {bound}); release only what you acquired")]
    ReleasedTooOften {
        /// The bound (the initial value).
        bound: u32,
    },

    /// A `Barrier` is broken (Python's `BrokenBarrierError`).
    #[error("the barrier is broken: {why}; call reset() before using it again")]
    BrokenBarrier {
        /// Why: aborted, reset, timed out, or a waiting process died.
        why: &'static str,
    },

    /// The future was cancelled before it ran (Python's `concurrent.futures.CancelledError`).
    #[error("this future was cancelled before it ran; submit the call again to run it")]
    Cancelled,

    /// `SharedMemory::create_named` with a name that is taken (Python's `FileExistsError`).
    #[error("a shared memory block named {name:?} exists already; attach to it with SharedMemory::attach, pick another name, or unlink the old one")]
    SharedMemoryExists {
        /// The name.
        name: String,
    },

    /// `SharedMemory::attach` (or `unlink`) with a name that does not exist (Python's
    /// `FileNotFoundError`).
    #[error("no shared memory block named {name:?}; check the name (shm.name() of the creator), and that it was not unlinked")]
    SharedMemoryNotFound {
        /// The name.
        name: String,
    },

    /// The manager process behind a proxy is gone (shut down, killed or crashed).
    #[error("the manager process (pid {pid}) {how}; every proxy of it fails now: start a new Manager (and keep it alive while its proxies are used)")]
    ManagerDied {
        /// The manager's pid.
        pid: i32,
        /// What was seen, e.g. "closed the connection".
        how: String,
    },

    /// A `Queue` with a `maxsize` had no room in time (Python's `queue.Full`).
    #[error("the Queue is full ({maxsize} items) and no consumer made room in time; get items first, wait longer (put() waits without limit), or make the queue bigger")]
    Full {
        /// The queue's maxsize.
        maxsize: usize,
    },

    /// A call on a `Queue` (or `SimpleQueue`) after `close()` in this process (Python's
    /// `ValueError: Queue ... is closed`).
    #[error("this Queue was closed in this process; use another handle (a clone made before close() is closed too), or do not close it before the last put/get")]
    QueueClosed,

    /// `task_done()` on a `JoinableQueue` called more often than items were put (Python's
    /// `ValueError: task_done() called too many times`).
    #[error("task_done() was called more often than items were put on this JoinableQueue; call it once per item got")]
    TaskDoneTooOften,

    /// `Process::close()` on a process that is still running (Python: `ValueError: Cannot close a
    /// process while it is still running`).
    #[error("process {name} is still running, so it cannot be closed; join() it first (or terminate() and join())")]
    StillRunning {
        /// The process's name.
        name: String,
    },

    /// A call on a `Process` after `close()` (Python: `ValueError: process object is closed`).
    #[error("process {name} was closed, so {call}() cannot be used on it; create a new Process")]
    ProcessClosed {
        /// The process's name.
        name: String,
        /// The call that was refused.
        call: &'static str,
    },

    /// `send` on the read end, or `recv` on the write end, of a one-way `Pipe` (Python: `OSError:
    /// connection is read-only` / `write-only`).
    #[error("this end of a one-way Pipe is {allowed}; in `let (reader, writer) = Pipe::one_way()?`, receive on the first and send on the second")]
    WrongDirection {
        /// What this end allows.
        allowed: PipeEnd,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a failed system call.
    pub(crate) fn os(call: &'static str, source: nix::Error) -> Self {
        Error::Os { call, source }
    }
}

/// The message a panic was raised with (`panic!("...")`), for reports and [`Error::TaskPanicked`].
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".into())
}

/// Whether this copy's panic hook (see [`report_panics_briefly`]) printed a report in this process.
static PANIC_REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// In a child process: replaces the panic hook with a short report on stderr, Python's header
/// ("Process Process-2:") then where and why. No backtrace: evcxr forces `RUST_BACKTRACE=1`, and twenty
/// frames of the kernel's own code would bury the one line a learner needs. [`panic_reported`] tells
/// whether it printed one. evcxr builds every cell with `-Cprefer-dynamic`, so all cells share one
/// std and one hook; a library that links its own std (a plain cdylib) keeps its own hook, and its
/// panics are reported by the caller's `catch_unwind` instead ([`panic_reported`] stays false).
///
/// It allocates nothing and frees nothing: the hook captures nothing (it reads the name when a
/// panic comes), and the parent's hook is leaked, not dropped. A new child's first writes to heap
/// pages it shares with its parent each cost a page copy.
pub(crate) fn report_panics_briefly() {
    use std::sync::atomic::Ordering;
    if PANIC_REPORTED.load(Ordering::Relaxed) {
        // Forked from a process that reported one (a store only then: the page is not written).
        PANIC_REPORTED.store(false, Ordering::Relaxed);
    }
    std::mem::forget(std::panic::take_hook());
    std::panic::set_hook(Box::new(|info| {
        if !PANIC_REPORTED.swap(true, Ordering::SeqCst) {
            let name = crate::session::name_if_free().unwrap_or_else(|| "(this process)".into());
            let place = info
                .location()
                .map(|at| format!(" at {}:{}:{}", at.file(), at.line(), at.column()))
                .unwrap_or_default();
            eprintln!(
                "Process {name}:\npanicked{place}:\n{}",
                panic_message(info.payload())
            );
        }
    }));
}

/// Whether [`report_panics_briefly`]'s hook printed a report in this process.
pub(crate) fn panic_reported() -> bool {
    PANIC_REPORTED.load(std::sync::atomic::Ordering::SeqCst)
}
