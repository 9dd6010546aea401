//! `RawValue` and `RawArray`: plain-old-data in shared memory with no lock
//! (Python's `sharedctypes.RawValue` / `RawArray`).

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytemuck::Pod;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::reduction::SharedFd;
use crate::shared_memory::region::Region;
use crate::synchronize::engine::identity;

use super::error::{IndexError, SharedCtypesError};

/// Writes of at least this many bytes populate their pages first (see
/// `Region::populate`); below it the page faults cost less than the call.
const POPULATE_MIN: usize = 64 * 1024;

/// Memory of `len` `T`s in a region of its own.
struct Block<T> {
    region: Arc<Region>,
    ptr: NonNull<T>,
    len: usize,
    /// The pid that last populated the whole block: a forked child has
    /// another pid, so it populates again, once.
    populated_by: Arc<AtomicU32>,
    _t: PhantomData<T>,
}

impl<T: Pod> Block<T> {
    fn new(len: usize) -> Result<Self, SharedCtypesError> {
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .ok_or(SharedCtypesError::TooLarge)?;
        Self::attach(Region::new(bytes)?, len)
    }

    fn attach(region: Arc<Region>, len: usize) -> Result<Self, SharedCtypesError> {
        let ptr = region
            .checked_slice::<T>(0, len)
            .ok_or(SharedCtypesError::Mismatch)?;
        Ok(Block {
            region,
            ptr,
            len,
            populated_by: Arc::new(AtomicU32::new(0)),
            _t: PhantomData,
        })
    }

    fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    /// Populates the whole block once per process, if it is large.
    fn populate_all(&self) {
        let me = identity::pid();
        if self.bytes() >= POPULATE_MIN && self.populated_by.swap(me, Ordering::Relaxed) != me {
            self.region.populate(0, self.bytes());
        }
    }
}

impl<T> Clone for Block<T> {
    fn clone(&self) -> Self {
        Block {
            region: Arc::clone(&self.region),
            ptr: self.ptr,
            len: self.len,
            populated_by: Arc::clone(&self.populated_by),
            _t: PhantomData,
        }
    }
}

/// The serialized form of a raw object: descriptor, element count and
/// element size (checked on arrival).
#[derive(Serialize)]
#[serde(rename = "SharedCtype")]
struct WireRef<'a> {
    fd: &'a SharedFd,
    len: u64,
    elem_size: u64,
}

#[derive(Deserialize)]
#[serde(rename = "SharedCtype")]
struct Wire {
    fd: SharedFd,
    len: u64,
    elem_size: u64,
}

impl<T: Pod> Serialize for Block<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRef {
            fd: self.region.fd(),
            len: self.len as u64,
            elem_size: std::mem::size_of::<T>() as u64,
        }
        .serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Block<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        if w.elem_size != std::mem::size_of::<T>() as u64 {
            return Err(de::Error::custom(SharedCtypesError::Mismatch));
        }
        let len = usize::try_from(w.len).map_err(de::Error::custom)?;
        let region = Region::from_fd(w.fd).map_err(de::Error::custom)?;
        Block::attach(region, len).map_err(de::Error::custom)
    }
}

/// One `T` in shared memory, without a lock.
///
/// Reads and writes copy the whole value; a write racing with another
/// process's read may tear (as in Python): use [`Value`](super::Value)
/// when that matters.
///
/// ```
/// use multiprocessing::sharedctypes::RawValue;
///
/// let x = RawValue::new(1.0f64 / 3.0)?;
/// x.set(x.get() * x.get());
/// assert_eq!(x.get(), 1.0 / 9.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent, bound = "T: Pod")]
pub struct RawValue<T> {
    block: Block<T>,
}

// SAFETY: the value is plain data in shared memory reached only by copies.
unsafe impl<T: Pod> Send for RawValue<T> {}
// SAFETY: as above.
unsafe impl<T: Pod> Sync for RawValue<T> {}

impl<T: Pod> RawValue<T> {
    /// A new shared `T` holding `value`.
    pub fn new(value: T) -> Result<RawValue<T>, SharedCtypesError> {
        let v = RawValue {
            block: Block::new(1)?,
        };
        v.set(value);
        Ok(v)
    }

    /// Copies the value out (Python's `.value`).
    #[inline]
    pub fn get(&self) -> T {
        // SAFETY: the block holds one aligned T; T is Pod, so any bytes
        // another process left there are a valid T.
        unsafe { self.block.ptr.as_ptr().read_volatile() }
    }

    /// Copies `value` in.
    #[inline]
    pub fn set(&self, value: T) {
        // SAFETY: as in get; the mapping is writable.
        unsafe { self.block.ptr.as_ptr().write_volatile(value) }
    }

    /// Pointer to the shared value, for code that synchronizes by itself.
    pub fn as_ptr(&self) -> *mut T {
        self.block.ptr.as_ptr()
    }

    /// A new, unsynchronized value with the same contents (Python's
    /// `sharedctypes.copy`).
    pub fn copy(&self) -> Result<RawValue<T>, SharedCtypesError> {
        RawValue::new(self.get())
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

/// A fixed-length array of `T` in shared memory, without a lock.
///
/// Single elements are copied in and out with [`RawArray::get`] and
/// [`RawArray::set`]; whole runs with [`RawArray::read`] /
/// [`RawArray::write`] (one `memcpy`), not element by element.
///
/// ```
/// use multiprocessing::sharedctypes::RawArray;
///
/// let a = RawArray::<i32>::from_slice(&[1, 2, 3])?;
/// a.set(0, 10)?;
/// a.write(1, &[20, 30])?;
/// assert_eq!(a.to_vec(), [10, 20, 30]);
/// assert!(a.get(3).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent, bound = "T: Pod")]
pub struct RawArray<T> {
    block: Block<T>,
}

// SAFETY: plain data in shared memory reached only by copies (or by the
// unsafe slice accessors, whose callers take on the aliasing rules).
unsafe impl<T: Pod> Send for RawArray<T> {}
// SAFETY: as above.
unsafe impl<T: Pod> Sync for RawArray<T> {}

impl<T: Pod> RawArray<T> {
    /// `len` zeroed elements (Python's `RawArray(type, size)`).
    pub fn new(len: usize) -> Result<RawArray<T>, SharedCtypesError> {
        Ok(RawArray {
            block: Block::new(len)?,
        })
    }

    /// A copy of `items` (Python's `RawArray(type, sequence)`).
    pub fn from_slice(items: &[T]) -> Result<RawArray<T>, SharedCtypesError> {
        let a = Self::new(items.len())?;
        a.write(0, items)?;
        Ok(a)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.block.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.block.len == 0
    }

    fn check(&self, start: usize, count: usize) -> Result<(), IndexError> {
        match start.checked_add(count) {
            Some(end) if end <= self.block.len => Ok(()),
            _ => Err(IndexError {
                index: start.saturating_add(count.saturating_sub(1)),
                len: self.block.len,
            }),
        }
    }

    /// Copies element `index` out.
    #[inline]
    pub fn get(&self, index: usize) -> Result<T, IndexError> {
        self.check(index, 1)?;
        // SAFETY: in bounds; T is Pod.
        Ok(unsafe { self.block.ptr.as_ptr().add(index).read_volatile() })
    }

    /// Copies `value` into element `index`.
    #[inline]
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexError> {
        self.check(index, 1)?;
        // SAFETY: in bounds; the mapping is writable.
        unsafe { self.block.ptr.as_ptr().add(index).write_volatile(value) };
        Ok(())
    }

    /// Copies `out.len()` elements starting at `start` into `out`.
    pub fn read(&self, start: usize, out: &mut [T]) -> Result<(), IndexError> {
        self.check(start, out.len())?;
        // SAFETY: the source range is in bounds of the mapping and cannot
        // overlap `out`, a Rust slice outside it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.block.ptr.as_ptr().add(start),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `items` into the array starting at `start`.
    pub fn write(&self, start: usize, items: &[T]) -> Result<(), IndexError> {
        self.check(start, items.len())?;
        let bytes = std::mem::size_of_val(items);
        if bytes >= POPULATE_MIN {
            if bytes == self.block.bytes() {
                self.block.populate_all();
            } else {
                self.block
                    .region
                    .populate(start * std::mem::size_of::<T>(), bytes);
            }
        }
        // SAFETY: the destination range is in bounds; `items` cannot
        // overlap the mapping... unless it was borrowed from it through
        // `as_slice`, hence `copy` (memmove) rather than the nonoverlapping
        // variant.
        unsafe {
            std::ptr::copy(
                items.as_ptr(),
                self.block.ptr.as_ptr().add(start),
                items.len(),
            )
        };
        Ok(())
    }

    /// Copies the whole array out (Python's `arr[:]`).
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.block.len];
        // The range is the whole array, so this cannot fail.
        let _ = self.read(0, &mut out);
        out
    }

    /// Pointer to the first element, for code that synchronizes by itself.
    pub fn as_ptr(&self) -> *mut T {
        self.block.ptr.as_ptr()
    }

    /// The array as a slice, without copying.
    ///
    /// # Safety
    ///
    /// No thread or process may write the array while the slice lives
    /// (hold the lock all writers use).
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: in bounds and aligned; the caller excludes writers.
        unsafe { std::slice::from_raw_parts(self.block.ptr.as_ptr(), self.block.len) }
    }

    /// The array as a mutable slice, without copying.
    ///
    /// # Safety
    ///
    /// No other thread or process may read or write the array while the
    /// slice lives, and no other slice of it may exist in this process.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        self.block.populate_all();
        // SAFETY: in bounds and aligned; the caller guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.block.ptr.as_ptr(), self.block.len) }
    }

    /// A new, unsynchronized array with the same contents (Python's
    /// `sharedctypes.copy`).
    pub fn copy(&self) -> Result<RawArray<T>, SharedCtypesError> {
        let a = Self::new(self.len())?;
        // SAFETY: `a` is fresh and private; the source range is in bounds.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr(), a.as_ptr(), self.len()) };
        Ok(a)
    }
}

impl RawArray<u8> {
    /// The bytes up to the first NUL (Python's `.value` of a `c_char`
    /// array).
    pub fn value(&self) -> Vec<u8> {
        let mut all = self.to_vec();
        if let Some(nul) = all.iter().position(|&b| b == 0) {
            all.truncate(nul);
        }
        all
    }

    /// Stores `bytes` and a NUL terminator if there is room (Python's
    /// `.value = ...`).
    ///
    /// # Errors
    ///
    /// [`SharedCtypesError::TooLong`] if `bytes` is longer than the array.
    pub fn set_value(&self, bytes: &[u8]) -> Result<(), SharedCtypesError> {
        if bytes.len() > self.len() {
            return Err(SharedCtypesError::TooLong {
                len: bytes.len(),
                capacity: self.len(),
            });
        }
        self.write(0, bytes)?;
        if bytes.len() < self.len() {
            self.set(bytes.len(), 0)?;
        }
        Ok(())
    }

    /// Every byte of the array (Python's `.raw`).
    pub fn raw(&self) -> Vec<u8> {
        self.to_vec()
    }

    /// Stores `bytes` at the start, with no terminator (Python's
    /// `.raw = ...`).
    pub fn set_raw(&self, bytes: &[u8]) -> Result<(), SharedCtypesError> {
        if bytes.len() > self.len() {
            return Err(SharedCtypesError::TooLong {
                len: bytes.len(),
                capacity: self.len(),
            });
        }
        self.write(0, bytes)?;
        Ok(())
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawArray").field(&self.to_vec()).finish()
    }
}
