//! [`Pipe`] and [`Connection`]: Python's `multiprocessing.Pipe()`, two connected ends that send
//! serde values to each other across `fork`.
//!
//! | Python | Rust |
//! |---|---|
//! | `a, b = Pipe()` | `let (a, b) = Pipe::new()?;` (both ends send and receive) |
//! | `a.send(obj)` | `a.send(obj)?` (any `Serialize`, or a reference to one) |
//! | `b.recv()` | `b.recv::<T>()?` (any `Deserialize`; the type must match what was sent) |
//! | `b.poll(timeout)` | `b.poll(Duration::from_secs(1))?` (`true`: a message, or the end, is there) |
//! | `if b.poll(1): b.recv()` | `b.recv_timeout::<T>(Duration::from_secs(1))?` ([`Error::Empty`] when nothing came) |
//! | `EOFError` once the other end is closed | [`Error::Disconnected`] |
//! | `a.close()` | `a.close()` (or let `a` drop) |
//! | `r, w = Pipe(duplex=False)` | `let (r, w) = Pipe::one_way()?;` (receive on `r`, send on `w`) |
//! | `a.send_bytes(b"...")`, `b.recv_bytes()` | `a.send_bytes(b"...")?`, `b.recv_bytes()?` (`Vec<u8>`) |
//! | `multiprocessing.connection.wait([a, b, p.sentinel])` | [`connection::wait`](crate::connection::wait)`(&[&a, &b, &p.sentinel()?], None)?` (indices of the ready ones) |
//!
//! Built on `socketpair(AF_UNIX, SOCK_STREAM)`: each message is one frame (an 8-byte length, then
//! the postcard bytes of the value). A `Process` closure that captures one end takes it into the
//! child; once the child has started, the parent's copy of that end is closed with the closure, so
//! when the child ends (or drops its end) the parent's `recv` returns [`Error::Disconnected`]
//! instead of waiting forever.
//!
//! As with Python's fork start method, a child inherits a copy of *every* end open in the parent
//! when it starts, the parent's own end included. So the parent sees `Disconnected` when the child
//! ends, but a child waiting for the parent to close its end waits forever (the child holds a copy
//! of it). Signal the end with a message instead, e.g. send `Option<T>` and `None` last.
//!
//! Like Python's connections, one end is meant for one process at a time: two processes reading
//! the same end at once may each get half a message.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, PipeEnd, Result};
use crate::{wait, wire};

/// What [`Connection::recv`] and [`Connection::recv_timeout`] return: any type serde can
/// deserialize (every `DeserializeOwned` type is one). It exists for its compile error: Python's
/// `print(conn.recv())` translated as `println!("{:?}", conn.recv()?)` names no type, and rustc
/// would say only that "`!: DeserializeOwned` is not satisfied"; this one says to name the type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be received: `recv` must be told the type the other end sends, and it must be Deserialize",
    label = "which type does the other end send?",
    note = "name the type: `let value: Vec<i32> = conn.recv()?;` or `conn.recv::<Vec<i32>>()?` (`!` means that no type was named)",
    note = "a type of your own needs `#[derive(Serialize, Deserialize)]`"
)]
pub trait Receivable: DeserializeOwned {}

impl<T: DeserializeOwned> Receivable for T {}

/// Creates connected pairs of [`Connection`]s (Python's `multiprocessing.Pipe()`).
///
/// ```
/// use multiprocessing::{Pipe, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let (parent_end, child_end) = Pipe::new()?;
/// let mut p = Process::new(move || {
///     let n: u32 = child_end.recv().unwrap();
///     child_end.send(n * 2).unwrap();
/// });
/// p.start()?;
/// parent_end.send(21u32)?;
/// assert_eq!(parent_end.recv::<u32>()?, 42);
/// p.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub enum Pipe {}

impl Pipe {
    /// Two connected ends; what one sends, the other receives, both ways (Python's
    /// `Pipe(duplex=True)`). Only processes forked after this call can hold an end.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, b) = multiprocessing::Pipe::new()?;
    /// a.send("hello")?;
    /// b.send(vec![1, 2, 3])?;
    /// assert_eq!(b.recv::<String>()?, "hello");
    /// assert_eq!(a.recv::<Vec<i32>>()?, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Result<(Connection, Connection)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::os("socketpair", e))?;
        Ok((
            Connection {
                fd: a,
                direction: Direction::Both,
            },
            Connection {
                fd: b,
                direction: Direction::Both,
            },
        ))
    }

    /// Two ends of a one-way pipe: the first only receives, the second only sends (Python's
    /// `Pipe(duplex=False)`, which returns `(reader, writer)` too). The wrong call on an end is
    /// [`Error::WrongDirection`].
    ///
    /// ```
    /// use multiprocessing::{Error, Pipe, PipeEnd};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (reader, writer) = Pipe::one_way()?;
    /// writer.send("one way")?;
    /// assert_eq!(reader.recv::<String>()?, "one way");
    /// assert!(matches!(reader.send(1), Err(Error::WrongDirection { allowed: PipeEnd::ReadOnly })));
    /// assert!(matches!(writer.recv::<i32>(), Err(Error::WrongDirection { allowed: PipeEnd::WriteOnly })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn one_way() -> Result<(Connection, Connection)> {
        let (mut reader, mut writer) = Pipe::new()?;
        reader.direction = Direction::Receive;
        writer.direction = Direction::Send;
        // The kernel agrees: the reader cannot send, the writer gets nothing to read.
        let _ =
            nix::sys::socket::shutdown(reader.fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        let _ = nix::sys::socket::shutdown(writer.fd.as_raw_fd(), nix::sys::socket::Shutdown::Read);
        Ok((reader, writer))
    }
}

/// Which way a [`Connection`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Both,
    Receive,
    Send,
}

/// One end of a [`Pipe`]. Sends and receives serde values; closed when dropped.
///
/// ```
/// use multiprocessing::{Error, Pipe};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let (a, b) = Pipe::new()?;
/// a.send((1, "one"))?;
/// a.close();
/// assert_eq!(b.recv::<(i32, String)>()?, (1, "one".to_owned()));
/// assert!(matches!(b.recv::<i32>(), Err(Error::Disconnected { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Connection {
    fd: OwnedFd,
    direction: Direction,
}

const PEER: &str = "the other end of the Pipe";

impl Connection {
    /// Sends `value` to the other end (Python's `send(obj)`): a value (`a.send(42)`) or a reference to
    /// one (`a.send(&data)`, which keeps `data` and copies nothing first; both arrive the same). Waits
    /// while the connection's buffer is full, until the other side receives.
    /// [`Error::Disconnected`] when the other end is closed.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, b) = multiprocessing::Pipe::new()?;
    /// a.send(42)?;
    /// let data = vec![0u8; 100_000];
    /// a.send(&data)?; // any size; the other side gets it whole
    /// assert_eq!(b.recv::<i32>()?, 42);
    /// assert_eq!(b.recv::<Vec<u8>>()?.len(), data.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn send<T: Serialize>(&self, value: T) -> Result<()> {
        self.check(Direction::Send)?;
        self.send_frame(&wire::encode_message(&value)?)
    }

    /// Sends `bytes` as one message, as they are (Python's `send_bytes(buf)`); the other end gets
    /// them whole with [`recv_bytes`](Connection::recv_bytes).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, b) = multiprocessing::Pipe::new()?;
    /// a.send_bytes(b"raw bytes")?;
    /// assert_eq!(b.recv_bytes()?, b"raw bytes");
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.check(Direction::Send)?;
        self.send_frame(&wire::encode_bytes(bytes))
    }

    /// Waits for the next message and returns its bytes as they are (Python's `recv_bytes()`): what
    /// [`send_bytes`](Connection::send_bytes) sent (or the serialized form of what `send` sent).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, b) = multiprocessing::Pipe::new()?;
    /// a.send_bytes(&[1, 2, 3])?;
    /// a.send_bytes(&[])?; // an empty message is a message
    /// assert_eq!(b.recv_bytes()?, [1, 2, 3]);
    /// assert_eq!(b.recv_bytes()?, []);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.check(Direction::Receive)?;
        self.recv_body()
    }

    fn check(&self, want: Direction) -> Result<()> {
        match (self.direction, want) {
            (Direction::Receive, Direction::Send) => Err(Error::WrongDirection {
                allowed: PipeEnd::ReadOnly,
            }),
            (Direction::Send, Direction::Receive) => Err(Error::WrongDirection {
                allowed: PipeEnd::WriteOnly,
            }),
            _ => Ok(()),
        }
    }

    fn send_frame(&self, frame: &[u8]) -> Result<()> {
        let mut rest = frame;
        let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        while !rest.is_empty() {
            match nix::sys::socket::send(self.fd.as_raw_fd(), rest, flags) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                // Full: wait for room in the waiting core (relaying children's output meanwhile, so
                // a child that prints before it receives is never stuck on a full output pipe).
                Err(Errno::EAGAIN) => {
                    let sent = frame.len() - rest.len();
                    wait::fd_ready(self.fd.as_fd(), wait::WRITABLE, None, || {
                        Error::Interrupted {
                            waiting_for: "room to send on a Connection".into(),
                            state: if sent == 0 {
                                "nothing was sent: call send() again to retry".into()
                            } else {
                                format!(
                                    "{sent} of the message's {} bytes were sent, so this Pipe's stream is cut mid-message: create a new Pipe",
                                    frame.len()
                                )
                            },
                        }
                    })?;
                }
                Err(Errno::EPIPE | Errno::ECONNRESET) => {
                    return Err(Error::Disconnected {
                        peer: PEER.into(),
                        message: "it was closed (every copy dropped, or its process ended), so \
                                  nobody can receive; keep it open until the last send"
                            .into(),
                    })
                }
                Err(e) => return Err(Error::os("send", e)),
            }
        }
        Ok(())
    }

    /// Waits for the next message and returns it as a `T` (Python's `recv()`). `T` must be the type
    /// that was sent (or one with the same serde shape), else [`Error::Codec`].
    /// [`Error::Disconnected`] when the other end is closed (in every process that had a copy: see
    /// the [module docs](crate::pipe)) and every message was received.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, b) = multiprocessing::Pipe::new()?;
    /// a.send(3.5f64)?;
    /// let x: f64 = b.recv()?;
    /// assert_eq!(x, 3.5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv<T: Receivable>(&self) -> Result<T> {
        self.check(Direction::Receive)?;
        wire::decode_message(&self.recv_body()?)
    }

    fn recv_body(&self) -> Result<Vec<u8>> {
        if let Some(body) = self.take_small_frame()? {
            return Ok(body);
        }
        // Wait in the waiting core, relaying children's output, rather than blocked in read.
        self.wait_readable(None)?;
        if let Some(body) = self.take_small_frame()? {
            return Ok(body);
        }
        let mut body = Vec::new();
        match wire::read_frame(self.fd.as_fd(), &mut body, PEER)? {
            true => Ok(body),
            false => Err(Error::Disconnected {
                peer: PEER.into(),
                message: "it was closed (every copy dropped, or its process ended) and sent nothing \
                          more; if more was expected, keep it open until the last send, and drop the \
                          copies no process will use"
                    .into(),
            }),
        }
    }

    /// A small message that is already here, whole: found with one peek and taken with one read
    /// (a round trip of small messages is mostly system calls: this saves one poll and one read per
    /// message). `None` when nothing is there, the frame is bigger or not complete yet, or at end of
    /// file: the caller then waits and reads the general way, which also reports errors.
    fn take_small_frame(&self) -> Result<Option<Vec<u8>>> {
        const SMALL: usize = 256;
        let fd = self.fd.as_raw_fd();
        let mut frame = [0u8; SMALL];
        let peeked = match nix::sys::socket::recv(
            fd,
            &mut frame,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(n) => n,
            Err(_) => return Ok(None),
        };
        let Some(len) = wire::body_len(&frame[..peeked]) else {
            return Ok(None);
        };
        let whole = match usize::try_from(len) {
            Ok(len) if len <= SMALL - wire::LEN && wire::LEN + len <= peeked => wire::LEN + len,
            _ => return Ok(None),
        };
        let mut got = 0;
        while got < whole {
            match nix::sys::socket::recv(fd, &mut frame[got..whole], MsgFlags::empty()) {
                Ok(0) => return Err(wire::cut_short(PEER)),
                Ok(n) => got += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::os("recv", e)),
            }
        }
        Ok(Some(frame[wire::LEN..whole].to_vec()))
    }

    /// Like [`recv`](Connection::recv), waiting at most `timeout`: [`Error::Empty`] when no message
    /// arrived in time (the message, if it comes later, stays for the next call).
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::{Error, Pipe};
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (_a, b) = Pipe::new()?;
    /// let got = b.recv_timeout::<i32>(Duration::from_millis(10));
    /// assert!(matches!(got, Err(Error::Empty { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_timeout<T: Receivable>(&self, timeout: Duration) -> Result<T> {
        if self.poll(timeout)? {
            self.recv()
        } else {
            Err(Error::Empty {
                what: "this Connection",
                waited: timeout,
            })
        }
    }

    /// Waits at most `timeout` (zero: just checks) for something to receive; `true` when a message is
    /// there or the other end is closed (then `recv` returns [`Error::Disconnected`]), as Python's
    /// `poll(timeout)`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, b) = multiprocessing::Pipe::new()?;
    /// assert!(!b.poll(Duration::ZERO)?);
    /// a.send(1u8)?;
    /// assert!(b.poll(Duration::from_secs(1))?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        self.check(Direction::Receive)?;
        self.wait_readable(Instant::now().checked_add(timeout))
    }

    fn wait_readable(&self, deadline: Option<Instant>) -> Result<bool> {
        wait::fd_ready(self.fd.as_fd(), wait::READABLE, deadline, || {
            Error::Interrupted {
            waiting_for: "a message on a Connection".into(),
            state: "nothing was received and the message, when it comes, stays for the next recv(): call recv() again to keep waiting".into(),
        }
        })
    }

    /// Closes this end (Python's `close()`); the same as dropping it. The other end's `recv` then
    /// returns [`Error::Disconnected`] once no process holds a copy of this end any more.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, b) = multiprocessing::Pipe::new()?;
    /// a.close();
    /// assert!(b.recv::<u8>().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(self) {}
}

impl AsFd for Connection {
    /// The socket, e.g. to wait on several connections with `poll(2)`.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let (a, _b) = multiprocessing::Pipe::new()?;
    /// let _fd = a.as_fd();
    /// # Ok(())
    /// # }
    /// ```
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
