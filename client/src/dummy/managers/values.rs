//! [`QueueProxy`], [`ValueProxy`] and [`ArrayProxy`] of a
//! [`dummy` manager](super): the dummy module's own [`Queue`],
//! [`Value`] and [`Array`] behind the managed flavour's method names.

use std::fmt;
use std::time::Duration;

use super::collections::position;
use super::error::ManagerError;
use crate::dummy::{Array, Queue, Value};
use crate::queues::QueueError;

/// A FIFO queue shared by threads (Python's `queue.Queue`, what
/// `dummy.Manager().Queue()` returns). Clones share it.
///
/// Its calls fail with [`QueueError`] as a local [`Queue`](crate::Queue)
/// and a [`managers::QueueProxy`](crate::managers::QueueProxy) do.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
/// use multiprocessing::queues::QueueError;
///
/// let m = Manager()?;
/// let q = m.queue_bounded::<String>(1)?;
/// let producer = q.clone();
/// std::thread::spawn(move || producer.put("hello")).join().unwrap()?;
/// assert!(matches!(q.put_nowait("full"), Err(QueueError::Full)));
/// assert_eq!(q.get()?, "hello");
/// assert!(matches!(q.get_nowait(), Err(QueueError::Empty)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct QueueProxy<T> {
    queue: Queue<T>,
}

/// A `JoinableQueue`: the same type as [`QueueProxy`] (`task_done`,
/// `join`), as in the managed flavour.
///
/// ```
/// use multiprocessing::dummy::managers::{JoinableQueueProxy, Manager};
///
/// let q: JoinableQueueProxy<u32> = Manager()?.joinable_queue()?;
/// q.put(1u32)?;
/// let worker = q.clone();
/// std::thread::spawn(move || {
///     let _item = worker.get()?;
///     worker.task_done()
/// });
/// q.join()?; // returns once the item is marked done
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type JoinableQueueProxy<T> = QueueProxy<T>;

impl<T> Clone for QueueProxy<T> {
    fn clone(&self) -> Self {
        QueueProxy {
            queue: self.queue.clone(),
        }
    }
}

impl<T> QueueProxy<T> {
    pub(super) fn new(maxsize: usize) -> Self {
        QueueProxy {
            queue: Queue::new(maxsize),
        }
    }

    /// Puts `item`, waiting for room as long as it takes.
    pub fn put(&self, item: impl Into<T>) -> Result<(), QueueError> {
        self.queue.put(item.into())
    }

    /// Puts `item`, waiting for room at most `timeout` (`Full` after).
    pub fn put_timeout(&self, item: impl Into<T>, timeout: Duration) -> Result<(), QueueError> {
        self.queue.put_timeout(item.into(), timeout)
    }

    /// Puts `item` if there is room now (`Full` otherwise).
    pub fn put_nowait(&self, item: impl Into<T>) -> Result<(), QueueError> {
        self.queue.put_nowait(item.into())
    }

    /// Takes the next item, waiting as long as it takes.
    pub fn get(&self) -> Result<T, QueueError> {
        self.queue.get()
    }

    /// Takes the next item, waiting at most `timeout` (`Empty` after).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.queue.get_timeout(timeout)
    }

    /// Takes the next item if there is one now (`Empty` otherwise).
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        self.queue.get_nowait()
    }

    /// The number of items.
    pub fn qsize(&self) -> Result<usize, QueueError> {
        Ok(self.queue.qsize())
    }

    /// Whether it holds no item.
    pub fn empty(&self) -> Result<bool, QueueError> {
        Ok(self.queue.empty())
    }

    /// Whether it holds `maxsize` items.
    pub fn full(&self) -> Result<bool, QueueError> {
        Ok(self.queue.full())
    }

    /// Marks one item taken earlier as processed (`TaskDone` if more
    /// calls than items).
    pub fn task_done(&self) -> Result<(), QueueError> {
        self.queue.task_done()
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) -> Result<(), QueueError> {
        self.queue.join();
        Ok(())
    }
}

impl<T> fmt::Debug for QueueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("dummy::QueueProxy")
            .field("qsize", &self.queue.qsize())
            .finish()
    }
}

/// One value shared by threads (what `dummy.Manager().Value(typecode,
/// value)` returns; the typecode is not used, as in Python's dummy
/// `Value`). Clones share it.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let v = m.value("i", &0i64)?;
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let v = v.clone();
///         std::thread::spawn(move || *v.get_lock() += 1)
///     })
///     .collect();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// assert_eq!(v.get()?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ValueProxy<T> {
    value: Value<T>,
}

impl<T> Clone for ValueProxy<T> {
    fn clone(&self) -> Self {
        ValueProxy {
            value: self.value.clone(),
        }
    }
}

impl<T> ValueProxy<T> {
    pub(super) fn new(value: T) -> Self {
        ValueProxy {
            value: Value::new(value),
        }
    }

    /// `v.value`.
    pub fn get(&self) -> Result<T, ManagerError>
    where
        T: Clone,
    {
        Ok(self.value.get())
    }

    /// `v.value = value`.
    pub fn set(&self, value: impl Into<T>) -> Result<(), ManagerError> {
        self.value.set(value.into());
        Ok(())
    }

    /// A copy of the value.
    pub fn get_value(&self) -> Result<T, ManagerError>
    where
        T: Clone,
    {
        self.get()
    }

    /// Holds the value for a read-modify-write (`v.value += 1` under a
    /// lock): what only the in-process flavour can offer, since a managed
    /// value's read and write are two calls.
    pub fn get_lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.value.get_lock()
    }
}

impl<T: fmt::Debug> fmt::Debug for ValueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dummy::ValueProxy({:?})", &*self.value.get_lock())
    }
}

/// A fixed-length array shared by threads (what `dummy.Manager().Array(
/// typecode, sequence)` returns; the typecode is not used). Clones share
/// it.
///
/// ```
/// use multiprocessing::dummy::managers::{Manager, ManagerError};
///
/// let m = Manager()?;
/// let a = m.array("d", &[0.5, 1.5, 2.5])?;
/// a.set(-1, 3.5)?;
/// assert_eq!(a.get(2)?, 3.5);
/// assert!(matches!(a.get(3), Err(ManagerError::IndexError(_))));
/// assert_eq!(a.get_value()?, vec![0.5, 1.5, 3.5]);
/// # Ok::<(), ManagerError>(())
/// ```
pub struct ArrayProxy<T> {
    array: Array<T>,
}

impl<T> Clone for ArrayProxy<T> {
    fn clone(&self) -> Self {
        ArrayProxy {
            array: self.array.clone(),
        }
    }
}

fn array_index_error() -> ManagerError {
    ManagerError::IndexError("array index out of range".into())
}

impl<T> ArrayProxy<T> {
    pub(super) fn new(items: Vec<T>) -> Self {
        ArrayProxy {
            array: Array::from_vec(items),
        }
    }

    /// `len(a)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        Ok(self.array.len())
    }

    /// `len(a) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.array.is_empty())
    }

    /// `a[i]` (negative counts from the end).
    pub fn get(&self, i: i64) -> Result<T, ManagerError>
    where
        T: Clone,
    {
        let items = self.array.get_lock();
        position(i, items.len())
            .map(|at| items[at].clone())
            .ok_or_else(array_index_error)
    }

    /// `a[i] = value`.
    pub fn set(&self, i: i64, value: impl Into<T>) -> Result<(), ManagerError> {
        let mut items = self.array.get_lock();
        let at = position(i, items.len()).ok_or_else(|| {
            ManagerError::IndexError("array assignment index out of range".into())
        })?;
        items[at] = value.into();
        Ok(())
    }

    /// A copy of the whole array.
    pub fn get_value(&self) -> Result<Vec<T>, ManagerError>
    where
        T: Clone,
    {
        Ok(self.array.to_vec())
    }

    /// Holds the array for a read-modify-write.
    pub fn get_lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.array.get_lock()
    }
}

impl<T: fmt::Debug> fmt::Debug for ArrayProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dummy::ArrayProxy({:?})", &*self.array.get_lock())
    }
}
