//! The pool's engine, shared by [`Pool`](super::Pool), [`AsyncResult`](super::AsyncResult) and the
//! `imap` iterators through an `Rc<RefCell<_>>`: its workers, its jobs, and `drive`, the pool's
//! [`Waiter`](crate::wait::Waiter) that moves tasks out and results in while the waiting core
//! polls. No thread: it runs inside whichever call waits. The workers themselves (pid, pidfd, output
//! pipes) are entries of the child table ([`crate::registry`]); the pool keeps their task and result
//! pipes, and the chunks each one holds.

use nix::unistd::Pid;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use super::function::{self, Described, ProgressPage, ProgressSlot};
use super::watch::{Outcome, Watch, WorkerNow};
use super::worker::{self, FromWorker, Status, ToWorker, WorkerSetup};
use crate::child::{describe_exit_code, Child};
use crate::error::{Error, PoolState, Result};
use crate::output;
use crate::registry::{self, ChildKind};
use crate::wait::{self, Fds, Waiter};
use crate::wire::{self, Buffer, Encoded, NbReader, NbWriter};
use crate::{fork, session};

/// Serialized chunks of a job's inputs, produced lazily: `(index of the first task, postcard bytes of
/// a Vec of inputs, in memory or in a memfd)`.
pub(crate) type ChunkSource = Box<dyn Iterator<Item = Result<(usize, Encoded)>>>;

/// A pool's lifecycle, as in Python (`RUN`, `CLOSE`, `TERMINATE`) plus "joined", which keeps how
/// the pool was stopped (a closed and joined pool still says "closed", as Python's does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Closed,
    Terminated,
    Joined { after: PoolState },
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Running => f.write_str("running"),
            State::Closed => f.write_str("closed"),
            State::Terminated => f.write_str("terminated"),
            State::Joined { after } => write!(f, "{after} and joined"),
        }
    }
}

/// One chunk of a job, kept until its result arrives (so it can be sent again if its worker dies
/// before running it).
#[derive(Debug)]
struct Chunk {
    id: u64,
    job: u64,
    seq: usize,
    first: usize,
    payload: Encoded,
    /// How many workers died while holding it at the front of their queue.
    attempts: u8,
}

/// A chunk's outcome as it arrived: its sequence number in the job, its first task index, and the
/// encoded results or the error.
#[derive(Debug, Clone)]
pub(crate) struct Arrived {
    pub seq: usize,
    pub first: usize,
    pub result: Result<Payload>,
}

/// The encoded results of a chunk, kept in place (no copy of megabytes of results): the frame body
/// as read and where the payload starts in it, or the mapped memfd of a big payload.
#[derive(Debug)]
pub(crate) enum Payload {
    InFrame { body: Vec<u8>, start: usize },
    Shared(SharedPayload),
}

/// A big result in a mapped memfd; the memfd goes to the pool's spares once the result is dropped
/// (decoded: the worker that wrote it never touches it again).
#[derive(Debug)]
pub(crate) struct SharedPayload {
    mapping: crate::sys::Mapping,
    memfd: Option<OwnedFd>,
    spares: wire::Spares,
}

impl Drop for SharedPayload {
    fn drop(&mut self) {
        if let Some(fd) = self.memfd.take() {
            self.spares.give(fd);
        }
    }
}

impl Clone for Payload {
    /// A copy for a callback (the caller's `get` keeps the original): a mapped payload is copied
    /// into memory.
    fn clone(&self) -> Self {
        match self {
            Payload::InFrame { body, start } => Payload::InFrame {
                body: body.clone(),
                start: *start,
            },
            Payload::Shared(_) => Payload::InFrame {
                body: self.bytes().to_vec(),
                start: 0,
            },
        }
    }
}

impl Payload {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Payload::InFrame { body, start } => &body[*start..],
            Payload::Shared(shared) => shared.mapping.bytes(),
        }
    }
}

struct Job {
    tramp: Rc<Described>,
    func: Rc<Described>,
    source: Option<ChunkSource>,
    next_seq: usize,
    requeued: VecDeque<Chunk>,
    outstanding: usize,
    arrived: Vec<Arrived>,
    /// map/apply: the first error ends the job. imap: errors are delivered in place.
    stop_on_error: bool,
    failure: Option<Error>,
    /// The caller's handle was dropped: discard results, forget the job once nothing is outstanding.
    abandoned: bool,
}

impl Job {
    fn finished(&self) -> bool {
        self.failure.is_some()
            || (self.source.is_none() && self.requeued.is_empty() && self.outstanding == 0)
    }

    fn deliver(&mut self, seq: usize, first: usize, result: Result<Payload>) {
        if self.abandoned || self.failure.is_some() {
            return;
        }
        match result {
            Err(e) if self.stop_on_error => {
                self.failure = Some(e);
                self.source = None;
                self.requeued.clear();
                self.arrived.clear();
            }
            result => self.arrived.push(Arrived { seq, first, result }),
        }
    }

    /// Remaining chunks this job can hand out, as far as known.
    fn backlog(&self) -> usize {
        self.requeued.len() + self.source.as_ref().map_or(0, |s| s.size_hint().0)
    }
}

struct Worker {
    name: String,
    /// The `N` of its name `ForkPoolWorker-N`: it tags the side socket it sends.
    number: u64,
    /// Its entry in the child table (which holds its pidfd and output pipes).
    pid: i32,
    tx: NbWriter,
    rx: NbReader,
    /// The parent's end of the socket that carries memfds of big payloads (`wire::send_shared`),
    /// once the worker made it (the first time a big payload needed it) and the parent took it
    /// from the rendezvous ([`Inner::take_sides`]).
    side: Option<OwnedFd>,
    progress: ProgressSlot,
    in_flight: VecDeque<Chunk>,
    sent: usize,
    /// The parent waited [`SIDE_WAIT`] for its side socket in vain once: it is not waited for again.
    side_awaited: bool,
    /// [`function::loads`] just before it was forked: code loaded by then is at the same address in
    /// it (`Described::for_worker`).
    forked_at: u64,
    /// Sent `Exit` (join) or reached maxtasksperchild: takes no more work, is not replaced.
    retiring: bool,
}

pub(crate) struct Inner {
    /// The pid of the process that created the pool: only it may use or stop the workers (a forked
    /// child holding a copy of the pool must not kill its parent's workers when it drops the copy).
    owner: u32,
    pub processes: usize,
    initializer: Option<Rc<dyn Fn()>>,
    maxtasks: Option<usize>,
    pub state: State,
    workers: Vec<Worker>,
    jobs: BTreeMap<u64, Job>,
    /// Jobs that may still hand out chunks, oldest first (so `dispatch` never walks finished jobs).
    pending: VecDeque<u64>,
    next_job: u64,
    next_chunk: u64,
    described: HashMap<usize, Rc<Described>>,
    /// Set when a worker's initializer panicked: (worker, message).
    broken: Option<(String, String)>,
    /// Progress displays and the task stream ([`super::watch`]).
    pub watch: Watch,
    /// Python's `callback` / `error_callback` of async calls, by job: made ready (decoded) when the
    /// job finishes, run by whoever releases the pool next (see `pool::PoolRef`).
    callbacks: Vec<(u64, Prepare)>,
    ready_callbacks: Vec<Box<dyn FnOnce()>>,
    /// Jobs whose handle was dropped while callbacks wait for them: forgotten once they ran.
    detached: Vec<u64>,
    /// Memfds of big chunks whose results came back, for the next big chunks (`wire::Spares`).
    pub spares: wire::Spares,
    /// Where the workers say which task they run.
    progress: Rc<ProgressPage>,
    /// `/dev/null`, every worker's stdin (opened once here rather than by each new worker).
    devnull: Option<OwnedFd>,
    /// The pool's rendezvous (`wire::rendezvous`): the parent's end, where workers' side sockets
    /// arrive, and the workers' end (each batch of workers gets a copy).
    rendezvous: (OwnedFd, OwnedFd),
}

/// Turns a finished job's results (or failure) into the callback to run.
pub(crate) type Prepare = Box<dyn FnOnce(&[Arrived], Option<&Error>) -> Box<dyn FnOnce()>>;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("state", &self.state)
            .field(
                "workers",
                &self
                    .workers
                    .iter()
                    .map(|w| (&w.name, w.pid))
                    .collect::<Vec<_>>(),
            )
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

/// The most chunks queued to one worker at once (tiny ones; see `dispatch`).
const DEPTH: usize = 16;
/// Beyond two chunks, a worker is given more only while the bytes queued to it are under this.
const DEEP_BYTES: usize = 256 * 1024;

/// How long handing out chunks may wait for a worker's side socket (see `Inner::await_sides`): a
/// worker answers in well under a millisecond, but one just forked on a busy machine may first
/// wait that long for a core. Only a worker stuck in its initializer, or dead, makes the wait run
/// out, once.
const SIDE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Poll tags: worker index times two, plus which pipe; or the rendezvous.
const TAG_RESULTS: u64 = 0;
const TAG_TASKS: u64 = 1;
const TAG_RENDEZVOUS: u64 = u64::MAX;

impl Inner {
    pub(crate) fn new(
        processes: usize,
        initializer: Option<Rc<dyn Fn()>>,
        maxtasks: Option<usize>,
    ) -> Result<Inner> {
        let mut inner = Inner {
            owner: std::process::id(),
            processes,
            initializer,
            maxtasks,
            state: State::Running,
            workers: Vec::new(),
            jobs: BTreeMap::new(),
            pending: VecDeque::new(),
            next_job: 0,
            next_chunk: 0,
            described: HashMap::new(),
            broken: None,
            watch: Watch::new(Default::default()),
            callbacks: Vec::new(),
            ready_callbacks: Vec::new(),
            detached: Vec::new(),
            // A few per worker keep every chunk in flight on reused pages.
            spares: wire::SpareFds::new(2 * processes + 2),
            progress: ProgressPage::new(processes)?,
            devnull: std::fs::File::open("/dev/null").ok().map(OwnedFd::from),
            rendezvous: wire::rendezvous()?,
        };
        inner.spawn_workers(processes, 0)?;
        Ok(inner)
    }

    /// Starts `n` workers and puts them at index `at` of the worker list (a pool's first workers,
    /// or one that replaces a worker that ended). Every worker's pipes are made first, then they are
    /// forked in a row ([`fork::fork_children`]). If a fork fails, the workers forked before it are
    /// kept (the pool stops them as it stops the others) and the error is returned.
    fn spawn_workers(&mut self, n: usize, at: usize) -> Result<()> {
        /// The parent's side of a worker about to be forked.
        struct Prepared {
            name: String,
            number: u64,
            task_write: OwnedFd,
            result_read: OwnedFd,
            relay: output::OutputRelay,
            progress: ProgressSlot,
        }
        let mut prepared = Vec::with_capacity(n);
        let mut setups = Vec::with_capacity(n);
        // The batch's own copy of the workers' end of the rendezvous: the pool's is noted in the
        // child table (below), so every child forked later releases it, workers included.
        let rendezvous = nix::unistd::dup(&self.rendezvous.1).map_err(|e| Error::os("dup", e))?;
        for _ in 0..n {
            let (identity, name) = session::number_new_child("ForkPoolWorker");
            let number = identity.last().copied().unwrap_or(0);
            let (task_read, task_write) = wire::pipe(false, true, Buffer::Default)?;
            let (result_read, result_write) = wire::pipe(true, false, Buffer::Default)?;
            let (relay, mut ends) = output::pipes_for_child()?;
            ends.stdin = self.devnull.as_ref().map(|null| null.as_fd());
            setups.push(WorkerSetup {
                name: name.clone(),
                identity,
                number,
                parent_pid: std::process::id() as i32,
                tasks: task_read,
                results: result_write,
                rendezvous: rendezvous.as_fd(),
                ends,
                initializer: self.initializer.clone(),
                maxtasks: self.maxtasks,
                origin: self.watch.origin(),
            });
            prepared.push(Prepared {
                name,
                number,
                task_write,
                result_read,
                relay,
                progress: ProgressSlot::new(&self.progress)?,
            });
        }
        // Each worker closes every descriptor of the batch but its own ends: the parent's ends and
        // its siblings' ends (the pool's /dev/null it closes once it is its stdin). One sorted list
        // for all, read (not written) by each worker. The earlier workers' pipes and sockets and
        // the spare memfds are not listed: every forked child releases them (the child table notes
        // the former, the fork finds the latter).
        let mut batch: Vec<RawFd> =
            vec![self.rendezvous.0.as_raw_fd(), self.rendezvous.1.as_raw_fd()];
        for p in &prepared {
            batch.extend([p.task_write.as_raw_fd(), p.result_read.as_raw_fd()]);
            batch.extend(p.relay.fds().map(|fd| fd.as_raw_fd()));
        }
        for setup in &setups {
            batch.extend(setup.own_fds().into_iter().filter(|fd| *fd >= 0));
        }
        batch.sort_unstable();
        batch.dedup();
        let batch = &batch[..];
        let mut bodies: Vec<_> = setups
            .into_iter()
            .zip(&prepared)
            .map(|(setup, p)| {
                let progress = &p.progress;
                Some(move || worker::run(setup, batch, progress))
            })
            .collect();
        let mut pids = vec![Pid::from_raw(0); bodies.len()];
        let forked_at = function::loads();
        let (forked, result) = fork::fork_children(&mut bodies, &mut pids);
        drop(bodies);
        // The pool's own descriptors, noted with each worker (a child forked later releases them).
        let pool_ids =
            [&self.rendezvous.0, &self.rendezvous.1].map(|fd| crate::sys::FdId::of(fd.as_fd()));
        let mut table = registry::lock();
        let mut workers = Vec::with_capacity(forked);
        // (Workers that were not forked are dropped here: their pipes close.)
        for (p, pid) in prepared.into_iter().zip(pids).take(forked) {
            table.add(
                p.name.clone(),
                ChildKind::PoolWorker,
                true,
                Child::new(pid),
                p.relay,
            );
            // A child forked later (a Process, another worker) releases its copies of these.
            table.note_parent_ends(pid.as_raw(), &[p.task_write.as_fd(), p.result_read.as_fd()]);
            table.note_parent_ids(pid.as_raw(), pool_ids.into_iter().flatten());
            workers.push(Worker {
                name: p.name,
                number: p.number,
                pid: pid.as_raw(),
                tx: NbWriter::new(p.task_write),
                rx: NbReader::new(p.result_read),
                side: None,
                side_awaited: false,
                progress: p.progress,
                in_flight: VecDeque::new(),
                sent: 0,
                forked_at,
                retiring: false,
            });
        }
        drop(table);
        let at = at.min(self.workers.len());
        self.workers.splice(at..at, workers);
        result
    }

    /// Takes the side sockets workers have sent through the rendezvous (each made the first time
    /// a big payload needed it), and sends each such worker the memfds of the big chunks queued to
    /// it meanwhile, in the order of their frames.
    fn take_sides(&mut self) {
        while let Ok(Some((number, side))) = wire::take_side(self.rendezvous.0.as_fd()) {
            let Some(w) = self
                .workers
                .iter_mut()
                .find(|w| w.number == number && w.side.is_none())
            else {
                continue; // a worker gone since: its socket closes here
            };
            // A child forked later (a Process, another worker) releases its copy of this one.
            registry::lock().note_parent_ends(w.pid, &[side.as_fd()]);
            for c in &w.in_flight {
                if c.payload.len() >= wire::SHARED_MIN {
                    // Failing, the worker is gone: its end settles its chunks.
                    let _ = send_payload(side.as_fd(), &c.payload);
                }
            }
            w.side = Some(side);
        }
    }

    /// Waits a little (at most [`SIDE_WAIT`]) for the side sockets of the workers whose next chunk
    /// is big and whose side socket has not come yet: such a worker makes it as soon as it reads the
    /// chunk's frame, and then waits for the chunk's memfd. So its chunk starts now, not at the
    /// pool's next wait, which after `map_async` may come much later. A worker busy with an
    /// earlier chunk is not waited for, nor one waited for already (stuck in its initializer, say:
    /// the pool's waits take its socket when it comes, and the other workers' results are not held
    /// up again).
    fn await_sides(&mut self) {
        let stalled = |inner: &Inner| {
            inner.workers.iter().any(|w| {
                w.side.is_none()
                    && !w.side_awaited
                    && w.in_flight
                        .front()
                        .is_some_and(|c| c.payload.len() >= wire::SHARED_MIN)
            })
        };
        if !stalled(self) {
            return;
        }
        let deadline = Instant::now() + SIDE_WAIT;
        loop {
            self.take_sides();
            let left = deadline.saturating_duration_since(Instant::now());
            if !stalled(self) {
                return;
            }
            if left.is_zero() {
                for w in &mut self.workers {
                    w.side_awaited |= w.side.is_none() && !w.in_flight.is_empty();
                }
                return;
            }
            // A short wait of its own, not the waiting core's: it runs inside the core's own
            // `check` (through `dispatch`), and the core would drain the interrupt pipe, whose
            // byte the wait around it must see; 50 ms at most, once per worker.
            let mut fd = [libc::pollfd {
                fd: self.rendezvous.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let timeout_ms = left.as_micros().div_ceil(1000) as i32;
            if crate::sys::poll(&mut fd, timeout_ms).is_err() {
                return;
            }
        }
    }

    /// Per worker: name, pid, the task it runs, chunks queued to it (for the pool's rich display).
    pub(crate) fn worker_rows(&self) -> Vec<(String, i32, Option<usize>, usize)> {
        self.workers
            .iter()
            .map(|w| {
                let current = w.progress.running().and_then(|(_, item)| item);
                (w.name.clone(), w.pid, current, w.in_flight.len())
            })
            .collect()
    }

    pub(crate) fn worker_info(&self) -> Vec<(String, i32)> {
        self.workers
            .iter()
            .map(|w| (w.name.clone(), w.pid))
            .collect()
    }

    /// The error for new work, if the pool takes none.
    pub(crate) fn check_running(&self) -> Result<()> {
        if let Some((worker, message)) = &self.broken {
            return Err(Error::InitializerFailed {
                worker: worker.clone(),
                message: message.clone(),
            });
        }
        match self.state {
            State::Running => Ok(()),
            State::Closed => Err(Error::PoolNotRunning {
                state: PoolState::Closed,
            }),
            State::Terminated => Err(Error::PoolNotRunning {
                state: PoolState::Terminated,
            }),
            State::Joined { after } => Err(Error::PoolNotRunning { state: after }),
        }
    }

    fn describe(&mut self, addr: usize) -> Rc<Described> {
        Rc::clone(
            self.described
                .entry(addr)
                .or_insert_with(|| Rc::new(function::describe(addr))),
        )
    }

    /// Adds a job and starts handing out its chunks. Returns its id.
    pub(crate) fn submit(
        &mut self,
        tramp: usize,
        func: usize,
        source: ChunkSource,
        stop_on_error: bool,
    ) -> Result<u64> {
        self.check_running()?;
        let (tramp, func) = (self.describe(tramp), self.describe(func));
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(
            id,
            Job {
                tramp,
                func,
                source: Some(source),
                next_seq: 0,
                requeued: VecDeque::new(),
                outstanding: 0,
                arrived: Vec::new(),
                stop_on_error,
                failure: None,
                abandoned: false,
            },
        );
        self.pending.push_back(id);
        self.dispatch();
        Ok(id)
    }

    /// True once the job has no more results to come (finished, failed, or unknown).
    pub(crate) fn job_finished(&self, job: u64) -> bool {
        self.jobs.get(&job).map_or(true, Job::finished)
    }

    /// True when the caller has something to take: results, a failure, or the end.
    pub(crate) fn job_has_news(&self, job: u64) -> bool {
        self.jobs
            .get(&job)
            .map_or(true, |j| j.finished() || !j.arrived.is_empty())
    }

    /// Whether the job ended without error so far (no failure, no error delivered in place).
    pub(crate) fn job_ok(&self, job: u64) -> bool {
        self.jobs
            .get(&job)
            .is_some_and(|j| j.failure.is_none() && j.arrived.iter().all(|a| a.result.is_ok()))
    }

    /// Takes what arrived for the job; the failure too, once (which removes the job).
    pub(crate) fn take(&mut self, job: u64) -> (Vec<Arrived>, Option<Error>) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return (
                Vec::new(),
                Some(Error::PoolNotRunning {
                    state: PoolState::Terminated,
                }),
            );
        };
        let arrived = std::mem::take(&mut j.arrived);
        let failure = j.failure.take();
        match &failure {
            Some(e) => self.watch.ended(job, Outcome::Failed(e)),
            None if j.finished() => self.watch.ended(job, Outcome::Done),
            None => {}
        }
        if failure.is_some() {
            // Results of chunks still in workers are discarded when they come back.
            j.abandoned = true;
            if j.outstanding == 0 {
                self.jobs.remove(&job);
            }
        } else if j.finished() {
            self.jobs.remove(&job);
        }
        (arrived, failure)
    }

    /// The caller lost interest: drop unsent chunks, discard results still to come.
    pub(crate) fn abandon(&mut self, job: u64) {
        self.watch.ended(job, Outcome::Stopped);
        if let Some(j) = self.jobs.get_mut(&job) {
            j.abandoned = true;
            j.source = None;
            j.requeued.clear();
            j.arrived.clear();
            j.failure = None;
            if j.outstanding == 0 {
                self.jobs.remove(&job);
            }
        }
    }

    /// Runs the pool in the waiting core until `done` holds (true) or `deadline` passes (false).
    /// Always polls at least once, so a deadline of "now" still collects what has arrived. On the
    /// kernel's interrupt, cancels the pool's unfinished work ([`Inner::interrupt`]).
    pub(crate) fn drive(
        &mut self,
        deadline: Option<Instant>,
        done: impl Fn(&Inner) -> bool,
    ) -> Result<bool> {
        struct Drive<'a, F> {
            inner: &'a mut Inner,
            done: F,
        }
        impl<F: Fn(&Inner) -> bool> Waiter for Drive<'_, F> {
            type Output = ();
            fn check(&mut self, woke: &Fds) -> Result<Option<()>> {
                let inner = &mut *self.inner;
                let mut results = Vec::new();
                if woke.ready().any(|tag| tag == TAG_RENDEZVOUS) {
                    inner.take_sides();
                }
                for tag in woke.ready() {
                    if tag == TAG_RENDEZVOUS {
                        continue;
                    }
                    let i = (tag >> 1) as usize;
                    if i >= inner.workers.len() {
                        continue;
                    }
                    if tag & 1 == TAG_TASKS {
                        let _ = inner.workers[i].tx.flush();
                    } else {
                        results.push(i);
                    }
                }
                for i in results {
                    inner.read_results(i);
                }
                inner.reap_ended()?;
                inner.dispatch();
                inner.watch_tick();
                Ok((self.done)(inner).then_some(()))
            }
            fn watch(&self, fds: &mut Fds) {
                fds.watch(
                    self.inner.rendezvous.0.as_fd(),
                    wait::READABLE,
                    TAG_RENDEZVOUS,
                );
                for (i, w) in self.inner.workers.iter().enumerate() {
                    let i = i as u64;
                    if let Some(fd) = w.rx.fd() {
                        fds.watch(fd, wait::READABLE, i << 1 | TAG_RESULTS);
                    }
                    if w.tx.has_pending() {
                        fds.watch(w.tx.fd(), wait::WRITABLE, i << 1 | TAG_TASKS);
                    }
                }
            }
            fn interrupted(&mut self) -> Error {
                self.inner.interrupt()
            }
            fn slice(&self) -> Option<std::time::Duration> {
                self.inner.watch.slice()
            }
        }
        let mut drive = Drive { inner: self, done };
        let finished = wait::until(&mut drive, deadline);
        self.prepare_callbacks();
        Ok(finished?.is_some())
    }

    /// Registers a callback for `job` (made ready at once if the job is finished already).
    pub(crate) fn add_callback(&mut self, job: u64, prepare: Prepare) {
        self.callbacks.push((job, prepare));
        self.prepare_callbacks();
    }

    /// The job's handle was dropped, but callbacks wait for it: keep its results until they ran.
    pub(crate) fn detach(&mut self, job: u64) {
        self.detached.push(job);
        self.prepare_callbacks();
    }

    /// Callbacks whose job finished, to run once the pool is released.
    pub(crate) fn take_ready_callbacks(&mut self) -> Vec<Box<dyn FnOnce()>> {
        std::mem::take(&mut self.ready_callbacks)
    }

    fn prepare_callbacks(&mut self) {
        let mut i = 0;
        while i < self.callbacks.len() {
            let job = self.callbacks[i].0;
            match self.jobs.get(&job) {
                // Taken already, or the pool was terminated: nobody will call back.
                None => drop(self.callbacks.remove(i)),
                Some(j) if j.finished() => {
                    let (_, prepare) = self.callbacks.remove(i);
                    let run = prepare(&j.arrived, j.failure.as_ref());
                    self.ready_callbacks.push(run);
                }
                Some(_) => i += 1,
            }
        }
        let detached = std::mem::take(&mut self.detached);
        for job in detached {
            if self.callbacks.iter().any(|(j, _)| *j == job) {
                self.detached.push(job);
            } else {
                self.abandon(job);
            }
        }
    }

    /// The watcher's hook in the wait loop: notes what each worker runs, and redraws a progress
    /// display when one is due.
    fn watch_tick(&mut self) {
        if !self.watch.due() {
            return;
        }
        let now: Vec<WorkerNow<'_>> = self
            .workers
            .iter()
            .map(|w| WorkerNow {
                name: &w.name,
                running: w.progress.running().and_then(|(chunk, item)| {
                    let c = w.in_flight.iter().find(|c| c.id == chunk)?;
                    Some((c.job, chunk, c.first, item))
                }),
            })
            .collect();
        let jobs = &self.jobs;
        self.watch.update(&now, |j| jobs.contains_key(&j));
    }

    /// Settles every worker the child table saw end (the waiting core reaps them). Settling one
    /// relays and reaps every child (`disown`), which may reap another worker: look again until
    /// none is left, or that worker's end would never wake the core again.
    fn reap_ended(&mut self) -> Result<()> {
        loop {
            let ended: Vec<(usize, i32)> = {
                let mut table = registry::lock();
                self.workers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, w)| match table.status(w.pid) {
                        Some(Some(code)) => Some((i, code)),
                        Some(None) => None,
                        // Not in the table (cannot happen while the pool owns it): treat as ended.
                        None => Some((i, 0)),
                    })
                    .collect()
            };
            if ended.is_empty() {
                return Ok(());
            }
            // Highest index first, so removing one does not shift the others.
            for (i, code) in ended.into_iter().rev() {
                self.worker_ended(i, code)?;
            }
        }
    }

    /// The kernel's interrupt came while the pool was waited for: Python raises KeyboardInterrupt.
    /// Every unfinished task of the pool is cancelled (each pending result gets this error), the
    /// workers that were busy are killed and, while the pool runs, replaced, so the pool is usable
    /// at once.
    fn interrupt(&mut self) -> Error {
        let mut killed = 0;
        for i in (0..self.workers.len()).rev() {
            let w = &self.workers[i];
            if w.in_flight.is_empty() && !w.tx.has_pending() {
                continue;
            }
            let w = self.workers.remove(i);
            registry::lock().kill_and_forget(w.pid);
            killed += 1;
            if self.state == State::Running && self.broken.is_none() {
                let _ = self.spawn_workers(1, i);
            }
        }
        let state = if self.state == State::Running {
            format!("the pool's unfinished tasks were cancelled and its {killed} busy worker(s) killed and replaced; the pool is usable: run the call again")
        } else {
            format!("the pool's unfinished tasks were cancelled and its {killed} busy worker(s) killed; the pool was already closed: join() it, and create a new Pool for more work")
        };
        let err = |state: &str| Error::Interrupted {
            waiting_for: "the pool's results".into(),
            state: state.to_owned(),
        };
        self.fail_everything(|| err(&state));
        // Chunks held by killed workers are gone; idle workers hold none.
        for job in self.jobs.values_mut() {
            job.outstanding = 0;
        }
        self.jobs.retain(|_, j| !j.abandoned);
        err(&state)
    }

    fn read_results(&mut self, i: usize) {
        let _ = self.workers[i].rx.fill();
        while let Some(body) = self.workers[i].rx.next_frame() {
            self.handle_frame(i, body);
        }
    }

    fn handle_frame(&mut self, i: usize, body: Vec<u8>) {
        let Ok((header, payload)) = wire::decode_body::<FromWorker>(&body) else {
            return;
        };
        let start = body.len() - payload.len();
        match header {
            FromWorker::InitFailed { message } => {
                let worker = self.workers[i].name.clone();
                self.fail_everything(|| Error::InitializerFailed {
                    worker: worker.clone(),
                    message: message.clone(),
                });
                self.broken = Some((worker, message));
            }
            FromWorker::Done {
                chunk,
                status,
                shared,
                started,
                ended,
            } => {
                let payload = if shared {
                    // The worker sent its side socket through the rendezvous before the result.
                    if self.workers[i].side.is_none() {
                        self.take_sides();
                    }
                    let Some(side) = &self.workers[i].side else {
                        return;
                    };
                    match wire::recv_shared(side.as_fd()) {
                        Ok((mapping, memfd)) => Payload::Shared(SharedPayload {
                            mapping,
                            memfd: Some(memfd),
                            spares: self.spares.clone(),
                        }),
                        // The worker is gone mid-message; its exit settles its chunks.
                        Err(_) => return,
                    }
                } else {
                    Payload::InFrame { body, start }
                };
                let w = &mut self.workers[i];
                let Some(pos) = w.in_flight.iter().position(|c| c.id == chunk) else {
                    return;
                };
                let Some(c) = w.in_flight.remove(pos) else {
                    return;
                };
                // The worker flushed the task's output before it wrote the result: relay it now. Once
                // it has nothing queued, all it printed is in the pipe: end a line its last task left
                // open, so nothing lingers for a later cell (a task's unfinished line followed by the
                // next task's output of the same worker stays one line, as in a terminal).
                if w.in_flight.is_empty() {
                    registry::lock().complete_lines(w.pid);
                } else {
                    registry::lock().pump_one(w.pid);
                }
                let name = w.name.clone();
                let pid = w.pid;
                self.watch.chunk_done(
                    &name,
                    pid,
                    c.job,
                    c.first,
                    (started, ended),
                    matches!(status, Status::Ok),
                );
                let result = match status {
                    Status::Ok => Ok(payload),
                    Status::Panicked { index, message } => Err(Error::TaskPanicked {
                        index: index as usize,
                        worker: name,
                        message,
                    }),
                    Status::Codec { message } => Err(codec_error(message)),
                    Status::Unavailable { message } => {
                        Err(Error::FunctionUnavailable { reason: message })
                    }
                };
                self.chunk_done(c, result);
            }
        }
    }

    fn chunk_done(&mut self, c: Chunk, result: Result<Payload>) {
        // Its worker has read it (results come after the inputs are decoded) or never will: the
        // memfd may carry another chunk. Not after a big result, though: the worker wrote that into
        // this very memfd, which the result (`SharedPayload`) hands on once decoded.
        let result_shared = matches!(result, Ok(Payload::Shared(_)));
        if let (Encoded::Shared { fd, .. }, false) = (c.payload, result_shared) {
            self.spares.give(fd);
        }
        if let Some(job) = self.jobs.get_mut(&c.job) {
            job.outstanding = job.outstanding.saturating_sub(1);
            job.deliver(c.seq, c.first, result);
            if job.abandoned && job.outstanding == 0 {
                self.jobs.remove(&c.job);
            }
        }
    }

    /// Worker `i` ended with `code` (reaped, its output relayed, by the child table): settles its
    /// chunks, forgets its entry and replaces it.
    fn worker_ended(&mut self, i: usize, code: i32) -> Result<()> {
        // Results it wrote before it ended still count.
        self.read_results(i);
        let mut w = self.workers.remove(i);
        registry::lock().disown(w.pid);
        let running = w.progress.running();
        let mut front = true;
        while let Some(mut c) = w.in_flight.pop_front() {
            let was_running = running.is_some_and(|(id, _)| id == c.id);
            if front && !was_running {
                c.attempts += 1;
            }
            if was_running || c.attempts >= 2 {
                let task = running
                    .and_then(|(_, item)| item)
                    .filter(|_| was_running)
                    .unwrap_or(c.first);
                let err = Error::WorkerDied {
                    worker: w.name.clone(),
                    pid: w.pid,
                    how: describe_exit_code(code),
                    task,
                };
                self.chunk_done(c, Err(err));
            } else if let Some(job) = self.jobs.get_mut(&c.job) {
                // Never started (or its result was lost): another worker runs it.
                job.outstanding = job.outstanding.saturating_sub(1);
                if !job.abandoned && job.failure.is_none() {
                    if job.requeued.is_empty() && job.source.is_none() {
                        // It had left the queue of jobs with chunks to hand out: back to the front.
                        self.pending.push_front(c.job);
                    }
                    job.requeued.push_back(c);
                } else if job.abandoned && job.outstanding == 0 {
                    self.jobs.remove(&c.job);
                }
            }
            front = false;
        }
        if code == worker::EXIT_INIT_FAILED && self.broken.is_none() {
            let message = "the initializer failed".to_string();
            let worker = w.name.clone();
            self.fail_everything(|| Error::InitializerFailed {
                worker: worker.clone(),
                message: message.clone(),
            });
            self.broken = Some((w.name.clone(), message));
        }
        // Replaced unless the pool is winding down: join() told it to exit, or terminate() ran.
        let replace = self.broken.is_none()
            && (self.state == State::Running || (self.state == State::Closed && !w.retiring));
        drop(w);
        if replace {
            self.spawn_workers(1, i)?;
        }
        Ok(())
    }

    fn fail_everything(&mut self, err: impl Fn() -> Error) {
        for job in self.jobs.values_mut() {
            if !job.finished() {
                job.source = None;
                job.requeued.clear();
                job.failure = Some(err());
            }
        }
    }

    /// Hands out chunks to workers with room, and writes what it can.
    ///
    /// Round 1 gives every idle worker a chunk; round 2 a second one queued behind it (which keeps a
    /// worker busy across the round trip); rounds 3 to [`DEPTH`] more, but only small ones (under
    /// [`DEEP_BYTES`] queued), so thousands of tiny tasks (`apply_async`, `imap` with chunksize 1) are
    /// pipelined while big chunks are not encoded far ahead. Round `r` > 1 runs only while more than
    /// `r` chunks per worker are left, so that at the end no chunk waits behind a slow one while
    /// another worker idles.
    fn dispatch(&mut self) {
        self.dispatch_chunks();
        self.await_sides();
    }

    fn dispatch_chunks(&mut self) {
        if self.broken.is_some() || matches!(self.state, State::Terminated | State::Joined { .. }) {
            return;
        }
        let live = self.workers.iter().filter(|w| !w.retiring).count().max(1);
        let mut backlog = self.backlog_up_to(DEPTH * live + 1);
        for round in 1..=DEPTH {
            if round > 1 && backlog <= round * live {
                return;
            }
            for i in 0..self.workers.len() {
                let w = &self.workers[i];
                if w.retiring || self.maxtasks.is_some_and(|m| w.sent >= m) {
                    continue;
                }
                if w.in_flight.len() >= round {
                    continue;
                }
                if round > 2
                    && w.in_flight.iter().map(|c| c.payload.len()).sum::<usize>() > DEEP_BYTES
                {
                    continue;
                }
                let Some(chunk) = self.next_chunk() else {
                    return;
                };
                backlog = backlog.saturating_sub(1);
                let Some(job) = self.jobs.get(&chunk.job) else {
                    continue;
                };
                let shared = chunk.payload.len() >= wire::SHARED_MIN;
                let w = &mut self.workers[i];
                let header = ToWorker::Task {
                    chunk: chunk.id,
                    first: chunk.first as u64,
                    tramp: job.tramp.for_worker(w.forked_at),
                    func: job.func.for_worker(w.forked_at),
                    shared,
                };
                // A big payload goes in shared memory, its descriptor on the side socket (in the
                // same order as the frames, which the worker reads one by one); until the worker
                // has made its side socket, the descriptors wait ([`Inner::take_sides`]).
                let (sent, payload): (Result<()>, &[u8]) = match (&chunk.payload, &w.side) {
                    (payload, Some(side)) if shared => (send_payload(side.as_fd(), payload), &[]),
                    _ if shared => (Ok(()), &[]),
                    (Encoded::Inline(bytes), _) => (Ok(()), bytes),
                    (Encoded::Shared { .. }, _) => (Ok(()), &[]),
                };
                if let Err(e) =
                    sent.and_then(|()| wire::encode_frame(w.tx.queue(), &header, payload))
                {
                    // Never lose a chunk silently: its job gets the error.
                    self.chunk_done(chunk, Err(e));
                    continue;
                }
                let _ = w.tx.flush();
                w.sent += 1;
                let waits_for_side = shared && w.side.is_none();
                w.in_flight.push_back(chunk);
                if waits_for_side {
                    // Before encoding the next big chunk (milliseconds of copying): this worker
                    // starts on its chunk meanwhile.
                    self.await_sides();
                }
            }
        }
    }

    /// The number of chunks left to hand out, counted up to `cap` (enough to decide the rounds).
    fn backlog_up_to(&self, cap: usize) -> usize {
        let mut n = 0;
        for id in &self.pending {
            if let Some(job) = self.jobs.get(id) {
                if !job.abandoned && job.failure.is_none() {
                    n += job.backlog().max(usize::from(job.source.is_some()));
                }
            }
            if n >= cap {
                return n;
            }
        }
        n
    }

    /// The next chunk to send, oldest job first.
    fn next_chunk(&mut self) -> Option<Chunk> {
        while let Some(&id) = self.pending.front() {
            let Some(job) = self.jobs.get_mut(&id) else {
                self.pending.pop_front();
                continue;
            };
            if job.abandoned || job.failure.is_some() {
                self.pending.pop_front();
                continue;
            }
            if let Some(c) = job.requeued.pop_front() {
                job.outstanding += 1;
                return Some(c);
            }
            while let Some(source) = &mut job.source {
                match source.next() {
                    None => job.source = None,
                    Some(Ok((first, payload))) => {
                        let seq = job.next_seq;
                        job.next_seq += 1;
                        job.outstanding += 1;
                        let chunk_id = self.next_chunk;
                        self.next_chunk += 1;
                        return Some(Chunk {
                            id: chunk_id,
                            job: id,
                            seq,
                            first,
                            payload,
                            attempts: 0,
                        });
                    }
                    Some(Err(e)) => {
                        let seq = job.next_seq;
                        job.next_seq += 1;
                        job.deliver(seq, 0, Err(e));
                    }
                }
            }
            self.pending.pop_front();
        }
        None
    }

    pub(crate) fn close(&mut self) {
        if self.state == State::Running {
            self.state = State::Closed;
        }
    }

    /// The pid of the process that created the pool.
    pub(crate) fn owner(&self) -> u32 {
        self.owner
    }

    /// True in the process that created the pool; false in a forked copy.
    pub(crate) fn is_owner(&self) -> bool {
        self.owner == std::process::id()
    }

    /// Kills every worker (SIGKILL), reaps it, relays its last output, and fails unfinished jobs.
    /// In a forked copy of the pool it only forgets the workers: they belong to the creator.
    pub(crate) fn terminate(&mut self) {
        if !self.is_owner() {
            self.state = State::Terminated;
            self.workers.clear();
            return;
        }
        if matches!(self.state, State::Terminated | State::Joined { .. }) && self.workers.is_empty()
        {
            return;
        }
        self.state = State::Terminated;
        {
            let mut table = registry::lock();
            for w in &self.workers {
                let _ = table.signal(w.pid, nix::sys::signal::Signal::SIGKILL);
            }
            // Their pipes, sockets and progress slots are released while they die (on the other
            // core, or when this one waits), then each is reaped.
            let pids: Vec<i32> = self.workers.drain(..).map(|w| w.pid).collect();
            for pid in pids {
                table.reap_and_forget(pid);
            }
        }
        self.fail_everything(|| Error::PoolNotRunning {
            state: PoolState::Terminated,
        });
        self.jobs.retain(|_, j| !j.abandoned);
        for job in self.jobs.values_mut() {
            job.outstanding = 0;
        }
    }

    /// `join()`: after `close()`, waits for every job, then lets the workers exit and reaps them;
    /// after `terminate()`, nothing is left to wait for.
    pub(crate) fn join(&mut self) -> Result<()> {
        match self.state {
            State::Running => return Err(Error::PoolStillRunning),
            State::Terminated => {
                self.terminate();
                self.state = State::Joined {
                    after: PoolState::Terminated,
                };
                return Ok(());
            }
            State::Joined { .. } => return Ok(()),
            State::Closed => {}
        }
        self.drive(None, |inner| {
            inner.broken.is_some() || inner.jobs.values().all(Job::finished)
        })?;
        if self.broken.is_some() {
            self.terminate();
            self.state = State::Joined {
                after: PoolState::Terminated,
            };
            return Ok(());
        }
        for w in &mut self.workers {
            w.retiring = true;
            let _ = wire::encode_frame(w.tx.queue(), &ToWorker::Exit, &[]);
            let _ = w.tx.flush();
        }
        self.drive(None, |inner| inner.workers.is_empty())?;
        self.state = State::Joined {
            after: PoolState::Closed,
        };
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Sends a big chunk's payload over a worker's side socket: its memfd, or its bytes in a new one.
fn send_payload(side: std::os::fd::BorrowedFd<'_>, payload: &Encoded) -> Result<()> {
    match payload {
        Encoded::Shared { fd, .. } => wire::send_fd(side, fd.as_fd()),
        Encoded::Inline(bytes) => wire::send_shared(side, bytes, None),
    }
}

/// The error of a chunk whose arguments the worker could not decode, or whose results it could not
/// encode: the worker's message starts with which one (`pool/function.rs`), said in the error's own
/// fields as everywhere else (Python: `MaybeEncodingError` for a result).
fn codec_error(message: String) -> Error {
    if let Some(rest) = message.strip_prefix("task results: ") {
        return Error::Codec {
            direction: "serialize",
            what: "task results",
            message: rest.to_owned(),
        };
    }
    if let Some(rest) = message.strip_prefix("task arguments: ") {
        return Error::Codec {
            direction: "deserialize",
            what: "task arguments",
            message: rest.to_owned(),
        };
    }
    Error::Codec {
        direction: "move",
        what: "task arguments or results",
        message,
    }
}
