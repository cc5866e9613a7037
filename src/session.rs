//! Process-wide state that must survive from one notebook cell to the next: the name and identity of
//! the current process, its parent, and the counter that numbers its children ("Process-1", ...).
//!
//! Why not a Rust `static`: evcxr links this crate into every cell's shared object, so a `static` exists
//! once *per cell* (a counter bumped in cell 2 reads 0 in cell 3). The state is one value per process
//! behind a mutex, found by every cell's copy of the crate through [`sys::ProcessGlobal`] (whose
//! address lives in [`STATE_VAR`]). A forked child has a copy of it: the fork sequence makes the
//! copy the child's ([`adopt_in_child`], then [`become_child`]); a process forked by other means (a
//! raw `fork`) finds the parent's pid in it on first use and becomes a main process of its own
//! (Python's `os.fork` keeps the parent's name; so does this). A program started with `exec` does
//! not see the parent's value at all.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::sys;

/// The environment variable that holds the state's address (see [`sys::ProcessGlobal`]).
pub(crate) const STATE_VAR: &str = "RUST_MULTIPROCESSING_STATE";
/// Bump when [`SessionState`] changes shape.
const STATE_LAYOUT: u32 = 1;

/// What this process knows about itself; Python keeps the same in `multiprocessing.process._current_process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionState {
    /// The pid this state belongs to.
    pub pid: i32,
    /// "MainProcess", "Process-3", "ForkPoolWorker-1", or the name given.
    pub name: String,
    /// Python's `_identity`: empty for the main process, `[3]` for Process-3, `[3, 1]` for its first child.
    pub identity: Vec<u64>,
    /// How many children this process has numbered so far.
    pub children_numbered: u64,
    /// The parent's pid and name; `None` for the main process.
    pub parent: Option<(i32, String)>,
    /// Whether this process is daemonic.
    pub daemon: bool,
    /// Whether the "multi-threaded fork" warning was printed in this process already.
    pub warned_multithreaded: bool,
}

impl SessionState {
    fn main_process() -> Self {
        SessionState {
            pid: std::process::id() as i32,
            name: "MainProcess".to_owned(),
            identity: Vec::new(),
            children_numbered: 0,
            parent: None,
            daemon: false,
            warned_multithreaded: false,
        }
    }
}

/// This process's state.
static STATE: sys::ProcessGlobal<Mutex<SessionState>> =
    sys::ProcessGlobal::new(STATE_VAR, STATE_LAYOUT);

/// Locks this process's state.
fn lock() -> MutexGuard<'static, SessionState> {
    let shared = STATE.get(|| Mutex::new(SessionState::main_process()));
    let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let me = std::process::id() as i32;
    if state.pid != me {
        // A copy made by a raw fork: same name, its own pid, no children yet.
        state.pid = me;
        state.children_numbered = 0;
        state.warned_multithreaded = false;
    }
    state
}

/// Runs `f` on this process's state.
fn with<R>(f: impl FnOnce(&mut SessionState) -> R) -> R {
    f(&mut lock())
}

/// A copy of this process's state.
pub(crate) fn load() -> SessionState {
    with(|state| state.clone())
}

/// Whether this process is a child that this crate forked (a `Process`, a pool worker, a manager).
pub(crate) fn is_child() -> bool {
    with(|state| state.parent.is_some())
}

/// Numbers a new child of this process: returns its identity and its default name, in Python's
/// style ("Process-4" in the main process, "Process-4:1" in the child Process-4).
pub(crate) fn number_new_child(prefix: &str) -> (Vec<u64>, String) {
    let identity = with(|state| {
        state.children_numbered += 1;
        let mut identity = state.identity.clone();
        identity.push(state.children_numbered);
        identity
    });
    let digits: Vec<String> = identity.iter().map(u64::to_string).collect();
    let name = format!("{prefix}-{}", digits.join(":"));
    (identity, name)
}

/// The state locked across a fork (see [`crate::fork`]), so that the child gets a consistent copy.
pub(crate) struct ForkGuard(MutexGuard<'static, SessionState>);

/// Locks the state for a fork.
pub(crate) fn lock_for_fork() -> ForkGuard {
    ForkGuard(lock())
}

/// In a just-forked child: makes the copy of the parent's state this process's, a child of
/// `parent_pid` (named as the parent until [`become_child`] names it).
pub(crate) fn adopt_in_child(inherited: ForkGuard, parent_pid: i32) {
    let ForkGuard(mut state) = inherited;
    // Moved, not cloned: an allocation here writes to heap pages the parent shares, each one then
    // copied (the child is named by `become_child` at once).
    let parent_name = std::mem::take(&mut state.name);
    state.pid = std::process::id() as i32;
    state.parent = Some((parent_pid, parent_name));
    state.children_numbered = 0;
    state.warned_multithreaded = false;
}

/// Called first thing in a child's body, after the fork sequence's [`adopt_in_child`]: it becomes
/// `name`, child of `parent_pid`.
pub(crate) fn become_child(name: String, identity: Vec<u64>, parent_pid: i32, daemon: bool) {
    with(|state| {
        let parent_name = match state.parent.take() {
            Some((pid, name)) if pid == parent_pid => name,
            _ => "MainProcess".to_owned(),
        };
        *state = SessionState {
            pid: std::process::id() as i32,
            name,
            identity,
            children_numbered: 0,
            parent: Some((parent_pid, parent_name)),
            daemon,
            warned_multithreaded: false,
        };
    });
}

/// This process's name, for a panic report: `None` when the state is locked (by the panicking
/// code itself, say: waiting for the lock would never end).
pub(crate) fn name_if_free() -> Option<String> {
    let shared = STATE.get(|| Mutex::new(SessionState::main_process()));
    match shared.try_lock() {
        Ok(state) => Some(state.name.clone()),
        Err(std::sync::TryLockError::Poisoned(state)) => Some(state.into_inner().name.clone()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Python 3.12's warning before a fork from a multi-threaded process, printed once per process.
///
/// After `fork` the child has only the forking thread; a lock another thread held (the allocator's,
/// stdout's, the environment's) stays held forever in the child, so only async-signal-safe work is
/// safe there. The flag lives in the session state, not in a `static`, so "once" means once per
/// process, not once per notebook cell.
pub(crate) fn warn_if_multithreaded() {
    // Before every fork, so the cheap answers first: glibc's flag, then whether it was said already.
    if crate::sys::surely_single_threaded() || with(|state| state.warned_multithreaded) {
        return;
    }
    // A thread that was just joined can still be counted for a moment: glibc's join returns once
    // the kernel clears the thread's id, a little before the kernel drops the thread from the
    // process, and on a busy machine the exiting thread may wait for a core in between (seen: a
    // notebook cell that forks right after joining 8 threads warned now and then). So a count
    // above one is believed only if it stays for ~20 ms; a process that really has threads pays
    // that once, since the warning is printed once.
    let threads_stay = (0..10).all(|look| {
        if look > 0 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        crate::sys::thread_count() > 1
    });
    if !threads_stay {
        return;
    }
    let first = with(|state| !std::mem::replace(&mut state.warned_multithreaded, true));
    if first {
        eprintln!(
            "warning: This process (pid={}) is multi-threaded, use of fork() may lead to deadlocks in the child.",
            std::process::id()
        );
    }
}
