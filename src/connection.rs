//! Python's `multiprocessing.connection.wait`: wait until any of several connections has something
//! to receive or any of several processes has ended ([`Process::sentinel`](crate::Process::sentinel)).
//!
//! | Python | Rust |
//! |---|---|
//! | `ready = wait([a, b, p.sentinel], timeout=1)` | `let ready = connection::wait(&[&a, &b, &p.sentinel()?], Some(Duration::from_secs(1)))?;` |
//! | the ready objects | their indices in the slice, in order |
//! | `p.sentinel` (an fd number) | `p.sentinel()?` (a [`Sentinel`], which owns its descriptor) |
//!
//! It waits in the crate's waiting core, so children's output is relayed meanwhile and the
//! kernel's interrupt ends it with [`Error::Interrupted`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::wait;

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: no limit), and
/// returns the indices of the ready ones (empty when the time ran out). A connection is ready when
/// it has a message or its other end is closed; a [`Sentinel`] when its process has ended.
///
/// ```
/// use std::time::Duration;
/// use multiprocessing::{connection, Pipe, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let (a, a_child) = Pipe::new()?;
/// let (b, _b_child) = Pipe::new()?;
/// let mut p = Process::new(move || a_child.send("hello").unwrap());
/// p.start()?;
/// // Python: wait([a, b]) -> [a]
/// assert_eq!(connection::wait(&[&a, &b], None)?, [0]);
/// assert_eq!(a.recv::<String>()?, "hello");
/// p.join()?;
/// assert!(connection::wait(&[&b], Some(Duration::from_millis(10)))?.is_empty());
/// # Ok(())
/// # }
/// ```
pub fn wait(objects: &[&dyn AsFd], timeout: Option<Duration>) -> Result<Vec<usize>> {
    struct Any<'a> {
        fds: Vec<BorrowedFd<'a>>,
        first: bool,
    }
    impl wait::Waiter for Any<'_> {
        type Output = Vec<usize>;
        fn check(&mut self, woke: &wait::Fds) -> Result<Option<Vec<usize>>> {
            let mut ready: Vec<usize> = if std::mem::take(&mut self.first) {
                let mut polls: Vec<libc::pollfd> = self
                    .fds
                    .iter()
                    .map(|fd| libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: wait::READABLE,
                        revents: 0,
                    })
                    .collect();
                crate::sys::poll(&mut polls, 0).map_err(|e| Error::os("poll", e))?;
                (0..polls.len())
                    .filter(|&i| polls[i].revents != 0)
                    .collect()
            } else {
                woke.ready().map(|tag| tag as usize).collect()
            };
            ready.sort_unstable();
            ready.dedup();
            Ok((!ready.is_empty()).then_some(ready))
        }
        fn watch(&self, fds: &mut wait::Fds) {
            for (i, fd) in self.fds.iter().enumerate() {
                fds.watch(*fd, wait::READABLE, i as u64);
            }
        }
        fn interrupted(&mut self) -> Error {
            Error::Interrupted {
                waiting_for: "connections or processes (connection::wait)".into(),
                state: "nothing was received: call wait() again to keep waiting".into(),
            }
        }
    }
    let mut any = Any {
        fds: objects.iter().map(|o| o.as_fd()).collect(),
        first: true,
    };
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    Ok(wait::until(&mut any, deadline)?.unwrap_or_default())
}

/// A descriptor that becomes readable when a process ends (Python's `Process.sentinel`), from
/// [`Process::sentinel`](crate::Process::sentinel); closed when dropped.
///
/// ```
/// use multiprocessing::{connection, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let mut p = Process::new(|| ());
/// p.start()?;
/// let s = p.sentinel()?;
/// assert_eq!(connection::wait(&[&s], None)?, [0]); // ended
/// p.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Sentinel {
    fd: OwnedFd,
}

impl Sentinel {
    /// A sentinel for child `pid`, which has not been reaped yet (a pidfd).
    pub(crate) fn of(pid: i32) -> Result<Sentinel> {
        match crate::sys::pidfd_open(nix::unistd::Pid::from_raw(pid)) {
            Some(fd) => Ok(Sentinel { fd }),
            // Gone meanwhile (reaped by a wait elsewhere), or a kernel without pidfds (< 5.3).
            None if crate::waiters::pid_alive(pid) => {
                Err(Error::os("pidfd_open", nix::errno::Errno::ENOSYS))
            }
            None => Sentinel::ended(),
        }
    }

    /// A sentinel that is ready already (the process has ended): the read end of a pipe whose write
    /// end is closed.
    pub(crate) fn ended() -> Result<Sentinel> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::os("pipe2", e))?;
        drop(write);
        Ok(Sentinel { fd: read })
    }
}

impl AsFd for Sentinel {
    /// The descriptor, readable once the process has ended.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use multiprocessing::Process;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let mut p = Process::new(|| ());
    /// p.start()?;
    /// let _fd = p.sentinel()?.as_fd().try_clone_to_owned();
    /// p.join()?;
    /// # Ok(())
    /// # }
    /// ```
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
