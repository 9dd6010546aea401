//! Async proxies of SyncManager's synchronization types:
//! [`AsyncLockProxy`], [`AsyncRLockProxy`], [`AsyncSemaphoreProxy`],
//! [`AsyncEventProxy`], [`AsyncConditionProxy`] and
//! [`AsyncBarrierProxy`], failing with the local primitives' errors as
//! the sync proxies do.
//!
//! # Owners
//!
//! The server records who holds a lock by connection and thread number.
//! A task is not a thread, so each acquisition here takes a number of its
//! own, kept by its guard ([`AsyncAcquireGuard`]), which releases with it:
//! hold the guard across `.await`s freely, from any worker thread. An
//! `RLock` is therefore re-entrant through one guard's
//! [`acquire_again`](AsyncAcquireGuard::acquire_again), not through two
//! separate `acquire`s (which would wait for each other, as tokio's
//! `Mutex` does).
//!
//! # Cancellation
//!
//! Dropping a pending `acquire` leaves nothing held (the server drops the
//! wait, and a grant already on its way is released); dropping a pending
//! event `wait` leaves nothing behind; dropping a pending condition
//! `wait` leaves the lock released (its guard then holds nothing);
//! dropping a pending barrier `wait` breaks the barrier, as a timeout
//! does in Python.

use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::message::Target;
use mp_proto::methods::builtin::{BarrierMethod, ConditionMethod, EventMethod, SemaphoreMethod};
use mp_proto::Value;
use multiprocessing_macros::method_list;

use super::proxy::{async_proxy_common, new_owner, AsyncBaseProxy};
use crate::managers::error::ManagerError;
use crate::managers::proxy::{from_wire, secs};
use crate::synchronize::engine::deadline::Deadline;
use crate::synchronize::{BarrierError, ConditionError, ReleaseError};

/// A held acquisition of a lock, semaphore or condition: dropping it
/// releases (a release nobody waits for; the server frees what a lost
/// connection held).
#[must_use = "dropping the guard releases at once"]
pub struct AsyncAcquireGuard<'a> {
    base: &'a AsyncBaseProxy,
    /// The object acquired, in the connection generation `generation`
    /// (a reconnection released it on the server).
    object: mp_proto::ObjectId,
    generation: u64,
    /// The owner number the acquisition was made for.
    owner: u64,
    /// How many acquisitions the guard holds (an `RLock`'s depth).
    depth: u32,
}

#[method_list(LISTED)]
impl AsyncAcquireGuard<'_> {
    /// Releases now (every acquisition the guard holds), reporting a
    /// failure.
    pub async fn release(mut self) -> Result<(), ReleaseError> {
        while self.depth > 0 {
            self.depth -= 1;
            self.base
                .call_owned(
                    SemaphoreMethod::Release.name(),
                    vec![],
                    Kwargs::new(),
                    self.owner,
                )
                .await?;
        }
        Ok(())
    }

    /// Acquires once more as the same owner: an `RLock`'s re-entry (a
    /// `Lock` would wait for itself). Released with the guard.
    pub async fn acquire_again(&mut self) -> Result<(), ManagerError> {
        let got = self
            .base
            .call_owned(
                SemaphoreMethod::Acquire.name(),
                vec![Value::Bool(true)],
                Kwargs::new(),
                self.owner,
            )
            .await?;
        if got != Value::Bool(true) {
            return Err(ManagerError::Protocol(
                "blocking acquire returned False".into(),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// The owner number the server knows this acquisition by.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

impl Drop for AsyncAcquireGuard<'_> {
    fn drop(&mut self) {
        if self.base.client().generation() != self.generation {
            return;
        }
        for _ in 0..self.depth {
            let target = Target::Object(self.object);
            self.base.client().send_and_forget(
                target,
                SemaphoreMethod::Release.name(),
                vec![],
                self.owner,
            );
        }
    }
}

/// Acquires `base` with `args` as a fresh owner: a guard when it did.
async fn acquire<'a>(
    base: &'a AsyncBaseProxy,
    method: &'static str,
    args: Vec<Value>,
) -> Result<Option<AsyncAcquireGuard<'a>>, ManagerError> {
    let owner = new_owner();
    let generation = base.client().generation();
    let object = base.current().await?;
    match base.call_owned(method, args, Kwargs::new(), owner).await? {
        Value::Bool(true) => Ok(Some(AsyncAcquireGuard {
            base,
            object,
            generation,
            owner,
            depth: 1,
        })),
        Value::Bool(false) => Ok(None),
        other => Err(ManagerError::Protocol(format!(
            "acquire answered {}",
            other.repr()
        ))),
    }
}

macro_rules! async_acquirer {
    ($name:ident, $what:literal, [$($typeid:literal),*]) => {
        #[doc = concat!("A shared `", $what, "`, for async code.")]
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
        ///     let lock = manager.lock().await.unwrap();
        ///     let guard = lock.acquire().await.unwrap();
        ///     assert!(lock.try_acquire().await.unwrap().is_none());
        ///     guard.release().await.unwrap();
        /// });
        /// # }
        /// ```
        pub struct $name {
            base: AsyncBaseProxy,
        }
        async_proxy_common!($name = [$($typeid),*]);

        #[method_list(LISTED)]
        impl $name {
            /// A copy of the referent (Python's `_getvalue()`); a lock
            /// has none, so the server raises `TypeError` as pickling one
            /// does in CPython.
            pub async fn get_value(&self) -> Result<Value, ManagerError> {
                self.base.get_value_raw().await
            }

            /// Acquires, waiting as long as it takes. Cancellation safe:
            /// a dropped `acquire` holds nothing.
            pub async fn acquire(&self) -> Result<AsyncAcquireGuard<'_>, ManagerError> {
                acquire(&self.base, SemaphoreMethod::Acquire.name(), vec![Value::Bool(true)])
                    .await?
                    .ok_or_else(|| ManagerError::Protocol("blocking acquire returned False".into()))
            }

            /// Acquires, waiting at most `timeout`; `None` if it timed out.
            /// Cancellation safe.
            pub async fn acquire_timeout(
                &self,
                timeout: Duration,
            ) -> Result<Option<AsyncAcquireGuard<'_>>, ManagerError> {
                acquire(
                    &self.base,
                    SemaphoreMethod::Acquire.name(),
                    vec![Value::Bool(true), secs(timeout)],
                )
                .await
            }

            /// Acquires only if that needs no waiting.
            pub async fn try_acquire(&self) -> Result<Option<AsyncAcquireGuard<'_>>, ManagerError> {
                acquire(&self.base, SemaphoreMethod::Acquire.name(), vec![Value::Bool(false)]).await
            }
        }
    };
}

async_acquirer!(AsyncLockProxy, "threading.Lock", ["Lock"]);
async_acquirer!(AsyncRLockProxy, "threading.RLock", ["RLock"]);
async_acquirer!(
    AsyncSemaphoreProxy,
    "threading.Semaphore` or `BoundedSemaphore",
    ["Semaphore", "BoundedSemaphore"]
);

#[method_list(LISTED_LOCK)]
impl AsyncLockProxy {
    /// Whether some task or thread holds the lock.
    pub async fn locked(&self) -> Result<bool, ManagerError> {
        self.base.call_as(SemaphoreMethod::Locked, vec![]).await
    }
}

/// A shared `threading.Event`, for async code.
///
/// Dropping a pending [`wait`](Self::wait) leaves nothing behind.
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
///     let event = manager.event().await.unwrap();
///     let waiter = {
///         let event = event.clone();
///         tokio::spawn(async move { event.wait().await })
///     };
///     event.set().await.unwrap();
///     waiter.await.unwrap().unwrap();
/// });
/// # }
/// ```
pub struct AsyncEventProxy {
    base: AsyncBaseProxy,
}
async_proxy_common!(AsyncEventProxy = ["Event"]);

#[method_list(LISTED_SEMAPHORE)]
impl AsyncSemaphoreProxy {
    /// Releases once without a guard (a semaphore may be released by
    /// anyone; a `BoundedSemaphore` past its initial value is
    /// [`ReleaseError::TooManyReleases`]). A lock has no such release
    /// here: each async acquisition has an owner of its own, which only
    /// its guard knows.
    pub async fn release(&self) -> Result<(), ReleaseError> {
        self.base.call(SemaphoreMethod::Release, vec![]).await?;
        Ok(())
    }
}

#[method_list(LISTED)]
impl AsyncEventProxy {
    /// A copy of the referent (Python's `_getvalue()`); the server raises
    /// `TypeError`, as pickling an event does in CPython.
    pub async fn get_value(&self) -> Result<Value, ManagerError> {
        self.base.get_value_raw().await
    }

    /// Sets the flag, waking every waiter.
    pub async fn set(&self) -> Result<(), ManagerError> {
        self.base.call(EventMethod::Set, vec![]).await.map(drop)
    }

    /// Clears the flag.
    pub async fn clear(&self) -> Result<(), ManagerError> {
        self.base.call(EventMethod::Clear, vec![]).await.map(drop)
    }

    /// Whether the flag is set.
    pub async fn is_set(&self) -> Result<bool, ManagerError> {
        self.base.call_as(EventMethod::IsSet, vec![]).await
    }

    /// Waits until the flag is set. Cancellation safe.
    pub async fn wait(&self) -> Result<(), ManagerError> {
        self.base.call(EventMethod::Wait, vec![]).await.map(drop)
    }

    /// Waits at most `timeout`; whether the flag was set.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        self.base
            .call_as(EventMethod::Wait, vec![secs(timeout)])
            .await
    }
}

/// A shared `threading.Condition`, for async code: acquire it, then wait
/// and notify through the guard, which owns the lock.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use std::time::Duration;
/// use multiprocessing::managers::asyncio::AsyncSyncManager;
/// use multiprocessing::managers::Manager;
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let manager = AsyncSyncManager::connect(&address, b"key").await.unwrap();
///     let cond = manager.condition().await.unwrap();
///     let mut guard = cond.acquire().await.unwrap();
///     // Nobody notifies: the wait times out, holding the lock again.
///     assert!(!guard.wait_timeout(Duration::from_millis(10)).await.unwrap());
///     guard.notify_all().await.unwrap();
/// });
/// # }
/// ```
pub struct AsyncConditionProxy {
    base: AsyncBaseProxy,
}
async_proxy_common!(AsyncConditionProxy = ["Condition"]);

/// A held acquisition of an [`AsyncConditionProxy`]'s lock: waiting and
/// notifying go through it. Dropping it releases.
#[must_use = "dropping the guard releases at once"]
pub struct AsyncConditionGuard<'a> {
    inner: AsyncAcquireGuard<'a>,
}

#[method_list(LISTED)]
impl AsyncConditionProxy {
    /// A copy of the referent (Python's `_getvalue()`); the server raises
    /// `TypeError`, as pickling a condition does in CPython.
    pub async fn get_value(&self) -> Result<Value, ManagerError> {
        self.base.get_value_raw().await
    }

    /// Acquires the condition's lock, waiting as long as it takes.
    /// Cancellation safe.
    pub async fn acquire(&self) -> Result<AsyncConditionGuard<'_>, ManagerError> {
        let inner = acquire(
            &self.base,
            ConditionMethod::Acquire.name(),
            vec![Value::Bool(true)],
        )
        .await?
        .ok_or_else(|| ManagerError::Protocol("blocking acquire returned False".into()))?;
        Ok(AsyncConditionGuard { inner })
    }

    /// Acquires the lock, waiting at most `timeout`; `None` if it timed
    /// out. Cancellation safe.
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<AsyncConditionGuard<'_>>, ManagerError> {
        let args = vec![Value::Bool(true), secs(timeout)];
        Ok(acquire(&self.base, ConditionMethod::Acquire.name(), args)
            .await?
            .map(|inner| AsyncConditionGuard { inner }))
    }
}

#[method_list(LISTED)]
impl AsyncConditionGuard<'_> {
    async fn owned(
        &self,
        method: ConditionMethod,
        args: Vec<Value>,
    ) -> Result<Value, ManagerError> {
        self.inner
            .base
            .call_owned(method.name(), args, Kwargs::new(), self.inner.owner)
            .await
    }

    /// Releases the lock, waits for a notification, takes the lock back.
    /// If the future is dropped the lock is left released, and the guard
    /// then holds nothing.
    pub async fn wait(&mut self) -> Result<(), ConditionError> {
        self.wait_args(vec![]).await.map(drop)
    }

    /// [`wait`](Self::wait) for at most `timeout`; whether it was
    /// notified.
    pub async fn wait_timeout(&mut self, timeout: Duration) -> Result<bool, ConditionError> {
        Ok(from_wire(self.wait_args(vec![secs(timeout)]).await?)?)
    }

    /// Waits until `predicate` holds, evaluating it here after each
    /// wake-up, as Python's `wait_for` does; at most `timeout` in all
    /// (`None`: no limit). Returns the predicate's last result. A dropped
    /// future leaves the lock released, as [`wait`](Self::wait) does.
    pub async fn wait_for<F: FnMut() -> bool>(
        &mut self,
        mut predicate: F,
        timeout: Option<Duration>,
    ) -> Result<bool, ConditionError> {
        let deadline = Deadline::after(timeout);
        let mut result = predicate();
        while !result && !deadline.expired() {
            match deadline.remaining() {
                Some(left) => {
                    self.wait_timeout(left).await?;
                }
                None => self.wait().await?,
            }
            result = predicate();
        }
        Ok(result)
    }

    async fn wait_args(&mut self, args: Vec<Value>) -> Result<Value, ConditionError> {
        // Not held while waiting: a dropped wait leaves it released
        // (and a wait that won the race is released by the client).
        let depth = std::mem::take(&mut self.inner.depth);
        let waited = self.owned(ConditionMethod::Wait, args).await;
        if waited.is_ok() {
            self.inner.depth = depth;
        }
        Ok(waited?)
    }

    /// Wakes one waiter.
    pub async fn notify(&self) -> Result<(), ConditionError> {
        self.notify_n(1).await
    }

    /// Wakes up to `n` waiters.
    pub async fn notify_n(&self, n: usize) -> Result<(), ConditionError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.owned(ConditionMethod::Notify, vec![Value::Int(n)])
            .await?;
        Ok(())
    }

    /// Wakes every waiter.
    pub async fn notify_all(&self) -> Result<(), ConditionError> {
        self.owned(ConditionMethod::NotifyAll, vec![]).await?;
        Ok(())
    }

    /// Releases the lock now, reporting a failure.
    pub async fn release(self) -> Result<(), ReleaseError> {
        self.inner.release().await
    }
}

/// A shared `threading.Barrier`, for async code. Dropping a pending
/// [`wait`](Self::wait) breaks the barrier, as a timeout does in Python.
pub struct AsyncBarrierProxy {
    base: AsyncBaseProxy,
}
async_proxy_common!(AsyncBarrierProxy = ["Barrier"]);

#[method_list(LISTED)]
impl AsyncBarrierProxy {
    /// A copy of the referent (Python's `_getvalue()`); the server raises
    /// `TypeError`, as pickling a barrier does in CPython.
    pub async fn get_value(&self) -> Result<Value, ManagerError> {
        self.base.get_value_raw().await
    }

    /// Waits for the other parties; this party's index.
    pub async fn wait(&self) -> Result<usize, BarrierError> {
        Ok(self.base.call_as(BarrierMethod::Wait, vec![]).await?)
    }

    /// Waits at most `timeout` (`Broken` after, for every party).
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<usize, BarrierError> {
        Ok(self
            .base
            .call_as(BarrierMethod::Wait, vec![secs(timeout)])
            .await?)
    }

    /// Breaks the barrier.
    pub async fn abort(&self) -> Result<(), ManagerError> {
        self.base.call(BarrierMethod::Abort, vec![]).await.map(drop)
    }

    /// Resets the barrier.
    pub async fn reset(&self) -> Result<(), ManagerError> {
        self.base.call(BarrierMethod::Reset, vec![]).await.map(drop)
    }

    async fn attribute<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<T, ManagerError> {
        self.base
            .call_as(BarrierMethod::GetAttribute, vec![Value::Str(name.into())])
            .await
    }

    /// How many parties must wait.
    pub async fn parties(&self) -> Result<usize, ManagerError> {
        self.attribute("parties").await
    }

    /// How many parties wait now.
    pub async fn n_waiting(&self) -> Result<usize, ManagerError> {
        self.attribute("n_waiting").await
    }

    /// Whether the barrier is broken.
    pub async fn broken(&self) -> Result<bool, ManagerError> {
        self.attribute("broken").await
    }
}
