//! [`AsyncSharedType`]: the async proxy of a program's own shared type,
//! which [`#[shared]`](crate::managers::shared) writes beside the
//! blocking one when this crate is built with its `asyncio` feature:
//! `AsyncMathsProxy` for `#[shared] impl Maths`, with the same methods
//! as `async fn`s.
//!
//! Create one with [`AsyncSyncManager::create_shared`] (or
//! [`create_shared_with`](AsyncSyncManager::create_shared_with) for a
//! constructor's arguments), find a published one with
//! [`AsyncSyncManager::lookup`]. A method declared
//! `#[shared(blocking)]` is cancelled on the server when its future is
//! dropped first; the server cannot stop a method already running on its
//! thread, so the method finishes there and its answer is dropped.
//!
//! # How the feature is seen
//!
//! The attribute is expanded in the program's crate, where
//! `cfg(feature = "asyncio")` would ask about the *program's* features.
//! So it writes the async proxy inside `multiprocessing::__if_asyncio!`,
//! a hidden macro of this crate defined twice: under this crate's `asyncio`
//! feature it keeps what it is given, without it it drops it. A program
//! gets the async proxies exactly when its `multiprocessing` has
//! `asyncio`, and needs no feature of its own.

use super::manager::AsyncSyncManager;
use super::proxy::{AsyncBaseProxy, AsyncProxyType};
use crate::managers::error::ManagerError;
use crate::managers::shared_type::SharedType;

/// A [`SharedType`] with an async proxy: what
/// [`#[shared]`](crate::managers::shared) implements under the `asyncio`
/// feature.
pub trait AsyncSharedType: SharedType {
    /// The async proxy of this type (`AsyncMathsProxy` for `Maths`).
    type AsyncProxy: AsyncProxyType;
}

impl AsyncSyncManager {
    /// A new object of the [`#[shared]`](crate::managers::shared) type
    /// `T`, made with `Default` (or a constructor without parameters) on
    /// a server that registered `T`, behind its async proxy.
    ///
    /// ```
    /// # #[cfg(feature = "server")] {
    /// use multiprocessing::managers::asyncio::AsyncSyncManager;
    /// use multiprocessing::managers::{shared, BaseManager};
    ///
    /// #[derive(Default)]
    /// pub struct Maths;
    ///
    /// #[shared]
    /// impl Maths {
    ///     pub fn add(&self, x: i64, y: i64) -> i64 {
    ///         x + y
    ///     }
    /// }
    ///
    /// let mut server = BaseManager::new("127.0.0.1:0", b"maths");
    /// server.register::<Maths>().unwrap();
    /// server.start().unwrap();
    /// let address = server.address().unwrap().clone();
    /// tokio::runtime::Runtime::new().unwrap().block_on(async {
    ///     let manager = AsyncSyncManager::connect(&address, b"maths").await.unwrap();
    ///     let maths: AsyncMathsProxy = manager.create_shared::<Maths>().await.unwrap();
    ///     assert_eq!(maths.add(4, 3).await.unwrap(), 7);
    /// });
    /// # }
    /// ```
    pub async fn create_shared<T: AsyncSharedType<NewArgs = ()>>(
        &self,
    ) -> Result<T::AsyncProxy, ManagerError> {
        self.create_shared_with::<T>(()).await
    }

    /// [`create_shared`](Self::create_shared) with the constructor's
    /// arguments as a tuple: `create_shared_with::<Counter>((5,))`.
    pub async fn create_shared_with<T: AsyncSharedType>(
        &self,
        args: T::NewArgs,
    ) -> Result<T::AsyncProxy, ManagerError> {
        let info = self
            .client()
            .create(T::TYPEID, T::new_args(args)?, Default::default())
            .await?;
        Ok(T::AsyncProxy::from_base(AsyncBaseProxy::from_owned(
            self.client().clone(),
            info.token,
        )))
    }
}
