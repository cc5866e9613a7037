//! The fork sequence, one place for every child this crate makes (a `Process` or a pool worker):
//! warn, flush, lock the child table, fork, set the child up, run its body, `_exit`.
//!
//! It sits above the child table ([`crate::registry`]) and the session state ([`crate::session`])
//! and below `Process` and `Pool`; the system calls themselves are in [`crate::sys`].

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::{registry, session, sys, wait};

/// Exit code a child uses when its body panicked (Python: an uncaught exception gives exit code 1).
pub(crate) const EXIT_PANIC: i32 = 1;

/// Forks the calling process. In the child, runs `child_body` and ends the child with `_exit` and the
/// code it returned; a panic that escapes `child_body` ends it with [`EXIT_PANIC`]. The child never
/// returns into the caller: inside evcxr, returning would run the kernel's own code in the child and
/// corrupt the session. In the parent, returns the child's pid (the caller enters it in the child
/// table). One child of [`fork_children`].
///
/// Do not call it while holding [`registry::lock`] (it takes that lock).
pub(crate) fn fork_child(child_body: impl FnOnce() -> i32) -> Result<Pid> {
    // On the stack: a heap allocation freed after the fork would cost the parent a page copy.
    let mut body = [Some(child_body)];
    let mut pid = [Pid::from_raw(0)];
    fork_children(&mut body, &mut pid).1?;
    Ok(pid[0])
}

/// Forks one child per body, in a row (a pool's workers), as [`fork_child`] does for one: each
/// body is taken out of `bodies` in its child, and each child's pid written to `pids` (as long as
/// `bodies`). Returns how many children were forked, and the error that stopped the batch early, if
/// one did: the caller enters the children it got before handling the error.
///
/// Around the forks: warns once per process when this process runs several threads (as Python 3.12
/// does); flushes Rust's stdout and stderr buffers so the children do not inherit, and print again,
/// what the parent had buffered; and holds the lock of the child table across the forks, so each
/// child gets a consistent copy of it, which it empties at once (closing the inherited descriptors of
/// its siblings' pipes: they are the parent's business). All of that is done once for the batch,
/// and between two forks the parent writes nothing but the pid: every page it writes while a child
/// shares it is copied, once per child (so the caller makes `bodies` and `pids` before, and drops
/// them after). In each child, before its body: die with the parent (`PR_SET_PDEATHSIG`), crash
/// signals back to their default action, the descriptors it cannot use released (its siblings'
/// output pipes and pidfds, the parent's pool pipes and payload memfds: [`sys::release_in_child`]),
/// and the kernel's interrupt pipe closed (see [`crate::wait`]). What the body may use stays open:
/// the `Pipe`s, `Queue`s and files its closure holds, stdio. The bodies close the parent's ends of
/// their own pipes (and of their batch siblings').
///
/// Do not call it while holding [`registry::lock`] (it takes that lock).
pub(crate) fn fork_children<F: FnOnce() -> i32>(
    bodies: &mut [Option<F>],
    pids: &mut [Pid],
) -> (usize, Result<()>) {
    let parent_pid = nix::unistd::getpid();
    session::warn_if_multithreaded();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let interrupt = wait::interrupt_fd();
    // Found here, where procfs already knows this process's descriptors (~10 µs + 0.3 µs each);
    // in the new child, procfs builds an entry per descriptor first (~3 µs each).
    let memfds = sys::payload_memfds();
    let mut table = Some(registry::lock_for_fork());
    let mut state = Some(session::lock_for_fork());
    let mut result = Ok(());
    let mut forked_count = 0;
    // The pids wait here, on this frame, and go to `pids` every 16 forks and at the end: the fork
    // itself writes to the top of the stack (that page is copied after every fork anyway), while
    // each write to `pids` (on the heap, for a pool) would copy one more page per child.
    let mut batch = [Pid::from_raw(0); 16];
    let n = bodies.len().min(pids.len());
    for body in &mut bodies[..n] {
        // In the parent the closure is dropped unrun: `body`, `table` and `state` stay where they
        // are (the locks are released after the last fork; the caller drops the bodies).
        let forked = sys::fork_and_exit(|| {
            // Die with the parent, even when it is SIGKILLed and no destructor runs; then check it
            // is still there: it may have died before prctl took effect.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            if nix::unistd::getppid() != parent_pid {
                return 1;
            }
            sys::restore_default_fault_signals();
            if let Some(state) = state.take() {
                session::adopt_in_child(state, parent_pid.as_raw());
            }
            if let Some(table) = table.take() {
                registry::forget_in_child(table);
            }
            sys::release_in_child(memfds.iter().copied());
            sys::forget_payload_memfds_in_child();
            wait::forget_interrupt_in_child(interrupt);
            match body.take() {
                Some(body) => panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(EXIT_PANIC),
                None => EXIT_PANIC,
            }
        });
        match forked {
            Ok(pid) => {
                batch[forked_count % batch.len()] = pid;
                forked_count += 1;
                if forked_count % batch.len() == 0 {
                    pids[forked_count - batch.len()..forked_count].copy_from_slice(&batch);
                }
            }
            Err(source) => {
                result = Err(Error::Fork {
                    source,
                    hint: match source {
                        Errno::EAGAIN => "too many processes (RLIMIT_NPROC or the pid limit): join finished processes or use a Pool",
                        Errno::ENOMEM => "not enough memory to copy this process: free memory or start fewer processes",
                        _ => "see fork(2)",
                    },
                });
                break;
            }
        }
    }
    let rest = forked_count % batch.len();
    pids[forked_count - rest..forked_count].copy_from_slice(&batch[..rest]);
    drop((state, table));
    (forked_count, result)
}

/// Starts `body` in a detached process: a grandchild, reparented to init (or the nearest subreaper)
/// at once, so that it outlives this process even when this process is killed (no
/// `PR_SET_PDEATHSIG`: the second fork clears it). It holds no descriptor but `keep` (as descriptor
/// 3, passed to `body`) and `/dev/null` on stdin, stdout and stderr, in a session of its own; it ends
/// with `_exit` and what `body` returned. The intermediate child is reaped before this returns. Used
/// by [`crate::shared_memory`]'s watcher, which removes a name after its creator dies.
pub(crate) fn spawn_detached(
    keep: std::os::fd::BorrowedFd<'_>,
    body: impl FnOnce(std::os::fd::BorrowedFd<'static>) -> i32,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    let keep = keep.as_raw_fd();
    let intermediate =
        fork_child(
            move || match sys::fork_and_exit(move || body(sys::detach_keeping(keep))) {
                Ok(_) => 0,
                Err(_) => 1,
            },
        )?;
    loop {
        match nix::sys::wait::waitpid(intermediate, None) {
            Err(Errno::EINTR) => continue,
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(_) => return Err(Error::os("fork (detached watcher)", Errno::EAGAIN)),
            Err(e) => return Err(Error::os("waitpid", e)),
        }
    }
}

/// Waits for every child to end, relaying their output (the end of a child process, as Python's
/// `_exit_function`: daemonic children are first sent `SIGTERM`, then all are joined). Pool workers
/// left running (a pool leaked with `mem::forget`) are daemonic: they get `SIGTERM` too.
pub(crate) fn finish_children() {
    let live = registry::lock().live();
    for child in live.iter().filter(|c| c.daemon) {
        let _ = registry::lock().signal(child.pid, Signal::SIGTERM);
    }
    for child in &live {
        // This process's own interrupt pipe was closed at fork: nothing interrupts this wait.
        let _ = wait::child_exit(child.pid, None, || Error::Interrupted {
            waiting_for: format!("child {} to end", child.name),
            state: "it may still be running".into(),
        });
    }
}
