//! [`Manager()`]: Python's `multiprocessing.dummy.Manager()`, a manager
//! whose objects are plain in-process objects shared among threads.
//!
//! # The choice: the same names as `managers`, on thread objects
//!
//! Python's dummy `Manager()` returns the `dummy` module itself, so
//! `manager.dict()` is a plain `dict`, `manager.Lock()` a
//! `threading.Lock`. Rust has no such duck typing, so this module
//! mirrors [`crate::managers`] instead: a [`Manager`](struct@Manager) with the
//! constructors of [`SyncManager`](crate::managers::SyncManager)
//! (`dict`, `list`, `queue`, `lock`, …), returning types named like the
//! proxies ([`DictProxy`], [`LockProxy`], …, and [`ManagerError`]) with
//! the proxies' method names and signatures, `Result` included. Code
//! written against a manager moves to threads by its `use` line:
//!
//! ```
//! // use multiprocessing::managers::{Manager, ManagerError};
//! use multiprocessing::dummy::managers::{Manager, ManagerError};
//!
//! fn tally(words: &[&str]) -> Result<Vec<(String, i64)>, ManagerError> {
//!     let manager = Manager()?;
//!     let counts = manager.dict::<String, i64>()?;
//!     let lock = manager.lock()?;
//!     for word in words {
//!         let _held = lock.acquire()?;
//!         let n = counts.get(*word)?.unwrap_or(0);
//!         counts.set(*word, n + 1)?;
//!     }
//!     counts.items()
//! }
//!
//! assert_eq!(tally(&["a", "b", "a"])?, vec![("a".into(), 2), ("b".into(), 1)]);
//! # Ok::<(), ManagerError>(())
//! ```
//!
//! Underneath are the crate's thread-capable objects, not copies of
//! them: the locks, semaphores, events, conditions and barriers are
//! [`crate::synchronize`]'s (which work between threads as well as
//! processes), the queue is [`dummy::Queue`](super::Queue), the value
//! and array [`dummy::Value`](super::Value)/[`dummy::Array`](super::Array),
//! the namespace [`Namespace`]. Each wrapper is a handle: clones share
//! the object, as the threads sharing a Python object do.
//!
//! What differs from the managed flavour, deliberately:
//!
//! * arguments are taken by value (`impl Into<T>`) and keys by borrow
//!   (`K: Borrow<Q>`), as `std`'s collections take them, so nothing is
//!   serialized or cloned to be stored; items need no serde, only
//!   `Clone` where a call returns a copy, `Hash + Eq` for dict keys and
//!   `PartialEq` where a list compares;
//! * a call fails only where Python's plain object raises (a missing key
//!   is [`ManagerError::KeyError`], an index out of range
//!   [`ManagerError::IndexError`], …); the locks', queues', conditions'
//!   and barriers' errors are the local primitives' own, which the
//!   proxies share;
//! * nothing is sent to another process: there is no serde form, and a
//!   [`Manager`](struct@Manager) has no server, address or shutdown.

mod collections;
mod error;
mod namespace;
mod sync;
mod values;

pub use collections::{DictProxy, ListProxy};
pub use error::ManagerError;
pub use namespace::Namespace;
pub use sync::{
    AcquireGuard, BarrierProxy, BoundedSemaphoreProxy, ConditionProxy, EventProxy, LockProxy,
    RLockProxy, SemaphoreProxy,
};
pub use values::{ArrayProxy, JoinableQueueProxy, QueueProxy, ValueProxy};

/// A namespace made by [`Manager::namespace`]: the plain [`Namespace`],
/// under the managed flavour's name.
///
/// ```
/// use multiprocessing::dummy::managers::{Manager, NamespaceProxy};
///
/// let ns: NamespaceProxy = Manager()?.namespace()?;
/// ns.set("answer", &42)?;
/// assert_eq!(ns.to_string(), "Namespace(answer=42)");
/// # Ok::<(), multiprocessing::dummy::managers::ManagerError>(())
/// ```
pub type NamespaceProxy = Namespace;

/// The maker of thread-shared objects (what Python's
/// `multiprocessing.dummy.Manager()` gives), with
/// [`SyncManager`](crate::managers::SyncManager)'s constructors.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let q = m.queue::<i64>()?;
/// let results = m.list::<i64>()?;
/// let workers: Vec<_> = (0..3)
///     .map(|_| {
///         let (q, results) = (q.clone(), results.clone());
///         std::thread::spawn(move || {
///             while let Ok(n) = q.get() {
///                 if n < 0 {
///                     break;
///                 }
///                 results.append(n * n).unwrap();
///             }
///         })
///     })
///     .collect();
/// for n in [1, 2, 3, -1, -1, -1] {
///     q.put(n)?;
/// }
/// workers.into_iter().for_each(|w| w.join().unwrap());
/// let mut squares = results.get_value()?;
/// squares.sort();
/// assert_eq!(squares, vec![1, 4, 9]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Manager {
    _private: (),
}

/// A [`Manager`](struct@Manager) (Python's `multiprocessing.dummy.Manager()`). It returns
/// `Result` only so that `Manager()?` reads as with
/// [`managers::Manager()`](crate::managers::Manager()); it cannot fail.
///
/// ```
/// let m = multiprocessing::dummy::Manager()?;
/// let d = m.dict::<i32, &str>()?;
/// d.set(1, "one")?;
/// assert_eq!(d.get_item(&1)?, "one");
/// # Ok::<(), multiprocessing::dummy::managers::ManagerError>(())
/// ```
#[allow(non_snake_case)]
pub fn Manager() -> Result<Manager, ManagerError> {
    Ok(Manager { _private: () })
}

impl Manager {
    /// A new empty dict.
    pub fn dict<K: std::hash::Hash + Eq, V>(&self) -> Result<DictProxy<K, V>, ManagerError> {
        Ok(DictProxy::new())
    }

    /// A new empty list.
    pub fn list<T>(&self) -> Result<ListProxy<T>, ManagerError> {
        Ok(ListProxy::from_vec(Vec::new()))
    }

    /// A new list holding copies of `items`.
    pub fn list_from<T: Clone>(&self, items: &[T]) -> Result<ListProxy<T>, ManagerError> {
        Ok(ListProxy::from_vec(items.to_vec()))
    }

    /// A new unbounded queue.
    pub fn queue<T>(&self) -> Result<QueueProxy<T>, ManagerError> {
        Ok(QueueProxy::new(0))
    }

    /// A new queue holding at most `maxsize` items (`0`: no limit).
    pub fn queue_bounded<T>(&self, maxsize: usize) -> Result<QueueProxy<T>, ManagerError> {
        Ok(QueueProxy::new(maxsize))
    }

    /// A new unbounded `JoinableQueue` (`task_done`, `join`).
    pub fn joinable_queue<T>(&self) -> Result<JoinableQueueProxy<T>, ManagerError> {
        Ok(QueueProxy::new(0))
    }

    /// A new `Lock`.
    pub fn lock(&self) -> Result<LockProxy, ManagerError> {
        LockProxy::new()
    }

    /// A new `RLock`.
    pub fn rlock(&self) -> Result<RLockProxy, ManagerError> {
        RLockProxy::new()
    }

    /// A new `Semaphore(value)`.
    pub fn semaphore(&self, value: u32) -> Result<SemaphoreProxy, ManagerError> {
        SemaphoreProxy::new(value)
    }

    /// A new `BoundedSemaphore(value)`: releasing past `value` is
    /// [`ReleaseError::TooManyReleases`](crate::synchronize::ReleaseError::TooManyReleases).
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphoreProxy, ManagerError> {
        SemaphoreProxy::bounded(value)
    }

    /// A new `Event`, clear.
    pub fn event(&self) -> Result<EventProxy, ManagerError> {
        EventProxy::new()
    }

    /// A new `Value(typecode, value)` holding a copy of `value` (the
    /// typecode is not used, as in Python's dummy `Value`).
    pub fn value<T: Clone>(
        &self,
        _typecode: &str,
        value: &T,
    ) -> Result<ValueProxy<T>, ManagerError> {
        Ok(ValueProxy::new(value.clone()))
    }

    /// A new empty `Namespace`.
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        Ok(Namespace::new())
    }

    /// A new `Condition` with its own `RLock`.
    pub fn condition(&self) -> Result<ConditionProxy, ManagerError> {
        ConditionProxy::new()
    }

    /// A new `Condition` around `lock`'s lock.
    pub fn condition_with_lock(&self, lock: &LockProxy) -> Result<ConditionProxy, ManagerError> {
        ConditionProxy::with_lock(lock)
    }

    /// A new `Barrier(parties)`.
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy, ManagerError> {
        BarrierProxy::new(parties)
    }

    /// A new `Array(typecode, items)` holding copies of `items` (the
    /// typecode is not used).
    pub fn array<T: Clone>(
        &self,
        _typecode: &str,
        items: &[T],
    ) -> Result<ArrayProxy<T>, ManagerError> {
        Ok(ArrayProxy::new(items.to_vec()))
    }
}
