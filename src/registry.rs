//! This process's live children, kept process-wide: Python's `multiprocessing.process._children`.
//!
//! Each [`Process`](crate::Process) this process starts is entered here with its pid, pidfd and the
//! parent's ends of its output pipes. Keeping them in one process-wide place (not in the `Process`
//! value alone) gives three things:
//!
//! - **Output as it happens.** Whoever waits for one child (`join`, `is_alive`, `start`,
//!   `active_children`) relays the complete lines of *every* registered child, so four children's
//!   lines appear in the order they were printed, not in join order, and a child that prints while
//!   another is joined never blocks on a full pipe. Each pipe keeps its unfinished last line in its
//!   own buffer here, so a line is written out only once it is whole, whoever relays it.
//! - **No zombies from dropped handles.** A `Process` dropped while its child runs leaves the entry
//!   here, marked unowned; the child goes on running (its pipes stay open and relayed, so it never
//!   gets `SIGPIPE`) and is reaped by the next relay (as Python reaps on the next `start()` or
//!   `active_children()`).
//! - **`active_children()`** from any cell.
//!
//! Why not a `static`: evcxr links a copy of this crate into every cell, each with its own statics.
//! The registry is one leaked heap value per process whose address lives in an environment variable
//! ([`sys::process_global`]); file descriptors and pids are process-wide, so any cell's copy of this
//! code can use them.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::child::Child;
use crate::error::{Error, Result};
use crate::output::OutputRelay;
use crate::sys;

/// The environment variable holding the registry's address (see [`sys::process_global`]).
const REGISTRY_VAR: &str = "RUST_MULTIPROCESSING_CHILDREN";
/// Bump when [`Registry`] or anything it contains changes shape.
const REGISTRY_LAYOUT: u32 = 1;

/// One child of this process.
#[derive(Debug)]
pub(crate) struct Entry {
    pub name: String,
    pub daemon: bool,
    pub child: Child,
    pub relay: OutputRelay,
    /// A `Process` value still refers to this child; when false, the entry goes once the child is
    /// reaped and its output relayed.
    pub owned: bool,
}

/// What a caller learns about one registered child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub pid: i32,
    pub name: String,
    pub daemon: bool,
}

/// This process's children.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Vec<Entry>,
}

/// Locks this process's registry.
pub(crate) fn lock() -> MutexGuard<'static, Registry> {
    let shared: &'static Mutex<Registry> =
        sys::process_global(REGISTRY_VAR, REGISTRY_LAYOUT, || {
            Mutex::new(Registry::default())
        });
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// In a just-forked child: the registry copied from the parent lists the parent's children, not
/// ours. Close their inherited descriptors (pidfds, pipe read ends). The copy itself is abandoned:
/// the environment variable still names the parent's pid, so the child's first use makes a new one.
pub(crate) fn forget_in_child(mut inherited: MutexGuard<'static, Registry>) {
    inherited.entries.clear();
}

impl Registry {
    /// Enters a just-started child.
    pub(crate) fn add(&mut self, name: String, daemon: bool, child: Child, relay: OutputRelay) {
        self.entries.push(Entry {
            name,
            daemon,
            child,
            relay,
            owned: true,
        });
    }

    /// Relays what every child has printed (complete lines only), reaps the children that ended
    /// (relaying the rest of their output) and forgets unowned children that are done.
    pub(crate) fn pump(&mut self) {
        for entry in &mut self.entries {
            entry.relay.pump();
            // Errors other than "still running" leave the child as it is; the next pump tries again.
            if let Ok(Some(_)) = entry.child.try_reap() {
                if !entry.relay.is_closed() {
                    entry.relay.finish();
                }
            }
        }
        self.entries
            .retain(|e| e.owned || e.child.exit_code().is_none());
    }

    fn find(&mut self, pid: i32) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.child.pid().as_raw() == pid)
    }

    /// The exit code of `pid` after a pump: `Some(None)` while it runs, `None` if it is not ours.
    pub(crate) fn exit_code(&mut self, pid: i32) -> Option<Option<i32>> {
        self.pump();
        self.find(pid).map(|e| e.child.exit_code())
    }

    /// The exit code of `pid` if it has ended, reaping it but relaying nothing (for `Debug`).
    pub(crate) fn peek_exit_code(&mut self, pid: i32) -> Option<i32> {
        self.find(pid)
            .and_then(|e| e.child.try_reap().ok().flatten())
    }

    /// Sends `signal` to `pid` if it is one of our children and not reaped yet (a reaped pid may
    /// belong to another process by now, so it is never signalled).
    pub(crate) fn signal(&mut self, pid: i32, signal: Signal) -> Result<()> {
        match self.find(pid) {
            Some(entry) => entry.child.signal(signal),
            None => Ok(()),
        }
    }

    /// The owning `Process` is gone (dropped) or has read the exit code: forget the entry once done.
    pub(crate) fn disown(&mut self, pid: i32) {
        if let Some(entry) = self.find(pid) {
            entry.owned = false;
        }
        self.pump();
    }

    /// The children that have not ended, after reaping those that have (Python's `active_children`).
    pub(crate) fn live(&mut self) -> Vec<Summary> {
        self.pump();
        self.entries
            .iter()
            .filter(|e| e.child.exit_code().is_none())
            .map(|e| Summary {
                pid: e.child.pid().as_raw(),
                name: e.name.clone(),
                daemon: e.daemon,
            })
            .collect()
    }

    /// Waits up to one poll slice for anything to happen: output from any child, or the end of
    /// `pid` (or of any child, when `pid` is `None`).
    fn poll_once(&self, pid: Option<i32>, slice: Duration) -> Result<()> {
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut have_exit_fd = pid.is_none();
        for entry in &self.entries {
            if pid.is_none() || pid == Some(entry.child.pid().as_raw()) {
                if let Some(fd) = entry.child.exit_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    have_exit_fd = true;
                }
            }
            fds.extend(
                entry
                    .relay
                    .fds()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
        }
        // Without a pidfd (Linux < 5.3), or while a grandchild keeps a pipe open after the child
        // ended, wake up often to check with waitpid.
        let slice = if have_exit_fd {
            slice
        } else {
            slice.min(Duration::from_millis(10))
        };
        let timeout =
            PollTimeout::try_from(slice.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(Error::os("poll", e)),
        }
    }
}

/// Waits until child `pid` ends or `deadline` passes, relaying the output of all children meanwhile.
/// Returns the exit code, `None` at the deadline, or `Err` if `pid` is not a child in the registry.
///
/// The registry lock is taken for one poll slice at a time, so another thread may join another child.
pub(crate) fn wait(pid: i32, deadline: Option<Instant>) -> Result<Option<i32>> {
    loop {
        let mut registry = lock();
        match registry.exit_code(pid) {
            None => {
                return Err(Error::os("waitpid", nix::Error::ECHILD));
            }
            Some(Some(code)) => return Ok(Some(code)),
            Some(None) => {}
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(deadline) if deadline <= now => return Ok(None),
            Some(deadline) => (deadline - now).min(Duration::from_millis(200)),
            None => Duration::from_millis(200),
        };
        registry.poll_once(Some(pid), slice)?;
    }
}

/// Waits for every child to end, relaying their output (the end of a child process, as Python's
/// `_exit_function`: daemonic children are first sent `SIGTERM`, then all are joined).
pub(crate) fn finish_children() {
    let live = lock().live();
    for child in live.iter().filter(|c| c.daemon) {
        let _ = lock().signal(child.pid, Signal::SIGTERM);
    }
    for child in &live {
        let _ = wait(child.pid, None);
    }
}

/// Waits until `fd` is readable (data or end of file) or `deadline` passes (`None`: no limit),
/// relaying the output of all children and reaping those that ended meanwhile, as a `join` does: a
/// child that prints while this process waits on a `Pipe` or `Queue` shows its lines as they come
/// and never blocks on a full output pipe. Returns whether `fd` is readable.
pub(crate) fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> Result<bool> {
    loop {
        let mut registry = lock();
        registry.pump();
        let mut fds = vec![PollFd::new(fd, PollFlags::POLLIN)];
        for entry in &registry.entries {
            fds.extend(
                entry
                    .child
                    .exit_fd()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
            fds.extend(
                entry
                    .relay
                    .fds()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
        }
        let now = Instant::now();
        let mut slice = match deadline {
            Some(deadline) => deadline.saturating_duration_since(now),
            None => Duration::MAX,
        };
        if fds.len() > 1 {
            // Children to watch: come back now and then to reap one without a pidfd.
            slice = slice.min(Duration::from_millis(200));
        }
        // Round up, so that a short wait is not a busy loop of zero-millisecond polls.
        let millis = slice.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os("poll", e)),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}
