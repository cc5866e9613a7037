//! The pool's engine, shared by [`Pool`](super::Pool), [`AsyncResult`](super::AsyncResult) and the
//! `imap` iterators through an `Rc<RefCell<_>>`: its workers, its jobs, and the one `poll(2)` loop
//! (`drive`) that moves tasks out and results in. No thread: the loop runs inside whichever call waits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::function::{self, FnRef, ProgressSlot};
use super::worker::{self, FromWorker, Status, ToWorker, WorkerSetup};
use crate::channel::{self, NbReader, NbWriter};
use crate::child::{describe_exit_code, Child};
use crate::error::{Error, Result};
use crate::output::{self, OutputRelay};
use crate::{session, sys};

/// Serialized chunks of a job's inputs, produced lazily: `(index of the first task, postcard bytes of
/// a Vec of inputs, number of tasks)`.
pub(crate) type ChunkSource = Box<dyn Iterator<Item = Result<(usize, Vec<u8>)>>>;

/// A pool's lifecycle, as in Python (`RUN`, `CLOSE`, `TERMINATE`) plus "joined".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Closed,
    Terminated,
    Joined,
}

/// One chunk of a job, kept until its result arrives (so it can be sent again if its worker dies
/// before running it).
#[derive(Debug)]
struct Chunk {
    id: u64,
    job: u64,
    seq: usize,
    first: usize,
    payload: Vec<u8>,
    /// How many workers died while holding it at the front of their queue.
    attempts: u8,
}

/// A chunk's outcome as it arrived: its sequence number in the job, its first task index, and the
/// encoded results or the error.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub seq: usize,
    pub first: usize,
    pub result: Result<Payload>,
}

/// The encoded results of a chunk: the frame body as read, and where the payload starts in it (kept
/// in place: no copy of megabytes of results).
#[derive(Debug)]
pub(crate) struct Payload {
    body: Vec<u8>,
    start: usize,
}

impl Payload {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.body[self.start..]
    }
}

struct Job {
    tramp: FnRef,
    func: FnRef,
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
    child: Child,
    relay: OutputRelay,
    tx: NbWriter,
    rx: NbReader,
    progress: ProgressSlot,
    in_flight: VecDeque<Chunk>,
    sent: usize,
    /// Sent `Exit` (join) or reached maxtasksperchild: takes no more work, is not replaced.
    retiring: bool,
}

impl Worker {
    /// Parent-side descriptors a later-forked sibling must close.
    fn parent_fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.tx.fd().as_raw_fd()];
        fds.extend(self.rx.fd().map(|fd| fd.as_raw_fd()));
        fds.extend(self.relay.fds().map(|fd| fd.as_raw_fd()));
        fds.extend(self.child.exit_fd().map(|fd| fd.as_raw_fd()));
        fds
    }
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
    next_job: u64,
    next_chunk: u64,
    described: HashMap<usize, FnRef>,
    /// Set when a worker's initializer panicked: (worker, message).
    broken: Option<(String, String)>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("state", &self.state)
            .field(
                "workers",
                &self
                    .workers
                    .iter()
                    .map(|w| (&w.name, w.child.pid().as_raw()))
                    .collect::<Vec<_>>(),
            )
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

/// Which descriptor of which worker a poll entry is.
#[derive(Clone, Copy)]
enum Slot {
    Results(usize),
    Tasks(usize),
    Output(usize),
    Exit(usize),
}

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
            next_job: 0,
            next_chunk: 0,
            described: HashMap::new(),
            broken: None,
        };
        for _ in 0..processes {
            let worker = inner.spawn_worker()?;
            inner.workers.push(worker);
        }
        Ok(inner)
    }

    fn spawn_worker(&mut self) -> Result<Worker> {
        let (identity, name) = session::number_new_child("ForkPoolWorker");
        let (task_read, task_write) = channel::pipe(false, true)?;
        let (result_read, result_write) = channel::pipe(true, false)?;
        let (relay, ends) = output::pipes_for_child()?;
        let progress = ProgressSlot::new()?;
        let mut close: Vec<RawFd> = self.workers.iter().flat_map(Worker::parent_fds).collect();
        close.extend([task_write.as_raw_fd(), result_read.as_raw_fd()]);
        close.extend(relay.fds().map(|fd| fd.as_raw_fd()));
        let setup = WorkerSetup {
            name: name.clone(),
            identity,
            parent_pid: std::process::id() as i32,
            tasks: task_read,
            results: result_write,
            ends,
            close,
            initializer: self.initializer.clone(),
            maxtasks: self.maxtasks,
        };
        // Whatever this process has buffered must not be inherited and printed again by the worker.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let progress_ref = &progress;
        let pid = sys::fork_child(move || worker::run(setup, progress_ref))?;
        Ok(Worker {
            name,
            child: Child::new(pid),
            relay,
            tx: NbWriter::new(task_write),
            rx: NbReader::new(result_read),
            progress,
            in_flight: VecDeque::new(),
            sent: 0,
            retiring: false,
        })
    }

    pub(crate) fn worker_info(&self) -> Vec<(String, i32)> {
        self.workers
            .iter()
            .map(|w| (w.name.clone(), w.child.pid().as_raw()))
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
            State::Closed => Err(Error::PoolNotRunning { state: "closed" }),
            State::Terminated | State::Joined => Err(Error::PoolNotRunning {
                state: "terminated",
            }),
        }
    }

    fn describe(&mut self, addr: usize) -> FnRef {
        self.described
            .entry(addr)
            .or_insert_with(|| function::describe(addr))
            .clone()
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
                    state: "terminated",
                }),
            );
        };
        let arrived = std::mem::take(&mut j.arrived);
        let failure = j.failure.take();
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

    /// Runs the poll loop until `done` holds (true) or `deadline` passes (false). Always polls at least
    /// once, so a deadline of "now" still collects what has arrived.
    pub(crate) fn drive(
        &mut self,
        deadline: Option<Instant>,
        done: impl Fn(&Inner) -> bool,
    ) -> Result<bool> {
        loop {
            self.dispatch();
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            let expired = deadline.is_some_and(|d| d <= now);
            // Without pidfds (Linux < 5.3) worker exits are only seen by waitpid: wake up now and then.
            let slice = if self.workers.iter().all(|w| w.child.exit_fd().is_some()) {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(10)
            };
            let wait = match deadline {
                _ if expired => Duration::ZERO,
                Some(d) => (d - now).min(slice),
                None => slice,
            };
            self.poll_once(wait)?;
            if expired {
                self.dispatch();
                return Ok(done(self));
            }
        }
    }

    fn poll_once(&mut self, wait: Duration) -> Result<()> {
        let mut events: Vec<Slot> = Vec::new();
        {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(self.workers.len() * 5);
            let mut slots: Vec<Slot> = Vec::with_capacity(self.workers.len() * 5);
            for (i, w) in self.workers.iter().enumerate() {
                if let Some(fd) = w.rx.fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    slots.push(Slot::Results(i));
                }
                if w.tx.has_pending() {
                    fds.push(PollFd::new(w.tx.fd(), PollFlags::POLLOUT));
                    slots.push(Slot::Tasks(i));
                }
                for fd in w.relay.fds() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    slots.push(Slot::Output(i));
                }
                if let Some(fd) = w.child.exit_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    slots.push(Slot::Exit(i));
                }
            }
            let millis = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => {}
                Ok(_) => {
                    for (fd, slot) in fds.iter().zip(&slots) {
                        if fd.revents().is_some_and(|r| !r.is_empty()) {
                            events.push(*slot);
                        }
                    }
                }
                Err(e) => return Err(Error::os("poll", e)),
            }
        }
        let mut exited = Vec::new();
        for event in events {
            match event {
                Slot::Results(i) => self.read_results(i),
                Slot::Tasks(i) => {
                    let _ = self.workers[i].tx.flush();
                }
                Slot::Output(i) => self.workers[i].relay.pump(),
                Slot::Exit(i) => exited.push(i),
            }
        }
        // Workers without a pidfd: ask waitpid.
        for (i, w) in self.workers.iter_mut().enumerate() {
            if w.child.exit_fd().is_none() && !exited.contains(&i) {
                exited.push(i);
            }
        }
        // Highest index first, so removing one does not shift the others.
        exited.sort_unstable_by(|a, b| b.cmp(a));
        for i in exited {
            self.check_exit(i)?;
        }
        Ok(())
    }

    fn read_results(&mut self, i: usize) {
        let _ = self.workers[i].rx.fill();
        while let Some(body) = self.workers[i].rx.next_frame() {
            self.handle_frame(i, body);
        }
    }

    fn handle_frame(&mut self, i: usize, body: Vec<u8>) {
        let Ok((header, payload)) = channel::decode_body::<FromWorker>(&body) else {
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
            FromWorker::Done { chunk, status } => {
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
                    w.relay.pump_and_complete_lines();
                } else {
                    w.relay.pump();
                }
                let name = w.name.clone();
                let result = match status {
                    Status::Ok => Ok(Payload { body, start }),
                    Status::Panicked { index, message } => Err(Error::TaskPanicked {
                        index: index as usize,
                        worker: name,
                        message,
                    }),
                    Status::Codec { message } => Err(Error::Codec {
                        direction: "move",
                        what: "task arguments or results",
                        message,
                    }),
                    Status::Unavailable { message } => {
                        Err(Error::FunctionUnavailable { reason: message })
                    }
                };
                self.chunk_done(c, result);
            }
        }
    }

    fn chunk_done(&mut self, c: Chunk, result: Result<Payload>) {
        if let Some(job) = self.jobs.get_mut(&c.job) {
            job.outstanding = job.outstanding.saturating_sub(1);
            job.deliver(c.seq, c.first, result);
            if job.abandoned && job.outstanding == 0 {
                self.jobs.remove(&c.job);
            }
        }
    }

    /// Reaps worker `i` if it ended; then settles its chunks and replaces it.
    fn check_exit(&mut self, i: usize) -> Result<()> {
        let Some(code) = self.workers[i].child.try_reap()? else {
            return Ok(());
        };
        // Results it wrote before it ended still count; its last output lines are relayed.
        self.read_results(i);
        let mut w = self.workers.remove(i);
        w.relay.finish();
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
                    pid: w.child.pid().as_raw(),
                    how: describe_exit_code(code),
                    task,
                };
                self.chunk_done(c, Err(err));
            } else if let Some(job) = self.jobs.get_mut(&c.job) {
                // Never started (or its result was lost): another worker runs it.
                job.outstanding = job.outstanding.saturating_sub(1);
                if !job.abandoned && job.failure.is_none() {
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
            let worker = self.spawn_worker()?;
            self.workers.insert(i, worker);
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
    fn dispatch(&mut self) {
        if self.broken.is_some() || self.state == State::Terminated || self.state == State::Joined {
            return;
        }
        let live = self.workers.iter().filter(|w| !w.retiring).count().max(1);
        let mut backlog: usize = self.jobs.values().map(Job::backlog).sum();
        // Round 1 gives every idle worker a chunk, round 2 a second one queued behind it (which keeps
        // a worker busy across the round trip), but only while plenty is left, so that at the end no
        // chunk waits behind a slow one while another worker idles.
        for round in 1..=2 {
            for i in 0..self.workers.len() {
                let w = &self.workers[i];
                if w.retiring || self.maxtasks.is_some_and(|m| w.sent >= m) {
                    continue;
                }
                if w.in_flight.len() >= round || (round == 2 && backlog <= 2 * live) {
                    continue;
                }
                let Some(chunk) = self.next_chunk() else {
                    return;
                };
                backlog = backlog.saturating_sub(1);
                let Some(job) = self.jobs.get(&chunk.job) else {
                    continue;
                };
                let header = ToWorker::Task {
                    chunk: chunk.id,
                    first: chunk.first as u64,
                    tramp: job.tramp.clone(),
                    func: job.func.clone(),
                };
                let w = &mut self.workers[i];
                if channel::encode_frame(w.tx.queue(), &header, &chunk.payload).is_err() {
                    continue;
                }
                let _ = w.tx.flush();
                w.sent += 1;
                w.in_flight.push_back(chunk);
            }
        }
    }

    /// The next chunk to send, oldest job first.
    fn next_chunk(&mut self) -> Option<Chunk> {
        for (&id, job) in self.jobs.iter_mut() {
            if job.abandoned || job.failure.is_some() {
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
        }
        None
    }

    pub(crate) fn close(&mut self) {
        if self.state == State::Running {
            self.state = State::Closed;
        }
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
        if matches!(self.state, State::Terminated | State::Joined) && self.workers.is_empty() {
            return;
        }
        self.state = State::Terminated;
        for w in &mut self.workers {
            let _ = w.child.signal(Signal::SIGKILL);
        }
        for mut w in self.workers.drain(..) {
            let _ = w.child.wait_relaying(Some(&mut w.relay), None);
        }
        self.fail_everything(|| Error::PoolNotRunning {
            state: "terminated",
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
            State::Terminated | State::Joined => {
                self.terminate();
                self.state = State::Joined;
                return Ok(());
            }
            State::Closed => {}
        }
        self.drive(None, |inner| {
            inner.broken.is_some() || inner.jobs.values().all(Job::finished)
        })?;
        if self.broken.is_some() {
            self.terminate();
            self.state = State::Joined;
            return Ok(());
        }
        for w in &mut self.workers {
            w.retiring = true;
            let _ = channel::encode_frame(w.tx.queue(), &ToWorker::Exit, &[]);
            let _ = w.tx.flush();
        }
        self.drive(None, |inner| inner.workers.is_empty())?;
        self.state = State::Joined;
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.terminate();
    }
}
