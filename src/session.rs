//! Process-wide state that must survive from one notebook cell to the next: the name and identity of
//! the current process, its parent, and the counter that numbers its children ("Process-1", ...).
//!
//! Why not a Rust `static`: evcxr links this crate into every cell's shared object, so a `static` exists
//! once *per cell* (a counter bumped in cell 2 reads 0 in cell 3). The C environment is one per process
//! whatever the linking, survives every cell, and is copied into a forked child, so the state lives in
//! one environment variable, [`STATE_VAR`]. It records the pid it belongs to: a program that inherits
//! the variable through `exec` sees another pid and starts afresh as "MainProcess".

use serde::{Deserialize, Serialize};

/// The environment variable that holds the state.
pub(crate) const STATE_VAR: &str = "RUST_MULTIPROCESSING_STATE";

/// What this process knows about itself; Python keeps the same in `multiprocessing.process._current_process`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Reads this process's state; a process that never set it is the main process.
pub(crate) fn load() -> SessionState {
    let me = std::process::id() as i32;
    load_any()
        .filter(|state| state.pid == me)
        .unwrap_or_else(SessionState::main_process)
}

/// The state in the environment, whichever process it belongs to (in a just-forked child: the parent's).
fn load_any() -> Option<SessionState> {
    std::env::var(STATE_VAR).ok().and_then(|hex| decode(&hex))
}

/// Replaces this process's state.
pub(crate) fn store(state: &SessionState) {
    // The environment is process-wide; this crate only changes it from the thread that forks and in
    // a just-forked child, where no other thread exists.
    std::env::set_var(STATE_VAR, encode(state));
}

/// Numbers a new child of this process: returns its identity and its default name, in Python's
/// style ("Process-4" in the main process, "Process-4:1" in the child Process-4).
pub(crate) fn number_new_child(prefix: &str) -> (Vec<u64>, String) {
    let mut state = load();
    state.children_numbered += 1;
    let mut identity = state.identity.clone();
    identity.push(state.children_numbered);
    store(&state);
    let digits: Vec<String> = identity.iter().map(u64::to_string).collect();
    let name = format!("{prefix}-{}", digits.join(":"));
    (identity, name)
}

/// Called first thing in a freshly forked child: it becomes `name`, child of the process that forked it.
pub(crate) fn become_child(name: &str, identity: Vec<u64>, parent_pid: i32, daemon: bool) {
    // `load()` would see another pid (ours) and answer "MainProcess": read the parent's state as is.
    let parent_name = match load_any() {
        Some(parent) if parent.pid == parent_pid => parent.name,
        _ => "MainProcess".to_owned(),
    };
    store(&SessionState {
        pid: std::process::id() as i32,
        name: name.to_owned(),
        identity,
        children_numbered: 0,
        parent: Some((parent_pid, parent_name)),
        daemon,
        warned_multithreaded: false,
    });
}

/// Python 3.12's warning before a fork from a multi-threaded process, printed once per process.
///
/// After `fork` the child has only the forking thread; a lock another thread held (the allocator's,
/// stdout's, the environment's) stays held forever in the child, so only async-signal-safe work is
/// safe there. The flag lives in the session state, not in a `static`, so "once" means once per
/// process, not once per notebook cell.
pub(crate) fn warn_if_multithreaded() {
    if crate::sys::thread_count() <= 1 {
        return;
    }
    let mut state = load();
    if state.warned_multithreaded {
        return;
    }
    state.warned_multithreaded = true;
    store(&state);
    eprintln!(
        "warning: This process (pid={}) is multi-threaded, use of fork() may lead to deadlocks in the child.",
        state.pid
    );
}

fn encode(state: &SessionState) -> String {
    let bytes = postcard::to_allocvec(state).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(hex: &str) -> Option<SessionState> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    postcard::from_bytes(&bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_text_form() {
        let state = SessionState {
            pid: 42,
            name: "Process-3:1".into(),
            identity: vec![3, 1],
            children_numbered: 7,
            parent: Some((41, "Process-3".into())),
            daemon: true,
            warned_multithreaded: true,
        };
        assert_eq!(decode(&encode(&state)), Some(state));
        assert_eq!(decode("zz"), None);
        assert_eq!(decode("abc"), None);
    }
}
