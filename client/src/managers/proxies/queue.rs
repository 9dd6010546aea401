//! [`QueueProxy`]: a typed proxy of a shared `queue.Queue` or
//! `JoinableQueue` (the `Queue`/`JoinableQueue` typeids of Python's
//! `SyncManager`).
//!
//! Blocking calls come as a trio: `get`, `get_timeout`, `get_nowait`
//! (likewise `put`). Nothing to get in time is [`QueueError::Empty`]; no
//! room in time is [`QueueError::Full`], as with a local queue.

use std::marker::PhantomData;
use std::time::Duration;

use mp_proto::methods::builtin::QueueMethod;
use mp_proto::Value;
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::arg::Arg;
use crate::managers::error::ManagerError;
use crate::managers::proxy::{proxy_common, secs, to_wire, BaseProxy};
use crate::queues::QueueError;

/// A shared FIFO queue of `T`.
///
/// Its calls fail with the local [`Queue`](crate::Queue)'s
/// [`QueueError`]: `Empty`, `Full` and `TaskDone` as there, anything only
/// a managed queue meets as [`QueueError::Manager`].
pub struct QueueProxy<T> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> T>,
}
proxy_common!(QueueProxy<T> = ["Queue", "JoinableQueue"]);

/// A shared `JoinableQueue`: the same proxy as [`QueueProxy`] (CPython's
/// SyncManager serves `Queue` and `JoinableQueue` with one class, so both
/// have `task_done` and `join`).
pub type JoinableQueueProxy<T> = QueueProxy<T>;

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    /// A copy of the referent (Python's `_getvalue()`). The server raises
    /// `TypeError` for a referent with no copyable value, as pickling one
    /// does in CPython.
    pub fn get_value(&self) -> Result<mp_proto::Value, ManagerError> {
        self.base.get_value_raw()
    }

    /// Wraps a reference to a `Queue` or `JoinableQueue`.
    pub fn from_base(base: BaseProxy) -> Self {
        QueueProxy {
            base,
            _marker: PhantomData,
        }
    }

    /// Puts `item` (a `T`, a `&T`, or a borrowed form such as `&str` for
    /// a `String`: see [`Arg`]), waiting for room as long as it takes.
    pub fn put(&self, item: impl Arg<T>) -> Result<(), QueueError> {
        self.base
            .call(QueueMethod::Put, vec![to_wire(&item)?])
            .map(drop)
            .map_err(QueueError::from)
    }

    /// Puts `item`, waiting for room at most `timeout` (`Full` after).
    pub fn put_timeout(&self, item: impl Arg<T>, timeout: Duration) -> Result<(), QueueError> {
        self.base
            .call(
                QueueMethod::Put,
                vec![to_wire(&item)?, Value::Bool(true), secs(timeout)],
            )
            .map(drop)
            .map_err(QueueError::from)
    }

    /// Puts `item` if there is room now (`Full` otherwise).
    pub fn put_nowait(&self, item: impl Arg<T>) -> Result<(), QueueError> {
        self.base
            .call(QueueMethod::PutNowait, vec![to_wire(&item)?])
            .map(drop)
            .map_err(QueueError::from)
    }

    /// Takes the next item, waiting as long as it takes.
    pub fn get(&self) -> Result<T, QueueError> {
        self.base
            .call_as(QueueMethod::Get, vec![])
            .map_err(QueueError::from)
    }

    /// Takes the next item, waiting at most `timeout` (`Empty` after).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.base
            .call_as(QueueMethod::Get, vec![Value::Bool(true), secs(timeout)])
            .map_err(QueueError::from)
    }

    /// Takes the next item if there is one now (`Empty` otherwise).
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        self.base
            .call_as(QueueMethod::GetNowait, vec![])
            .map_err(QueueError::from)
    }

    /// How many items wait.
    pub fn qsize(&self) -> Result<usize, QueueError> {
        self.base
            .call_as(QueueMethod::Qsize, vec![])
            .map_err(QueueError::from)
    }

    /// Whether no item waits.
    pub fn empty(&self) -> Result<bool, QueueError> {
        self.base
            .call_as(QueueMethod::Empty, vec![])
            .map_err(QueueError::from)
    }

    /// Whether the queue is at its maxsize.
    pub fn full(&self) -> Result<bool, QueueError> {
        self.base
            .call_as(QueueMethod::Full, vec![])
            .map_err(QueueError::from)
    }

    /// Marks one fetched item done (`JoinableQueue`; `ValueError` if
    /// called more often than items were put).
    pub fn task_done(&self) -> Result<(), QueueError> {
        self.base
            .call(QueueMethod::TaskDone, vec![])
            .map(drop)
            .map_err(QueueError::from)
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) -> Result<(), QueueError> {
        self.base
            .call(QueueMethod::Join, vec![])
            .map(drop)
            .map_err(QueueError::from)
    }
}
