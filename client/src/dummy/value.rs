//! [`Value`] and [`Array`] for [`dummy`](super): plain values shared by
//! threads behind a mutex (Python's dummy `Value` is a plain object with a
//! `value` attribute, its `Array` an `array.array`).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::sharedctypes::IndexError;

/// A value shared by threads. Clones share it.
pub struct Value<T> {
    inner: Arc<Mutex<T>>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Value<T> {
    /// A shared `value`.
    pub fn new(value: T) -> Value<T> {
        Value {
            inner: Arc::new(Mutex::new(value)),
        }
    }

    /// A copy of the value (Python's `.value`).
    pub fn get(&self) -> T
    where
        T: Clone,
    {
        self.get_lock().clone()
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        *self.get_lock() = value;
    }

    /// Holds the value's lock for a read-modify-write (`v += 1` under
    /// Python's `with v.get_lock():`).
    pub fn get_lock(&self) -> MutexGuard<'_, T> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dummy::Value({:?})", &*self.get_lock())
    }
}

/// A fixed-length array shared by threads. Clones share it.
pub struct Array<T> {
    inner: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Array<T> {
    /// An array holding `items`.
    pub fn from_vec(items: Vec<T>) -> Array<T> {
        Array {
            inner: Arc::new(Mutex::new(items)),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.get_lock().len()
    }

    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.get_lock().is_empty()
    }

    /// A copy of element `index`.
    pub fn get(&self, index: usize) -> Result<T, IndexError>
    where
        T: Clone,
    {
        let g = self.get_lock();
        g.get(index).cloned().ok_or(IndexError {
            index,
            len: g.len(),
        })
    }

    /// Replaces element `index`.
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexError> {
        let mut g = self.get_lock();
        let len = g.len();
        match g.get_mut(index) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(IndexError { index, len }),
        }
    }

    /// A copy of every element (Python's `arr[:]`).
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.get_lock().clone()
    }

    /// Holds the array's lock.
    pub fn get_lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dummy::Array({:?})", &*self.get_lock())
    }
}
