//! Questions a process asks about itself and its family: Python's `current_process()`,
//! `parent_process()`, `active_children()`, `cpu_count()`, and `sys.exit(n)` in a child.
//!
//! The answers come from process-wide state (an environment variable, a registry of children), not from Rust
//! `static`s, so a function defined in one notebook cell and run in a process started from a later
//! cell sees the right name.

use std::fmt;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::{registry, session, sys};

/// The running process, as Python's `multiprocessing.current_process()` describes it.
///
/// ```
/// let me = multiprocessing::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id() as i32);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    name: String,
    pid: i32,
    daemon: bool,
    identity: Vec<u64>,
}

impl CurrentProcess {
    /// `"MainProcess"` in the notebook (or any program), `"Process-N"` or the given name in a child.
    ///
    /// ```
    /// use multiprocessing::{current_process, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::builder()
    ///     .name("worker")
    ///     .target(|| println!("I am {}", current_process().name()))?;
    /// p.start()?;
    /// p.join()?; // prints "I am worker"
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This process's pid (Python: `current_process().pid`, also `os.getpid()`).
    ///
    /// ```
    /// assert_eq!(multiprocessing::current_process().pid(), std::process::id() as i32);
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether this process is daemonic (it may then not start children).
    ///
    /// ```
    /// assert!(!multiprocessing::current_process().daemon());
    /// ```
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Always true: the process asking is running (Python: `current_process().is_alive()`).
    ///
    /// ```
    /// assert!(multiprocessing::current_process().is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        true
    }

    /// Always `None`: the process asking has not ended (Python: `current_process().exitcode`).
    ///
    /// ```
    /// assert_eq!(multiprocessing::current_process().exitcode(), None);
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        None
    }

    /// Python's `_identity`: empty in the main process, `[2]` in `Process-2`, `[2, 1]` in `Process-2:1`.
    ///
    /// ```
    /// assert!(multiprocessing::current_process().identity().is_empty());
    /// ```
    pub fn identity(&self) -> &[u64] {
        &self.identity
    }
}

impl fmt::Display for CurrentProcess {
    /// The name, as in `println!("{}", current_process())`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The running process: its name, pid and daemon flag (Python's `multiprocessing.current_process()`).
///
/// ```
/// use multiprocessing::{current_process, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// println!("{}", current_process().name()); // MainProcess
/// let mut p = Process::new(|| println!("{}", current_process().name())); // Process-N
/// p.start()?;
/// p.join()?;
/// # Ok(())
/// # }
/// ```
pub fn current_process() -> CurrentProcess {
    let state = session::load();
    CurrentProcess {
        name: state.name,
        pid: state.pid,
        daemon: state.daemon,
        identity: state.identity,
    }
}

/// The process that started this one, as Python's `multiprocessing.parent_process()` describes it.
///
/// ```
/// use multiprocessing::{parent_process, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// assert!(parent_process().is_none()); // the main process has none
/// let mut p = Process::new(|| {
///     let parent = parent_process().expect("a child has a parent");
///     println!("started by {} (pid {})", parent.name(), parent.pid());
/// });
/// p.start()?;
/// p.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProcess {
    name: String,
    pid: i32,
}

impl ParentProcess {
    /// The parent's name, e.g. `"MainProcess"`.
    ///
    /// ```
    /// let mut p = multiprocessing::Process::new(|| {
    ///     assert_eq!(multiprocessing::parent_process().unwrap().name(), "MainProcess");
    /// });
    /// p.start().unwrap();
    /// assert_eq!(p.join().unwrap(), 0);
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parent's pid.
    ///
    /// ```
    /// let main_pid = std::process::id() as i32;
    /// let mut p = multiprocessing::Process::new(move || {
    ///     assert_eq!(multiprocessing::parent_process().unwrap().pid(), main_pid);
    /// });
    /// p.start().unwrap();
    /// assert_eq!(p.join().unwrap(), 0);
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the parent still runs (this process was not re-parented). Children of this crate die
    /// with their parent, so from a running child this is normally `true`.
    ///
    /// ```
    /// let mut p = multiprocessing::Process::new(|| {
    ///     assert!(multiprocessing::parent_process().unwrap().is_alive());
    /// });
    /// p.start().unwrap();
    /// assert_eq!(p.join().unwrap(), 0);
    /// ```
    pub fn is_alive(&self) -> bool {
        nix::unistd::getppid().as_raw() == self.pid
    }
}

/// The process that started this one: `None` in the main process (Python's `parent_process()`).
///
/// ```
/// assert!(multiprocessing::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    session::load()
        .parent
        .map(|(pid, name)| ParentProcess { name, pid })
}

/// A running child of this process, as listed by [`active_children`].
///
/// ```
/// use multiprocessing::{active_children, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_secs(10)));
/// p.start()?;
/// for child in active_children() {
///     println!("{} (pid {}) daemon={}", child.name(), child.pid(), child.daemon());
///     child.terminate()?;
/// }
/// assert_eq!(p.join()?, -15);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveChild {
    name: String,
    pid: i32,
    daemon: bool,
    /// The process that listed it, its parent: only that one may ask about it or signal it.
    parent: i32,
}

impl ActiveChild {
    /// The child's name.
    ///
    /// ```
    /// let mut p = multiprocessing::Process::builder().name("sleeper")
    ///     .target(|| std::thread::sleep(std::time::Duration::from_secs(10))).unwrap();
    /// p.start().unwrap();
    /// assert_eq!(multiprocessing::active_children()[0].name(), "sleeper");
    /// p.kill().unwrap();
    /// p.join().unwrap();
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's pid.
    ///
    /// ```
    /// let mut p = multiprocessing::Process::new(|| std::thread::sleep(std::time::Duration::from_secs(10)));
    /// p.start().unwrap();
    /// assert_eq!(Some(multiprocessing::active_children()[0].pid()), p.pid());
    /// p.kill().unwrap();
    /// p.join().unwrap();
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the child is daemonic.
    ///
    /// ```
    /// let mut p = multiprocessing::Process::builder().daemon(true)
    ///     .target(|| std::thread::sleep(std::time::Duration::from_secs(10))).unwrap();
    /// p.start().unwrap();
    /// assert!(multiprocessing::active_children()[0].daemon());
    /// p.kill().unwrap();
    /// p.join().unwrap();
    /// ```
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the child still runs (reaps it and relays output if it ended). As
    /// [`Process::is_alive`](crate::Process::is_alive): [`Error::NotOwner`] in another process than
    /// the one that listed it.
    ///
    /// ```
    /// let mut p = multiprocessing::Process::new(|| std::thread::sleep(std::time::Duration::from_secs(10)));
    /// p.start().unwrap();
    /// let child = multiprocessing::active_children().remove(0);
    /// assert!(child.is_alive().unwrap());
    /// p.kill().unwrap();
    /// p.join().unwrap();
    /// assert!(!child.is_alive().unwrap());
    /// ```
    pub fn is_alive(&self) -> Result<bool> {
        self.check_parent("is_alive")?;
        Ok(registry::lock()
            .exit_code(self.pid)
            .is_some_and(|code| code.is_none()))
    }

    /// Only the parent may ask about a child or signal it (see [`Error::NotOwner`]).
    fn check_parent(&self, call: &'static str) -> Result<()> {
        if self.parent == std::process::id() as i32 {
            return Ok(());
        }
        Err(Error::NotOwner {
            name: self.name.clone(),
            creator: self.parent,
            call,
        })
    }

    /// Sends `SIGTERM` to the child if it still runs ([`Error::NotOwner`] in another process than
    /// the one that listed it).
    ///
    /// ```
    /// let mut p = multiprocessing::Process::new(|| std::thread::sleep(std::time::Duration::from_secs(10)));
    /// p.start().unwrap();
    /// multiprocessing::active_children()[0].terminate().unwrap();
    /// assert_eq!(p.join().unwrap(), -15);
    /// ```
    pub fn terminate(&self) -> Result<()> {
        self.check_parent("terminate")?;
        registry::lock().signal(self.pid, Signal::SIGTERM)
    }

    /// Sends `SIGKILL` to the child if it still runs ([`Error::NotOwner`] in another process than
    /// the one that listed it).
    ///
    /// ```
    /// let mut p = multiprocessing::Process::new(|| std::thread::sleep(std::time::Duration::from_secs(10)));
    /// p.start().unwrap();
    /// multiprocessing::active_children()[0].kill().unwrap();
    /// assert_eq!(p.join().unwrap(), -9);
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.check_parent("kill")?;
        registry::lock().signal(self.pid, Signal::SIGKILL)
    }
}

/// This process's children that are still running, oldest first (Python's `active_children()`).
/// Like Python, it first reaps the children that have ended (relaying the rest of their output), so
/// calling it also clears zombies left by dropped [`Process`](crate::Process) values.
///
/// ```
/// use multiprocessing::{active_children, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// assert!(active_children().is_empty());
/// let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_secs(10)));
/// p.start()?;
/// assert_eq!(active_children().len(), 1);
/// p.terminate()?;
/// p.join()?;
/// assert!(active_children().is_empty());
/// # Ok(())
/// # }
/// ```
pub fn active_children() -> Vec<ActiveChild> {
    let parent = std::process::id() as i32;
    registry::lock()
        .live()
        .into_iter()
        .map(|s| ActiveChild {
            name: s.name,
            pid: s.pid,
            daemon: s.daemon,
            parent,
        })
        .collect()
}

/// The number of CPUs this process may run on (`std::thread::available_parallelism`: the scheduler
/// affinity mask and cgroup quota count). Python's `cpu_count()` counts every CPU of the machine;
/// Python 3.13's `os.process_cpu_count()` is this one. At least 1.
///
/// ```
/// assert!(multiprocessing::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Ends the current child process with exit code `code` (Python's `sys.exit(code)` in a child): its
/// daemonic children get `SIGTERM`, all its children are joined (their output relayed), its output is
/// flushed, and it ends with `_exit`, without returning into any caller. The parent sees `code` in
/// [`Process::exitcode`](crate::Process::exitcode).
///
/// In the main process: inside a notebook (evcxr) this panics instead, as Python's `sys.exit` in
/// Jupyter only raises `SystemExit`: really exiting would kill the kernel's runtime and every
/// variable with it. In any other program it flushes and exits with `code`.
///
/// ```
/// use multiprocessing::{exit, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let mut p = Process::new(|| {
///     println!("leaving early");
///     exit(4);
/// });
/// p.start()?;
/// assert_eq!(p.join()?, 4);
/// # Ok(())
/// # }
/// ```
pub fn exit(code: i32) -> ! {
    if session::load().parent.is_some() {
        crate::fork::finish_children();
        sys::exit_now(code)
    }
    if std::env::var_os("EVCXR_IS_RUNTIME").is_some() {
        panic!("exit({code}) in the notebook's main process: this would end the kernel's runtime; call exit() inside a Process's closure");
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code)
}
