//! The operating-system edge: `fork`, `_exit`, `pidfd_open`. Every `unsafe` block of the crate's
//! process handling lives here, each with the invariant that makes it sound.
//!
//! Everything above this module works with safe types: [`Pid`], [`OwnedFd`], closures.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

use crate::error::{Error, Result};

/// Exit code a child uses when its body panicked (Python: an uncaught exception gives exit code 1).
pub(crate) const EXIT_PANIC: i32 = 1;

/// Forks the calling process. In the child, runs `child_body` and ends the child with `_exit` and the
/// code it returned; a panic that escapes `child_body` ends it with [`EXIT_PANIC`]. The child never
/// returns into the caller: inside evcxr, returning would run the kernel's own code in the child and
/// corrupt the session. In the parent, returns the child's pid.
///
/// Around the fork it also: warns once per process when this process runs several threads (as Python
/// 3.12 does); flushes Rust's stdout and stderr buffers so the child does not inherit, and print again,
/// what the parent had buffered; and holds the lock of this process's child registry
/// ([`crate::registry`]), so the child gets a consistent copy of it, which it empties at once (closing
/// the inherited descriptors of its siblings' pipes: they are the parent's business).
pub(crate) fn fork_child(child_body: impl FnOnce() -> i32) -> Result<Pid> {
    let parent_pid = nix::unistd::getpid();
    crate::session::warn_if_multithreaded();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let registry = crate::registry::lock();
    // SAFETY: after fork only the calling thread exists in the child. The child runs `child_body`
    // and then `_exit`s, so it never returns into code that expects the parent's other threads.
    // When the parent had several threads, locks they held (malloc's, stdio's) may be held forever
    // in the child; `warn_if_multithreaded` above says so once, as Python 3.12 does. The registry
    // lock is held by this thread across the fork, so the child's copy of it is consistent.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => {
            drop(registry);
            Ok(child)
        }
        Ok(ForkResult::Child) => {
            // Die with the parent, even when it is SIGKILLed (a kernel interrupt) and no destructor
            // runs; then check it is still there: it may have died before prctl took effect.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            if nix::unistd::getppid() != parent_pid {
                exit_now(1);
            }
            restore_default_fault_signals();
            crate::registry::forget_in_child(registry);
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

/// Gives the crash signals back their default action in a child. The evcxr runtime installs handlers
/// that print a backtrace and `abort`, so without this a child that segfaults would report exit code
/// -6 (SIGABRT) instead of Python's -11 (SIGSEGV).
fn restore_default_fault_signals() {
    for signal in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        // SAFETY: SIG_DFL installs no handler of ours, so no code runs in signal context; the child
        // has a single thread at this point, so nothing races with the change.
        let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
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

/// Returns this process's one instance of a process-wide value, shared by every copy of this crate
/// in the process (evcxr links a copy into each cell, each with its own `static`s).
///
/// The instance is leaked on the heap once per process; its address is kept in the environment
/// variable `var` together with the pid it belongs to, the size and alignment of `T`, and `version`
/// (bump it whenever `T`'s definition changes). A forked child inherits the variable but sees
/// another pid, so it makes its own instance on first use. If two threads race to make the first
/// instance, one of them is lost; this crate makes it from the thread that forks, in practice the
/// notebook's main thread.
pub(crate) fn process_global<T: Sync + 'static>(
    var: &str,
    version: u32,
    make: impl FnOnce() -> T,
) -> &'static T {
    let me = std::process::id();
    let stamp = |addr: usize| {
        format!(
            "{me}:{addr:x}:{}:{}:{version}",
            std::mem::size_of::<T>(),
            std::mem::align_of::<T>()
        )
    };
    if let Ok(value) = std::env::var(var) {
        if let Some(addr) = value
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once(':'))
            .and_then(|(addr, _)| usize::from_str_radix(addr, 16).ok())
        {
            if addr != 0 && value == stamp(addr) {
                // SAFETY: the variable carries this process's pid, so this process wrote it, in the
                // branch below, with the address of a `T` leaked by `Box::leak`: never freed, never
                // moved, so valid for 'static. The type is the same: the stamp also matches `T`'s size
                // and alignment and the layout `version` its caller bumps when `T` changes; every copy
                // of this crate in the process is the same compiled rlib (evcxr links one build into
                // each cell), so `T` has the same layout in each. Only shared references are handed
                // out, and `T: Sync` makes sharing them between threads sound.
                return unsafe { &*(addr as *const T) };
            }
        }
    }
    let leaked: &'static T = Box::leak(Box::new(make()));
    std::env::set_var(var, stamp(leaked as *const T as usize));
    leaked
}

/// Starts `body` in a detached process: a grandchild, reparented to init (or the nearest
/// subreaper) at once, so that it outlives this process even when this process is killed (no
/// `PR_SET_PDEATHSIG`: that is cleared by the second fork). Its stdin, stdout and stderr are
/// `/dev/null`, it is in a session of its own (a signal to this process group misses it), and every
/// other descriptor is closed except `keep`, which it gets as descriptor 3. It ends with `_exit` and
/// what `body` returned. The intermediate child is reaped before this returns. Used by
/// [`crate::shared_memory`]'s watcher, which must remove a name after its creator dies.
pub(crate) fn spawn_detached(
    keep: std::os::fd::BorrowedFd<'_>,
    body: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> i32,
) -> Result<()> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let keep = keep.as_raw_fd();
    let intermediate = fork_child(|| {
        // SAFETY: this child has one thread (fork_child's child); the grandchild below only runs
        // `body` and `_exit`s, as fork_child's children do.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Parent { .. }) => 0,
            Ok(ForkResult::Child) => {
                let _ = nix::unistd::setsid();
                // SAFETY: plain descriptor calls in a single-threaded process that never returns
                // into code owning these descriptors: the OwnedFds still in memory are never used
                // again, because this process ends with `_exit` right after `body`.
                unsafe {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if keep != 3 {
                        libc::dup2(keep, 3);
                    }
                    libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
                    if null > 3 {
                        libc::close(null);
                    }
                }
                // SAFETY: descriptor 3 is open (dup2 above, or `keep` was 3) and stays open for the
                // borrow: nothing closes it before `_exit`.
                let fd = unsafe { BorrowedFd::borrow_raw(3) };
                exit_now(body(fd))
            }
            Err(_) => 1,
        }
    })?;
    loop {
        match nix::sys::wait::waitpid(intermediate, None) {
            Err(Errno::EINTR) => continue,
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(_) => return Err(Error::os("fork (detached)", Errno::EAGAIN)),
            Err(e) => return Err(Error::os("waitpid", e)),
        }
    }
}
