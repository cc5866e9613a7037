//! Memory shared between forked processes: guarded by a process-shared robust mutex, what [`Lock`],
//! [`Value`] and [`Queue`] are built on, or plain atomic words ([`SharedWords`]), how a pool worker
//! tells its parent which task it runs. Every `unsafe` block of those types lives here, each with the
//! invariant that makes it sound.
//!
//! A [`Shared<T>`] is one anonymous `MAP_SHARED` mapping holding a glibc `pthread_mutex_t` (set up
//! `PTHREAD_PROCESS_SHARED`, `PTHREAD_MUTEX_ROBUST`, `PTHREAD_MUTEX_ERRORCHECK`), the pid of its
//! holder, a counter and a `T`. A forked child inherits the mapping at the same address, so parent
//! and children see the same bytes; each process unmaps its own view when its last handle drops.
//!
//! Robust: when the holder dies (killed, or `_exit` while holding), the kernel marks the mutex and
//! the next locker gets it with `EOWNERDEAD` ([`Acquired::OwnerDied`]); unless that locker calls
//! [`SharedGuard::make_consistent`], unlocking makes the mutex unusable for good
//! ([`Acquired::Unrecoverable`]). Error-checking: the thread that holds it gets `EDEADLK`
//! ([`Acquired::Deadlock`]) instead of hanging when it locks again.
//!
//! [`Lock`]: crate::Lock
//! [`Value`]: crate::Value
//! [`Queue`]: crate::Queue

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::wait;

/// The layout of a mapping. `repr(C)`: the same in every process (they all run the same code anyway).
#[repr(C)]
struct Slot<T> {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    /// Pid of the process holding the mutex, 0 when free (written by the holder only).
    holder: AtomicI32,
    /// A counter for the owner type's own use (the queue's item count).
    count: AtomicI64,
    /// Read and written only by the mutex's holder.
    value: UnsafeCell<T>,
}

/// A `T` in memory shared with every process forked after it was made, behind a robust mutex.
///
/// `T` must mean the same in every process (no pointers into one process's heap): the public types
/// only put [`Shareable`](crate::Shareable) values or `bool`s in here.
pub(crate) struct Shared<T: Copy> {
    slot: NonNull<Slot<T>>,
}

// SAFETY: the mapping is not tied to a thread; `value` is only reached through a `SharedGuard`,
// i.e. while holding the mutex, exactly like `std::sync::Mutex<T>`, which is Send + Sync for T: Send.
unsafe impl<T: Copy + Send> Send for Shared<T> {}
// SAFETY: as above; `holder` and `count` are atomics.
unsafe impl<T: Copy + Send> Sync for Shared<T> {}

/// How long [`Shared::lock`] may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Until the mutex is free.
    Forever,
    /// Not at all (`trylock`).
    No,
    /// Until this instant.
    Until(Instant),
}

/// What [`Shared::lock`] got.
pub(crate) enum Acquired<'a, T: Copy> {
    /// The mutex is ours.
    Locked(SharedGuard<'a, T>),
    /// The mutex is ours, but the process that held it (pid, 0 if unknown) died holding it: the
    /// value may be half-updated. Call [`SharedGuard::make_consistent`] to keep using the mutex.
    OwnerDied(SharedGuard<'a, T>, i32),
    /// Held by someone else until the wait ended.
    Busy,
    /// This thread already holds it.
    Deadlock,
    /// A locker after a dead holder did not make it consistent: unusable for good.
    Unrecoverable,
}

/// Maps `len` bytes of anonymous shared memory: zero-filled, page-aligned, and seen at the same
/// address by every process forked after this call.
fn map_shared(len: usize) -> Result<NonNull<u8>> {
    // SAFETY: a new anonymous shared mapping at an address the kernel picks; it touches no existing
    // memory. The kernel fills it with zeros.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(Error::os("mmap", Errno::last()));
    }
    Ok(NonNull::new(addr.cast::<u8>()).expect("mmap never returns null on success"))
}

/// Words of anonymous shared memory read and written only as atomics: what a pool worker uses to tell
/// its parent which task it is running (so that when it dies the parent can name the task).
#[derive(Debug)]
pub(crate) struct SharedWords {
    words: NonNull<u64>,
    len: usize,
}

// SAFETY: the mapping is not tied to a thread and is only accessed through atomics.
unsafe impl Send for SharedWords {}
// SAFETY: as above.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Maps `len` words, all zero.
    pub(crate) fn new(len: usize) -> Result<Self> {
        let words = map_shared(len * 8)?.cast::<u64>();
        Ok(SharedWords { words, len })
    }

    /// How many words.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Word `index`, as an atomic. Panics if `index` is out of range (a bug of this crate).
    pub(crate) fn word(&self, index: usize) -> &AtomicU64 {
        assert!(index < self.len, "shared word {index} of {}", self.len);
        // SAFETY: in range (checked above), mapped for as long as `self` lives, 8-byte aligned (the
        // mapping is page-aligned), and only ever accessed through atomics.
        unsafe { AtomicU64::from_ptr(self.words.as_ptr().add(index)) }
    }

    /// The address of word `index`, for code that takes a raw pointer (a trampoline in a later evcxr
    /// cell, compiled against its own copy of this crate). Valid while `self` lives.
    pub(crate) fn word_ptr(&self, index: usize) -> *mut u64 {
        self.word(index).as_ptr()
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: mapped by `new` with this length; nothing borrows it any more (borrows of words
        // end with `&self`). Other processes' views are their own.
        unsafe { libc::munmap(self.words.as_ptr().cast(), self.len * 8) };
    }
}

impl<T: Copy> Shared<T> {
    /// Maps a new shared region holding `value` and an unlocked mutex.
    pub(crate) fn new(value: T) -> Result<Self> {
        let len = std::mem::size_of::<Slot<T>>();
        if std::mem::align_of::<Slot<T>>() > 4096 {
            return Err(Error::InvalidArgument {
                name: "value type",
                value: format!("alignment {}", std::mem::align_of::<T>()),
                fix: "use a type aligned to at most 4096 bytes",
            });
        }
        let slot = map_shared(len)?.cast::<Slot<T>>();
        let addr = slot.as_ptr().cast::<libc::c_void>();
        // SAFETY: the mapping is `len` = size_of::<Slot<T>>() bytes, page-aligned (so aligned for
        // Slot<T>, checked above), writable, and nobody else can see it yet (no fork since). `holder`
        // and `count` are already valid (zero bytes are a valid AtomicI32/AtomicI64); `value` is
        // written once here, without reading the zeros; the mutex is initialised in place, where it
        // stays: a pthread mutex must not move after init, and the mapping never moves.
        unsafe {
            std::ptr::write(
                UnsafeCell::raw_get(std::ptr::addr_of!((*slot.as_ptr()).value)),
                value,
            );
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            let mut rc = libc::pthread_mutexattr_init(&mut attr);
            if rc == 0 {
                rc = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            }
            if rc == 0 {
                rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            }
            if rc == 0 {
                rc = libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK);
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(
                    UnsafeCell::raw_get(std::ptr::addr_of!((*slot.as_ptr()).mutex)),
                    &attr,
                );
            }
            libc::pthread_mutexattr_destroy(&mut attr);
            if rc != 0 {
                libc::munmap(addr, len);
                return Err(Error::os("pthread_mutex_init", Errno::from_raw(rc)));
            }
        }
        Ok(Shared { slot })
    }

    fn slot(&self) -> &Slot<T> {
        // SAFETY: the mapping stays mapped while `self` lives (Drop unmaps it) and holds an
        // initialised Slot<T> (written by `new`). Shared references only: the mutex and value are
        // behind UnsafeCell, the other fields are atomics.
        unsafe { self.slot.as_ref() }
    }

    /// The counter in the mapping, shared by every process (for the owner type's own bookkeeping).
    pub(crate) fn count(&self) -> &AtomicI64 {
        &self.slot().count
    }

    /// Pid of the process holding the mutex now, 0 if none (a snapshot).
    pub(crate) fn holder(&self) -> i32 {
        self.slot().holder.load(Ordering::Relaxed)
    }

    /// Locks the mutex, waiting as `wait` says. It waits in the waiting core ([`crate::wait`]):
    /// `timedlock` slices of [`wait::SLICE`], and between them children's output is relayed (a child
    /// that prints a lot while it holds the lock never blocks on a full output pipe while this
    /// process waits for it) and the kernel's interrupt is seen ([`Error::Interrupted`], naming
    /// `what`; nothing is locked then).
    pub(crate) fn lock(&self, wait: Wait, what: &'static str) -> Result<Acquired<'_, T>> {
        let deadline = match wait {
            Wait::No => return self.lock_once(Wait::No),
            Wait::Forever => None,
            Wait::Until(deadline) => Some(deadline),
        };
        // Uncontended: no waiting core at all.
        match self.lock_once(Wait::No)? {
            Acquired::Busy => {}
            other => return Ok(other),
        }
        struct Mutex<'a, T: Copy> {
            shared: &'a Shared<T>,
            deadline: Option<Instant>,
            what: &'static str,
        }
        impl<'a, T: Copy> wait::Waiter for Mutex<'a, T> {
            type Output = Acquired<'a, T>;
            fn check(&mut self, _: &wait::Fds) -> Result<Option<Acquired<'a, T>>> {
                let slice_end = Instant::now() + wait::SLICE;
                let until = self.deadline.map_or(slice_end, |d| d.min(slice_end));
                match self.shared.lock_once(Wait::Until(until))? {
                    Acquired::Busy if self.deadline.map_or(true, |d| Instant::now() < d) => {
                        Ok(None)
                    }
                    other => Ok(Some(other)),
                }
            }
            fn watch(&self, _: &mut wait::Fds) {}
            fn slice(&self) -> Option<Duration> {
                Some(Duration::ZERO)
            }
            fn interrupted(&mut self) -> Error {
                Error::Interrupted {
                    waiting_for: self.what.into(),
                    state: "it was not acquired: acquire it again to keep waiting".into(),
                }
            }
        }
        let mut waiter = Mutex {
            shared: self,
            deadline,
            what,
        };
        Ok(wait::until(&mut waiter, deadline)?.unwrap_or(Acquired::Busy))
    }

    fn lock_once(&self, wait: Wait) -> Result<Acquired<'_, T>> {
        let mutex = self.slot().mutex.get();
        let rc = match wait {
            // SAFETY: `mutex` points to a mutex initialised by `new`, in a mapping alive for `self`.
            Wait::Forever => unsafe { libc::pthread_mutex_lock(mutex) },
            // SAFETY: as above.
            Wait::No => unsafe { libc::pthread_mutex_trylock(mutex) },
            Wait::Until(deadline) => {
                let abs = SystemTime::now()
                    .checked_add(deadline.saturating_duration_since(Instant::now()))
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
                match abs {
                    // Beyond what SystemTime holds: wait without limit.
                    None => return self.lock_once(Wait::Forever),
                    Some(abs) => {
                        let ts = libc::timespec {
                            tv_sec: abs.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                            tv_nsec: abs.subsec_nanos() as _,
                        };
                        // SAFETY: as above; `ts` lives on our stack for the call.
                        unsafe { libc::pthread_mutex_timedlock(mutex, &ts) }
                    }
                }
            }
        };
        let me = std::process::id() as i32;
        let guard = || SharedGuard {
            shared: self,
            _not_send: PhantomData,
        };
        Ok(match rc {
            0 => {
                self.slot().holder.store(me, Ordering::Relaxed);
                Acquired::Locked(guard())
            }
            libc::EOWNERDEAD => {
                let dead = self.slot().holder.swap(me, Ordering::Relaxed);
                Acquired::OwnerDied(guard(), dead)
            }
            libc::EBUSY | libc::ETIMEDOUT => Acquired::Busy,
            libc::EDEADLK => Acquired::Deadlock,
            libc::ENOTRECOVERABLE => Acquired::Unrecoverable,
            rc => return Err(Error::os("pthread_mutex_lock", Errno::from_raw(rc))),
        })
    }
}

impl<T: Copy> Drop for Shared<T> {
    fn drop(&mut self) {
        // A guard of this process that was leaked (mem::forget) still holds the mutex, which is then
        // on this thread's robust list: at thread exit the kernel would write into that address.
        // Keep the page mapped in that case (a page leaked, never a wild write).
        if self.holder() == std::process::id() as i32 {
            return;
        }
        // SAFETY: nothing borrows the mapping any more (guards borrow `self`); the mutex is not held
        // by this process (checked above), so no robust list of ours points into it. Other processes'
        // mappings are their own. `T: Copy` has no destructor to run.
        unsafe {
            libc::munmap(self.slot.as_ptr().cast(), std::mem::size_of::<Slot<T>>());
        }
    }
}

/// The mutex of a [`Shared`], held: gives the value; unlocks when dropped. Not `Send`: a pthread
/// mutex must be unlocked by the thread that locked it.
pub(crate) struct SharedGuard<'a, T: Copy> {
    shared: &'a Shared<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Copy> SharedGuard<'_, T> {
    /// After [`Acquired::OwnerDied`]: declares the value fine, so the mutex stays usable.
    pub(crate) fn make_consistent(&self) {
        // SAFETY: we hold the mutex (a guard exists only while it is held), initialised by `new`.
        unsafe { libc::pthread_mutex_consistent(self.shared.slot().mutex.get()) };
    }
}

impl<T: Copy> Deref for SharedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex, so no other thread or process touches the value; the
        // value was initialised by `new`. The borrow is tied to the guard.
        unsafe { &*self.shared.slot().value.get() }
    }
}

impl<T: Copy> DerefMut for SharedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow through this guard, and
        // there is one guard at a time (the mutex is not recursive: EDEADLK on a second lock).
        unsafe { &mut *self.shared.slot().value.get() }
    }
}

impl<T: Copy> Drop for SharedGuard<'_, T> {
    fn drop(&mut self) {
        self.shared.slot().holder.store(0, Ordering::Relaxed);
        // SAFETY: this thread holds the mutex (the guard exists), initialised by `new`.
        unsafe { libc::pthread_mutex_unlock(self.shared.slot().mutex.get()) };
    }
}

/// A word of shared memory that processes wait on until another process "rings" it: the sleeping
/// half of [`Event`](crate::Event), [`Semaphore`](crate::Semaphore), [`Condition`](crate::Condition)
/// and [`Barrier`](crate::Barrier). A waiter reads [`Doorbell::rung`] while it holds the state's
/// mutex, unlocks, then [`Doorbell::sleep`]s; a ringer changes the state under the mutex, then rings.
/// So a ring between the unlock and the sleep is never lost: the word differs and the sleep returns
/// at once (the futex compares the word with what was read before sleeping).
pub(crate) struct Doorbell {
    word: NonNull<AtomicU32>,
}

// SAFETY: the mapping is not tied to a thread and is only accessed through an atomic.
unsafe impl Send for Doorbell {}
// SAFETY: as above.
unsafe impl Sync for Doorbell {}

impl Doorbell {
    /// Maps a new doorbell (one page).
    pub(crate) fn new() -> Result<Self> {
        Ok(Doorbell {
            word: map_shared(std::mem::size_of::<AtomicU32>())?.cast(),
        })
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: mapped by `new` for as long as `self` lives; zero bytes are a valid AtomicU32;
        // page-aligned; only ever accessed as an atomic.
        unsafe { self.word.as_ref() }
    }

    /// How many times it was rung so far (wrapping): pass it to [`sleep`](Doorbell::sleep).
    pub(crate) fn rung(&self) -> u32 {
        self.word().load(Ordering::SeqCst)
    }

    /// Rings: wakes every process sleeping on it.
    pub(crate) fn ring(&self) {
        self.word().fetch_add(1, Ordering::SeqCst);
        // SAFETY: FUTEX_WAKE on a word of a mapping alive for `self`; it reads no other memory.
        // Not FUTEX_PRIVATE: the word is shared between processes.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0,
            )
        };
    }

    /// Sleeps until the bell is rung after `seen` was read, or `timeout` passes (or a signal comes).
    pub(crate) fn sleep(&self, seen: u32, timeout: Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: FUTEX_WAIT on a word of a mapping alive for `self`, with a relative timeout on our
        // stack; the kernel compares the word with `seen` and sleeps only if equal.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAIT,
                seen,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0,
            )
        };
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        // SAFETY: mapped by `new` with this length; borrows of the word end with `&self`.
        unsafe { libc::munmap(self.word.as_ptr().cast(), std::mem::size_of::<AtomicU32>()) };
    }
}

/// A fixed-length slice of `T` in anonymous shared memory, with no lock of its own: the storage of
/// [`RawArray`](crate::RawArray) (read and written element by element, volatile) and, paired with a
/// [`Shared<()>`] as its lock, of [`Array`](crate::Array).
pub(crate) struct RawSlice<T: Copy> {
    data: NonNull<T>,
    len: usize,
}

// SAFETY: the mapping is not tied to a thread; elements are `Copy` values without pointers (the
// public types require `Shareable`), read and written whole with volatile accesses or under a lock.
unsafe impl<T: Copy + Send> Send for RawSlice<T> {}
// SAFETY: as above.
unsafe impl<T: Copy + Send> Sync for RawSlice<T> {}

impl<T: Copy> RawSlice<T> {
    fn bytes(len: usize) -> usize {
        (len * std::mem::size_of::<T>()).max(1)
    }

    /// Maps `len` elements, each `fill`.
    pub(crate) fn new(len: usize, fill: T) -> Result<Self> {
        if std::mem::align_of::<T>() > 4096 || len.checked_mul(std::mem::size_of::<T>()).is_none() {
            return Err(Error::InvalidArgument {
                name: "array length",
                value: len.to_string(),
                fix: "use a length whose size in bytes fits in memory, of a type aligned to at most 4096 bytes",
            });
        }
        let data = map_shared(Self::bytes(len))?.cast::<T>();
        for i in 0..len {
            // SAFETY: in bounds of a fresh mapping of `len` elements, page-aligned (so aligned for T);
            // nobody else sees it yet.
            unsafe { data.as_ptr().add(i).write(fill) };
        }
        Ok(RawSlice { data, len })
    }

    /// A slice of no elements.
    pub(crate) fn empty() -> Result<Self> {
        Ok(RawSlice {
            data: map_shared(1)?.cast::<T>(),
            len: 0,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Reads element `i` (volatile: another process may write it at any time). Panics out of bounds.
    pub(crate) fn read(&self, i: usize) -> T {
        assert!(
            i < self.len,
            "index {i} out of range for a shared array of length {}",
            self.len
        );
        // SAFETY: in bounds (checked), aligned, mapped while `self` lives. Volatile because another
        // process may write concurrently; every byte pattern of a `Shareable` T is valid, so a torn
        // read still gives a valid T.
        unsafe { self.data.as_ptr().add(i).read_volatile() }
    }

    /// Writes element `i` (volatile). Panics out of bounds.
    pub(crate) fn write(&self, i: usize, value: T) {
        assert!(
            i < self.len,
            "index {i} out of range for a shared array of length {}",
            self.len
        );
        // SAFETY: as in `read`; a volatile write of a Copy value with no destructor.
        unsafe { self.data.as_ptr().add(i).write_volatile(value) }
    }
}

impl<T: Copy> Drop for RawSlice<T> {
    fn drop(&mut self) {
        // SAFETY: mapped by `new` with this length; borrows end with `&self`.
        unsafe { libc::munmap(self.data.as_ptr().cast(), Self::bytes(self.len)) };
    }
}

/// A [`RawSlice`] whose every access goes through one [`Shared<()>`] mutex (an `Array`'s lock).
pub(crate) struct LockedSlice<T: Copy> {
    lock: Shared<()>,
    data: RawSlice<T>,
}

/// The mutex of a [`LockedSlice`], held: the elements as a slice. Not `Send` (see [`SharedGuard`]).
pub(crate) struct SliceGuard<'a, T: Copy> {
    _held: SharedGuard<'a, ()>,
    data: &'a RawSlice<T>,
}

impl<T: Copy> LockedSlice<T> {
    pub(crate) fn new(len: usize, fill: T) -> Result<Self> {
        Ok(LockedSlice {
            lock: Shared::new(())?,
            data: RawSlice::new(len, fill)?,
        })
    }

    /// A locked slice of no elements.
    pub(crate) fn empty() -> Result<Self> {
        Ok(LockedSlice {
            lock: Shared::new(())?,
            data: RawSlice::empty()?,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len
    }

    /// The lock guarding the elements (its holder, for `Debug`).
    pub(crate) fn mutex(&self) -> &Shared<()> {
        &self.lock
    }

    /// Locks (waiting as [`Shared::lock`] does; a dead holder's lock is made consistent: elements
    /// are plain numbers) and gives the elements.
    pub(crate) fn lock_slice(&self) -> Result<SliceGuard<'_, T>> {
        loop {
            match self.lock.lock(Wait::Forever, "this Array's lock")? {
                Acquired::Locked(held) => {
                    return Ok(SliceGuard {
                        _held: held,
                        data: &self.data,
                    })
                }
                Acquired::OwnerDied(held, _) => {
                    held.make_consistent();
                    return Ok(SliceGuard {
                        _held: held,
                        data: &self.data,
                    });
                }
                Acquired::Busy => continue,
                Acquired::Deadlock => {
                    return Err(Error::WouldDeadlock {
                        what: "this Array's lock",
                    })
                }
                Acquired::Unrecoverable => {
                    return Err(Error::os("pthread_mutex_lock", Errno::ENOTRECOVERABLE))
                }
            }
        }
    }
}

impl<T: Copy> Deref for SliceGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: every access to a LockedSlice's elements holds its mutex (this type and
        // `LockedSlice::lock_slice` are the only way in), so no one writes while this borrow lives;
        // `len` elements, initialised by `RawSlice::new`, mapped while the borrowed slice lives.
        unsafe { std::slice::from_raw_parts(self.data.data.as_ptr(), self.data.len) }
    }
}

impl<T: Copy> DerefMut for SliceGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow through the one guard.
        unsafe { std::slice::from_raw_parts_mut(self.data.data.as_ptr(), self.data.len) }
    }
}

/// A file mapped `MAP_SHARED` (a POSIX shared memory object in `/dev/shm`): the bytes of a
/// [`SharedMemory`](crate::shared_memory::SharedMemory). Read and written by copying, bounds checked
/// by the caller.
pub(crate) struct FileMapping {
    data: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is not tied to a thread; it is only accessed by copying bytes in and out.
unsafe impl Send for FileMapping {}
// SAFETY: as above.
unsafe impl Sync for FileMapping {}

impl FileMapping {
    /// Maps the first `len` bytes (at least 1) of `file`, readable and writable.
    pub(crate) fn new(file: &std::fs::File, len: usize) -> Result<Self> {
        use std::os::fd::AsRawFd;
        // SAFETY: a new shared mapping of an open file, at an address the kernel picks; it touches
        // no existing memory. The file stays mapped after `file` is closed.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Error::os("mmap", Errno::last()));
        }
        Ok(FileMapping {
            data: NonNull::new(addr.cast()).expect("mmap never returns null on success"),
            len,
        })
    }

    /// Copies `out.len()` bytes from `offset` (the caller checked the range).
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len);
        // SAFETY: in bounds (checked); the mapping lives while `self` does. Other processes may
        // write these bytes at the same time: a torn read gives mixed bytes, and every byte value is
        // valid; they are outside this program's memory, so the compiler assumes nothing about them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.data.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        }
    }

    /// Copies `bytes` to `offset` (the caller checked the range).
    pub(crate) fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len);
        // SAFETY: as in `read`; the mapping is writable.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.data.as_ptr().add(offset),
                bytes.len(),
            )
        }
    }
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        // SAFETY: mapped by `new` with this length; borrows end with `&self`.
        unsafe { libc::munmap(self.data.as_ptr().cast(), self.len) };
    }
}
