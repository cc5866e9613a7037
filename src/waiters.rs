//! How the synchronization primitives wait, and how they notice a process that died on them.
//!
//! Each of [`Event`](crate::Event), [`Semaphore`](crate::Semaphore), [`RLock`](crate::RLock),
//! [`Condition`](crate::Condition) and [`Barrier`](crate::Barrier) is a small `Copy` state in a
//! [`Shared`] (a robust process-shared mutex) plus a [`Doorbell`]. [`wait_on`] is how they all wait,
//! inside the crate's waiting core ([`crate::wait`]): lock, look at the state, and either finish or
//! sleep on the doorbell until it is rung, in slices; between slices the core relays children's
//! output and sees the kernel's interrupt.
//!
//! Processes are named by [`Who`]: pid, thread id and the process's start time (so a reused pid is
//! not taken for the old process). [`Who::is_dead`] reads `/proc/<pid>/stat`: gone, a zombie, or a
//! different start time means dead. The primitives keep fixed tables of [`Who`] (holders of a
//! semaphore, waiters of a condition or barrier) and check them while they wait.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::shm::{Acquired, Doorbell, Shared, SharedGuard, Wait};
use crate::wait;

/// How many processes a primitive's table can hold at once (holders of a semaphore, waiters of a
/// condition or a barrier).
pub(crate) const TABLE: usize = 64;

/// A thread of a process, named so that a later process with the same pid is a different one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub(crate) struct Who {
    /// 0: an empty slot.
    pub pid: i32,
    pub tid: i32,
    /// Start time of the process, in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start: u64,
}

/// Field 3 (state) and field 22 (start time) of `/proc/<pid>/stat`, or `None` if it is gone.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl Who {
    /// The calling thread.
    pub(crate) fn me() -> Who {
        use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
        // This process's start time, read once per process (a forked child has another pid and
        // reads its own). A cache only: a copy per evcxr cell is fine.
        static CACHED_PID: AtomicI32 = AtomicI32::new(0);
        static CACHED_START: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id() as i32;
        let start = if CACHED_PID.load(Ordering::Acquire) == pid {
            CACHED_START.load(Ordering::Relaxed)
        } else {
            let start = stat(pid).map_or(0, |(_, start)| start);
            CACHED_START.store(start, Ordering::Relaxed);
            CACHED_PID.store(pid, Ordering::Release);
            start
        };
        Who {
            pid,
            tid: nix::unistd::gettid().as_raw(),
            start,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pid == 0
    }

    /// The same process (any thread).
    pub(crate) fn same_process(&self, other: &Who) -> bool {
        self.pid == other.pid && self.start == other.start
    }

    /// True when the process has ended (gone, or a zombie not yet reaped), or its pid now belongs to
    /// another process.
    pub(crate) fn is_dead(&self) -> bool {
        match stat(self.pid) {
            None => true,
            Some((state, start)) => state == 'Z' || state == 'X' || start != self.start,
        }
    }
}

/// True while process `pid` runs (exists and is not a zombie).
pub(crate) fn pid_alive(pid: i32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// A fixed table of processes with a count each.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Table {
    pub slots: [(Who, u32); TABLE],
}

impl Table {
    pub(crate) const fn new() -> Table {
        Table {
            slots: [(
                Who {
                    pid: 0,
                    tid: 0,
                    start: 0,
                },
                0,
            ); TABLE],
        }
    }

    /// Adds `n` to `who`'s process count; false when the table is full.
    pub(crate) fn add(&mut self, who: &Who, n: u32) -> bool {
        if let Some(slot) = self.slots.iter_mut().find(|(w, _)| w.same_process(who)) {
            slot.1 += n;
            return true;
        }
        match self.slots.iter_mut().find(|(w, _)| w.is_empty()) {
            Some(slot) => {
                *slot = (*who, n);
                true
            }
            None => false,
        }
    }

    /// Takes one off `who`'s process count; false if it had none.
    pub(crate) fn take_one(&mut self, who: &Who) -> bool {
        match self
            .slots
            .iter_mut()
            .find(|(w, n)| w.same_process(who) && *n > 0)
        {
            Some(slot) => {
                slot.1 -= 1;
                if slot.1 == 0 {
                    slot.0 = Who::default();
                }
                true
            }
            None => false,
        }
    }

    /// Removes the first dead process, returning it and its count.
    pub(crate) fn remove_dead(&mut self) -> Option<(Who, u32)> {
        let slot = self
            .slots
            .iter_mut()
            .find(|(w, _)| !w.is_empty() && w.is_dead())?;
        let found = *slot;
        *slot = (Who::default(), 0);
        Some(found)
    }

    pub(crate) fn clear(&mut self) {
        *self = Table::new();
    }
}

/// What a look at the state decided.
pub(crate) enum Look<R> {
    /// Finished with this.
    Done(R),
    /// Not yet: sleep until the doorbell rings (or the next slice), then look again.
    Wait,
}

/// Locks `shared` and runs `look` on the state, until it returns [`Look::Done`]. `look` gets `true`
/// as its second argument once `deadline` has passed (it may still wait, e.g. for a lock it must
/// hold again: then in whole slices). Between looks it sleeps on `bell` in slices of at most
/// [`wait::SLICE`], inside the crate's waiting core ([`crate::wait`]): children's output is relayed
/// and the kernel's interrupt is seen between slices. On interrupt, `interrupted` runs on the
/// locked state (to undo what the wait did there) and its error is returned.
pub(crate) fn wait_on<S: Copy, R>(
    shared: &Shared<S>,
    bell: &Doorbell,
    deadline: Option<Instant>,
    look: impl FnMut(&mut S, bool) -> Look<R>,
    interrupted: impl FnMut(&mut S) -> Error,
) -> Result<R> {
    struct Sleeper<'a, S: Copy, L, I> {
        shared: &'a Shared<S>,
        bell: &'a Doorbell,
        deadline: Option<Instant>,
        look: L,
        interrupted: I,
        /// The bell's count read under the state's lock at the last look that said Wait.
        seen: Option<u32>,
    }
    impl<S: Copy, R, L, I> wait::Waiter for Sleeper<'_, S, L, I>
    where
        L: FnMut(&mut S, bool) -> Look<R>,
        I: FnMut(&mut S) -> Error,
    {
        type Output = R;
        fn check(&mut self, _: &wait::Fds) -> Result<Option<R>> {
            if let Some(seen) = self.seen {
                let now = Instant::now();
                let slice = self
                    .deadline
                    .filter(|d| *d > now)
                    .map_or(wait::SLICE, |d| (d - now).min(wait::SLICE));
                self.bell.sleep(seen, slice);
            }
            let mut state = lock_state(self.shared)?;
            let expired = self.deadline.is_some_and(|d| Instant::now() >= d);
            match (self.look)(&mut state, expired) {
                Look::Done(r) => Ok(Some(r)),
                Look::Wait => {
                    self.seen = Some(self.bell.rung());
                    Ok(None)
                }
            }
        }
        fn watch(&self, _: &mut wait::Fds) {}
        fn slice(&self) -> Option<Duration> {
            Some(Duration::ZERO)
        }
        fn interrupted(&mut self) -> Error {
            match lock_state(self.shared) {
                Ok(mut state) => {
                    let e = (self.interrupted)(&mut state);
                    drop(state);
                    self.bell.ring();
                    e
                }
                Err(e) => e,
            }
        }
    }
    let mut sleeper = Sleeper {
        shared,
        bell,
        deadline,
        look,
        interrupted,
        seen: None,
    };
    // The deadline is the looks' business (a look may go on waiting past it): no limit here.
    match wait::until(&mut sleeper, None)? {
        Some(r) => Ok(r),
        None => unreachable!("a wait without deadline ends done, in error, or interrupted"),
    }
}

/// Locks a primitive's state mutex, recovering it if its holder died (our critical sections are a
/// few assignments, and the looks above re-check everything).
pub(crate) fn lock_state<S: Copy>(shared: &Shared<S>) -> Result<SharedGuard<'_, S>> {
    match shared.lock(Wait::Forever, "a synchronization primitive's internal lock")? {
        Acquired::Locked(g) => Ok(g),
        Acquired::OwnerDied(g, _) => {
            g.make_consistent();
            Ok(g)
        }
        Acquired::Deadlock => Err(Error::WouldDeadlock {
            what: "this primitive's internal lock (a thread was interrupted inside it)",
        }),
        Acquired::Busy => unreachable!("waits without limit"),
        Acquired::Unrecoverable => Err(Error::os(
            "pthread_mutex_lock",
            nix::errno::Errno::ENOTRECOVERABLE,
        )),
    }
}

/// A deadline `timeout` from now (`None`: too far to represent, i.e. never).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The error for a wait on `what` that the kernel's interrupt ended, leaving `state`.
pub(crate) fn interrupted(what: &str, state: &str) -> Error {
    Error::Interrupted {
        waiting_for: what.into(),
        state: state.into(),
    }
}
