//! The child table: this process's live children, kept process-wide (Python's
//! `multiprocessing.process._children`).
//!
//! Each [`Process`](crate::Process) this process starts, and each pool worker, is entered here with its
//! pid, pidfd and the parent's ends of its output pipes. The waiting core ([`crate::wait`]) polls all
//! of them in every wait. Keeping them in one process-wide place (not in the `Process`
//! value alone) gives three things:
//!
//! - **Output as it happens.** Whatever this process waits for (`join`, a pool's `map`, `recv`, ...)
//!   relays the complete lines of *every* registered child, so four children's
//!   lines appear in the order they were printed, not in join order, and a child that prints while
//!   another is joined never blocks on a full pipe. Each pipe keeps its unfinished last line in its
//!   own buffer here, so a line is written out only once it is whole, whoever relays it.
//! - **No zombies from dropped handles.** A `Process` dropped while its child runs leaves the entry
//!   here, marked unowned; the child goes on running (its pipes stay open and relayed, so it never
//!   gets `SIGPIPE`) and is reaped by the next relay (as Python reaps on the next `start()` or
//!   `active_children()`).
//! - **`active_children()`** from any cell, pool workers included (as in Python).
//!
//! Why not a `static`: evcxr links a copy of this crate into every cell, each with its own statics.
//! The registry is one leaked heap value per process whose address lives in an environment variable
//! ([`sys::ProcessGlobal`]); file descriptors and pids are process-wide, so any cell's copy of this
//! code can use them.

use std::os::fd::BorrowedFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::sys::signal::Signal;

use crate::child::Child;
use crate::error::Result;
use crate::output::OutputRelay;
use crate::sys;

/// The environment variable holding the table's address (see [`sys::ProcessGlobal`]).
const REGISTRY_VAR: &str = "RUST_MULTIPROCESSING_CHILDREN";
/// Bump when [`Registry`] or anything it contains changes shape.
const REGISTRY_LAYOUT: u32 = 4;

/// What a child is, which decides who answers for it when the user interrupts this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildKind {
    /// A `Process`: gets SIGINT, as Python's children do from Ctrl-C or ipykernel's interrupt.
    Process,
    /// A pool's worker: the pool stops its tasks itself (and replaces the busy ones).
    PoolWorker,
}

/// One child of this process.
#[derive(Debug)]
pub(crate) struct Entry {
    pub name: String,
    pub kind: ChildKind,
    pub daemon: bool,
    pub child: Child,
    pub relay: OutputRelay,
    /// A `Process` value (or a pool) still refers to this child; when false, the entry goes once the
    /// child is reaped and its output relayed.
    pub owned: bool,
    /// Descriptors of this process that talk to this child and are owned elsewhere (a pool
    /// worker's task pipe, result pipe and side socket, its pool's rendezvous, owned by the pool): a
    /// child forked later has no use for its copies and releases them ([`forget_in_child`]).
    pub parent_ends: Vec<sys::FdId>,
}

/// What a caller learns about one registered child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub pid: i32,
    pub name: String,
    pub daemon: bool,
}

/// This process's children.
#[derive(Debug)]
pub(crate) struct Registry {
    /// The process these entries belong to: a child forked from it has a copy of the table (see
    /// [`sys::ProcessGlobal`]) and empties it on first use ([`lock`]).
    owner: u32,
    entries: Vec<Entry>,
}

/// This process's child table.
static TABLE: sys::ProcessGlobal<Mutex<Registry>> =
    sys::ProcessGlobal::new(REGISTRY_VAR, REGISTRY_LAYOUT);

/// Locks this process's child table.
pub(crate) fn lock() -> MutexGuard<'static, Registry> {
    let me = std::process::id();
    let table = TABLE.get(|| {
        Mutex::new(Registry {
            owner: me,
            entries: Vec::new(),
        })
    });
    let mut guard = table.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.owner != me {
        // Forked by other means than the fork sequence (which empties it at once).
        guard.forget_parents();
    }
    guard
}

/// The child table locked across a fork (see [`crate::fork`]), so the child gets a consistent copy.
pub(crate) struct ForkGuard(MutexGuard<'static, Registry>);

/// Locks the child table for a fork.
pub(crate) fn lock_for_fork() -> ForkGuard {
    ForkGuard(lock())
}

/// In a just-forked child: the table copied from the parent lists the parent's children, not ours.
/// Empty it (closing their inherited descriptors: pidfds, pipe read ends, and releasing the
/// parent's ends of its pool workers' pipes); the copy is this process's table from now on.
pub(crate) fn forget_in_child(inherited: ForkGuard) {
    let ForkGuard(mut table) = inherited;
    table.forget_parents();
}

impl Registry {
    /// Empties a table copied from the parent by a fork and makes it this process's.
    fn forget_parents(&mut self) {
        sys::release_in_child(
            self.entries
                .iter()
                .flat_map(|e| e.parent_ends.iter().copied()),
        );
        self.entries.clear();
        self.owner = std::process::id();
    }

    /// Notes the descriptors of this process that talk to child `pid` and are owned elsewhere
    /// (see [`Entry::parent_ends`]).
    pub(crate) fn note_parent_ends(&mut self, pid: i32, fds: &[BorrowedFd<'_>]) {
        let ids = fds.iter().filter_map(|fd| sys::FdId::of(*fd));
        self.note_parent_ids(pid, ids);
    }

    /// [`Registry::note_parent_ends`] for descriptors noted already (a pool notes its own with
    /// each of its workers: one `fstat` each, not one per worker).
    pub(crate) fn note_parent_ids(&mut self, pid: i32, ids: impl IntoIterator<Item = sys::FdId>) {
        if let Some(entry) = self.find(pid) {
            entry.parent_ends.extend(ids);
        }
    }

    /// Enters a just-started child.
    pub(crate) fn add(
        &mut self,
        name: String,
        kind: ChildKind,
        daemon: bool,
        child: Child,
        relay: OutputRelay,
    ) {
        self.entries.push(Entry {
            name,
            kind,
            daemon,
            child,
            relay,
            owned: true,
            parent_ends: Vec::new(),
        });
    }

    /// Relays what every child has printed (complete lines only), reaps the children that ended
    /// (relaying the rest of their output) and forgets unowned children that are done.
    pub(crate) fn pump(&mut self) {
        for entry in &mut self.entries {
            entry.pump_and_reap();
        }
        self.tidy();
    }

    fn tidy(&mut self) {
        self.entries
            .retain(|e| e.owned || e.child.exit_code().is_none());
    }

    /// For the waiting core (which sits above this table): passes every child's output pipes and
    /// pidfd to `watch`, with the child's pid. Returns false when some live child has no pidfd (its
    /// end is then seen only by polling `waitpid`).
    pub(crate) fn watch(&self, mut watch: impl FnMut(BorrowedFd<'_>, i32)) -> bool {
        let mut all_pidfds = true;
        for entry in &self.entries {
            let pid = entry.child.pid().as_raw();
            for fd in entry.relay.fds() {
                watch(fd, pid);
            }
            match entry.child.exit_fd() {
                Some(fd) => watch(fd, pid),
                None => all_pidfds &= entry.child.exit_code().is_some(),
            }
        }
        all_pidfds
    }

    /// For the waiting core, after a poll: relays and reaps the children in `woke` (whose pipes or
    /// pidfd had events) and every child without a pidfd.
    pub(crate) fn service(&mut self, woke: &[i32]) {
        for entry in &mut self.entries {
            if woke.contains(&entry.child.pid().as_raw())
                || (entry.child.exit_fd().is_none() && entry.child.exit_code().is_none())
            {
                entry.pump_and_reap();
            }
        }
        self.tidy();
    }

    fn find(&mut self, pid: i32) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.child.pid().as_raw() == pid)
    }

    /// The exit code of `pid` after a pump of every child: `Some(None)` while it runs, `None` if it
    /// is not ours.
    pub(crate) fn exit_code(&mut self, pid: i32) -> Option<Option<i32>> {
        self.pump();
        self.status(pid)
    }

    /// The exit code of `pid` as last seen (the waiting core reaps): `Some(None)` while it runs,
    /// `None` if it is not ours.
    pub(crate) fn status(&mut self, pid: i32) -> Option<Option<i32>> {
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

    /// The owner (`Process` or pool) is gone or has read the exit code: forget the entry once done.
    pub(crate) fn disown(&mut self, pid: i32) {
        if let Some(entry) = self.find(pid) {
            entry.owned = false;
        }
        self.pump();
    }

    /// A pool worker has finished every task it was given: relay its output and end an unfinished
    /// last line, so nothing lingers into a later cell.
    pub(crate) fn complete_lines(&mut self, pid: i32) {
        if let Some(entry) = self.find(pid) {
            entry.relay.pump_and_complete_lines();
        }
    }

    /// Relays what `pid` printed so far (complete lines).
    pub(crate) fn pump_one(&mut self, pid: i32) {
        if let Some(entry) = self.find(pid) {
            entry.relay.pump();
        }
    }

    /// Kills `pid` (SIGKILL), waits for it, relays the rest of its output and removes its entry.
    /// For a pool's `terminate` and interrupt: a killed process ends at once.
    pub(crate) fn kill_and_forget(&mut self, pid: i32) {
        if let Some(entry) = self.find(pid) {
            let _ = entry.child.signal(Signal::SIGKILL);
        }
        self.reap_and_forget(pid);
    }

    /// Waits for `pid`, already sent SIGKILL, relays the rest of its output and removes its entry.
    pub(crate) fn reap_and_forget(&mut self, pid: i32) {
        if let Some(pos) = self
            .entries
            .iter()
            .position(|e| e.child.pid().as_raw() == pid)
        {
            let mut entry = self.entries.remove(pos);
            let _ = entry.child.wait_blocking();
            entry.relay.finish();
        }
    }

    /// The user interrupted this process: sends SIGINT to every `Process` child still running, as
    /// ipykernel's interrupt (SIGINT to the kernel's process group) or a terminal's Ctrl-C does to
    /// Python's children. A child that does not handle it ends with exit code -2.
    pub(crate) fn interrupt_processes(&mut self) {
        for entry in &mut self.entries {
            if entry.kind == ChildKind::Process && entry.child.exit_code().is_none() {
                let _ = entry.child.signal(Signal::SIGINT);
            }
        }
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
}

impl Entry {
    fn pump_and_reap(&mut self) {
        self.relay.pump();
        // Errors other than "still running" leave the child as it is; the next pump tries again.
        if let Ok(Some(_)) = self.child.try_reap() {
            if !self.relay.is_closed() {
                self.relay.finish();
            }
        }
    }
}
