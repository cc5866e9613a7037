//! The wire: how values cross between processes. One format, one pipe constructor, one set of
//! readers and writers, used by `Pipe`, `Queue` and the pool.
//!
//! A frame is an 8-byte little-endian body length followed by the body. For `Pipe` and `Queue` the
//! body is the postcard encoding of one value ([`encode_message`], [`decode_message`]). For the pool
//! it starts with a postcard-encoded header (self-delimiting) and carries raw payload bytes after it
//! (the postcard bytes of a chunk of inputs or results), so a large payload is copied once into the
//! frame and never re-encoded ([`encode_frame`], [`decode_body`]).
//!
//! Two ways to move frames: blocking ([`read_frame`], [`write_all`]: a pool worker, and `Pipe`/
//! `Queue` once the waiting core said the descriptor is ready); and the pool's parent side,
//! [`NbWriter`] and [`NbReader`] on nonblocking pipe ends, driven by the waiting core, so it keeps
//! reading results while its task writes are still pending (no deadlock at any size, no thread).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;

/// Size of the length prefix.
const LEN: usize = 8;

/// Pipe buffer size asked for (Linux allows unprivileged processes up to `/proc/sys/fs/pipe-max-size`,
/// 1 MiB by default): fewer wake-ups per megabyte moved.
const PIPE_SIZE: i32 = 1 << 20;

/// How big a pipe's kernel buffer is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buffer {
    /// The system's default (64 KiB): output relays, where lines are small.
    Default,
    /// [`PIPE_SIZE`]: pipes that carry data (tasks, results, queue items). Each such pipe counts
    /// against the user's `pipe-user-pages-soft` limit, so only those get it.
    Large,
}

/// The crate's one pipe constructor: each end nonblocking or not as asked (the parent's pool ends
/// are, a worker's are not; an output relay's read end is). Both ends are `O_CLOEXEC`, so a program
/// the parent later execs does not hold them open.
pub(crate) fn pipe(
    read_nonblocking: bool,
    write_nonblocking: bool,
    buffer: Buffer,
) -> Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::os("pipe2", e))?;
    if buffer == Buffer::Large {
        // A bigger pipe is an optimisation only: ignore a refusal.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    if read_nonblocking {
        set_nonblocking(&read)?;
    }
    if write_nonblocking {
        set_nonblocking(&write)?;
    }
    Ok((read, write))
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::os("fcntl", e))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::os("fcntl", e))?;
    Ok(())
}

/// Serializes `value` with postcard into a new `Vec` with room for `capacity` bytes.
///
/// Faster than `postcard::to_allocvec` for sequences of numbers: postcard hands each varint (1 to 10
/// bytes) to its output as a slice, and `Vec::extend_from_slice` turns each into a `memcpy` call;
/// here short slices are pushed byte by byte, which the compiler keeps inline.
pub(crate) fn to_vec<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> postcard::Result<Vec<u8>> {
    postcard::serialize_with_flavor(value, FastVec(Vec::with_capacity(capacity)))
}

struct FastVec(Vec<u8>);

impl postcard::ser_flavors::Flavor for FastVec {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 16 {
            for &byte in data {
                self.0.push(byte);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// Appends one frame (`header` then `payload`) to `out`.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    header: &impl Serialize,
    payload: &[u8],
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN]);
    let codec = |e: postcard::Error| Error::Codec {
        direction: "serialize",
        what: "a frame header",
        message: e.to_string(),
    };
    let mut buf = std::mem::take(out);
    buf = postcard::to_extend(header, buf).map_err(codec)?;
    buf.extend_from_slice(payload);
    let body = (buf.len() - start - LEN) as u64;
    buf[start..start + LEN].copy_from_slice(&body.to_le_bytes());
    *out = buf;
    Ok(())
}

/// Writes into `out` (cleared first) the length prefix and `header` of a frame whose payload of
/// `payload_len` bytes the caller sends right after (see [`write_all2`]): no copy of the payload.
pub(crate) fn encode_frame_head(
    out: &mut Vec<u8>,
    header: &impl Serialize,
    payload_len: usize,
) -> Result<()> {
    out.clear();
    encode_frame(out, header, &[])?;
    let body = (out.len() - LEN + payload_len) as u64;
    out[..LEN].copy_from_slice(&body.to_le_bytes());
    Ok(())
}

/// Blocking: writes all of `a` then all of `b`, with `writev` (one system call in the usual case).
pub(crate) fn write_all2(fd: BorrowedFd<'_>, mut a: &[u8], mut b: &[u8]) -> Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let parts = [std::io::IoSlice::new(a), std::io::IoSlice::new(b)];
        match nix::sys::uio::writev(fd, &parts) {
            Ok(mut n) => {
                let from_a = n.min(a.len());
                a = &a[from_a..];
                n -= from_a;
                b = &b[n..];
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os("writev", e)),
        }
    }
    Ok(())
}

/// Splits a frame body into its header and the payload bytes after it.
pub(crate) fn decode_body<H: DeserializeOwned>(body: &[u8]) -> Result<(H, &[u8])> {
    postcard::take_from_bytes(body).map_err(|e| Error::Codec {
        direction: "deserialize",
        what: "a frame header",
        message: e.to_string(),
    })
}

/// Blocking: reads one frame body into `body`. `Ok(false)` at a clean end of file before a frame;
/// end of file inside a frame is [`Error::Disconnected`] naming `peer`.
pub(crate) fn read_frame(fd: BorrowedFd<'_>, body: &mut Vec<u8>, peer: &str) -> Result<bool> {
    let mut len = [0u8; LEN];
    match read_exact(fd, &mut len)? {
        0 => return Ok(false),
        LEN => {}
        _ => return Err(cut_short(peer)),
    }
    let n = u64::from_le_bytes(len) as usize;
    body.clear();
    body.reserve_exact(n);
    // Read straight into the spare capacity: no zero-filling of megabytes first.
    while body.len() < n {
        match sys::read_append(fd, body, n - body.len()) {
            Ok(0) => return Err(cut_short(peer)),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(Errno::ECONNRESET) => return Err(cut_short(peer)),
            Err(e) => return Err(Error::os("read", e)),
        }
    }
    Ok(true)
}

fn cut_short(peer: &str) -> Error {
    Error::Disconnected {
        peer: peer.into(),
        message: "its process ended in the middle of a message; make senders finish their send before they end"
            .into(),
    }
}

/// Reads until `buf` is full or end of file (or a reset connection); returns how many bytes were read.
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match nix::unistd::read(fd, &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(Errno::ECONNRESET) => break,
            Err(e) => return Err(Error::os("read", e)),
        }
    }
    Ok(done)
}

/// One frame holding the postcard bytes of `value` (a `Pipe` message, a `Queue` item).
pub(crate) fn encode_message<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut frame = postcard::serialize_with_flavor(value, FastVec(vec![0; LEN])).map_err(|e| {
        Error::Codec {
            direction: "serialize",
            what: "a message",
            message: e.to_string(),
        }
    })?;
    let len = (frame.len() - LEN) as u64;
    frame[..LEN].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// Deserializes one message body.
pub(crate) fn decode_message<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    postcard::from_bytes(body).map_err(|e| Error::Codec {
        direction: "deserialize",
        what: "a message (is the type asked for the type that was sent?)",
        message: e.to_string(),
    })
}

/// Blocking: writes all of `bytes`.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os("write", e)),
        }
    }
    Ok(())
}

/// The parent's nonblocking, buffered writing end: frames are queued, then written as far as the pipe
/// takes them; the rest waits for the next `POLLOUT`.
#[derive(Debug)]
pub(crate) struct NbWriter {
    fd: OwnedFd,
    buf: Vec<u8>,
    pos: usize,
}

impl NbWriter {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        NbWriter {
            fd,
            buf: Vec::new(),
            pos: 0,
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The buffer to append frames to (with [`encode_frame`]).
    pub(crate) fn queue(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// True while queued bytes wait to be written.
    pub(crate) fn has_pending(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Writes as much as the pipe takes now. `Err` when the reader is gone (EPIPE).
    pub(crate) fn flush(&mut self) -> Result<()> {
        while self.pos < self.buf.len() {
            match nix::unistd::write(&self.fd, &self.buf[self.pos..]) {
                Ok(n) => self.pos += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(Error::os("write", e)),
            }
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Ok(())
    }
}

/// The parent's nonblocking, buffered reading end: reads what is there, hands out whole frames.
///
/// Small frames are cut out of one reusable buffer. A large frame (results of a big chunk) is read
/// straight into a buffer of its own, which is then handed out as is: megabytes are not copied again.
#[derive(Debug)]
pub(crate) struct NbReader {
    file: Option<File>,
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// A large frame being read into its own buffer: (body so far, body length).
    big: Option<(Vec<u8>, usize)>,
}

/// Frames from this size on are read into their own buffer.
const BIG: usize = 256 * 1024;

impl NbReader {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        NbReader {
            file: Some(File::from(fd)),
            buf: Vec::new(),
            start: 0,
            filled: 0,
            big: None,
        }
    }

    /// The descriptor, until end of file was read.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(|f| f.as_fd())
    }

    /// Reads everything available now without blocking (or up to the end of a large frame).
    /// Closes the descriptor at end of file.
    pub(crate) fn fill(&mut self) -> Result<()> {
        loop {
            let Some(file) = &self.file else {
                return Ok(());
            };
            if let Some((body, need)) = &mut self.big {
                if body.len() >= *need {
                    return Ok(());
                }
                let want = (*need - body.len()) as u64;
                // read_to_end reads into the spare capacity without zeroing it first; on a
                // nonblocking pipe it stops with WouldBlock, keeping what it read.
                match file.take(want).read_to_end(body) {
                    Ok(_) => {
                        if body.len() < *need {
                            self.file = None;
                        }
                        return Ok(());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => {
                        self.file = None;
                        let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                        return Err(Error::os("read", errno));
                    }
                }
            }
            if self.start > 0 && (self.start == self.filled || self.start * 2 > self.buf.len()) {
                self.buf.copy_within(self.start..self.filled, 0);
                self.filled -= self.start;
                self.start = 0;
            }
            // The first pending frame is large and not all here: read the rest into its own buffer.
            if let Some(n) = self.pending_frame_len() {
                let have = self.filled - self.start - LEN;
                if n >= BIG && have < n {
                    let mut body = Vec::with_capacity(n);
                    body.extend_from_slice(&self.buf[self.start + LEN..self.filled]);
                    self.start = 0;
                    self.filled = 0;
                    self.big = Some((body, n));
                    continue;
                }
            }
            let room = 64 * 1024;
            if self.buf.len() - self.filled < room {
                self.buf.resize(self.filled + room, 0);
            }
            match nix::unistd::read(file, &mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.file = None;
                    return Ok(());
                }
                Ok(n) => self.filled += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(()),
                Err(e) => {
                    self.file = None;
                    return Err(Error::os("read", e));
                }
            }
        }
    }

    fn pending_frame_len(&self) -> Option<usize> {
        let have = &self.buf[self.start..self.filled];
        (have.len() >= LEN)
            .then(|| u64::from_le_bytes(have[..LEN].try_into().unwrap_or([0; LEN])) as usize)
    }

    /// The next complete frame body, if one has arrived.
    pub(crate) fn next_frame(&mut self) -> Option<Vec<u8>> {
        if let Some((body, need)) = &self.big {
            if body.len() < *need {
                return None;
            }
            return self.big.take().map(|(body, _)| body);
        }
        let n = self.pending_frame_len()?;
        if self.filled - self.start < LEN + n {
            return None;
        }
        let body = self.buf[self.start + LEN..self.start + LEN + n].to_vec();
        self.start += LEN + n;
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        }
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_a_pipe_in_pieces() {
        let (r, w) = pipe(true, true, Buffer::Large).unwrap();
        let mut writer = NbWriter::new(w);
        let mut reader = NbReader::new(r);
        let big = vec![7u8; 900_000];
        for i in 0..3u32 {
            encode_frame(writer.queue(), &(i, "header"), &big[..300_000 * i as usize]).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 3 {
            writer.flush().unwrap();
            reader.fill().unwrap();
            while let Some(body) = reader.next_frame() {
                let ((i, h), payload): ((u32, String), &[u8]) = decode_body(&body).unwrap();
                assert_eq!(h, "header");
                assert_eq!(payload.len(), 300_000 * i as usize);
                assert!(payload.iter().all(|&b| b == 7));
                got.push(i);
            }
        }
        assert_eq!(got, [0, 1, 2]);
        drop(writer);
        reader.fill().unwrap();
        assert!(reader.fd().is_none(), "end of file closes the reader");
    }

    #[test]
    fn blocking_read_sees_frames_and_end_of_file() {
        let (r, w) = pipe(false, false, Buffer::Large).unwrap();
        let mut frame = Vec::new();
        encode_frame(&mut frame, &42u64, b"xyz").unwrap();
        write_all(w.as_fd(), &frame).unwrap();
        drop(w);
        let mut body = Vec::new();
        assert!(read_frame(r.as_fd(), &mut body, "test").unwrap());
        let (h, p): (u64, &[u8]) = decode_body(&body).unwrap();
        assert_eq!((h, p), (42, &b"xyz"[..]));
        assert!(!read_frame(r.as_fd(), &mut body, "test").unwrap());
    }
}
