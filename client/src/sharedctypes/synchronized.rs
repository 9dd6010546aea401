//! `Value` and `Array`: shared ctypes behind a lock (Python's
//! `sharedctypes.Synchronized`, `SynchronizedArray`, `SynchronizedString`).

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::synchronize::{AnyLock, AnyLockGuard, RLock, ReleaseError};

use super::error::{IndexError, SharedCtypesError};
use super::raw::{RawArray, RawValue};

/// A raw shared object paired with the lock that guards it (Python's
/// `SynchronizedBase`): [`get_lock`](Synchronized::get_lock) and
/// [`get_obj`](Synchronized::get_obj) as in Python.
///
/// Use it as [`Value<T>`] and [`Array<T>`].
#[derive(Clone, Serialize, Deserialize)]
pub struct Synchronized<O> {
    obj: O,
    lock: AnyLock,
}

/// One `T` in shared memory behind a lock (Python's `Value`).
///
/// `get` and `set` take the lock for each access, as Python's `.value`
/// does; for read-modify-write hold it across both with
/// [`Value::lock`], whose guard dereferences to the value:
///
/// ```
/// use multiprocessing::sharedctypes::Value;
///
/// let n = Value::new(7i32)?;
/// *n.lock() += 1;
/// assert_eq!(n.get(), 8);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Value<T> = Synchronized<RawValue<T>>;

/// A fixed-length array of `T` in shared memory behind a lock (Python's
/// `Array`). The guard of [`Array::lock`] dereferences to a `[T]` slice.
///
/// ```
/// use multiprocessing::sharedctypes::Array;
///
/// let a = Array::<f64>::new(4)?;
/// a.lock().copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(a.lock().iter().sum::<f64>(), 10.0);
/// let s = Array::<u8>::from_slice(b"hello world")?;
/// s.set_value(b"HELLO")?;
/// assert_eq!(s.value(), b"HELLO");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Array<T> = Synchronized<RawArray<T>>;

impl<O> Synchronized<O> {
    /// Wraps `obj` with `lock` (Python's `sharedctypes.synchronized`).
    pub fn with_lock(obj: O, lock: impl Into<AnyLock>) -> Synchronized<O> {
        Synchronized {
            obj,
            lock: lock.into(),
        }
    }

    /// Wraps `obj` with a new [`RLock`].
    pub fn with_new_lock(obj: O) -> Result<Synchronized<O>, SharedCtypesError> {
        Ok(Self::with_lock(obj, RLock::new()?))
    }

    /// The lock (Python's `get_lock()`).
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }

    /// The raw object, with no locking (Python's `get_obj()`).
    pub fn get_obj(&self) -> &O {
        &self.obj
    }

    /// Acquires the lock (Python's `acquire()`).
    pub fn acquire(&self) {
        self.lock.acquire()
    }

    /// Releases the lock (Python's `release()`).
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.lock.release()
    }
}

/// Wraps a raw object with `lock`, or a new [`RLock`] when `None`
/// (Python's `sharedctypes.synchronized(obj, lock=None)`).
pub fn synchronized<O>(
    obj: O,
    lock: Option<AnyLock>,
) -> Result<Synchronized<O>, SharedCtypesError> {
    match lock {
        Some(lock) => Ok(Synchronized::with_lock(obj, lock)),
        None => Synchronized::with_new_lock(obj),
    }
}

/// A new raw object with the same contents (Python's
/// `sharedctypes.copy(obj)`).
pub fn copy<T: Pod>(obj: &RawArray<T>) -> Result<RawArray<T>, SharedCtypesError> {
    obj.copy()
}

impl<T: Pod> Synchronized<RawValue<T>> {
    /// A shared `value` behind a new [`RLock`] (Python's
    /// `Value(type, value)`; `lock=False` is [`RawValue::new`]).
    pub fn new(value: T) -> Result<Value<T>, SharedCtypesError> {
        Self::with_new_lock(RawValue::new(value)?)
    }

    /// A shared `value` behind an existing lock (Python's
    /// `Value(type, value, lock=lock)`).
    pub fn new_with_lock(
        value: T,
        lock: impl Into<AnyLock>,
    ) -> Result<Value<T>, SharedCtypesError> {
        Ok(Self::with_lock(RawValue::new(value)?, lock))
    }

    /// Reads under the lock.
    pub fn get(&self) -> T {
        let _g = self.lock.lock();
        self.obj.get()
    }

    /// Writes under the lock.
    pub fn set(&self, value: T) {
        let _g = self.lock.lock();
        self.obj.set(value)
    }

    /// Takes the lock; the guard dereferences to the value.
    ///
    /// # Panics
    ///
    /// If this thread already holds the value's `RLock` (a second guard
    /// would alias the first), as `RefCell::borrow_mut` does.
    #[inline]
    pub fn lock(&self) -> ValueGuard<'_, T> {
        ValueGuard {
            _lock: self.lock.lock_exclusive(),
            value: &self.obj,
        }
    }
}

impl<T: Pod> Synchronized<RawArray<T>> {
    /// `len` zeroed elements behind a new [`RLock`] (Python's
    /// `Array(type, size)`).
    pub fn new(len: usize) -> Result<Array<T>, SharedCtypesError> {
        Self::with_new_lock(RawArray::new(len)?)
    }

    /// A copy of `items` behind a new [`RLock`] (Python's
    /// `Array(type, sequence)`).
    pub fn from_slice(items: &[T]) -> Result<Array<T>, SharedCtypesError> {
        Self::with_new_lock(RawArray::from_slice(items)?)
    }

    /// A copy of `items` behind an existing lock.
    pub fn from_slice_with_lock(
        items: &[T],
        lock: impl Into<AnyLock>,
    ) -> Result<Array<T>, SharedCtypesError> {
        Ok(Self::with_lock(RawArray::from_slice(items)?, lock))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.obj.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.obj.is_empty()
    }

    /// Reads element `index` under the lock.
    pub fn get(&self, index: usize) -> Result<T, IndexError> {
        let _g = self.lock.lock();
        self.obj.get(index)
    }

    /// Writes element `index` under the lock.
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexError> {
        let _g = self.lock.lock();
        self.obj.set(index, value)
    }

    /// Copies a run out under the lock (one `memcpy`).
    pub fn read(&self, start: usize, out: &mut [T]) -> Result<(), IndexError> {
        let _g = self.lock.lock();
        self.obj.read(start, out)
    }

    /// Copies a run in under the lock (one `memcpy`).
    pub fn write(&self, start: usize, items: &[T]) -> Result<(), IndexError> {
        let _g = self.lock.lock();
        self.obj.write(start, items)
    }

    /// Copies the whole array out under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        let _g = self.lock.lock();
        self.obj.to_vec()
    }

    /// Takes the lock; the guard dereferences to the elements as a slice.
    ///
    /// # Panics
    ///
    /// If this thread already holds the array's `RLock` (a second guard
    /// would alias the first), as `RefCell::borrow_mut` does.
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        ArrayGuard {
            _lock: self.lock.lock_exclusive(),
            array: &self.obj,
        }
    }
}

impl Synchronized<RawArray<u8>> {
    /// The bytes up to the first NUL, under the lock (Python's `.value`).
    pub fn value(&self) -> Vec<u8> {
        let _g = self.lock.lock();
        self.obj.value()
    }

    /// Stores bytes and a NUL if there is room, under the lock.
    pub fn set_value(&self, bytes: &[u8]) -> Result<(), SharedCtypesError> {
        let _g = self.lock.lock();
        self.obj.set_value(bytes)
    }

    /// Every byte, under the lock (Python's `.raw`).
    pub fn raw(&self) -> Vec<u8> {
        let _g = self.lock.lock();
        self.obj.raw()
    }

    /// Stores bytes with no terminator, under the lock.
    pub fn set_raw(&self, bytes: &[u8]) -> Result<(), SharedCtypesError> {
        let _g = self.lock.lock();
        self.obj.set_raw(bytes)
    }
}

impl<O: fmt::Debug> fmt::Debug for Synchronized<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Synchronized")
            .field("obj", &self.obj)
            .field("lock", &self.lock)
            .finish()
    }
}

/// The lock of a [`Value`] held, and the value reachable in place.
///
/// Other holders of the same lock are excluded. Code that writes through
/// [`Synchronized::get_obj`] (or another process's raw handle) without the
/// lock races with the guard, as it would in Python; in Rust terms that is
/// a data race, so every writer must take the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    _lock: AnyLockGuard<'a>,
    value: &'a RawValue<T>,
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: one aligned T in the mapping, valid for any bytes (Pod);
        // the lock excludes every other holder while the guard lives.
        unsafe { &*self.value.as_ptr() }
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; `&mut self` makes this the only reference
        // handed out by this guard.
        unsafe { &mut *self.value.as_ptr() }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

/// The lock of an [`Array`] held, and its elements reachable in place.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    _lock: AnyLockGuard<'a>,
    array: &'a RawArray<T>,
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lock excludes every other holder while the guard
        // lives (see the type's doc for unlocked writers).
        unsafe { self.array.as_slice() }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; `&mut self` makes this the only slice handed
        // out by this guard.
        unsafe { self.array.as_mut_slice() }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}
