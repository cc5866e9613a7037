//! [`Array`], [`RawArray`] and [`RawValue`]: Python's `multiprocessing.Array`, `RawArray` and
//! `RawValue`, fixed-size numbers in memory shared by forked processes.
//!
//! | Python | Rust |
//! |---|---|
//! | `a = Array('i', [1, 2, 3])`, `Array('d', 5)` | `let a = Array::new(&[1i32, 2, 3])?;`, `Array::filled(5, 0.0f64)?` |
//! | `a[0]`, `a[0] = 7` | `a.get(0)?`, `a.set(0, 7)?` |
//! | `a[:]`, `len(a)` | `a.to_vec()`, `a.len()` |
//! | `with a.get_lock(): a[0] += 1` | `a.update(\|s\| s[0] += 1)`, or `let mut g = a.lock(); g[0] += 1;` |
//! | `r = RawArray('i', 10)`, `r[3] = 1` | `let r = RawArray::filled(10, 0i32)?;`, `r.set(3, 1)?` |
//! | `v = RawValue('d', 0.5)`, `v.value` | `let v = RawValue::new(0.5f64)?;`, `v.get()` |
//! | `a[10]` out of range: `IndexError` | `Err(Error::InvalidArgument { name: "index", .. })` |
//!
//! `Raw*` have no lock, as in Python: each element is read and written whole, but a
//! read-modify-write by two processes at once can lose an update. Use [`Array`] (or a
//! [`Value`](crate::Value)) when several processes update the same element.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::shared::Shareable;
use crate::shm::{LockedSlice, RawSlice, SliceGuard};

/// A fixed-length array shared between processes, with its own lock (Python's
/// `multiprocessing.Array`). Clones are the same array; so is the copy a forked child gets.
///
/// ```
/// use multiprocessing::{Array, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let squares = Array::filled(4, 0u64)?;
/// let mut children = Vec::new();
/// for i in 0..4 {
///     let squares = squares.clone();
///     let mut p = Process::new(move || squares.set(i, (i * i) as u64).unwrap());
///     p.start()?;
///     children.push(p);
/// }
/// for p in &children {
///     p.join()?;
/// }
/// assert_eq!(squares.to_vec(), [0, 1, 4, 9]); // Python: squares[:]
/// # Ok(())
/// # }
/// ```
pub struct Array<T: Shareable> {
    slice: Arc<LockedSlice<T>>,
}

/// The lock of an [`Array`], held: the elements as a slice (Python's `with a.get_lock():`).
///
/// ```
/// # fn main() -> multiprocessing::Result<()> {
/// let a = multiprocessing::Array::new(&[3, 1, 2])?;
/// a.lock().sort();
/// assert_eq!(a.to_vec(), [1, 2, 3]);
/// # Ok(())
/// # }
/// ```
#[must_use = "the array's lock is released as soon as the guard is dropped: keep it in a variable (`let mut a = array.lock();`, not `let _ =`) for as long as you need the lock"]
pub struct ArrayGuard<'a, T: Shareable> {
    guard: SliceGuard<'a, T>,
}

fn out_of_range(index: usize, len: usize) -> Error {
    Error::InvalidArgument {
        name: "index",
        value: format!("{index} (length {len})"),
        fix: "use an index below the array's len()",
    }
}

impl<T: Shareable> Array<T> {
    /// A shared array holding a copy of `values` (Python's `Array(typecode, [...])`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let a = multiprocessing::Array::new(&[1.5f64, 2.5])?;
    /// assert_eq!(a.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(values: &[T]) -> Result<Array<T>> {
        let array = match values.first() {
            Some(first) => Array::filled(values.len(), *first)?,
            None => return Array::empty(),
        };
        array.lock().copy_from_slice(values);
        Ok(array)
    }

    fn empty() -> Result<Array<T>> {
        Ok(Array {
            slice: Arc::new(LockedSlice::empty()?),
        })
    }

    /// A shared array of `len` copies of `value` (Python's `Array('i', 10)` is `filled(10, 0i32)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let a = multiprocessing::Array::filled(3, 0i32)?;
    /// assert_eq!(a.to_vec(), [0, 0, 0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn filled(len: usize, value: T) -> Result<Array<T>> {
        Ok(Array {
            slice: Arc::new(LockedSlice::new(len, value)?),
        })
    }

    /// The number of elements (Python's `len(a)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::Array::filled(7, 0u8)?.len(), 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.slice.len()
    }

    /// Whether it has no elements.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert!(multiprocessing::Array::<i32>::new(&[])?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the array's lock and gives the elements as a slice (Python's `with a.get_lock():`).
    /// A dead holder's lock is taken anyway (elements are plain numbers).
    ///
    /// # Panics
    ///
    /// If this thread holds the lock already (a guard is alive): waiting would never end.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let a = multiprocessing::Array::filled(2, 1u32)?;
    /// let mut g = a.lock();
    /// g[1] += 10;
    /// drop(g);
    /// assert_eq!(a.to_vec(), [1, 11]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        match self.slice.lock_slice() {
            Ok(guard) => ArrayGuard { guard },
            Err(e) => panic!("cannot lock this Array: {e}; use the guard you already hold"),
        }
    }

    /// Element `index` (Python's `a[index]`), read under the lock.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let a = multiprocessing::Array::new(&[5, 6])?;
    /// assert_eq!(a.get(1)?, 6);
    /// assert!(a.get(2).is_err()); // Python: IndexError
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, index: usize) -> Result<T> {
        let g = self.lock();
        g.get(index)
            .copied()
            .ok_or_else(|| out_of_range(index, g.len()))
    }

    /// Sets element `index` (Python's `a[index] = value`), under the lock.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let a = multiprocessing::Array::filled(2, 0)?;
    /// a.set(0, 9)?;
    /// assert_eq!(a.to_vec(), [9, 0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        let mut g = self.lock();
        let len = g.len();
        *g.get_mut(index).ok_or_else(|| out_of_range(index, len))? = value;
        Ok(())
    }

    /// A copy of all elements, taken under the lock (Python's `a[:]`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::Array::new(&[1, 2])?.to_vec(), [1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().to_vec()
    }

    /// Runs `f` on the elements under the lock, as one step no other process can split.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let a = multiprocessing::Array::new(&[1, 2, 3])?;
    /// let total = a.update(|s| { s[0] = 10; s.iter().sum::<i32>() });
    /// assert_eq!(total, 15);
    /// # Ok(())
    /// # }
    /// ```
    pub fn update<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<T: Shareable> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            slice: Arc::clone(&self.slice),
        }
    }
}

impl<T: Shareable> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.guard
    }
}

impl<T: Shareable> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.guard
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.slice.mutex().holder() != 0 {
            return f.write_str("Array(<locked>)");
        }
        f.debug_tuple("Array").field(&self.to_vec()).finish()
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

/// A fixed-length array shared between processes, without a lock (Python's
/// `multiprocessing.RawArray`): each element is read and written whole; nothing more is guarded.
///
/// ```
/// use multiprocessing::{Process, RawArray};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let slots = RawArray::filled(3, 0i64)?;
/// let mine = slots.clone();
/// let mut p = Process::new(move || mine.set(2, -1).unwrap()); // each process its own element
/// p.start()?;
/// p.join()?;
/// assert_eq!(slots.to_vec(), [0, 0, -1]);
/// # Ok(())
/// # }
/// ```
pub struct RawArray<T: Shareable> {
    slice: Arc<RawSlice<T>>,
}

impl<T: Shareable> RawArray<T> {
    /// A shared array holding a copy of `values` (Python's `RawArray(typecode, [...])`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RawArray::new(&[1u8, 2, 3])?;
    /// assert_eq!(r.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(values: &[T]) -> Result<RawArray<T>> {
        let slice = match values.first() {
            Some(first) => RawSlice::new(values.len(), *first)?,
            None => RawSlice::empty()?,
        };
        for (i, v) in values.iter().enumerate() {
            slice.write(i, *v);
        }
        Ok(RawArray {
            slice: Arc::new(slice),
        })
    }

    /// `len` copies of `value` (Python's `RawArray('i', 10)` is `filled(10, 0i32)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::RawArray::filled(2, 0.5f32)?.to_vec(), [0.5, 0.5]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn filled(len: usize, value: T) -> Result<RawArray<T>> {
        Ok(RawArray {
            slice: Arc::new(RawSlice::new(len, value)?),
        })
    }

    /// The number of elements.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::RawArray::filled(4, 0u8)?.len(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.slice.len()
    }

    /// Whether it has no elements.
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert!(!multiprocessing::RawArray::filled(1, 0u8)?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index` (Python's `r[index]`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RawArray::new(&[4, 5])?;
    /// assert_eq!(r.get(0)?, 4);
    /// assert!(r.get(9).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, index: usize) -> Result<T> {
        if index >= self.len() {
            return Err(out_of_range(index, self.len()));
        }
        Ok(self.slice.read(index))
    }

    /// Sets element `index` (Python's `r[index] = value`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let r = multiprocessing::RawArray::filled(1, 0)?;
    /// r.set(0, 3)?;
    /// assert_eq!(r.get(0)?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        if index >= self.len() {
            return Err(out_of_range(index, self.len()));
        }
        self.slice.write(index, value);
        Ok(())
    }

    /// A copy of all elements, read one by one (Python's `r[:]`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::RawArray::new(&[7, 8])?.to_vec(), [7, 8]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).map(|i| self.slice.read(i)).collect()
    }
}

impl<T: Shareable> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            slice: Arc::clone(&self.slice),
        }
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawArray").field(&self.to_vec()).finish()
    }
}

/// One value shared between processes, without a lock (Python's `multiprocessing.RawValue`): read
/// and written whole; `get` then `set` by two processes at once can lose an update (use a
/// [`Value`](crate::Value) for that).
///
/// ```
/// use multiprocessing::{Process, RawValue};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let done = RawValue::new(false)?;
/// let flag = done.clone();
/// let mut p = Process::new(move || flag.set(true));
/// p.start()?;
/// p.join()?;
/// assert!(done.get());
/// # Ok(())
/// # }
/// ```
pub struct RawValue<T: Shareable> {
    slot: RawArray<T>,
}

impl<T: Shareable> RawValue<T> {
    /// Puts `value` in shared memory (Python's `RawValue(typecode, value)`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let v = multiprocessing::RawValue::new(2.5f64)?;
    /// assert_eq!(v.get(), 2.5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(value: T) -> Result<RawValue<T>> {
        Ok(RawValue {
            slot: RawArray::filled(1, value)?,
        })
    }

    /// The value (Python's `v.value`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// assert_eq!(multiprocessing::RawValue::new(1u8)?.get(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> T {
        self.slot.slice.read(0)
    }

    /// Writes the value (Python's `v.value = x`).
    ///
    /// ```
    /// # fn main() -> multiprocessing::Result<()> {
    /// let v = multiprocessing::RawValue::new(0i32)?;
    /// v.set(-4);
    /// assert_eq!(v.get(), -4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, value: T) {
        self.slot.slice.write(0, value)
    }
}

impl<T: Shareable> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            slot: self.slot.clone(),
        }
    }
}

impl<T: Shareable + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}
