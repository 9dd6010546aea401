//! [`AsyncQueueProxy`]: an async proxy of a shared `Queue` or
//! `JoinableQueue`, the async counterpart of
//! [`QueueProxy`](crate::managers::QueueProxy), failing with the same
//! [`QueueError`].
//!
//! Cancellation: dropping a pending [`get`](AsyncQueueProxy::get) takes
//! nothing (the server drops the wait, and an item whose answer was
//! already on its way is put back at the front); dropping a pending
//! [`join`](AsyncQueueProxy::join) leaves nothing behind. A dropped
//! [`put`](AsyncQueueProxy::put) that was waiting for room may or may
//! not have put its item.

use std::marker::PhantomData;
use std::time::Duration;

use mp_proto::methods::builtin::QueueMethod;
use mp_proto::Value;
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::proxy::{async_proxy_common, AsyncBaseProxy};
use crate::managers::error::ManagerError;
use crate::managers::proxies::Arg;
use crate::managers::proxy::{from_wire, secs, to_wire};
use crate::queues::QueueError;

/// A shared FIFO queue of `T`, for async code.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use multiprocessing::managers::asyncio::AsyncSyncManager;
/// use multiprocessing::managers::Manager;
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let manager = AsyncSyncManager::connect(&address, b"key").await.unwrap();
///     let q = manager.queue::<String>().await.unwrap();
///     let getter = {
///         let q = q.clone();
///         tokio::spawn(async move { q.get().await })
///     };
///     q.put("hello").await.unwrap();
///     assert_eq!(getter.await.unwrap().unwrap(), "hello");
/// });
/// # }
/// ```
pub struct AsyncQueueProxy<T> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> T>,
}
async_proxy_common!(AsyncQueueProxy<T> = ["Queue", "JoinableQueue"]);

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> AsyncQueueProxy<T> {
    async fn call(&self, method: QueueMethod, args: Vec<Value>) -> Result<Value, QueueError> {
        Ok(self.base.call(method, args).await?)
    }

    async fn call_as<R: DeserializeOwned>(
        &self,
        method: QueueMethod,
        args: Vec<Value>,
    ) -> Result<R, QueueError> {
        Ok(from_wire::<R>(self.call(method, args).await?)?)
    }

    /// Puts `item`, waiting for room as long as it takes.
    pub async fn put(&self, item: impl Arg<T>) -> Result<(), QueueError> {
        let item = to_wire(&item)?;
        self.call(QueueMethod::Put, vec![item]).await.map(drop)
    }

    /// Puts `item`, waiting for room at most `timeout` (`Full` after).
    pub async fn put_timeout(
        &self,
        item: impl Arg<T>,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        let args = vec![to_wire(&item)?, Value::Bool(true), secs(timeout)];
        self.call(QueueMethod::Put, args).await.map(drop)
    }

    /// Puts `item` if there is room now (`Full` otherwise).
    pub async fn put_nowait(&self, item: impl Arg<T>) -> Result<(), QueueError> {
        let item = to_wire(&item)?;
        self.call(QueueMethod::PutNowait, vec![item])
            .await
            .map(drop)
    }

    /// Takes the next item, waiting as long as it takes. Cancellation
    /// safe: a dropped `get` takes no item.
    pub async fn get(&self) -> Result<T, QueueError> {
        self.call_as(QueueMethod::Get, vec![]).await
    }

    /// Takes the next item, waiting at most `timeout` (`Empty` after).
    /// Cancellation safe.
    pub async fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.call_as(QueueMethod::Get, vec![Value::Bool(true), secs(timeout)])
            .await
    }

    /// Takes the next item if there is one now (`Empty` otherwise).
    pub async fn get_nowait(&self) -> Result<T, QueueError> {
        self.call_as(QueueMethod::GetNowait, vec![]).await
    }

    /// How many items wait.
    pub async fn qsize(&self) -> Result<usize, QueueError> {
        self.call_as(QueueMethod::Qsize, vec![]).await
    }

    /// Whether no item waits.
    pub async fn empty(&self) -> Result<bool, QueueError> {
        self.call_as(QueueMethod::Empty, vec![]).await
    }

    /// Whether the queue is at its maxsize.
    pub async fn full(&self) -> Result<bool, QueueError> {
        self.call_as(QueueMethod::Full, vec![]).await
    }

    /// Marks one fetched item done (`JoinableQueue`).
    pub async fn task_done(&self) -> Result<(), QueueError> {
        self.call(QueueMethod::TaskDone, vec![]).await.map(drop)
    }

    /// Waits until every item put has been marked done. Cancellation
    /// safe.
    pub async fn join(&self) -> Result<(), QueueError> {
        self.call(QueueMethod::Join, vec![]).await.map(drop)
    }

    /// A copy of the referent's value (Python's `_getvalue()`).
    pub async fn get_value(&self) -> Result<Value, ManagerError> {
        self.base.get_value_raw().await
    }
}
