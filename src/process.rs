//! [`Process`]: one child process running a closure, as Python's `multiprocessing.Process` with the
//! `fork` start method.
//!
//! ```
//! use multiprocessing::{current_process, Process};
//!
//! fn print_number(num: i32) {
//!     println!("Process ID: {}, Number: {num}", current_process().name());
//! }
//!
//! # fn main() -> multiprocessing::Result<()> {
//! let mut processes = Vec::new();
//! for i in 1..5 {
//!     let mut process = Process::new(move || print_number(i));
//!     process.start()?;
//!     processes.push(process);
//! }
//! for process in &processes {
//!     process.join()?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! How the child is made, and what the parent promises:
//! - `start()` forks. The child inherits a copy of the parent's memory, so the closure may capture
//!   anything (no `Send`, no serialization). It runs the closure, catches a panic, waits for its own
//!   children, flushes its output and ends with `_exit`: it never returns into the caller's code
//!   (inside evcxr that would run the kernel's code in the child).
//! - The child's stdout and stderr are pipes that the parent relays, whole line by whole line,
//!   whenever it waits: in `join`, `join_timeout`, `is_alive`, `exitcode`, `start`,
//!   [`active_children`](crate::active_children), and every other blocking call of this crate (a
//!   pool's `map`, `recv`, `Queue::get`, ...). So output shows in the notebook cell that waits, in
//!   the order the children printed it. Its stdin is `/dev/null`.
//! - **Threads the child starts are cut off when the closure returns** (the child ends with
//!   `_exit`); Python would wait for its non-daemon threads. Join your threads inside the closure.
//! - Interrupting the kernel while `join` waits returns [`Error::Interrupted`]; the child keeps
//!   running, as in Jupyter with Python (only the kernel gets the interrupt). Join it again, or
//!   `terminate()` it.
//! - Only the process that created a `Process` value may start, join, test ([`is_alive`]) or
//!   signal its child: from any other process (a forked child holding a copy of the value) these
//!   calls return [`Error::NotOwner`] (Python raises `AssertionError: can only test a child
//!   process`, `can only join a child process`). [`exitcode`] there answers what the copy knew at
//!   the fork (`None` while it ran), as Python's does. To learn about a sibling, ask the parent
//!   through a [`Pipe`](crate::Pipe) or [`Queue`](crate::Queue).
//!
//! [`is_alive`]: Process::is_alive
//! [`exitcode`]: Process::exitcode
//! - The child dies with the process that started it (`PR_SET_PDEATHSIG` = `SIGKILL`, then a
//!   `getppid()` check). Linux sends that signal when the *thread* that forked exits: start processes
//!   from a thread that outlives them (in a notebook, the cell's main thread always does).
//! - At the end of the main process (the notebook's kernel) children are not joined: they are killed
//!   with it, by that same signal. A kernel shutdown therefore never hangs on a child that does not
//!   end. Python joins non-daemonic children at exit; join the ones you need. Inside a child,
//!   Python's rule holds: when the closure returns, its daemonic children get `SIGTERM` and then all
//!   its children are joined, their output relayed.
//! - A `Process` dropped while its child runs neither kills it nor leaves a zombie: the child goes
//!   on, its output is still relayed, and it is reaped by the next wait of any kind (as Python reaps
//!   on the next `start()` or `active_children()`).

use std::cell::Cell;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::child::Child;
use crate::error::{Error, Result};
use crate::registry::ChildKind;
use crate::{fork, output, registry, session, wait};

/// The exit code a fallible closure's result gives the child (see [`Process::new_fallible`]): 0 for
/// `Ok`; for `Err`, reports `Process <name>:` and `Error: <e:?>` on stderr (as a Rust `main` does) and
/// gives 1.
fn exit_code_of_result<T, E: fmt::Debug>(result: std::result::Result<T, E>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(error) => {
            eprintln!("Process {}:\nError: {error:?}", session::load().name);
            1
        }
    }
}

type Target = Box<dyn FnOnce() -> i32>;

/// A closure run in a child process: Python's `multiprocessing.Process`.
///
/// Create it with [`Process::new`] (or [`Process::new_fallible`] for a closure that returns a `Result`,
/// or [`Process::builder`] to give a name or make it daemonic),
/// then [`start`](Process::start) and [`join`](Process::join) it. Its default name is numbered
/// across the whole session as in Python: `Process-1`, `Process-2`, ... in the notebook, whatever
/// cell creates it; `Process-2:1` for the first child that `Process-2` creates.
///
/// `{:?}` shows it as Python's `repr` does: `<Process name='Process-1' pid=4242 parent=4200 started>`.
///
/// ```
/// use multiprocessing::Process;
///
/// # fn main() -> multiprocessing::Result<()> {
/// let greeting = String::from("hello from a child"); // captured: the child has a copy
/// let mut p = Process::new(move || println!("{greeting}"));
/// assert_eq!(p.exitcode(), None);
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok(())
/// # }
/// ```
pub struct Process {
    name: String,
    identity: Vec<u64>,
    daemon: bool,
    /// The pid of the process that created this value; only it may start or join it.
    creator: i32,
    target: Option<Target>,
    pid: Option<i32>,
    exit_code: Cell<Option<i32>>,
    /// `close()` was called: every later call that needs the child is [`Error::ProcessClosed`].
    closed: bool,
}

/// Builds a [`Process`] with a name or the daemon flag: Python's `Process(target=..., name=..., daemon=...)`.
///
/// ```
/// use multiprocessing::Process;
///
/// # fn main() -> multiprocessing::Result<()> {
/// let mut p = Process::builder().name("worker").daemon(true).target(|| println!("working"))?;
/// assert_eq!(p.name(), "worker");
/// assert!(p.daemon());
/// p.start()?;
/// p.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until .target(...) creates the Process"]
pub struct ProcessBuilder {
    name: Option<String>,
    /// `None`: inherit the creating process's flag, as `Process::new` (Python: `daemon=None`).
    daemon: Option<bool>,
}

impl ProcessBuilder {
    /// Names the process (default: `Process-N`). Checked by [`target`](ProcessBuilder::target).
    ///
    /// ```
    /// let p = multiprocessing::Process::builder().name("loader").target(|| ()).unwrap();
    /// assert_eq!(p.name(), "loader");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the process daemonic, or not (default: as the process that creates it, so not in the
    /// main process; Python's `daemon=None`): a daemonic process may not start children of its
    /// own, and when the process that started it ends, it is terminated rather than waited for.
    ///
    /// ```
    /// let p = multiprocessing::Process::builder().daemon(true).target(|| ()).unwrap();
    /// assert!(p.daemon());
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = Some(daemon);
        self
    }

    /// Creates the process that will run `target`. Fails with [`Error::InvalidName`] for a name that
    /// is empty, longer than 256 bytes, or holds a control character such as a newline.
    ///
    /// ```
    /// use multiprocessing::{Error, Process};
    ///
    /// let bad = Process::builder().name("two\nlines").target(|| ());
    /// assert!(matches!(bad, Err(Error::InvalidName { .. })));
    /// ```
    pub fn target(self, target: impl FnOnce() + 'static) -> Result<Process> {
        self.build(Box::new(move || {
            target();
            0
        }))
    }

    /// As [`target`](ProcessBuilder::target), for a closure that returns a `Result` (see
    /// [`Process::new_fallible`]).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = multiprocessing::Process::builder()
    ///     .name("parser")
    ///     .target_fallible(|| "12".parse::<i32>().map(|n| println!("{n}")))?;
    /// p.start()?;
    /// assert_eq!(p.join()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn target_fallible<T, E: fmt::Debug>(
        self,
        target: impl FnOnce() -> std::result::Result<T, E> + 'static,
    ) -> Result<Process> {
        self.build(Box::new(move || exit_code_of_result(target())))
    }

    fn build(self, target: Target) -> Result<Process> {
        if let Some(name) = &self.name {
            check_name(name)?;
        }
        let mut process = Process::with_target(target);
        if let Some(name) = self.name {
            process.name = name;
        }
        if let Some(daemon) = self.daemon {
            process.daemon = daemon;
        }
        Ok(process)
    }
}

fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "a name cannot be empty; leave it out to get Process-N"
    } else if name.len() > 256 {
        "a name is at most 256 bytes long"
    } else if name.chars().any(char::is_control) {
        "a name cannot hold control characters such as a newline (it is printed in reports, one line each)"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

impl Process {
    /// Creates a process that will run `target` once [started](Process::start) (Python:
    /// `Process(target=f, args=(i,))` is `Process::new(move || f(i))`). `target` may capture any
    /// values: the child gets a copy of this process's memory. The name is `Process-N`, numbered
    /// across the session. A panic in `target` gives exit code 1. Threads that `target` starts are
    /// cut off when it returns (Python would wait for them): join them inside `target`.
    ///
    /// ```
    /// use multiprocessing::Process;
    ///
    /// let i = 3;
    /// let p = Process::new(move || println!("number {i}"));
    /// assert!(p.name().starts_with("Process-"));
    /// ```
    pub fn new(target: impl FnOnce() + 'static) -> Process {
        Process::with_target(Box::new(move || {
            target();
            0
        }))
    }

    /// Creates a process whose closure returns a `Result`, so it can use `?`. `Ok` gives exit code 0;
    /// `Err(e)` prints `Process <name>:` and `Error: <e:?>` on the child's stderr (as a Rust `main`
    /// does) and gives exit code 1, as an uncaught exception does in Python.
    ///
    /// ```
    /// use multiprocessing::Process;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::new_fallible(|| -> Result<(), std::num::ParseIntError> {
    ///     let n: i32 = "forty-two".parse()?;
    ///     println!("{n}");
    ///     Ok(())
    /// });
    /// p.start()?;
    /// assert_eq!(p.join()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_fallible<T, E: fmt::Debug>(
        target: impl FnOnce() -> std::result::Result<T, E> + 'static,
    ) -> Process {
        Process::with_target(Box::new(move || exit_code_of_result(target())))
    }

    fn with_target(target: Target) -> Process {
        let (identity, name) = session::number_new_child("Process");
        Process {
            name,
            identity,
            // Python: a new Process inherits the daemon flag of the process that creates it.
            daemon: session::load().daemon,
            creator: std::process::id() as i32,
            target: Some(target),
            pid: None,
            exit_code: Cell::new(None),
            closed: false,
        }
    }

    /// A [`ProcessBuilder`], to give a name or set the daemon flag before creating the process.
    ///
    /// ```
    /// let p = multiprocessing::Process::builder().name("fetcher").target(|| ()).unwrap();
    /// assert_eq!(p.name(), "fetcher");
    /// ```
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// The process's name: `Process-N`, or the one given.
    ///
    /// ```
    /// let p = multiprocessing::Process::builder().name("w").target(|| ()).unwrap();
    /// assert_eq!(p.name(), "w");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the process (Python: `p.name = "..."`). After `start()` this changes only how this
    /// handle shows it; the running child keeps the name it started with.
    ///
    /// ```
    /// let mut p = multiprocessing::Process::new(|| ());
    /// p.set_name("renamed").unwrap();
    /// assert_eq!(p.name(), "renamed");
    /// assert!(p.set_name("").is_err());
    /// ```
    pub fn set_name(&mut self, name: impl Into<String>) -> Result<()> {
        let name = name.into();
        check_name(&name)?;
        self.name = name;
        Ok(())
    }

    /// Whether the process is daemonic.
    ///
    /// ```
    /// assert!(!multiprocessing::Process::new(|| ()).daemon());
    /// ```
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Sets the daemon flag (Python: `p.daemon = True`); only before `start()`, else
    /// [`Error::SetAfterStart`]. A daemonic process may not start children ([`Error::DaemonChildren`]);
    /// when the process that started it ends, it is terminated instead of waited for.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = multiprocessing::Process::new(|| ());
    /// p.set_daemon(true)?;
    /// p.start()?;
    /// assert!(p.set_daemon(false).is_err());
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_daemon(&mut self, daemon: bool) -> Result<()> {
        if self.pid.is_some() {
            return Err(Error::SetAfterStart {
                name: self.name.clone(),
                what: "daemon",
            });
        }
        self.daemon = daemon;
        Ok(())
    }

    /// The child's pid once started (Python: `p.pid`), `None` before.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = multiprocessing::Process::new(|| ());
    /// assert_eq!(p.pid(), None);
    /// p.start()?;
    /// assert!(p.pid().is_some());
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Starts the child: forks, and runs the closure in the child.
    ///
    /// Errors: [`Error::AlreadyStarted`] the second time (a `Process` runs once),
    /// [`Error::DaemonChildren`] in a daemonic process, [`Error::NotOwner`] from a process other than
    /// the one that created this value, [`Error::Fork`] when the system refuses a new process
    /// (`EAGAIN`: too many processes; `ENOMEM`). After a failed fork, `start()` may be called again.
    /// When this process runs several threads, prints once per process Python 3.12's warning that
    /// fork may deadlock the child.
    ///
    /// ```
    /// use multiprocessing::{Error, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::new(|| println!("started"));
    /// p.start()?;
    /// assert!(matches!(p.start(), Err(Error::AlreadyStarted { .. })));
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&mut self) -> Result<()> {
        if self.pid.is_some() || self.target.is_none() {
            return Err(Error::AlreadyStarted {
                name: self.name.clone(),
            });
        }
        self.check_owner("start")?;
        let me = session::load();
        if me.daemon {
            return Err(Error::DaemonChildren { name: me.name });
        }
        // Reap and relay what earlier children left, as Python's `_cleanup()` does here.
        registry::lock().pump();
        let (relay, ends) = output::pipes_for_child()?;
        // The child closes its copies of the parent's ends (the `relay` in its copy of this frame
        // is never dropped: the child ends with `_exit`).
        let mut parent_ends: Vec<RawFd> = relay.fds().map(|fd| fd.as_raw_fd()).collect();
        parent_ends.sort_unstable();
        let parent_pid = std::process::id() as i32;
        let (name, identity, daemon) = (self.name.clone(), self.identity.clone(), self.daemon);
        let target = &mut self.target;
        let pid = fork::fork_child(move || {
            crate::sys::close_all_raw(&parent_ends, &[]);
            child_main(name, identity, daemon, parent_pid, ends, target)
        })?;
        self.target = None;
        self.pid = Some(pid.as_raw());
        registry::lock().add(
            self.name.clone(),
            ChildKind::Process,
            self.daemon,
            Child::new(pid),
            relay,
        );
        Ok(())
    }

    /// Waits until the child ends and returns its exit code (also kept for [`exitcode`](Process::exitcode)),
    /// relaying the output of all of this process's children meanwhile. Joining an ended process
    /// again returns the same code at once. [`Error::NotStarted`] before `start()`;
    /// [`Error::NotOwner`] from another process than the one that created this value (Python:
    /// `AssertionError: can only join a child process`).
    ///
    /// ```
    /// use multiprocessing::{exit, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::new(|| exit(3));
    /// p.start()?;
    /// assert_eq!(p.join()?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn join(&self) -> Result<i32> {
        let pid = self.started_pid("join")?;
        if let Some(code) = self.exit_code.get() {
            return Ok(code);
        }
        let code = wait::child_exit(pid, None, || self.interrupted(pid))?
            .ok_or_else(|| Error::os("waitpid", nix::Error::ECHILD))?;
        Ok(self.settle(pid, code))
    }

    /// Waits at most `timeout` for the child to end (Python: `p.join(timeout)`): its exit code, or
    /// `None` if it still runs. A zero timeout checks without waiting, relaying pending output.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::Process;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(10)));
    /// p.start()?;
    /// assert_eq!(p.join_timeout(Duration::from_millis(50))?, None);
    /// p.kill()?;
    /// assert_eq!(p.join()?, -9);
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>> {
        let pid = self.started_pid("join_timeout")?;
        if let Some(code) = self.exit_code.get() {
            return Ok(Some(code));
        }
        let deadline = Instant::now().checked_add(timeout);
        Ok(wait::child_exit(pid, deadline, || self.interrupted(pid))?
            .map(|code| self.settle(pid, code)))
    }

    /// Whether the child has been started and has not ended yet (Python: `p.is_alive()`). Relays
    /// pending output, and reaps the child if it has ended.
    ///
    /// Only the process that created this value can ask: from another one (a forked child holding
    /// a copy) it is [`Error::NotOwner`], as Python raises `AssertionError: can only test a child
    /// process`; after [`close`](Process::close) it is [`Error::ProcessClosed`].
    ///
    /// ```
    /// use multiprocessing::{Error, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_millis(200)));
    /// assert!(!p.is_alive()?);
    /// p.start()?;
    /// assert!(p.is_alive()?);
    ///
    /// // A sibling holding a copy of `p` cannot ask: `p` is this process's child, not its own.
    /// let mut sibling = Process::new(move || {
    ///     assert!(matches!(p.is_alive(), Err(Error::NotOwner { call: "is_alive", .. })));
    /// });
    /// sibling.start()?;
    /// assert_eq!(sibling.join()?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_alive(&self) -> Result<bool> {
        self.check_owner("is_alive")?;
        Ok(self.poll().is_some_and(|code| code.is_none()))
    }

    /// The exit code (Python's `exitcode`): `None` before start and while running, `0` on success,
    /// `1` when the closure panicked or returned `Err` ([`new_fallible`](Process::new_fallible)), `N` after [`exit(N)`](crate::exit), `-N` when
    /// killed by signal `N` (`-15` after [`terminate`](Process::terminate), `-9` after
    /// [`kill`](Process::kill)). Relays pending output.
    ///
    /// As Python's, it does not refuse another process (a forked child holding a copy of the
    /// value): there it answers what the copy knew at the fork, `None` if the child was still
    /// running then. [`is_alive`](Process::is_alive) and [`join`](Process::join) refuse it
    /// ([`Error::NotOwner`]).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = multiprocessing::Process::new(|| panic!("boom"));
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        self.poll().flatten()
    }

    /// Asks the child to stop with `SIGTERM` (Python: `p.terminate()`); its exit code becomes `-15`
    /// unless it handles the signal. Does nothing if it has ended. Does not wait: `join()` after.
    /// [`Error::NotOwner`] from another process than the one that created this value: only the
    /// parent knows whether the pid is still its child's (once reaped, it may be another process's).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = multiprocessing::Process::new(|| std::thread::sleep(std::time::Duration::from_secs(10)));
    /// p.start()?;
    /// p.terminate()?;
    /// assert_eq!(p.join()?, -15);
    /// # Ok(())
    /// # }
    /// ```
    pub fn terminate(&self) -> Result<()> {
        self.send(Signal::SIGTERM, "terminate")
    }

    /// Stops the child with `SIGKILL`, which it cannot handle (Python: `p.kill()`); exit code `-9`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = multiprocessing::Process::new(|| loop { std::thread::park() });
    /// p.start()?;
    /// p.kill()?;
    /// assert_eq!(p.join()?, -9);
    /// # Ok(())
    /// # }
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.send(Signal::SIGKILL, "kill")
    }

    /// A descriptor that becomes readable when the child ends (Python's `p.sentinel`), to wait for
    /// several processes and connections at once with [`connection::wait`](crate::connection::wait).
    /// [`Error::NotStarted`] before `start()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{connection, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut fast = Process::new(|| ());
    /// let mut slow = Process::new(|| std::thread::sleep(Duration::from_secs(5)));
    /// fast.start()?;
    /// slow.start()?;
    /// let (f, s) = (fast.sentinel()?, slow.sentinel()?);
    /// let ready = connection::wait(&[&f, &s], None)?; // Python: wait([fast.sentinel, slow.sentinel])
    /// assert_eq!(ready, [0]);
    /// slow.kill()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn sentinel(&self) -> Result<crate::connection::Sentinel> {
        let pid = self.started_pid("sentinel")?;
        if self.poll().is_some_and(|code| code.is_some()) {
            return crate::connection::Sentinel::ended();
        }
        crate::connection::Sentinel::of(pid)
    }

    /// Releases the process object (Python's `p.close()`): later calls on it return
    /// [`Error::ProcessClosed`]. [`Error::StillRunning`] while the child runs: `join()` (or
    /// `terminate()` and `join()`) first.
    ///
    /// ```
    /// use multiprocessing::{Error, Process};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_millis(100)));
    /// p.start()?;
    /// assert!(matches!(p.close(), Err(Error::StillRunning { .. })));
    /// p.join()?;
    /// p.close()?;
    /// assert!(matches!(p.join(), Err(Error::ProcessClosed { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&mut self) -> Result<()> {
        self.check_owner("close")?;
        if self.is_alive()? {
            return Err(Error::StillRunning {
                name: self.name.clone(),
            });
        }
        self.closed = true;
        Ok(())
    }

    fn send(&self, signal: Signal, call: &'static str) -> Result<()> {
        let pid = self.started_pid(call)?;
        if self.exit_code.get().is_some() {
            return Ok(());
        }
        registry::lock().signal(pid, signal)
    }

    fn check_owner(&self, call: &'static str) -> Result<()> {
        if self.closed {
            return Err(Error::ProcessClosed {
                name: self.name.clone(),
                call,
            });
        }
        if self.creator == std::process::id() as i32 {
            Ok(())
        } else {
            Err(Error::NotOwner {
                name: self.name.clone(),
                creator: self.creator,
                call,
            })
        }
    }

    /// The child's pid for `call`, if this process may make it: closed first, then not ours (Python's
    /// "can only join a child process"), then not started, in Python's order.
    fn started_pid(&self, call: &'static str) -> Result<i32> {
        self.check_owner(call)?;
        self.pid.ok_or_else(|| Error::NotStarted {
            name: self.name.clone(),
            call,
        })
    }

    /// `None`: not started (or not ours); `Some(None)`: running; `Some(Some(code))`: ended.
    fn poll(&self) -> Option<Option<i32>> {
        let pid = self.pid?;
        if let Some(code) = self.exit_code.get() {
            return Some(Some(code));
        }
        if self.check_owner("poll").is_err() {
            return None;
        }
        let code = registry::lock().exit_code(pid)?;
        Some(code.map(|code| self.settle(pid, code)))
    }

    /// A join was interrupted: the child has been sent SIGINT (by the waiting core, as ipykernel's
    /// interrupt or a terminal's Ctrl-C does to Python's children).
    fn interrupted(&self, pid: i32) -> Error {
        Error::Interrupted {
            waiting_for: format!("process {} (pid {pid}) to end", self.name),
            state: "it was sent SIGINT, as Ctrl-C would (unless it handles SIGINT it ends with exit code -2): call join() to collect its exit code, or kill() it if it goes on".into(),
        }
    }

    /// Keeps the exit code and lets the registry forget the child.
    fn settle(&self, pid: i32, code: i32) -> i32 {
        self.exit_code.set(Some(code));
        registry::lock().disown(pid);
        code
    }
}

impl Drop for Process {
    /// Dropping a started `Process` neither kills nor waits for its child: it goes on, its output is
    /// still relayed, and it is reaped by the next wait for any child of this process.
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            if self.exit_code.get().is_none() && self.check_owner("drop").is_ok() {
                registry::lock().disown(pid);
            }
        }
    }
}

impl fmt::Debug for Process {
    /// Python's `repr`: `<Process name='Process-1' pid=4242 parent=4200 stopped exitcode=-SIGTERM daemon>`;
    /// `closed` after `close()`, `unknown` in another process than the parent (as Python's).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ours = self.check_owner("repr").is_ok();
        let code = self.exit_code.get().or_else(|| {
            let pid = self.pid.filter(|_| ours)?;
            registry::lock().peek_exit_code(pid)
        });
        write!(f, "<Process name='{}'", self.name)?;
        if let Some(pid) = self.pid {
            write!(f, " pid={pid}")?;
        }
        write!(f, " parent={}", self.creator)?;
        match (self.pid, code) {
            _ if self.closed => write!(f, " closed")?,
            _ if !ours => write!(f, " unknown")?,
            (None, _) => write!(f, " initial")?,
            (Some(_), None) => write!(f, " started")?,
            (Some(_), Some(code)) if code < 0 => match Signal::try_from(-code) {
                Ok(signal) => write!(f, " stopped exitcode=-{}", signal.as_str())?,
                Err(_) => write!(f, " stopped exitcode={code}")?,
            },
            (Some(_), Some(code)) => write!(f, " stopped exitcode={code}")?,
        }
        if self.daemon {
            write!(f, " daemon")?;
        }
        write!(f, ">")
    }
}

/// The child's side of `start()`; its return value is the child's exit code.
fn child_main(
    name: String,
    identity: Vec<u64>,
    daemon: bool,
    parent_pid: i32,
    ends: output::ChildEnds<'_>,
    target: &mut Option<Target>,
) -> i32 {
    ends.install();
    session::become_child(name, identity, parent_pid, daemon);

    // Python prints "Process Process-2:" above the traceback of an uncaught exception; print it above
    // the panic message. evcxr builds with -Cprefer-dynamic, so there is one std and one panic hook.
    crate::error::report_panics_briefly();

    let code = match target.take() {
        Some(target) => panic::catch_unwind(AssertUnwindSafe(target)).unwrap_or_else(|payload| {
            if !crate::error::panic_reported() {
                let message = crate::error::panic_message(&*payload);
                let name = session::load().name;
                eprintln!("Process {name}:\npanicked:\n{message}");
            }
            fork::EXIT_PANIC
        }),
        None => 0,
    };
    fork::finish_children();
    code
}
