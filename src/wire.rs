//! The wire: how values cross between processes. One format, one pipe constructor, one set of
//! readers and writers, used by `Pipe`, `Queue` and the pool.
//!
//! A frame is an 8-byte little-endian body length followed by the body. For `Pipe` and `Queue` the
//! body is the postcard encoding of one value ([`encode_message`], [`decode_message`]). For the pool
//! it starts with a postcard-encoded header (self-delimiting) and carries raw payload bytes after it
//! (a chunk of inputs or results: postcard's encoding of the `Vec`, except that plain numbers travel
//! as their little-endian bytes, see [`encode_seq`]), so a large payload is copied once into the
//! frame and never re-encoded ([`encode_frame`], [`decode_body`]).
//!
//! Two ways to move frames: blocking ([`read_frame`], [`write_all`]: a pool worker, and `Pipe`/
//! `Queue` once the waiting core said the descriptor is ready); and the pool's parent side,
//! [`NbWriter`] and [`NbReader`] on nonblocking pipe ends, driven by the waiting core, so it keeps
//! reading results while its task writes are still pending (no deadlock at any size, no thread).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;

/// Size of the length prefix.
pub(crate) const LEN: usize = 8;

/// Pipe buffer size asked for (Linux allows unprivileged processes up to `/proc/sys/fs/pipe-max-size`,
/// 1 MiB by default): fewer wake-ups per megabyte moved.
const PIPE_SIZE: i32 = 1 << 20;

/// How big a pipe's kernel buffer is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buffer {
    /// The system's default (64 KiB): output relays, where lines are small, and the pool's task and
    /// result pipes, which their writers grow when a frame needs it ([`grow_for`]): most pools
    /// only ever carry small frames, and a pipe's creation and teardown cost more once it is big.
    Default,
    /// [`PIPE_SIZE`] from the start: a `Queue`'s pipe, where many small items from many writers
    /// are better buffered than waited for. Each such pipe counts against the user's
    /// `pipe-user-pages-soft` limit, so only those get it.
    Large,
}

/// Before writing a frame of `len` bytes into pipe `fd`: makes the pipe [`PIPE_SIZE`] when the
/// frame would not fit its current buffer (one `fcntl` to ask, only for frames over 64 KiB; one more
/// to grow, once per pipe). A refusal is ignored: a bigger pipe is an optimisation only.
pub(crate) fn grow_for(fd: BorrowedFd<'_>, len: usize) {
    const DEFAULT: usize = 64 << 10;
    if len <= DEFAULT {
        return;
    }
    if fcntl(fd, FcntlArg::F_GETPIPE_SZ)
        .is_ok_and(|size| (size as usize) < len.min(PIPE_SIZE as usize))
    {
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
}

/// The crate's one pipe constructor: each end nonblocking or not as asked (the parent's pool ends
/// are, a worker's are not; an output relay's read end is). Both ends are `O_CLOEXEC`, so a program
/// the parent later execs does not hold them open.
pub(crate) fn pipe(
    read_nonblocking: bool,
    write_nonblocking: bool,
    buffer: Buffer,
) -> Result<(OwnedFd, OwnedFd)> {
    // Both ends nonblocking: one flag at creation. One end: a fresh pipe end has no status flag
    // but its access mode, which F_SETFL ignores, so one F_SETFL sets it (no F_GETFL first).
    let both = read_nonblocking && write_nonblocking;
    let flags = if both {
        OFlag::O_CLOEXEC | OFlag::O_NONBLOCK
    } else {
        OFlag::O_CLOEXEC
    };
    let (read, write) = nix::unistd::pipe2(flags).map_err(|e| Error::os("pipe2", e))?;
    if buffer == Buffer::Large {
        // A bigger pipe is an optimisation only: ignore a refusal.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    let fresh_nonblocking = |fd: &OwnedFd| {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map(drop)
            .map_err(|e| Error::os("fcntl", e))
    };
    if read_nonblocking && !both {
        fresh_nonblocking(&read)?;
    }
    if write_nonblocking && !both {
        fresh_nonblocking(&write)?;
    }
    Ok((read, write))
}

#[allow(dead_code)]
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

/// A chunk of encoded pool inputs: in memory, or (big ones of the bulk kinds) already written
/// straight into a memfd, ready to be passed to a worker without another copy.
#[derive(Debug)]
pub(crate) enum Encoded {
    Inline(Vec<u8>),
    Shared { fd: OwnedFd, len: usize },
}

impl Encoded {
    pub(crate) fn len(&self) -> usize {
        match self {
            Encoded::Inline(bytes) => bytes.len(),
            Encoded::Shared { len, .. } => *len,
        }
    }
}

/// A pool's spare memfds: ones whose reader is done with them (a chunk's inputs once its result came
/// back, a big result once decoded), kept to carry later payloads: rewriting pages a memfd already
/// has costs a third of allocating and zeroing fresh ones. Shared by the pool, its job sources
/// (which encode chunks) and the results it holds; dropped with the last of them.
pub(crate) type Spares = std::rc::Rc<SpareFds>;

/// See [`Spares`]. At most `max` are kept; more are closed.
#[derive(Debug, Default)]
pub(crate) struct SpareFds {
    fds: std::cell::RefCell<Vec<OwnedFd>>,
    max: std::cell::Cell<usize>,
}

impl SpareFds {
    pub(crate) fn new(max: usize) -> Spares {
        let spares = SpareFds::default();
        spares.max.set(max);
        std::rc::Rc::new(spares)
    }

    fn take(&self) -> Option<OwnedFd> {
        self.fds.borrow_mut().pop()
    }

    /// Keeps `fd` (a memfd nobody reads or writes any more) for a later payload.
    pub(crate) fn give(&self, fd: OwnedFd) {
        let mut fds = self.fds.borrow_mut();
        if fds.len() < self.max.get() {
            fds.push(fd);
        }
    }
}

/// A bulk kind: `Vec<u8>`, `String`, `Vec<f64>`, `Vec<f32>` (the floats on little-endian targets
/// only). postcard writes each as a varint count of elements and then the elements' bytes; the
/// fast paths copy those bytes in one piece where serde goes element by element (a `Vec<u8>` of 4
/// MiB is four million calls). `T` is the item type of a generic caller; [`Bulk::of`] says whether
/// it is one of these, and each method picks its kind's branch from `T` alone (the others
/// compile away).
pub(crate) struct Bulk<T> {
    /// Bytes per element.
    elem: usize,
    kind: std::marker::PhantomData<fn(T) -> T>,
}

impl<T: 'static> Bulk<T> {
    pub(crate) fn of() -> Option<Bulk<T>> {
        use std::any::TypeId;
        let id = TypeId::of::<T>();
        let elem = if id == TypeId::of::<Vec<u8>>() || id == TypeId::of::<String>() {
            1
        } else if cfg!(target_endian = "little") && id == TypeId::of::<Vec<f64>>() {
            8
        } else if cfg!(target_endian = "little") && id == TypeId::of::<Vec<f32>>() {
            4
        } else {
            return None;
        };
        Some(Bulk {
            elem,
            kind: std::marker::PhantomData,
        })
    }

    /// The item's elements as bytes.
    #[inline]
    fn bytes_of<'t>(&self, item: &'t T) -> &'t [u8] {
        use std::any::Any;
        let item = item as &dyn Any;
        if let Some(s) = item.downcast_ref::<String>() {
            s.as_bytes()
        } else if let Some(v) = item.downcast_ref::<Vec<u8>>() {
            v
        } else if let Some(v) = item.downcast_ref::<Vec<f64>>() {
            sys::plain_bytes(v)
        } else if let Some(v) = item.downcast_ref::<Vec<f32>>() {
            sys::plain_bytes(v)
        } else {
            &[]
        }
    }

    /// An item from its elements' bytes; `None` when they are not one (a `String` that is not
    /// UTF-8).
    #[inline]
    fn make(&self, bytes: &[u8]) -> Option<T> {
        use std::any::TypeId;
        let id = TypeId::of::<T>();
        if id == TypeId::of::<String>() {
            sys::same(std::str::from_utf8(bytes).ok()?.to_owned()).ok()
        } else if id == TypeId::of::<Vec<u8>>() {
            sys::same(bytes.to_vec()).ok()
        } else if id == TypeId::of::<Vec<f64>>() {
            let mut v = Vec::new();
            sys::extend_plain::<f64>(&mut v, bytes);
            sys::same(v).ok()
        } else if id == TypeId::of::<Vec<f32>>() {
            let mut v = Vec::new();
            sys::extend_plain::<f32>(&mut v, bytes);
            sys::same(v).ok()
        } else {
            None
        }
    }

    /// The next item of `bytes`, which it leaves after it; `None` when they do not start with one.
    #[inline]
    fn take(&self, bytes: &mut &[u8]) -> Option<T> {
        let len = (take_varint(bytes)? as usize).checked_mul(self.elem)?;
        let (item, rest) = (bytes.get(..len)?, bytes.get(len..)?);
        *bytes = rest;
        self.make(item)
    }

    /// The encoded length of `item`: its element count as a varint, then its bytes.
    fn encoded_len(&self, item: &T) -> usize {
        let len = self.bytes_of(item).len();
        varint_len((len / self.elem) as u64) + len
    }

    /// Writes `item` at `out[at..]` (room for [`encoded_len`](Self::encoded_len) bytes); returns
    /// where it ends.
    fn put(&self, out: &mut [u8], at: usize, item: &T) -> usize {
        let bytes = self.bytes_of(item);
        let at = put_varint(out, at, (bytes.len() / self.elem) as u64);
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at + bytes.len()
    }

    /// Appends `item` to `out`.
    #[inline]
    fn push(&self, out: &mut Vec<u8>, item: &T) {
        let bytes = self.bytes_of(item);
        push_varint(out, (bytes.len() / self.elem) as u64);
        out.extend_from_slice(bytes);
    }
}

/// Like [`encode_seq`], but a chunk of plain numbers or of the bulk kinds (`Vec<u8>`, `String`,
/// `Vec<f64>`, `Vec<f32>`) of [`SHARED_MIN`] bytes or more is written straight into a memfd (one copy, from the
/// caller's values into the memory the worker will map), a spare one when there is one.
pub(crate) fn encode_chunk<T: Serialize + 'static>(
    items: &[T],
    spares: &Spares,
) -> Result<Encoded> {
    /// A bulk kind, item after item, straight into the shared file.
    fn shared<T: 'static>(items: &[T], spares: &Spares) -> Option<Result<Encoded>> {
        let bulk = Bulk::<T>::of()?;
        let len = varint_len(items.len() as u64)
            + items
                .iter()
                .map(|item| bulk.encoded_len(item))
                .sum::<usize>();
        write_shared(spares, len, |out| {
            let mut at = put_varint(out, 0, items.len() as u64);
            for item in items {
                at = bulk.put(out, at, item);
            }
            Some(())
        })
    }
    /// `None` under [`SHARED_MIN`] bytes; else a shared file of `len` bytes (a spare one resized, or
    /// a new one) that `fill` writes.
    fn write_shared(
        spares: &Spares,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<()>,
    ) -> Option<Result<Encoded>> {
        if len < SHARED_MIN {
            return None;
        }
        let made = match spares.take() {
            Some(fd) => sys::SharedFile::reuse(fd, len),
            None => sys::SharedFile::new(len),
        };
        let mut file = match made {
            Ok(file) => file,
            Err(e) => return Some(Err(Error::os("memfd", e))),
        };
        fill(file.bytes_mut())?;
        Some(Ok(Encoded::Shared {
            fd: file.into_fd(),
            len,
        }))
    }
    /// Plain numbers: the count, then their bytes in one copy.
    fn plain<T: 'static, P: sys::Plain>(items: &[T], spares: &Spares) -> Option<Result<Encoded>> {
        let bytes = sys::plain_bytes(sys::as_plain::<T, P>(items)?);
        let count = items.len() as u64;
        let len = varint_len(count) + bytes.len();
        write_shared(spares, len, |out| {
            let at = put_varint(out, 0, count);
            out[at..].copy_from_slice(bytes);
            Some(())
        })
    }
    let direct = if !cfg!(target_endian = "little") {
        shared(items, spares)
    } else if let Some(encoded) = plain::<T, u64>(items, spares)
        .or_else(|| plain::<T, i64>(items, spares))
        .or_else(|| plain::<T, u32>(items, spares))
        .or_else(|| plain::<T, i32>(items, spares))
        .or_else(|| plain::<T, usize>(items, spares))
        .or_else(|| plain::<T, isize>(items, spares))
        .or_else(|| plain::<T, f64>(items, spares))
        .or_else(|| plain::<T, f32>(items, spares))
        .or_else(|| plain::<T, u16>(items, spares))
        .or_else(|| plain::<T, i16>(items, spares))
        .or_else(|| plain::<T, u8>(items, spares))
        .or_else(|| plain::<T, i8>(items, spares))
    {
        Some(encoded)
    } else {
        shared(items, spares)
    };
    match direct {
        Some(encoded) => encoded,
        None => encode_seq(items)
            .map(Encoded::Inline)
            .map_err(|e| Error::Codec {
                direction: "serialize",
                what: "task arguments",
                message: e.to_string(),
            }),
    }
}

fn varint_len(n: u64) -> usize {
    let bits = 64 - (n | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes `n` as a varint at `out[at..]`; returns where it ends.
///
/// With 8 bytes of room (the usual case: callers size buffers for 10 bytes a varint), the first
/// eight 7-bit groups are spread over one 64-bit word and stored at once: a million tiny results
/// are mostly 9-byte varints, and a store per byte was most of a worker's time.
fn put_varint(out: &mut [u8], at: usize, n: u64) -> usize {
    // One byte: the length of every short string.
    if n < 0x80 {
        out[at] = n as u8;
        return at + 1;
    }
    if let Some(word) = out.get_mut(at..at + 8) {
        let len = varint_len(n);
        let mut w = 0u64;
        for group in 0..8 {
            w |= ((n >> (7 * group)) & 0x7f) << (8 * group);
        }
        // The continuation bit on every byte but the last (all eight when the varint is longer).
        let continued = len.min(9) - 1;
        let mask = if continued == 0 {
            0
        } else {
            u64::MAX >> (64 - 8 * continued)
        };
        w |= 0x8080_8080_8080_8080 & mask;
        word.copy_from_slice(&w.to_le_bytes());
        if len <= 8 {
            return at + len;
        }
        return put_varint_bytes(out, at + 8, n >> 56);
    }
    put_varint_bytes(out, at, n)
}

fn put_varint_bytes(out: &mut [u8], mut at: usize, mut n: u64) -> usize {
    while n >= 0x80 {
        out[at] = (n as u8) | 0x80;
        n >>= 7;
        at += 1;
    }
    out[at] = n as u8;
    at + 1
}

/// Encodes a chunk of pool inputs or results: postcard's encoding of `Vec<T>` (a varint count, then
/// each item), with fast paths for what people give a pool:
///
/// - plain numbers (`u8` to `u64`, `usize`, `i8` to `i64`, `isize`, `f32`, `f64`): the count, then
///   the numbers' little-endian bytes, one copy for the whole chunk. Not postcard's varints (which
///   a million tiny tasks spent most of their time writing and reading): only [`decode_seq`] reads
///   these chunks, with the same type, so encoder and decoder always take the same path.
/// - the bulk kinds `Vec<u8>`, `String`, `Vec<f64>`, `Vec<f32>`: postcard's bytes (a varint length
///   and the raw bytes, floats little-endian), but one copy per item where serde writes one
///   element at a time (a `Vec<u8>` of 4 MiB is four million calls).
pub(crate) fn encode_seq<T: Serialize + 'static>(items: &[T]) -> postcard::Result<Vec<u8>> {
    let out = plain_seq(items).or_else(|| {
        let bulk = Bulk::<T>::of()?;
        let mut out = Vec::with_capacity(
            10 + items
                .iter()
                .map(|item| bulk.encoded_len(item))
                .sum::<usize>(),
        );
        push_varint(&mut out, items.len() as u64);
        for item in items {
            bulk.push(&mut out, item);
        }
        Some(out)
    });
    match out {
        Some(out) => Ok(out),
        None => {
            // Room for the usual case up front (small numbers take fewer bytes in postcard, not
            // more), instead of growing and copying the buffer as it fills.
            let guess = items.len().saturating_mul(std::mem::size_of::<T>() + 2) + 16;
            to_vec(items, guess.min(1 << 28))
        }
    }
}

/// The count and the little-endian bytes of `items` when `T` is a plain number (little-endian
/// targets only; elsewhere postcard's encoding is used for every type).
fn plain_seq<T: 'static>(items: &[T]) -> Option<Vec<u8>> {
    let (count, bytes) = plain_parts(items)?;
    let mut out = Vec::with_capacity(count.len() + bytes.len());
    out.extend_from_slice(count.bytes());
    out.extend_from_slice(bytes);
    Some(out)
}

/// [`encode_seq`]'s bytes for plain numbers in two parts, the count and the numbers' own memory,
/// for a writer that takes them one after the other (no copy into one buffer first).
pub(crate) fn plain_parts<T: 'static>(items: &[T]) -> Option<(Count, &[u8])> {
    fn view<T: 'static, P: sys::Plain>(items: &[T]) -> Option<&[u8]> {
        sys::as_plain::<T, P>(items).map(sys::plain_bytes)
    }
    if !cfg!(target_endian = "little") {
        return None;
    }
    let bytes = view::<T, u64>(items)
        .or_else(|| view::<T, i64>(items))
        .or_else(|| view::<T, u32>(items))
        .or_else(|| view::<T, i32>(items))
        .or_else(|| view::<T, usize>(items))
        .or_else(|| view::<T, isize>(items))
        .or_else(|| view::<T, f64>(items))
        .or_else(|| view::<T, f32>(items))
        .or_else(|| view::<T, u16>(items))
        .or_else(|| view::<T, i16>(items))
        .or_else(|| view::<T, u8>(items))
        .or_else(|| view::<T, i8>(items))?;
    Some((Count::new(items.len() as u64), bytes))
}

/// A count as a varint, on the stack.
pub(crate) struct Count {
    bytes: [u8; 10],
    len: usize,
}

impl Count {
    fn new(n: u64) -> Count {
        let mut bytes = [0u8; 10];
        let len = put_varint_bytes(&mut bytes, 0, n);
        Count { bytes, len }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Decodes what [`encode_seq`] wrote, with the same fast paths.
pub(crate) fn decode_seq<T: DeserializeOwned + 'static>(bytes: &[u8]) -> postcard::Result<Vec<T>> {
    let mut out = Vec::new();
    decode_seq_into(bytes, &mut out)?;
    Ok(out)
}

/// Like [`decode_seq`], appending the items to `out` (on error `out` is left as it was). A pool's
/// `map` decodes every chunk's results straight into the one result vector: no vector per chunk,
/// no copy of them all at the end.
pub(crate) fn decode_seq_into<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    out: &mut Vec<T>,
) -> postcard::Result<()> {
    use std::any::Any;
    /// Plain numbers: `Some(ok)` when `T` is `P`, `ok` false when the bytes do not fit.
    fn plain<P: sys::Plain>(mut bytes: &[u8], out: &mut dyn Any) -> Option<bool> {
        let out = out.downcast_mut::<Vec<P>>()?;
        let fits = take_varint(&mut bytes)
            .and_then(|n| {
                usize::try_from(n)
                    .ok()?
                    .checked_mul(std::mem::size_of::<P>())
            })
            .is_some_and(|len| len == bytes.len());
        if fits {
            sys::extend_plain(out, bytes);
        }
        Some(fits)
    }
    let before = out.len();
    let plain = if cfg!(target_endian = "little") {
        plain::<u64>(bytes, out)
            .or_else(|| plain::<i64>(bytes, out))
            .or_else(|| plain::<u32>(bytes, out))
            .or_else(|| plain::<i32>(bytes, out))
            .or_else(|| plain::<usize>(bytes, out))
            .or_else(|| plain::<isize>(bytes, out))
            .or_else(|| plain::<f64>(bytes, out))
            .or_else(|| plain::<f32>(bytes, out))
            .or_else(|| plain::<u16>(bytes, out))
            .or_else(|| plain::<i16>(bytes, out))
            .or_else(|| plain::<u8>(bytes, out))
            .or_else(|| plain::<i8>(bytes, out))
    } else {
        None
    };
    match plain {
        Some(true) => return Ok(()),
        // Not postcard's bytes: postcard cannot say more.
        Some(false) => return Err(postcard::Error::DeserializeUnexpectedEnd),
        None => {}
    }
    let fast = Items::<T>::bulk(bytes).map(|mut items| {
        out.reserve(items.len());
        for item in &mut items {
            out.push(item.ok()?);
        }
        items.finish().ok()
    });
    match fast {
        Some(Some(())) => Ok(()),
        // Malformed for the fast path: let postcard say what is wrong.
        Some(None) | None => {
            out.truncate(before);
            let mut decoded: Vec<T> = postcard::from_bytes(bytes)?;
            if out.is_empty() {
                *out = decoded;
            } else {
                out.append(&mut decoded);
            }
            Ok(())
        }
    }
}

/// A chunk's inputs one at a time, for a worker that calls the function on each as it comes: a
/// bulk kind is decoded item by item (each made just before its call, which frees it: the
/// allocator hands the same memory round); any other type is decoded whole first, as
/// [`decode_seq`] does.
pub(crate) enum Items<'a, T> {
    Bulk {
        bulk: Bulk<T>,
        bytes: &'a [u8],
        left: usize,
    },
    Decoded(std::vec::IntoIter<T>),
}

impl<'a, T: DeserializeOwned + 'static> Items<'a, T> {
    pub(crate) fn new(bytes: &'a [u8]) -> postcard::Result<Items<'a, T>> {
        match Self::bulk(bytes) {
            Some(items) => Ok(items),
            None => decode_seq(bytes).map(|items| Items::Decoded(items.into_iter())),
        }
    }

    /// The items of a bulk kind, if `T` is one and `bytes` start with a count that fits.
    fn bulk(bytes: &'a [u8]) -> Option<Items<'a, T>> {
        let bulk = Bulk::<T>::of()?;
        let mut rest = bytes;
        // Every item takes a byte at least: a larger count is not this encoding.
        let left = take_varint(&mut rest).filter(|&n| n as usize <= rest.len())? as usize;
        Some(Items::Bulk {
            bulk,
            bytes: rest,
            left,
        })
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Items::Bulk { left, .. } => *left,
            Items::Decoded(items) => items.len(),
        }
    }

    /// After the last item: an error if bytes are left over (the chunk was not this encoding).
    pub(crate) fn finish(&self) -> postcard::Result<()> {
        match self {
            Items::Bulk { bytes, .. } if !bytes.is_empty() => {
                Err(postcard::Error::DeserializeBadEncoding)
            }
            _ => Ok(()),
        }
    }
}

impl<T: DeserializeOwned + 'static> Iterator for Items<'_, T> {
    type Item = postcard::Result<T>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Items::Bulk { left: 0, .. } => None,
            Items::Bulk { bulk, bytes, left } => {
                *left -= 1;
                Some(
                    bulk.take(bytes)
                        .ok_or(postcard::Error::DeserializeBadEncoding),
                )
            }
            Items::Decoded(items) => items.next().map(Ok),
        }
    }
}

/// A chunk's results as a worker makes them: a bulk kind is encoded and freed as it is pushed (the
/// allocator hands the same memory to the next result); any other type is kept and encoded at the
/// end as [`encode_seq`] does (plain numbers then go out from the results' own memory).
pub(crate) enum Results<R> {
    Bulk { bulk: Bulk<R>, out: Vec<u8> },
    Kept(Vec<R>),
}

impl<R: Serialize + 'static> Results<R> {
    /// For `n` results; `guess` is a guess of their encoded size (the inputs' size, say).
    pub(crate) fn new(n: usize, guess: usize) -> Results<R> {
        match Bulk::<R>::of() {
            Some(bulk) => {
                let mut out = Vec::with_capacity(guess + 10);
                push_varint(&mut out, n as u64);
                Results::Bulk { bulk, out }
            }
            None => Results::Kept(Vec::with_capacity(n)),
        }
    }

    /// The next result; there must be as many as `new` was told.
    #[inline]
    pub(crate) fn push(&mut self, result: R) {
        match self {
            Results::Bulk { bulk, out } => bulk.push(out, &result),
            Results::Kept(kept) => kept.push(result),
        }
    }

    /// The encoded results, given to `emit` in one or more pieces.
    pub(crate) fn finish(self, mut emit: impl FnMut(&[u8])) -> postcard::Result<()> {
        match self {
            Results::Bulk { out, .. } => emit(&out),
            Results::Kept(kept) => {
                if let Some((count, bytes)) = plain_parts(&kept) {
                    emit(count.bytes());
                    emit(bytes);
                } else {
                    emit(&encode_seq(&kept)?);
                }
            }
        }
        Ok(())
    }
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let all = *bytes;
    if let Some((&b, rest)) = all.split_first() {
        if b < 0x80 {
            *bytes = rest;
            return Some(u64::from(b));
        }
    }
    // With 8 bytes to look at (the usual case), one load: the first byte without a continuation
    // bit ends the varint, and its 7-bit groups are gathered from the word.
    if let Some(head) = all.get(..8) {
        let w = u64::from_le_bytes(head.try_into().ok()?);
        let stops = !w & 0x8080_8080_8080_8080;
        let len = if stops == 0 {
            8
        } else {
            stops.trailing_zeros() as usize / 8 + 1
        };
        let v = (w & 0x7f7f_7f7f_7f7f_7f7f) & (u64::MAX >> (64 - 8 * len));
        let mut n = 0u64;
        for group in 0..8 {
            n |= ((v >> (8 * group)) & 0x7f) << (7 * group);
        }
        if stops != 0 {
            *bytes = &all[len..];
            return Some(n);
        }
        // A 9- or 10-byte varint: 56 bits here, the rest in the next bytes.
        for (i, &b) in all[8..].iter().take(2).enumerate() {
            n |= u64::from(b & 0x7f) << (56 + 7 * i);
            if b & 0x80 == 0 {
                *bytes = &all[9 + i..];
                return Some(n);
            }
        }
        return None;
    }
    let mut n = 0u64;
    for (i, &b) in all.iter().take(10).enumerate() {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &all[i + 1..];
            return Some(n);
        }
    }
    None
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

pub(crate) fn cut_short(peer: &str) -> Error {
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

/// One frame holding `body` as it is (`Connection::send_bytes`).
pub(crate) fn encode_bytes(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(LEN + body.len());
    frame.extend_from_slice(&(body.len() as u64).to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

/// The body length a frame starts with, read from its first [`LEN`] bytes (`None`: fewer).
pub(crate) fn body_len(frame_start: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(frame_start.get(..LEN)?.try_into().ok()?))
}

/// Blocking: sends all of `bytes` on a connected socket, with `MSG_NOSIGNAL` (a peer that is gone
/// is an `EPIPE` error, not a `SIGPIPE` that would end this process).
pub(crate) fn send_all(socket: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<()> {
    use nix::sys::socket::MsgFlags;
    while !bytes.is_empty() {
        match nix::sys::socket::send(socket.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(Error::os("send", e)),
        }
    }
    Ok(())
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

/// Payloads from this size on travel through shared memory (a memfd passed over the worker's side
/// socket) rather than through the task or result pipe: the whole payload is there at once, so the
/// two processes do not hand a 1 MiB pipe back and forth hundreds of times (each hand-off waits for
/// the scheduler, which on a busy machine costs more than the copy). From 256 KiB on, the memfd
/// (written once, mapped by the reader, a spare one reused) already beats the pipe's two copies
/// and its page allocations: a map of 1M numbers (chunks of 1 MB) took 14 ms through the pipes
/// and 6-8 ms through memfds.
pub(crate) const SHARED_MIN: usize = 256 << 10;

/// A worker's side socket: a socket pair for passing memfds between the pool's parent and one
/// worker (both ends blocking, `O_CLOEXEC`). Made by the worker the first time a big payload needs
/// it ([`open_side`]), so a pool that moves only small payloads never makes one (a socket pair
/// costs the process that makes it twice a pipe's time).
fn side_channel() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::os("socketpair", e))
}

/// A pool's rendezvous: a socket pair of records (`SOCK_SEQPACKET`, `O_CLOEXEC`) made before its
/// workers are forked, through which each worker hands the parent its end of its side socket
/// ([`open_side`], [`take_side`]). Returns (the parent's end, the workers' end).
pub(crate) fn rendezvous() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::os("socketpair", e))
}

/// In a worker: makes its side socket and sends the parent's end through the pool's `rendezvous`,
/// with the worker's number (the `N` of its name `ForkPoolWorker-N`, never reused in the parent,
/// unlike a pid), in one record (several workers may send at once). Returns the worker's end. The
/// parent's end is on its way before anything is written on the side socket, so the parent finds it
/// ([`take_side`]) before it needs it.
pub(crate) fn open_side(rendezvous: BorrowedFd<'_>, number: u64) -> Result<OwnedFd> {
    let (parent_end, worker_end) = side_channel()?;
    send_with_fd(rendezvous, &number.to_le_bytes(), parent_end.as_fd())?;
    Ok(worker_end)
}

/// In the parent: the next side socket end a worker sent through `rendezvous`, with its number, or
/// `None` when none is waiting (it never blocks).
pub(crate) fn take_side(rendezvous: BorrowedFd<'_>) -> Result<Option<(u64, OwnedFd)>> {
    let mut number = [0u8; 8];
    loop {
        return match sys::recv_with_fd(rendezvous, &mut number, false) {
            Ok((8, Some(end))) => Ok(Some((u64::from_le_bytes(number), end))),
            // A record without a descriptor (or cut short) is not one of ours: skip it.
            Ok((n, _)) if n > 0 => continue,
            Ok(_) | Err(Errno::EAGAIN) => Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) => Err(Error::os("recvmsg", e)),
        };
    }
}

/// Puts `bytes` in a memfd and sends it over `socket` (SCM_RIGHTS); the receiver reads it with
/// [`recv_shared`]. The memfd is `reuse` (one the caller has read and no one else uses: a worker
/// writes a chunk's results into the memfd its inputs came in) or a new one. The memory is freed
/// once every side has closed the descriptor.
pub(crate) fn send_shared(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    reuse: Option<OwnedFd>,
) -> Result<()> {
    let made = match reuse {
        Some(fd) => sys::SharedFile::reuse(fd, bytes.len()),
        None => sys::SharedFile::new(bytes.len()),
    };
    let mut file = made.map_err(|e| Error::os("memfd", e))?;
    file.bytes_mut().copy_from_slice(bytes);
    send_fd(socket, file.into_fd().as_fd())
}

/// Sends a memfd already filled (see [`encode_chunk`]) over `socket` (SCM_RIGHTS).
pub(crate) fn send_fd(socket: BorrowedFd<'_>, memfd: BorrowedFd<'_>) -> Result<()> {
    send_with_fd(socket, b"m", memfd)
}

/// Sends `data` (not empty) and one descriptor (SCM_RIGHTS) over the Unix socket `socket`.
fn send_with_fd(socket: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(data)];
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os("sendmsg", e)),
        }
    }
}

/// Receives a memfd sent by [`send_shared`] and maps it: its bytes, without a copy, and the memfd
/// (to be reused once read, see [`Spares`]).
pub(crate) fn recv_shared(socket: BorrowedFd<'_>) -> Result<(sys::Mapping, OwnedFd)> {
    let memfd = loop {
        match sys::recv_fd(socket) {
            Ok(Some(fd)) => break std::fs::File::from(fd),
            Ok(None) => {
                return Err(Error::Disconnected {
                    peer: "the pool".into(),
                    message: "a shared payload did not arrive".into(),
                })
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::os("recvmsg", e)),
        }
    };
    let len = memfd
        .metadata()
        .map_err(|e| {
            Error::os(
                "fstat",
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })?
        .len() as usize;
    let mapping = sys::Mapping::of(memfd.as_fd(), len).map_err(|e| Error::os("mmap", e))?;
    Ok((mapping, OwnedFd::from(memfd)))
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
        grow_for(self.fd.as_fd(), self.buf.len() - self.pos);
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
    /// Bytes read and not yet handed out start at `start`; `buf.len()` is where the next read goes.
    buf: Vec<u8>,
    start: usize,
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
            if self.start > 0
                && (self.start == self.buf.len() || self.start * 2 > self.buf.capacity())
            {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            // The first pending frame is large and not all here: read the rest into its own buffer.
            if let Some(n) = self.pending_frame_len() {
                let have = self.buf.len() - self.start - LEN;
                if n >= BIG && have < n {
                    let mut body = Vec::with_capacity(n);
                    body.extend_from_slice(&self.buf[self.start + LEN..]);
                    self.start = 0;
                    self.buf.clear();
                    self.big = Some((body, n));
                    continue;
                }
            }
            // Read into the spare capacity as it is (not zero-filled first, not grown while 4 KiB
            // or more are free): right after a fork every page this process writes is copied
            // first, and zeroing 64 KiB per read cost a new pool more than its map of five tasks.
            let spare = self.buf.capacity() - self.buf.len();
            let want = if spare >= 4096 { spare } else { 64 * 1024 };
            match sys::read_append(file.as_fd(), &mut self.buf, want) {
                Ok(0) => {
                    self.file = None;
                    return Ok(());
                }
                // Short of the 4 KiB or more asked for: the pipe is empty now (a pipe hands out all
                // it holds, up to the size asked), so no second read just to hear EAGAIN.
                Ok(n) if n < sys::READ_AT_LEAST => return Ok(()),
                Ok(_) => {}
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
        let have = &self.buf[self.start..];
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
        if self.buf.len() - self.start < LEN + n {
            return None;
        }
        let body = self.buf[self.start + LEN..self.start + LEN + n].to_vec();
        self.start += LEN + n;
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
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
    fn fast_paths_write_and_read_postcards_bytes() {
        fn same<T>(items: Vec<T>)
        where
            T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
        {
            let reference = postcard::to_allocvec(&items).unwrap();
            assert_eq!(encode_seq(&items).unwrap(), reference);
            assert_eq!(decode_seq::<T>(&reference).unwrap(), items);
            // A worker's way: item by item in, result by result out, the same bytes.
            let mut read = Items::<T>::new(&reference).unwrap();
            let mut results = Results::new(read.len(), reference.len());
            for item in &mut read {
                results.push(item.unwrap());
            }
            read.finish().unwrap();
            let mut written = Vec::new();
            results
                .finish(|bytes| written.extend_from_slice(bytes))
                .unwrap();
            assert_eq!(written, reference);
        }
        same(vec![vec![], vec![1u8, 2, 3], vec![7u8; 300]]);
        same(vec![String::new(), "héllo".to_string(), "x".repeat(200)]);
        same(vec![vec![1.5f64, -0.0, f64::MAX], vec![]]);
        same(vec![vec![1.5f32; 129]]);
        same(vec![(1u64, "pair".to_string())]);
        // u8 is one raw byte in postcard too.
        same(vec![0u8, 1, 255]);
        assert!(decode_seq::<Vec<u8>>(&[5]).is_err(), "cut short");
        assert!(decode_seq::<String>(&[1, 1, 0xff]).is_err(), "not UTF-8");
        let mut bad = Items::<String>::new(&[2, 1, b'a', 1, 0xff]).unwrap();
        assert_eq!(bad.next().unwrap().unwrap(), "a");
        assert!(bad.next().unwrap().is_err(), "not UTF-8, item by item");
        let long = Items::<String>::new(&[1, 1, b'a', 0]).unwrap();
        assert!(long.count() == 1, "one item");
        let mut long = Items::<String>::new(&[1, 1, b'a', 0]).unwrap();
        long.next();
        assert!(long.finish().is_err(), "bytes left over");
    }

    #[test]
    fn plain_numbers_travel_as_their_little_endian_bytes() {
        fn round_trip<T>(items: Vec<T>)
        where
            T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Copy + 'static,
        {
            let bytes = encode_seq(&items).unwrap();
            let size = std::mem::size_of::<T>();
            assert_eq!(
                bytes.len(),
                varint_len(items.len() as u64) + items.len() * size
            );
            assert_eq!(decode_seq::<T>(&bytes).unwrap(), items);
            // Appends after what is there; a chunk one byte short or long is an error that
            // leaves the vector as it was.
            let mut out = items.clone();
            decode_seq_into(&bytes, &mut out).unwrap();
            assert_eq!(out.len(), 2 * items.len());
            let mut out = items.clone();
            assert!(decode_seq_into::<T>(&bytes[..bytes.len() - 1], &mut out).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_seq_into::<T>(&longer, &mut out).is_err());
            assert_eq!(out, items);
        }
        round_trip(vec![0u64, 1, 127, 128, 300, u64::MAX]);
        round_trip(vec![0u32, 1, 127, 128, u32::MAX]);
        round_trip(vec![0usize, 5, usize::MAX]);
        round_trip(vec![0isize, -5, isize::MIN]);
        round_trip(vec![0i64, -1, 1, -64, 64, i64::MIN, i64::MAX]);
        round_trip(vec![0i32, -1, 1, -65, i32::MIN, i32::MAX]);
        round_trip(vec![0u16, 1, u16::MAX]);
        round_trip(vec![0i16, -1, i16::MIN]);
        round_trip(vec![-1i8, 0, i8::MAX]);
        round_trip(vec![1.5f64, -0.0, f64::MAX, f64::MIN_POSITIVE]);
        round_trip(vec![1.5f32, f32::NEG_INFINITY]);
        let nan = decode_seq::<f64>(&encode_seq(&[f64::NAN]).unwrap()).unwrap();
        assert!(nan[0].is_nan());
        assert_eq!(
            encode_seq(&[1u32, 0x0102_0304]).unwrap(),
            [2, 1, 0, 0, 0, 4, 3, 2, 1]
        );
        assert_eq!(decode_seq::<u64>(&[0]).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn word_at_a_time_varints_match_postcard() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every length from 1 to 10 bytes, and the edges of each.
            let n = match i % 3 {
                0 => x >> (x % 64),
                1 => (1u64 << (i % 64)).wrapping_sub(1),
                _ => 1u64 << (i % 64),
            };
            let reference = postcard::to_allocvec(&n).unwrap();
            // Room for a whole word, and exactly the varint's room (the byte-by-byte path).
            for room in [reference.len() + 8, reference.len()] {
                let mut buf = vec![0u8; room];
                let end = put_varint(&mut buf, 0, n);
                assert_eq!(&buf[..end], &reference[..], "{n}");
                let mut rest = &buf[..];
                assert_eq!(take_varint(&mut rest), Some(n), "{n}");
                assert_eq!(rest.len(), room - end);
            }
        }
        // An 11th byte is never read: a varint whose 10th byte continues is malformed.
        let mut too_long = &[0xffu8; 12][..];
        assert_eq!(take_varint(&mut too_long), None);
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
