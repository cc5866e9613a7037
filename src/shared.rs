//! [`Value`]: Python's `multiprocessing.Value`, a value in memory shared by forked processes, with
//! its own lock.
//!
//! | Python | Rust |
//! |---|---|
//! | `v = Value('i', 0)`, `Value('d', 1.5)` | `let v = Value::new(0i32)?;`, `Value::new(1.5f64)?` |
//! | `v.value` | `v.get()` |
//! | `v.value = 3` | `v.set(3)` |
//! | `with v.get_lock(): v.value += 1` | `v.update(\|x\| *x += 1)`, or `let mut g = v.lock(); *g += 1;` |
//! | `Value(MyStructure, ...)` (ctypes) | `Value::new(my_struct)?` after `unsafe impl Shareable for MyStruct {}` |
//!
//! Why it exists: after `fork`, a child has a *copy* of the parent's memory. Even a variable that
//! threads would share (`Rc<Cell<_>>`, `Arc<AtomicI32>`) changed in a child stays unchanged in the
//! parent; a `Value` lives in a page mapped into both:
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use multiprocessing::{Process, Value};
//!
//! # fn main() -> multiprocessing::Result<()> {
//! let plain = Rc::new(Cell::new(0));
//! let shared = Value::new(0)?;
//! let (plain_in_child, shared_in_child) = (plain.clone(), shared.clone());
//! let mut p = Process::new(move || {
//!     plain_in_child.set(1); // the child's own copy of the memory
//!     shared_in_child.set(1); // the shared page
//! });
//! p.start()?;
//! p.join()?;
//! assert_eq!(plain.get(), 0); // unchanged in the parent
//! assert_eq!(shared.get(), 1); // shared
//! # Ok(())
//! # }
//! ```
//!
//! `v.get()` then `v.set(..)` are two separate steps: another process may write in between, and its
//! update is lost (as with Python's `v.value += 1`). Use [`Value::update`] or [`Value::lock`] to
//! read-modify-write in one step.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::shm::{Acquired, Shared, SharedGuard, Wait};

/// Types whose bytes mean the same thing in every process, so they can live in shared memory: the
/// numbers, `bool`, `()`, and arrays and tuples of them (Python's ctypes codes `'i'`, `'d'`, ...).
///
/// # Safety
///
/// Implement it only for a `Copy` type (e.g. a `#[repr(C)]` struct of numbers) that holds no
/// pointer or reference (a `&'static str` made in one process means nothing in another), and for
/// which every byte pattern it may end up with is valid if a process dies in the middle of writing
/// it (numbers and `bool`s are; `char` and enums are not).
///
/// ```
/// use multiprocessing::{Shareable, Value};
///
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
/// // SAFETY: two f64s: no pointers, every bit pattern is a valid Point.
/// unsafe impl Shareable for Point {}
///
/// # fn main() -> multiprocessing::Result<()> {
/// let p = Value::new(Point { x: 0.0, y: 0.0 })?;
/// p.update(|p| p.x += 1.0);
/// assert_eq!(p.get(), Point { x: 1.0, y: 0.0 });
/// # Ok(())
/// # }
/// ```
pub unsafe trait Shareable: Copy + Send + 'static {}

macro_rules! shareable {
    ($($t:ty),*) => { $(
        // SAFETY: a plain number (or bool, or ()): no pointers, valid after any partial byte write.
        unsafe impl Shareable for $t {}
    )* };
}
shareable!(
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    f32,
    f64,
    bool,
    ()
);

// SAFETY: an array of Shareable elements has no pointers and each element is valid byte-wise.
unsafe impl<T: Shareable, const N: usize> Shareable for [T; N] {}

macro_rules! shareable_tuple {
    ($($t:ident),*) => {
        // SAFETY: a tuple of Shareable fields has no pointers and each field is valid byte-wise.
        unsafe impl<$($t: Shareable),*> Shareable for ($($t,)*) {}
    };
}
shareable_tuple!(A);
shareable_tuple!(A, B);
shareable_tuple!(A, B, C);
shareable_tuple!(A, B, C, D);

/// A value shared between processes (Python's `multiprocessing.Value`), with its own lock. Clones are
/// the same value; so is the copy a forked child gets. Only processes forked *after* `Value::new()`
/// share it. See the [module docs](crate::shared) for a plain variable next to a `Value`.
///
/// ```
/// use multiprocessing::{Process, Value};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let counter = Value::new(0u64)?;
/// let mut workers = Vec::new();
/// for _ in 0..4 {
///     let counter = counter.clone();
///     let mut p = Process::new(move || {
///         for _ in 0..1000 {
///             counter.update(|n| *n += 1); // read + add + write under the lock
///         }
///     });
///     p.start()?;
///     workers.push(p);
/// }
/// for p in &workers {
///     p.join()?;
/// }
/// assert_eq!(counter.get(), 4000);
/// # Ok(())
/// # }
/// ```
pub struct Value<T: Shareable> {
    shared: Arc<Shared<T>>,
}

/// The lock of a [`Value`], held: reads and writes the value through `*guard` (Python's
/// `with v.get_lock():`). Released when dropped.
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let v = multiprocessing::Value::new(10)?;
/// {
///     let mut guard = v.lock();
///     *guard = *guard * 2 + 1;
/// }
/// assert_eq!(v.get(), 21);
/// # Ok(())
/// # }
/// ```
#[must_use = "the value's lock is released as soon as the guard is dropped: keep it in a variable (`let mut v = value.lock();`, not `let _ =`) for as long as you need the lock"]
pub struct ValueGuard<'a, T: Shareable> {
    guard: SharedGuard<'a, T>,
}

impl<T: Shareable> Value<T> {
    /// Puts `value` in a new page of shared memory (Python's `Value(typecode, value)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let ratio = multiprocessing::Value::new(0.5f64)?;
    /// assert_eq!(ratio.get(), 0.5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(value: T) -> crate::Result<Value<T>> {
        Ok(Value {
            shared: Arc::new(Shared::new(value)?),
        })
    }

    /// Takes the value's lock (waiting for it) and returns a guard to read and write the value
    /// through. If a process died holding it, the lock is taken anyway (the value is a plain number:
    /// at worst it misses that process's last update).
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock (a guard is alive): waiting would never end. Use the
    /// guard you have. Also when the kernel is interrupted while this waits for another process to
    /// release the lock (Python raises `KeyboardInterrupt` there): the panic carries the message of
    /// [`Error::Interrupted`](crate::Error::Interrupted), and nothing is locked.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let v = multiprocessing::Value::new([0u8; 4])?;
    /// let mut g = v.lock();
    /// g[2] = 7;
    /// drop(g);
    /// assert_eq!(v.get(), [0, 0, 7, 0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self) -> ValueGuard<'_, T> {
        match self.shared.lock(Wait::Forever, "a Value's lock") {
            Ok(Acquired::Locked(guard)) => ValueGuard { guard },
            Ok(Acquired::OwnerDied(guard, _)) => {
                guard.make_consistent();
                ValueGuard { guard }
            }
            Ok(Acquired::Deadlock) => panic!(
                "this thread already holds this Value's lock (a guard from lock() is alive): \
                 read and write through that guard, or drop it first"
            ),
            Ok(Acquired::Busy | Acquired::Unrecoverable) => {
                unreachable!(
                    "a Value's lock is waited for without limit and always made consistent"
                )
            }
            Err(e) => panic!("cannot lock a Value: {e}"),
        }
    }

    /// Reads the value (under its lock). Python's `v.value`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let v = multiprocessing::Value::new(3)?;
    /// assert_eq!(v.get(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> T {
        *self.lock()
    }

    /// Writes the value (under its lock). Python's `v.value = x`.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let v = multiprocessing::Value::new(false)?;
    /// v.set(true);
    /// assert!(v.get());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, value: T) {
        *self.lock() = value;
    }

    /// Runs `f` on the value under its lock, so that read, change and write are one step no other
    /// process can split (Python's `with v.get_lock(): v.value += 1`); returns what `f` returned.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let v = multiprocessing::Value::new(41)?;
    /// let now = v.update(|n| {
    ///     *n += 1;
    ///     *n
    /// });
    /// assert_eq!(now, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<T: Shareable> Clone for Value<T> {
    /// Another handle to the same shared value.
    fn clone(&self) -> Self {
        Value {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: Shareable> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: Shareable> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shared.lock(Wait::No, "a Value's lock") {
            Ok(Acquired::Locked(guard)) => f.debug_tuple("Value").field(&*guard).finish(),
            _ => f.write_str("Value(<locked>)"),
        }
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}
