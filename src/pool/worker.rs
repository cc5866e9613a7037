//! The worker loop, run in each forked pool worker: read a task frame, run it through its trampoline,
//! write the result frame, until told to exit, the task pipe closes, or `maxtasksperchild` is reached.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::function::{self, FnRef, ProgressSlot, Resolver};
use crate::output::ChildEnds;
use crate::session;
use crate::wire;

/// Parent -> worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// Run a chunk; the payload (postcard `Vec<input>`) follows the header, or, when `shared`, comes
    /// as a memfd on the side socket (big payloads, see `wire::SHARED_MIN`).
    Task {
        chunk: u64,
        first: u64,
        tramp: FnRef,
        func: FnRef,
        shared: bool,
    },
    /// Finish: `close()` + `join()`.
    Exit,
}

/// Worker -> parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// A chunk ran; for `Ok` the payload (postcard `Vec<result>`) follows the header, or, when
    /// `shared`, comes as a memfd on the side socket.
    Done {
        chunk: u64,
        status: Status,
        shared: bool,
        /// When the chunk started and ended, in microseconds since the pool's origin (the task
        /// stream's times: the worker's own clock, not when the parent happened to look).
        started: u64,
        ended: u64,
    },
    /// The initializer panicked; the worker exits.
    InitFailed { message: String },
}

/// How a chunk ended.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Status {
    Ok,
    Panicked { index: u64, message: String },
    Codec { message: String },
    Unavailable { message: String },
}

/// Inputs from this size on make a worker keep the memory it frees ([`crate::sys::keep_freed_memory`]).
const KEEP_FREED_FROM: usize = 64 * 1024;

/// Exit code of a worker whose initializer panicked.
pub(crate) const EXIT_INIT_FAILED: i32 = 3;

/// Everything a worker needs, prepared by the parent before the fork.
pub(crate) struct WorkerSetup<'a> {
    pub name: String,
    pub identity: Vec<u64>,
    /// The `N` of `ForkPoolWorker-N` (the last of `identity`), never reused in the parent: it tags
    /// the side socket the worker hands over ([`wire::open_side`]).
    pub number: u64,
    pub parent_pid: i32,
    pub tasks: OwnedFd,
    pub results: OwnedFd,
    /// The workers' end of the pool's rendezvous, through which the worker hands the parent its
    /// end of its side socket (the socket that carries memfds of big payloads, both ways), made
    /// the first time a big payload needs it ([`wire::open_side`]). The pool's: each worker of a
    /// batch uses the same descriptor.
    pub rendezvous: BorrowedFd<'a>,
    pub ends: ChildEnds<'a>,
    pub initializer: Option<Rc<dyn Fn()>>,
    pub maxtasks: Option<usize>,
    /// The pool's time origin (`CLOCK_MONOTONIC` is one clock for all processes, so an `Instant`
    /// copied by fork means the same moment in the worker).
    pub origin: Instant,
}

impl WorkerSetup<'_> {
    /// The descriptors this worker keeps (-1: none); its siblings in a batch close them.
    pub(crate) fn own_fds(&self) -> [RawFd; 6] {
        use std::os::fd::AsRawFd;
        let [stdout, stderr, stdin] = self.ends.raw_fds();
        [
            self.tasks.as_raw_fd(),
            self.results.as_raw_fd(),
            self.rendezvous.as_raw_fd(),
            stdout,
            stderr,
            stdin,
        ]
    }
}

/// Runs in the child right after fork; returns the exit code. `batch` lists (ascending) every
/// descriptor made for the workers forked with this one, the parent's ends included: the worker
/// closes all of them but its own.
pub(crate) fn run(setup: WorkerSetup<'_>, batch: &[RawFd], progress: &ProgressSlot) -> i32 {
    // (fork_child has made this worker die with its parent and emptied its copy of the child table,
    // closing its siblings' output pipes and pidfds.)
    crate::sys::close_all_raw(batch, &setup.own_fds());
    setup.ends.install();
    let number = setup.number;
    session::become_child(setup.name, setup.identity, setup.parent_pid, true);
    // A task's panic travels to the parent as `Error::TaskPanicked`; stderr gets only a short report.
    crate::error::report_panics_briefly();
    let results = setup.results;
    if let Some(init) = setup.initializer {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| init())) {
            let message = crate::error::panic_message(&*payload);
            let mut frame = Vec::new();
            if wire::encode_frame(&mut frame, &FromWorker::InitFailed { message }, &[]).is_ok() {
                let _ = wire::write_all(results.as_fd(), &frame);
            }
            return EXIT_INIT_FAILED;
        }
        flush_std();
    }
    let mut resolver = Resolver::default();
    // The side socket, once a big payload needed it.
    let mut side: Option<OwnedFd> = None;
    let mut body = Vec::new();
    let mut out = Vec::new();
    let mut frame = Vec::new();
    let mut done = 0usize;
    let mut keeps_freed_memory = false;
    loop {
        match wire::read_frame(setup.tasks.as_fd(), &mut body, "the pool") {
            Ok(true) => {}
            Ok(false) | Err(_) => return 0,
        }
        let Ok((header, payload)) = wire::decode_body::<ToWorker>(&body) else {
            return 2;
        };
        let (chunk, first, tramp, func, shared) = match header {
            ToWorker::Exit => return 0,
            ToWorker::Task {
                chunk,
                first,
                tramp,
                func,
                shared,
            } => (chunk, first, tramp, func, shared),
        };
        let (mapped, memfd) = if shared {
            match side_socket(&mut side, setup.rendezvous, number).and_then(wire::recv_shared) {
                Ok((mapping, memfd)) => (Some(mapping), Some(memfd)),
                Err(_) => return 2,
            }
        } else {
            (None, None)
        };
        let payload: &[u8] = mapped.as_ref().map_or(payload, |m| m.bytes());
        // Chunks of megabytes come and go in buffers of megabytes; glibc would hand each back to
        // the system and fault fresh pages in for the next one (a quarter of a tiny-task map's
        // time). A worker is this crate's own process, so it may keep its freed memory for the
        // next chunk. Only once chunks are big: the call costs a new worker's first small task a
        // tenth of its time (glibc consolidates its free lists).
        if !keeps_freed_memory && payload.len() >= KEEP_FREED_FROM {
            crate::sys::keep_freed_memory();
            keeps_freed_memory = true;
        }
        out.clear();
        let micros = || setup.origin.elapsed().as_micros() as u64;
        let started = micros();
        let status = match (resolver.resolve(&tramp), resolver.resolve(&func)) {
            (Ok(tramp), Ok(func)) => {
                progress.set_chunk(Some(chunk));
                let code =
                    function::call_trampoline(tramp, func, payload, progress, first, &mut out);
                // With inputs in a memfd, the chunk counts as running until its result is out:
                // a big result overwrites that memfd, so a death while writing it must not make
                // the parent send the chunk again (from the memfd) elsewhere: `WorkerDied` instead.
                if memfd.is_none() {
                    progress.set_chunk(None);
                }
                match code {
                    function::STATUS_OK => Status::Ok,
                    function::STATUS_PANICKED => Status::Panicked {
                        index: progress.current_item().map_or(first, |i| i as u64),
                        message: String::from_utf8_lossy(&out).into_owned(),
                    },
                    _ => Status::Codec {
                        message: String::from_utf8_lossy(&out).into_owned(),
                    },
                }
            }
            (Err(message), _) | (_, Err(message)) => Status::Unavailable { message },
        };
        // Done with the inputs (decoded into the task's own values) before the result goes out.
        drop(mapped);
        flush_std();
        let ended = micros();
        let payload: &[u8] = if matches!(status, Status::Ok) {
            &out
        } else {
            &[]
        };
        let shared = payload.len() >= wire::SHARED_MIN;
        // A big result goes back in the memfd the inputs came in, when there was one: its pages
        // are there already (the parent knows: it keeps the inputs' memfd only for small results).
        if shared
            && side_socket(&mut side, setup.rendezvous, number)
                .and_then(|socket| wire::send_shared(socket, payload, memfd))
                .is_err()
        {
            return 2;
        }
        let payload = if shared { &[][..] } else { payload };
        let header = FromWorker::Done {
            chunk,
            status,
            shared,
            started,
            ended,
        };
        if wire::encode_frame_head(&mut frame, &header, payload.len()).is_err() {
            return 2;
        }
        wire::grow_for(results.as_fd(), frame.len() + payload.len());
        if wire::write_all2(results.as_fd(), &frame, payload).is_err() {
            return 2;
        }
        progress.set_chunk(None);
        done += 1;
        if setup.maxtasks.is_some_and(|max| done >= max) {
            return 0;
        }
    }
}

/// The worker's side socket, made now if this is the first big payload ([`wire::open_side`]).
fn side_socket<'s>(
    side: &'s mut Option<OwnedFd>,
    rendezvous: BorrowedFd<'_>,
    number: u64,
) -> crate::error::Result<BorrowedFd<'s>> {
    let socket: &'s OwnedFd = match side.take() {
        Some(socket) => side.insert(socket),
        None => side.insert(wire::open_side(rendezvous, number)?),
    };
    Ok(socket.as_fd())
}

fn flush_std() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}
