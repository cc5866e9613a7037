//! A forked child as the parent sees it: its pid, a pidfd to `poll` for its exit, and its exit code
//! once reaped. Every entry of the child table ([`crate::registry`]) holds one.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::sys;

/// How a child ended, in Python's convention for `Process.exitcode`: `N` for `exit(N)`, `-N` when killed
/// by signal `N`.
pub(crate) fn exit_code_of(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(-(signal as i32)),
        _ => None,
    }
}

/// Describes an exit code for people: "exited with code 3", "was killed by signal 9 (SIGKILL)".
pub(crate) fn describe_exit_code(code: i32) -> String {
    if code >= 0 {
        format!("exited with code {code}")
    } else {
        match Signal::try_from(-code) {
            Ok(signal) => format!("was killed by signal {} ({})", -code, signal.as_str()),
            Err(_) => format!("was killed by signal {}", -code),
        }
    }
}

/// A child process this process forked, not yet reaped or already reaped.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    exit_code: Option<i32>,
}

impl Child {
    /// Wraps a just-forked child.
    pub(crate) fn new(pid: Pid) -> Self {
        Child {
            pid,
            pidfd: sys::pidfd_open(pid),
            exit_code: None,
        }
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// The exit code, once the child has been reaped.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// A descriptor that becomes readable when the child ends (None once reaped, or without pidfd).
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Reaps the child if it has ended, without blocking. Returns its exit code if it has.
    pub(crate) fn try_reap(&mut self) -> Result<Option<i32>> {
        if self.exit_code.is_some() {
            return Ok(self.exit_code);
        }
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return Ok(None),
                Ok(status) => {
                    if let Some(code) = exit_code_of(status) {
                        self.exit_code = Some(code);
                        self.pidfd = None;
                        return Ok(Some(code));
                    }
                    // Stopped or continued: not an exit; keep waiting.
                    return Ok(None);
                }
                Err(Errno::EINTR) => continue,
                // ECHILD: someone else reaped it (e.g. a SIGCHLD handler set to ignore). We cannot
                // know its code; report it as ended without one rather than wait forever.
                Err(Errno::ECHILD) => {
                    self.exit_code = Some(0);
                    self.pidfd = None;
                    return Ok(self.exit_code);
                }
                Err(e) => return Err(Error::os("waitpid", e)),
            }
        }
    }

    /// Sends `signal` to the child if it has not been reaped yet (a reaped pid may belong to another
    /// process by now, so it is never signalled).
    pub(crate) fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.exit_code.is_some() {
            return Ok(());
        }
        // Through the pidfd, which names this child even if something else reaped it: no
        // `waitpid` first.
        let sent = match &self.pidfd {
            Some(pidfd) => sys::pidfd_send_signal(pidfd.as_fd(), signal),
            None => {
                if self.try_reap()?.is_some() {
                    return Ok(());
                }
                signal::kill(self.pid, signal)
            }
        };
        match sent {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::os("kill", e)),
        }
    }

    /// Waits for the child to end, blocked in `waitpid` (for a child just sent SIGKILL, which ends
    /// at once). Returns its exit code.
    pub(crate) fn wait_blocking(&mut self) -> Result<i32> {
        if let Some(code) = self.exit_code {
            return Ok(code);
        }
        loop {
            match waitpid(self.pid, None) {
                Ok(status) => {
                    if let Some(code) = exit_code_of(status) {
                        self.exit_code = Some(code);
                        self.pidfd = None;
                        return Ok(code);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => {
                    self.exit_code = Some(0);
                    self.pidfd = None;
                    return Ok(0);
                }
                Err(e) => return Err(Error::os("waitpid", e)),
            }
        }
    }
}
