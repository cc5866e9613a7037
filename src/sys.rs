//! The operating-system edge: thin wrappers of system calls (`fork`, `_exit`, `pidfd_open`, `poll`,
//! signal dispositions) and the process-wide global behind the child table. The `unsafe` blocks of the
//! crate's process handling live here, each with the invariant that makes it sound (memory shared
//! between processes has its own in [`crate::shm`], the pool's function pointers in
//! `pool::function`). This module imports nothing of the crate but [`crate::error`].
//!
//! Everything above it works with safe types: [`Pid`], [`OwnedFd`], closures.

use std::io::Write;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

/// `fork(2)`. In the child, runs `child` and ends the process with `_exit` and the code it
/// returned: the child never returns into the caller (inside evcxr, that would run the kernel's own
/// code in the child). In the parent, drops `child` unrun and returns the child's pid.
pub(crate) fn fork_and_exit(child: impl FnOnce() -> i32) -> nix::Result<Pid> {
    // SAFETY: after fork only the calling thread exists in the child. The child runs `child` and then
    // `_exit`s, so it never returns into code that expects the parent's other threads. When the parent
    // had several threads, locks they held (malloc's, stdio's) may be held forever in the child; the
    // fork module warns about that once, as Python 3.12 does.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child: pid } => Ok(pid),
        ForkResult::Child => exit_now(child()),
    }
}

/// Gives the crash signals back their default action (used in a child). The evcxr runtime installs handlers
/// that print a backtrace and `abort`, so without this a child that segfaults would report exit code
/// -6 (SIGABRT) instead of Python's -11 (SIGSEGV).
pub(crate) fn restore_default_fault_signals() {
    for signal in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        restore_default_action(signal);
    }
}

/// Gives `signal` its default action again (in a just-forked child, which must not run handlers
/// installed by the program it was forked from).
pub(crate) fn restore_default_action(signal: Signal) {
    // SAFETY: SIG_DFL installs no handler of ours, so no code runs in signal context; the child
    // has a single thread at this point, so nothing races with the change.
    let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
}

/// Ignores `signal` in this process from now on.
pub(crate) fn ignore_signal(signal: Signal) {
    // SAFETY: SIG_IGN installs no handler of ours, so no code runs in signal context.
    let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn) };
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

/// Sends `signal` to the process a pidfd refers to (`pidfd_send_signal`, Linux 5.1+): unlike
/// `kill`, it can never reach another process that reused the pid.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> nix::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null siginfo pointer (the
    // kernel then fills in a plain `kill`'s) and a flags word; it reads and writes no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    Errno::result(rc).map(drop)
}

/// True when the C library knows this process never started a second thread: glibc's
/// `__libc_single_threaded` (2.32+), cleared by the first `pthread_create` and never set again
/// while threads run, so true is certain and false means "ask [`thread_count`]". One load instead
/// of a procfs lookup before every fork. False where the variable does not exist (musl, old glibc).
pub(crate) fn surely_single_threaded() -> bool {
    use std::sync::atomic::{AtomicPtr, Ordering};
    // Null: not looked up yet; `NOT_FOUND`: looked up, absent.
    static FLAG: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
    const NOT_FOUND: *mut libc::c_char = 1 as *mut libc::c_char;
    let mut flag = FLAG.load(Ordering::Relaxed);
    if flag.is_null() {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-ended name only looks the symbol up.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
        flag = if found.is_null() {
            NOT_FOUND
        } else {
            found.cast()
        };
        FLAG.store(flag, Ordering::Relaxed);
    }
    if flag == NOT_FOUND {
        return false;
    }
    // SAFETY: `flag` is the address of glibc's `char __libc_single_threaded`, a variable that lives
    // as long as the process; a volatile read of one byte.
    unsafe { std::ptr::read_volatile(flag) != 0 }
}

/// Number of threads in this process; 1 when it cannot be read.
///
/// Asked before a fork when [`surely_single_threaded`] cannot tell, so the cheap way first: procfs gives `/proc/self/task` a link count of
/// 2 + the number of threads (one `statx`, where `/proc/self/status` costs an open, a dozen reads
/// and a close). `/proc/self/status` remains the fallback if that count ever looks wrong.
pub(crate) fn thread_count() -> usize {
    use std::os::unix::fs::MetadataExt;
    if let Ok(task) = std::fs::metadata("/proc/self/task") {
        if task.nlink() >= 3 {
            return (task.nlink() - 2) as usize;
        }
    }
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

/// A process-wide value, one instance per process image shared by every copy of this crate in it
/// (evcxr links a copy into each cell, each with its own `static`s). Declare it as a `static` and
/// call [`ProcessGlobal::get`].
///
/// The instance is leaked on the heap once; its address is kept in the environment variable `var`
/// together with the image's identity (the 16 random bytes the kernel gives every `exec`, which a
/// `fork` copies: [`exec_identity`]), the size and alignment of `T`, and `version` (bump it whenever
/// `T`'s definition changes). Each copy of the crate also remembers the address in its own `static`,
/// so only its first use reads the environment. A forked child shares the stamp and has a copy of
/// the instance at the same address: it uses that copy, and the environment is written only once,
/// by the process that made the instance, never in a child: in a child of a multi-threaded parent,
/// `std::env`'s lock may have been held by another thread at the fork, and then stays held forever. `T` itself
/// notices a fork (it records its owner's pid) and resets what belonged to the parent. A program
/// started with `exec` sees another identity and makes its own. If two threads race to make the
/// first instance, one of them is lost; this crate makes it from the thread that forks, in practice
/// the notebook's main thread.
pub(crate) struct ProcessGlobal<T> {
    var: &'static str,
    version: u32,
    /// This copy's memory of the instance's address (0: not looked up yet). Valid in every process
    /// forked from the one that looked it up, since they have the instance at the same address.
    addr: AtomicUsize,
    _type: PhantomData<fn() -> T>,
}

impl<T: Sync + 'static> ProcessGlobal<T> {
    pub(crate) const fn new(var: &'static str, version: u32) -> Self {
        ProcessGlobal {
            var,
            version,
            addr: AtomicUsize::new(0),
            _type: PhantomData,
        }
    }

    /// This process image's instance, made with `make` if it has none yet.
    pub(crate) fn get(&self, make: impl FnOnce() -> T) -> &'static T {
        let mut addr = self.addr.load(Ordering::Acquire);
        if addr == 0 {
            let stamp = |addr: usize| {
                format!(
                    "{}:{addr:x}:{}:{}:{}",
                    exec_identity(),
                    std::mem::size_of::<T>(),
                    std::mem::align_of::<T>(),
                    self.version
                )
            };
            let known = std::env::var(self.var).ok().and_then(|value| {
                let addr = value
                    .split(':')
                    .nth(1)
                    .and_then(|addr| usize::from_str_radix(addr, 16).ok())?;
                (addr != 0 && value == stamp(addr)).then_some(addr)
            });
            addr = known.unwrap_or_else(|| {
                let addr = Box::leak(Box::new(make())) as *const T as usize;
                std::env::set_var(self.var, stamp(addr));
                addr
            });
            self.addr.store(addr, Ordering::Release);
        }
        // SAFETY: `addr` was read from a variable carrying this process image's identity (or
        // remembered by this copy in this image), so this image wrote it, above, with the address of
        // a `T` leaked by `Box::leak` in this process or, before a fork, in an ancestor whose memory
        // this process has a copy of: never freed, never moved, so valid for 'static. The type is
        // the same: the stamp also matches `T`'s size and alignment and the layout `version` its
        // caller bumps when `T` changes; every copy of this crate in the process is the same compiled
        // rlib (evcxr links one build into each cell), so `T` has the same layout in each. Only
        // shared references are handed out, and `T: Sync` makes sharing them between threads sound.
        unsafe { &*(addr as *const T) }
    }
}

/// The 16 random bytes the kernel gives each `exec` (`AT_RANDOM`), in hex: the same in a forked
/// child, new after `exec`.
pub(crate) fn exec_identity() -> String {
    // SAFETY: getauxval has no preconditions.
    let at_random = unsafe { libc::getauxval(libc::AT_RANDOM) } as *const [u8; 16];
    if at_random.is_null() {
        return String::from("-");
    }
    // SAFETY: the kernel puts the 16 bytes on the initial stack of every exec'd image, where they
    // stay for the process's life (and a fork copies them); AT_RANDOM points at them.
    let bytes = unsafe { *at_random };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes `name` from the environment of a just-forked child, through libc's `unsetenv`, not
/// `std::env::remove_var`: another thread of a multi-threaded parent may have held `std::env`'s lock
/// at the fork (spawning a program, say), and in the child it then stays held forever. (libc's own
/// lock is held only inside `setenv`/`unsetenv` themselves, a far smaller window.)
pub(crate) fn unsetenv_in_child(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: a valid C string. Called while the child has one thread (before its body runs), so
    // nothing reads the environment meanwhile.
    unsafe { libc::unsetenv(name.as_ptr()) };
}

/// Tells glibc's allocator to keep freed memory in this process (no trimming of the heap, no
/// separate mapping per block under 32 MiB, glibc's most), so that buffers of megabytes allocated and freed
/// over and over reuse the same pages instead of faulting in fresh zeroed ones each time. Only for
/// processes this crate owns (pool workers): it changes the allocator for the whole process.
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters, under the allocator's own lock
    // (so even a thread a task left running cannot race with it); blocks already allocated stay
    // valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

/// `poll(2)` on raw descriptors; `timeout_ms` < 0 waits without limit. Returns how many entries have
/// events (their `revents` are set). `EINTR` counts as zero events.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> nix::Result<usize> {
    // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfd structs for the whole call; poll
    // only writes their `revents`. A descriptor closed meanwhile yields POLLNVAL, not a memory error.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match Errno::result(n) {
        Ok(n) => Ok(n as usize),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Closes a descriptor by number (in a just-forked child: descriptors that belong to the parent).
pub(crate) fn close_raw(fd: RawFd) {
    let _ = nix::unistd::close(fd);
}

/// Closes every descriptor in `fds` (ascending) but those in `keep`, by number (in a just-forked
/// child: descriptors that belong to the parent or to siblings), each run of consecutive numbers
/// with one `close_range` (Linux 5.9+; one `close` per number where it is missing). Negative
/// numbers are skipped. It writes to no memory but its stack: in a new child every page written is
/// copied first, so the parent sorts the list before the fork.
pub(crate) fn close_all_raw(fds: &[RawFd], keep: &[RawFd]) {
    debug_assert!(
        fds.windows(2).all(|w| w[0] <= w[1]),
        "close_all_raw: unsorted"
    );
    let closes = |fd: RawFd| fd >= 0 && !keep.contains(&fd);
    let mut i = 0;
    while i < fds.len() {
        let first = fds[i];
        i += 1;
        if !closes(first) {
            continue;
        }
        let mut last = first;
        while i < fds.len() && fds[i] <= last + 1 && closes(fds[i]) {
            last = fds[i];
            i += 1;
        }
        // SAFETY: close_range takes two numbers and a flags word and only closes descriptors of
        // this process: every number from `first` to `last` is in the caller's list, none in `keep`.
        let closed = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                last as libc::c_uint,
                0 as libc::c_uint,
            )
        };
        if closed != 0 {
            (first..=last).for_each(close_raw);
        }
    }
}

/// `read(2)` on a descriptor known only by number (the kernel's interrupt pipe, named by an
/// environment variable).
pub(crate) fn read_raw(fd: RawFd, buf: &mut [u8]) -> nix::Result<usize> {
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes during the call; `fd` is a number
    // only: a descriptor that is not open fails with EBADF and touches nothing.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    Errno::result(n).map(|n| n as usize)
}

/// [`read_append`] asks the kernel for at least this many bytes whenever `max` is at least this
/// much: a read of a pipe that returns fewer found the pipe empty.
pub(crate) const READ_AT_LEAST: usize = 4096;

/// `read(2)` of at most `max` bytes appended to `buf` (into its spare capacity, reserved here, not
/// zero-filled first). Returns how many bytes were read; 0 at end of file.
///
/// Without room for `max` and with less than 4 KiB, it first reads up to 4 KiB into a buffer on the
/// stack: most reads
/// of the pool's result and output pipes find a few bytes or nothing, and reserving `max` for them
/// allocated (and, in a process that has just forked, faulted in) 64 KiB per pipe. Only a read that
/// fills the stack buffer makes room for `max` for the next one.
pub(crate) fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> nix::Result<usize> {
    const SMALL: usize = READ_AT_LEAST;
    let spare = buf.capacity() - buf.len();
    if spare < max && spare < SMALL {
        let mut small = [0u8; SMALL];
        let want = max.min(SMALL);
        let n = read_raw(fd.as_raw_fd(), &mut small[..want])?;
        buf.extend_from_slice(&small[..n]);
        if n == SMALL && max > SMALL {
            buf.reserve(max - SMALL);
        }
        return Ok(n);
    }
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let want = max.min(spare.len());
    // SAFETY: the pointer and length describe `buf`'s spare capacity, valid and writable for `want`
    // bytes during the call; read only writes into it.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
    let n = Errno::result(n)? as usize;
    // SAFETY: read initialised the first `n` (<= want) bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// In a just-forked grandchild that must outlive its creator (see `fork::spawn_detached`): a
/// session of its own (a signal to the creator's process group misses it), stdin, stdout and stderr
/// on `/dev/null`, `keep` moved to descriptor 3 and every other descriptor closed. Returns
/// descriptor 3. The caller must end the process with [`exit_now`] and never use a descriptor it
/// owned before (they are closed now).
pub(crate) fn detach_keeping(keep: RawFd) -> BorrowedFd<'static> {
    let _ = nix::unistd::setsid();
    // SAFETY: plain descriptor calls in a single-threaded process (a fresh fork) that never returns
    // into code owning these descriptors: the OwnedFds still in memory are never used again, because
    // the caller ends the process with `_exit` (documented above).
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
        // Descriptor 3 is open (dup2 above, or `keep` was 3) and nothing closes it before `_exit`.
        BorrowedFd::borrow_raw(3)
    }
}

/// Plain numbers: no padding, every bit pattern valid (so their memory is their little-endian bytes
/// on the targets where the wire uses it, and any bytes of the right length are one of them).
pub(crate) trait Plain: Copy + 'static {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}
impl Plain for usize {}
impl Plain for i8 {}
impl Plain for i16 {}
impl Plain for i32 {}
impl Plain for i64 {}
impl Plain for isize {}
impl Plain for f32 {}
impl Plain for f64 {}

/// The bytes of a slice of plain numbers, in memory order.
pub(crate) fn plain_bytes<P: Plain>(v: &[P]) -> &[u8] {
    // SAFETY: a `Plain` type has no padding, so every byte of `v` is initialised; the byte slice
    // covers exactly the memory of `v` (size_of_val) and borrows it for the same lifetime.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// `a` as a `B` when `A` is `B` (a generic caller's fast path for one concrete type); else `a` back.
pub(crate) fn same<A: 'static, B: 'static>(a: A) -> std::result::Result<B, A> {
    if std::any::TypeId::of::<A>() != std::any::TypeId::of::<B>() {
        return Err(a);
    }
    let a = std::mem::ManuallyDrop::new(a);
    // SAFETY: `A` and `B` are the same type (equal `TypeId`s), so the bytes of `a` are a valid `B`;
    // `a` is not dropped (ManuallyDrop), so the value moves into the `B` exactly once.
    Ok(unsafe { std::mem::transmute_copy::<A, B>(&a) })
}

/// `items` as a slice of `P`, when `T` is `P` (a generic caller's fast path for plain numbers).
pub(crate) fn as_plain<T: 'static, P: Plain>(items: &[T]) -> Option<&[P]> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<P>() {
        return None;
    }
    // SAFETY: `T` and `P` are the same type (equal `TypeId`s), so the pointer and length describe
    // the same memory with the same layout, borrowed for the same lifetime.
    Some(unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<P>(), items.len()) })
}

/// Appends the numbers whose bytes (in memory order) are `bytes` to `out`, in one copy; a last
/// partial number is ignored (callers check the length).
pub(crate) fn extend_plain<P: Plain>(out: &mut Vec<P>, bytes: &[u8]) {
    let n = bytes.len() / std::mem::size_of::<P>();
    out.reserve(n);
    // SAFETY: after `reserve`, `out` has room for `n` more items past its length; we copy exactly
    // `n * size_of::<P>()` bytes there from `bytes` (which holds at least that many, and cannot
    // overlap `out`'s spare capacity, which no one else can borrow). Every bit pattern is a valid
    // `P` (`Plain`), so the `n` items are initialised when `set_len` counts them.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            out.as_mut_ptr().add(out.len()).cast::<u8>(),
            n * std::mem::size_of::<P>(),
        );
        out.set_len(out.len() + n);
    }
}

/// Receives one payload memfd sent with SCM_RIGHTS over the Unix socket `socket` (blocking), with
/// close-on-exec set. `None` when the message carried none (or the peer closed).
pub(crate) fn recv_fd(socket: BorrowedFd<'_>) -> nix::Result<Option<OwnedFd>> {
    let (_, received) = recv_with_fd(socket, &mut [0u8; 1], true)?;
    if received.is_some() {
        note_payload_memfds();
    }
    Ok(received)
}

/// Receives one message over the Unix socket `socket`: up to `data.len()` bytes into `data`, and
/// the first descriptor it carried (SCM_RIGHTS), with close-on-exec set. With `wait` false it
/// fails with `EAGAIN` when no message is queued. Returns the bytes received and the descriptor.
pub(crate) fn recv_with_fd(
    socket: BorrowedFd<'_>,
    data: &mut [u8],
    wait: bool,
) -> nix::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [std::io::IoSliceMut::new(data)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if !wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)?;
    let len = msg.bytes;
    let mut received = None;
    for m in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = m {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in this process for this message
                // (SCM_RIGHTS); nothing else refers to it, so it is ours to own and close.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if received.is_none() {
                    received = Some(owned);
                }
            }
        }
    }
    Ok((len, received))
}

/// A read-only, private mapping of a whole file (a memfd holding a payload): its bytes without a
/// copy. Unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Mapping {
    addr: std::ptr::NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps all `len` bytes of `fd` read-only. `len` 0 gives an empty mapping without a system call.
    pub(crate) fn of(fd: BorrowedFd<'_>, len: usize) -> nix::Result<Mapping> {
        if len == 0 {
            return Ok(Mapping {
                addr: std::ptr::NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: a new mapping at an address the kernel picks; it touches no existing memory. The
        // file is a memfd nobody writes any more (the sender wrote it fully before passing it), and
        // MAP_PRIVATE would keep our view stable even if someone did.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Mapping {
            addr: std::ptr::NonNull::new(addr.cast()).ok_or(Errno::EFAULT)?,
            len,
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `addr` is mapped readable for `len` bytes while `self` lives (or dangling with
        // len 0, which from_raw_parts allows for an aligned non-null pointer).
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: mapped by `of` with this length; borrows of its bytes end with `&self`.
            unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len) };
        }
    }
}

// SAFETY: the mapping is read-only memory not tied to a thread.
unsafe impl Send for Mapping {}

/// The name of every memfd [`SharedFile::new`] makes (`/proc/<pid>/fd` shows `/memfd:<name>`), by
/// which a forked child finds the payload memfds it inherited ([`release_payload_memfds`]).
const PAYLOAD_MEMFD: &str = "multiprocessing-payload";

/// Whether this process may hold payload memfds: set when it makes one ([`SharedFile::new`]) or
/// receives one ([`recv_fd`]), cleared in a child once it released what it inherited. Lets a fork
/// skip the `/proc/self/fd` scan (~1 µs a descriptor) in a process that never moved a big payload.
static PAYLOAD_MEMFDS: ProcessGlobal<std::sync::atomic::AtomicBool> =
    ProcessGlobal::new("RUST_MULTIPROCESSING_MEMFDS", 1);

fn payload_memfds_flag() -> &'static std::sync::atomic::AtomicBool {
    PAYLOAD_MEMFDS.get(|| std::sync::atomic::AtomicBool::new(false))
}

fn note_payload_memfds() {
    payload_memfds_flag().store(true, Ordering::Relaxed);
}

/// A descriptor as it was when noted: its number and the file it referred to (device and inode).
/// A closed number is reused by the next `open`, so before acting on a noted number in a later
/// process, [`release_in_child`] checks that it still refers to the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdId {
    fd: RawFd,
    dev: u64,
    ino: u64,
}

impl FdId {
    /// Notes `fd` as it is now (`None` if `fstat` fails, which an open descriptor does not).
    pub(crate) fn of(fd: BorrowedFd<'_>) -> Option<FdId> {
        let stat = nix::sys::stat::fstat(fd).ok()?;
        Some(FdId {
            fd: fd.as_raw_fd(),
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// The number still refers to the file it was noted with.
    fn still_same(&self) -> bool {
        // SAFETY: fstat only reads the descriptor table entry (EBADF if the number is closed) and
        // writes into `stat`, a local of the right type.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::fstat(self.fd, &mut stat) } == 0;
        ok && stat.st_dev == self.dev && stat.st_ino == self.ino
    }
}

/// In a just-forked child that released (or never had) the payload memfds of its parent: it holds
/// none until it makes or receives one.
pub(crate) fn forget_payload_memfds_in_child() {
    payload_memfds_flag().store(false, Ordering::Relaxed);
}

/// In a just-forked child: releases descriptors it inherited but has no use for (its parent's
/// ends of pipes and sockets to other children, payload memfds of the parent's pools), so the files
/// behind them are not held open by this process. Each number that still refers to the file it
/// was noted with is pointed at `/dev/null` rather than closed: a copy of the parent's value that
/// owns it (a `Pool` captured by the child's closure) may still close it, and a closed number could
/// meanwhile belong to a descriptor this child opened.
pub(crate) fn release_in_child(fds: impl IntoIterator<Item = FdId>) {
    let mut null = None;
    for id in fds {
        if !id.still_same() {
            continue;
        }
        // SAFETY: plain descriptor calls. `null` is our own descriptor (closed below); dup2 onto
        // `id.fd`, an open descriptor (checked above) that nothing in this process reads or writes
        // (the caller's contract), keeps its number open, so its owner's later close is sound.
        unsafe {
            let null = *null.get_or_insert_with(|| {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC)
            });
            if null >= 0 {
                libc::dup3(null, id.fd, libc::O_CLOEXEC);
            }
        }
    }
    if let Some(null) = null.filter(|fd| *fd >= 0) {
        // SAFETY: opened above, owned by nothing else.
        unsafe { libc::close(null) };
    }
}

/// The payload memfds ([`SharedFile`]) this process holds, for a child about to be forked to
/// [`release_in_child`] (found in the parent, where procfs already has an entry per descriptor: in
/// a new child it builds them first, ~3 µs each). Empty without a scan in a process that never
/// made or received one. They belong to the parent's pools (spares kept for reuse, chunks in
/// flight): a pool is of no use in another process (`PoolOfAnotherProcess`), and a new pool makes
/// its own after the fork.
pub(crate) fn payload_memfds() -> Vec<FdId> {
    if !payload_memfds_flag().load(Ordering::Relaxed) {
        return Vec::new();
    }
    scan_payload_memfds()
}

/// The scan behind [`payload_memfds`], a function of its own: its buffers make a frame of over
/// a page, which the stack probe touches on entry (after a fork, a page copy) even when the flag
/// says there is nothing to scan.
#[inline(never)]
fn scan_payload_memfds() -> Vec<FdId> {
    let wanted = format!("/memfd:{PAYLOAD_MEMFD} (deleted)");
    let mut found = Vec::new();
    // Raw calls into stack buffers (half the time of `std::fs::read_dir` + `read_link`).
    // SAFETY: `dir` is our own descriptor, closed at the end; getdents64 writes at most `buf.len()`
    // bytes into `buf`, a local, and returns how many; each record it wrote starts with the
    // kernel's `linux_dirent64` header (d_reclen at byte 16, the name from byte 19, NUL-ended),
    // read here with bounds checks against what was written; fstat and readlinkat write only into
    // locals of the sizes given.
    unsafe {
        let dir = libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if dir < 0 {
            return found;
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            let n = n as usize;
            let mut at = 0;
            while at + 19 < n {
                let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                if reclen == 0 || at + reclen > n {
                    break;
                }
                let name = &buf[at + 19..at + reclen];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                at += reclen;
                let Some(fd) = std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| n.parse::<RawFd>().ok())
                else {
                    continue;
                };
                if fd == dir {
                    continue;
                }
                // A memfd is a regular file linked in no directory: one `fstat` (~0.3 µs) rules
                // out the rest (pipes, sockets, named files) before `readlinkat` names it.
                let mut stat: libc::stat = std::mem::zeroed();
                if libc::fstat(fd, &mut stat) != 0
                    || stat.st_mode & libc::S_IFMT != libc::S_IFREG
                    || stat.st_nlink != 0
                {
                    continue;
                }
                // `name` is the descriptor's number (at most 10 digits), NUL-ended here.
                let mut path = [0u8; 16];
                path[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
                let mut target = [0u8; 64];
                let len = libc::readlinkat(
                    dir,
                    path.as_ptr().cast(),
                    target.as_mut_ptr().cast(),
                    target.len(),
                );
                if len > 0 && &target[..len as usize] == wanted.as_bytes() {
                    found.push(FdId {
                        fd,
                        dev: stat.st_dev,
                        ino: stat.st_ino,
                    });
                }
            }
        }
        libc::close(dir);
    }
    found
}

/// A new memfd of `len` bytes, mapped shared and writable: fill it through [`SharedFile::bytes_mut`],
/// then pass [`SharedFile::into_fd`] to another process, which maps it with [`Mapping::of`].
#[derive(Debug)]
pub(crate) struct SharedFile {
    fd: OwnedFd,
    addr: std::ptr::NonNull<u8>,
    len: usize,
}

impl SharedFile {
    pub(crate) fn new(len: usize) -> nix::Result<SharedFile> {
        use nix::sys::memfd::{memfd_create, MFdFlags};
        let fd = memfd_create(PAYLOAD_MEMFD, MFdFlags::MFD_CLOEXEC)?;
        note_payload_memfds();
        SharedFile::reuse(fd, len)
    }

    /// A memfd made by [`SharedFile::new`] and passed on before, whose reader is done with it, sized
    /// to `len` and mapped again: the pages it already has are written over, not allocated and
    /// zeroed anew (most of the cost of moving a big payload through a fresh memfd).
    pub(crate) fn reuse(fd: OwnedFd, len: usize) -> nix::Result<SharedFile> {
        nix::unistd::ftruncate(&fd, len as libc::off_t)?;
        // SAFETY: a new shared mapping of our own new memfd, `len` bytes (its size, set above), at
        // an address the kernel picks; it touches no existing memory.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                // Populate: allocate every page in one go rather than one fault per 4 KiB.
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(SharedFile {
            fd,
            addr: std::ptr::NonNull::new(addr.cast()).ok_or(Errno::EFAULT)?,
            len,
        })
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: mapped readable and writable for `len` bytes while `self` lives; `&mut self` makes
        // this the only borrow of it in this process (nobody else has the fd yet).
        unsafe { std::slice::from_raw_parts_mut(self.addr.as_ptr(), self.len) }
    }

    /// Unmaps this process's view and returns the memfd (its contents stay).
    pub(crate) fn into_fd(self) -> OwnedFd {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: mapped by `new` with this length; `this` is never used again, and its fd is moved
        // out exactly once (ManuallyDrop: no double close).
        unsafe {
            libc::munmap(this.addr.as_ptr().cast(), this.len.max(1));
            std::ptr::read(&this.fd)
        }
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        // SAFETY: mapped by `new` with this length; borrows end with `&mut self`.
        unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len.max(1)) };
    }
}
