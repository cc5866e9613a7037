//! The one place this crate waits. Every blocking call (`Process::join`, the pool's `map`/`get`/
//! `imap`, `Connection::recv`, `Queue::get`/`put`, `Lock::acquire`, a `Value`'s lock, ...) is a
//! [`Waiter`] handed to [`until`], which loops: ask the waiter whether it is done, else `poll(2)` on
//! the waiter's descriptors **together with** every child's output pipes and pidfd (from the child
//! table, [`crate::registry`]) and the kernel's interrupt pipe; relay what children printed, reap
//! those that ended, and ask again.
//!
//! So, whatever a notebook cell waits for: children's output appears as it is printed, no child
//! blocks on a full output pipe, ended children are reaped, and an interrupt from the kernel ends the
//! wait with [`Error::Interrupted`] at once. Before it sleeps in `poll`, a wait looks with
//! zero-timeout polls for a few microseconds (see [`SPIN`]), backing off when that does not pay.
//!
//! # Plugging in a new blocking primitive
//!
//! 1. Write a small struct holding what the wait needs (borrowed), and implement [`Waiter`] for it:
//!    - [`Waiter::check`] tries the operation **without blocking** (a nonblocking read, a
//!      `trylock`, a look at shared state) and returns `Ok(Some(out))` when done. It is called first
//!      before any poll, and again after every wake-up; `woke` tells which of its descriptors the
//!      last poll found ready (tags it chose in `watch`), so it need not try them all.
//!    - [`Waiter::watch`] adds the descriptors to wait on (`fds.watch(fd, READABLE, tag)`).
//!    - [`Waiter::interrupted`] undoes what must be undone and returns the [`Error::Interrupted`]
//!      whose message says in what state the wait left things and what to do next.
//!    - Nothing to poll (a futex, a pthread mutex)? Let `check` block for a short bounded slice
//!      (`timedlock` for up to [`SLICE`]) and return `Some(Duration::ZERO)` from
//!      [`Waiter::slice`]: the core then only relays output and checks for the interrupt between
//!      slices, so an interrupt is still seen within one slice.
//! 2. Call [`until`]`(&mut waiter, deadline)`: `Ok(Some(out))` done, `Ok(None)` the deadline
//!    (`Some(instant)`; `None` waits without limit) passed, `Err` an error or the interrupt.
//!    A deadline already past still checks once after one zero-timeout poll: Python's zero
//!    timeouts mean "check now".
//! 3. For one descriptor, [`fd_ready`] does all of this.
//!
//! # The interrupt
//!
//! Inside the project's kernel, the evcxr runtime process sets [`INTERRUPT_VAR`] to the number of the
//! read end of a nonblocking pipe; its SIGINT handler writes one byte into it. Every wait polls that
//! descriptor too (and reads it once before its first check, so a loop of waits that never block
//! still sees it); when it is readable the wait drains it and returns the waiter's
//! [`Error::Interrupted`]. Outside the kernel the variable is unset and nothing changes. A forked
//! child closes the descriptor ([`forget_interrupt_in_child`]) and ignores the variable: only the
//! process the user interrupted reacts.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::{registry, sys};

/// The environment variable naming the interrupt pipe's read end (set by the project's kernel).
pub(crate) const INTERRUPT_VAR: &str = "RUST_MP_INTERRUPT_FD";

/// Poll for data (or end of file).
pub(crate) const READABLE: i16 = libc::POLLIN;
/// Poll for room to write.
pub(crate) const WRITABLE: i16 = libc::POLLOUT;

/// The longest a wait that has nothing to poll blocks between two looks at the interrupt pipe and
/// the children's output (well inside the 200 ms an interrupt must take at most).
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// Without pidfds (Linux < 5.3) a child's end is seen only by `waitpid`: look this often.
const REAP_SLICE: Duration = Duration::from_millis(10);

/// The longest any poll sleeps before the waiter checks again, whatever it watches: a safety net,
/// so that a change no descriptor reports (a bug in a waiter) costs a second, never a hang.
const LONGEST: Duration = Duration::from_secs(1);

/// Where a poll entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The waiter, with the tag it chose.
    Waiter(u64),
    /// A child (its pid), from the child table.
    Child(i32),
    Interrupt,
}

/// The descriptors one wait watches, and what the last poll found on them.
#[derive(Debug, Default)]
pub(crate) struct Fds {
    list: Vec<libc::pollfd>,
    owners: Vec<Owner>,
}

impl Fds {
    /// Watches `fd` for `events` ([`READABLE`], [`WRITABLE`]); `tag` comes back from [`Fds::ready`].
    pub(crate) fn watch(&mut self, fd: BorrowedFd<'_>, events: i16, tag: u64) {
        self.push(fd.as_raw_fd(), events, Owner::Waiter(tag));
    }

    pub(crate) fn watch_child(&mut self, fd: BorrowedFd<'_>, pid: i32) {
        self.push(fd.as_raw_fd(), READABLE, Owner::Child(pid));
    }

    fn push(&mut self, fd: RawFd, events: i16, owner: Owner) {
        self.list.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.owners.push(owner);
    }

    fn clear(&mut self) {
        self.list.clear();
        self.owners.clear();
    }

    fn fired(&self) -> impl Iterator<Item = Owner> + '_ {
        self.list
            .iter()
            .zip(&self.owners)
            .filter(|(p, _)| p.revents != 0)
            .map(|(_, o)| *o)
    }

    /// The tags of the waiter's descriptors the last poll found ready (or hung up, or in error).
    pub(crate) fn ready(&self) -> impl Iterator<Item = u64> + '_ {
        self.fired().filter_map(|o| match o {
            Owner::Waiter(tag) => Some(tag),
            _ => None,
        })
    }
}

/// One blocking operation, as the core drives it (see the module docs).
pub(crate) trait Waiter {
    /// What the wait gives when done.
    type Output;
    /// Tries without blocking (or for at most one short slice, see [`Waiter::slice`]).
    fn check(&mut self, woke: &Fds) -> Result<Option<Self::Output>>;
    /// Adds the descriptors to wait on.
    fn watch(&self, fds: &mut Fds);
    /// The wait was interrupted: clean up, and say in what state things are and what to do next.
    fn interrupted(&mut self) -> Error;
    /// The longest the core may poll before calling `check` again (`None`: as long as it likes).
    fn slice(&self) -> Option<Duration> {
        None
    }
}

/// Runs `waiter` until it is done (`Some`), `deadline` passes (`None`), an error, or the interrupt.
pub(crate) fn until<W: Waiter>(
    waiter: &mut W,
    deadline: Option<Instant>,
) -> Result<Option<W::Output>> {
    let interrupt = interrupt_fd();
    if let Some(fd) = interrupt {
        if drain(fd) {
            return Err(interrupted(waiter));
        }
    }
    let mut fds = Fds::default();
    let mut polled = false;
    loop {
        if let Some(out) = waiter.check(&fds)? {
            return Ok(Some(out));
        }
        let now = Instant::now();
        let expired = deadline.is_some_and(|d| d <= now);
        if expired && polled {
            return Ok(None);
        }
        fds.clear();
        waiter.watch(&mut fds);
        if let Some(fd) = interrupt {
            fds.push(fd, READABLE, Owner::Interrupt);
        }
        let all_pidfds = registry::lock().watch(|fd, pid| fds.watch_child(fd, pid));
        let mut slice = waiter.slice().unwrap_or(LONGEST).min(LONGEST);
        if !all_pidfds {
            slice = slice.min(REAP_SLICE);
        }
        let wait = match deadline {
            _ if expired => Duration::ZERO,
            Some(d) => (d - now).min(slice),
            None => slice,
        };
        let timeout_ms = if wait == Duration::MAX {
            -1
        } else {
            // Round up, so that a short wait is not a busy loop of zero-millisecond polls.
            wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
        };
        // A waiter that blocks in `check` (slice zero) has nothing here worth spinning on.
        let spin = waiter.slice() != Some(Duration::ZERO);
        poll_spinning(&mut fds.list, timeout_ms, spin).map_err(|e| Error::os("poll", e))?;
        polled = true;
        let mut children = Vec::new();
        for owner in fds.fired() {
            match owner {
                Owner::Interrupt => {
                    if let Some(fd) = interrupt {
                        drain(fd);
                    }
                    return Err(interrupted(waiter));
                }
                Owner::Child(pid) => children.push(pid),
                Owner::Waiter(_) => {}
            }
        }
        if !children.is_empty() || !all_pidfds {
            registry::lock().service(&children);
        }
    }
}

/// How long a wait polls without sleeping before it blocks in `poll(2)`.
///
/// Why: most waits are answered by another process running on another core within microseconds
/// (a `Pipe` echo, a pool worker's result for a tiny task). A process that sleeps in `poll` pays
/// the scheduler's wake-up (tens of microseconds on a busy machine) on top of the other side's
/// work; one that keeps looking with zero-timeout polls sees the answer as soon as it is written.
/// Past this budget the wait sleeps as before, so a long wait costs at most this much CPU more.
const SPIN: Duration = Duration::from_micros(20);

/// `poll(2)` on `list` for up to `timeout_ms` (-1: no limit); with `spin`, first zero-timeout
/// polls for up to [`SPIN`], on machines with more than one core (on one core the other side
/// cannot run while this one spins).
///
/// Spinning pays only when answers come fast (ping-pong, tiny tasks); when they do not (a long
/// task, a big transfer arriving in pieces) every spin is wasted CPU, taken from the processes
/// that do the work. So each spin that ends empty-handed makes the next waits skip theirs, twice
/// as many after each further miss (up to 63), and one that sees its answer resets that.
fn poll_spinning(list: &mut [libc::pollfd], timeout_ms: i32, spin: bool) -> nix::Result<usize> {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Per copy of the crate (per notebook cell): a heuristic, nothing depends on it being shared.
    static MISSES: AtomicU32 = AtomicU32::new(0);
    static SKIP: AtomicU32 = AtomicU32::new(0);
    if timeout_ms == 0 || !spin || !several_cores() {
        return sys::poll(list, timeout_ms);
    }
    if SKIP.load(Ordering::Relaxed) > 0 {
        SKIP.fetch_sub(1, Ordering::Relaxed);
        return sys::poll(list, timeout_ms);
    }
    let start = Instant::now();
    loop {
        let n = sys::poll(list, 0)?;
        if n > 0 {
            MISSES.store(0, Ordering::Relaxed);
            return Ok(n);
        }
        let spent = start.elapsed();
        if spent >= SPIN {
            let misses = (MISSES.load(Ordering::Relaxed) + 1).min(6);
            MISSES.store(misses, Ordering::Relaxed);
            SKIP.store((1 << misses) - 1, Ordering::Relaxed);
            let spent_ms = spent.as_millis().min(i32::MAX as u128) as i32;
            let rest = if timeout_ms < 0 {
                -1
            } else {
                (timeout_ms - spent_ms).max(0)
            };
            return sys::poll(list, rest);
        }
        // No sched_yield here: on a busy machine it hands this core to an unrelated process for a
        // whole time slice (milliseconds), while a process asleep in poll is woken at once.
        std::hint::spin_loop();
    }
}

/// Whether this machine has more than one core available to this process (asked once per copy of
/// the crate: an answer that changes later only makes waits spin when they need not, or not).
fn several_cores() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static SEVERAL: AtomicU8 = AtomicU8::new(0);
    match SEVERAL.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let several = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
            SEVERAL.store(if several { 2 } else { 1 }, Ordering::Relaxed);
            several
        }
    }
}

/// Waits until `fd` is ready for `events` or `deadline` passes: `Ok(true)` ready (or hung up),
/// `Ok(false)` at the deadline; on interrupt, the error `interrupted` makes.
pub(crate) fn fd_ready(
    fd: BorrowedFd<'_>,
    events: i16,
    deadline: Option<Instant>,
    interrupted: impl FnMut() -> Error,
) -> Result<bool> {
    struct One<'a, F> {
        fd: BorrowedFd<'a>,
        events: i16,
        interrupted: F,
        first: bool,
    }
    impl<F: FnMut() -> Error> Waiter for One<'_, F> {
        type Output = ();
        fn check(&mut self, woke: &Fds) -> Result<Option<()>> {
            if std::mem::take(&mut self.first) {
                // Most waits find their descriptor ready at once: one poll of it alone, no more.
                let mut one = [libc::pollfd {
                    fd: self.fd.as_raw_fd(),
                    events: self.events,
                    revents: 0,
                }];
                let n = sys::poll(&mut one, 0).map_err(|e| Error::os("poll", e))?;
                return Ok((n > 0).then_some(()));
            }
            Ok(woke.ready().next().map(|_| ()))
        }
        fn watch(&self, fds: &mut Fds) {
            fds.watch(self.fd, self.events, 0);
        }
        fn interrupted(&mut self) -> Error {
            (self.interrupted)()
        }
    }
    let mut one = One {
        fd,
        events,
        interrupted,
        first: true,
    };
    Ok(until(&mut one, deadline)?.is_some())
}

/// Waits until child `pid` ends or `deadline` passes: its exit code, or `None` at the deadline.
/// `Err` if `pid` is not in the child table, or on interrupt (the error `interrupted` makes).
pub(crate) fn child_exit(
    pid: i32,
    deadline: Option<Instant>,
    interrupted: impl FnMut() -> Error,
) -> Result<Option<i32>> {
    struct Exit<F> {
        pid: i32,
        interrupted: F,
    }
    impl<F: FnMut() -> Error> Waiter for Exit<F> {
        type Output = i32;
        fn check(&mut self, _: &Fds) -> Result<Option<i32>> {
            match registry::lock().status(self.pid) {
                None => Err(Error::os("waitpid", nix::Error::ECHILD)),
                Some(code) => Ok(code),
            }
        }
        fn watch(&self, _: &mut Fds) {
            // The child's pidfd is watched with every child's, from the child table.
        }
        fn interrupted(&mut self) -> Error {
            (self.interrupted)()
        }
    }
    until(&mut Exit { pid, interrupted }, deadline)
}

/// The interrupt pipe of this process, if the kernel gave one: only the process the user interrupts
/// (the notebook's), never a child this crate forked (which inherits the variable).
pub(crate) fn interrupt_fd() -> Option<RawFd> {
    if crate::session::is_child() {
        return None;
    }
    let value = std::env::var_os(INTERRUPT_VAR)?;
    value
        .to_str()?
        .trim()
        .parse::<RawFd>()
        .ok()
        .filter(|fd| *fd >= 0)
}

/// Reads everything in the (nonblocking) interrupt pipe; true if there was anything.
fn drain(fd: RawFd) -> bool {
    let mut buf = [0u8; 64];
    let mut got = false;
    loop {
        match sys::read_raw(fd, &mut buf) {
            Ok(n) if n == buf.len() => got = true,
            Ok(n) => return got || n > 0,
            Err(nix::errno::Errno::EINTR) => {}
            // EAGAIN: empty. Anything else: not a pipe we can read; nothing to drain.
            Err(_) => return got,
        }
    }
}

/// In a just-forked child: the interrupt pipe is the parent's business. Close it (`inherited`: what
/// [`interrupt_fd`] answered in the parent before the fork) and remove the variable, so the child's
/// own waits never react to the user interrupting the parent (they also ignore the variable:
/// [`interrupt_fd`]); and give
/// SIGINT its default action back, since the handler inherited from the kernel's runtime would write
/// into the parent's pipe (a SIGINT sent to the child must end the child, as Ctrl-C does).
pub(crate) fn forget_interrupt_in_child(inherited: Option<RawFd>) {
    if let Some(fd) = inherited {
        sys::close_raw(fd);
        sys::restore_default_action(nix::sys::signal::Signal::SIGINT);
        // Nor do programs it runs.
        sys::unsetenv_in_child(INTERRUPT_VAR);
    }
}

/// The user interrupted this process while it waited: first do to its `Process` children what
/// ipykernel's interrupt (SIGINT to the kernel's whole process group) or a terminal's Ctrl-C does
/// to Python's, then let the waiter say what it left behind.
fn interrupted<W: Waiter>(waiter: &mut W) -> Error {
    registry::lock().interrupt_processes();
    waiter.interrupted()
}
