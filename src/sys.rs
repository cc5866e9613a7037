//! The operating-system edge: `fork`, `_exit`, `pidfd_open`. Every `unsafe` block of the crate's
//! process handling lives here, each with the invariant that makes it sound.
//!
//! Everything above this module works with safe types: [`Pid`], [`OwnedFd`], closures.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};

use crate::error::{Error, Result};

/// Exit code a child uses when its body panicked (Python: an uncaught exception gives exit code 1).
pub(crate) const EXIT_PANIC: i32 = 1;

/// Forks the calling process. In the child, runs `child_body` and ends the child with `_exit` and the
/// code it returned; a panic that escapes `child_body` ends it with [`EXIT_PANIC`]. The child never
/// returns into the caller: inside evcxr, returning would run the kernel's own code in the child and
/// corrupt the session. In the parent, returns the child's pid.
pub(crate) fn fork_child(child_body: impl FnOnce() -> i32) -> Result<Pid> {
    // SAFETY: after fork only the calling thread exists in the child. The child runs `child_body`
    // and then `_exit`s, so it never returns into code that expects the parent's other threads.
    // When the parent had several threads, locks they held (malloc's, stdio's) may be held forever
    // in the child; the caller warns about that case (see `warn_if_multithreaded`), as Python 3.12 does.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            let code = panic::catch_unwind(AssertUnwindSafe(child_body)).unwrap_or(EXIT_PANIC);
            exit_now(code)
        }
        Err(source) => Err(Error::Fork {
            source,
            hint: match source {
                Errno::EAGAIN => "too many processes (RLIMIT_NPROC or the pid limit): join finished processes or use a Pool",
                Errno::ENOMEM => "not enough memory to copy this process: free memory or start fewer processes",
                _ => "see fork(2)",
            },
        }),
    }
}

/// Flushes Rust's buffered stdout and stderr, then ends the process at once with `code`, running no
/// destructors and no `atexit` handlers (those belong to the parent's program, e.g. the kernel).
pub(crate) fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process without touching any memory of ours; it is async-signal-safe,
    // so it is sound even in a child forked from a multi-threaded parent.
    unsafe { libc::_exit(code) }
}

/// Opens a pidfd for `pid`: a descriptor that becomes readable when the process ends, so `poll` can
/// wait for a child's exit together with its output pipes. `None` on kernels older than Linux 5.3.
pub(crate) fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new descriptor or -1; it reads
    // and writes no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Number of threads in this process, read from `/proc/self/status`; 1 when it cannot be read.
pub(crate) fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
}
