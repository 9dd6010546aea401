//! [`AsyncSyncManager`]: an async client of a SyncManager server and the
//! constructors of its shared objects, the async counterpart of
//! [`SyncManager`](crate::managers::SyncManager).

use mp_proto::message::Kwargs;
use mp_proto::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::AsyncManagerClient;
use super::collections::{
    AsyncArrayProxy, AsyncDictProxy, AsyncListProxy, AsyncNamespaceProxy, AsyncValueProxy,
};
use super::proxy::{AsyncBaseProxy, AsyncProxyType};
use super::queue::AsyncQueueProxy;
use super::sync::{
    AsyncBarrierProxy, AsyncConditionProxy, AsyncEventProxy, AsyncLockProxy, AsyncRLockProxy,
    AsyncSemaphoreProxy,
};
use crate::connection::Address;
use crate::managers::error::ManagerError;
use crate::managers::proxies::Arg;
use crate::managers::proxy::to_wire;
use crate::managers::transfer::{register_keyed, shared_connection};
use crate::managers::ConnectOptions;

/// An async client of a SyncManager server.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use multiprocessing::managers::asyncio::AsyncSyncManager;
/// use multiprocessing::managers::Manager;
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Builder::new_current_thread()
///     .enable_all()
///     .build()
///     .unwrap()
///     .block_on(async {
///         let manager = AsyncSyncManager::connect(&address, b"key").await.unwrap();
///         let counts = manager.dict::<String, i64>().await.unwrap();
///         manager.publish("counts", &counts).await.unwrap();
///         let again = manager.lookup::<AsyncDictProxy<String, i64>>("counts").await.unwrap();
///         again.set("x", 1).await.unwrap();
///         assert_eq!(counts.get_item("x").await.unwrap(), 1);
///     });
/// # use multiprocessing::managers::asyncio::AsyncDictProxy;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AsyncSyncManager {
    client: AsyncManagerClient,
}

impl AsyncSyncManager {
    /// Connects to the manager at `address` with `authkey`, reusing this
    /// process's live connection to that server if it has one, whether a
    /// blocking [`SyncManager`](crate::managers::SyncManager) or an async
    /// manager opened it: one multiplexed connection per process per
    /// server, whose threads and tasks share one reader.
    pub async fn connect(address: &Address, authkey: &[u8]) -> Result<Self, ManagerError> {
        let (a, k) = (address.clone(), authkey.to_vec());
        // Finding a live one is quick; opening one blocks.
        let client = tokio::task::spawn_blocking(move || shared_connection(&a, &k))
            .await
            .map_err(|e| ManagerError::ConnectionLost(format!("connecting failed: {e}")))??;
        Ok(AsyncSyncManager {
            client: AsyncManagerClient::from_sync(&client),
        })
    }

    /// [`connect`](Self::connect) with options (TLS, timeouts, the
    /// channel, reconnection), on a connection of its own.
    pub async fn connect_with(
        address: &Address,
        authkey: &[u8],
        options: &ConnectOptions,
    ) -> Result<Self, ManagerError> {
        Ok(AsyncSyncManager {
            client: AsyncManagerClient::connect_with(address, authkey, options).await?,
        })
    }

    /// Wraps an existing connection; later [`connect`](Self::connect)s
    /// to its server reuse it.
    pub fn from_client(client: AsyncManagerClient) -> Self {
        let sync = client.to_sync();
        register_keyed(&sync, Some(sync.authkey()));
        AsyncSyncManager { client }
    }

    /// The connection every proxy of this manager shares.
    pub fn client(&self) -> &AsyncManagerClient {
        &self.client
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        self.client.address()
    }

    /// A new object of `typeid`, made with `args`, as a proxy of type `P`.
    pub async fn create<P: AsyncProxyType>(
        &self,
        typeid: &str,
        args: Vec<Value>,
    ) -> Result<P, ManagerError> {
        let info = self.client.create(typeid, args, Kwargs::new()).await?;
        Ok(P::from_base(AsyncBaseProxy::from_owned(
            self.client.clone(),
            info.token,
        )))
    }

    /// Names `proxy`'s object `name` on the server (a `ValueError` if the
    /// name is taken).
    pub async fn publish(
        &self,
        name: &str,
        proxy: &impl AsyncProxyType,
    ) -> Result<(), ManagerError> {
        self.client.publish(name, proxy, false).await
    }

    /// Removes the name `name`.
    pub async fn unpublish(&self, name: &str) -> Result<(), ManagerError> {
        self.client.unpublish(name).await
    }

    /// A proxy of type `P` to the object published as `name`; after a
    /// reconnection it finds the object again by that name.
    pub async fn lookup<P: AsyncProxyType>(&self, name: &str) -> Result<P, ManagerError> {
        self.client.lookup(name).await
    }

    /// A new shared `dict`.
    pub async fn dict<K, V>(&self) -> Result<AsyncDictProxy<K, V>, ManagerError>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        self.create("dict", vec![]).await
    }

    /// A new shared `list`.
    pub async fn list<T: Serialize + DeserializeOwned>(
        &self,
    ) -> Result<AsyncListProxy<T>, ManagerError> {
        self.create("list", vec![]).await
    }

    /// A new unbounded shared `Queue`.
    pub async fn queue<T: Serialize + DeserializeOwned>(
        &self,
    ) -> Result<AsyncQueueProxy<T>, ManagerError> {
        self.create("Queue", vec![]).await
    }

    /// A new shared `Queue` holding at most `maxsize` items.
    pub async fn queue_bounded<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<AsyncQueueProxy<T>, ManagerError> {
        self.create("Queue", vec![to_wire(&maxsize)?]).await
    }

    /// A new shared `JoinableQueue`.
    pub async fn joinable_queue<T: Serialize + DeserializeOwned>(
        &self,
    ) -> Result<AsyncQueueProxy<T>, ManagerError> {
        self.create("JoinableQueue", vec![]).await
    }

    /// A new shared `Lock`.
    pub async fn lock(&self) -> Result<AsyncLockProxy, ManagerError> {
        self.create("Lock", vec![]).await
    }

    /// A new shared `RLock`.
    pub async fn rlock(&self) -> Result<AsyncRLockProxy, ManagerError> {
        self.create("RLock", vec![]).await
    }

    /// A new shared `Semaphore` starting at `value`.
    pub async fn semaphore(&self, value: u32) -> Result<AsyncSemaphoreProxy, ManagerError> {
        self.create("Semaphore", vec![Value::Int(value.into())])
            .await
    }

    /// A new shared `BoundedSemaphore` starting at `value`.
    pub async fn bounded_semaphore(&self, value: u32) -> Result<AsyncSemaphoreProxy, ManagerError> {
        self.create("BoundedSemaphore", vec![Value::Int(value.into())])
            .await
    }

    /// A new shared `Event`.
    pub async fn event(&self) -> Result<AsyncEventProxy, ManagerError> {
        self.create("Event", vec![]).await
    }

    /// A new shared `Condition` with its own `RLock`.
    pub async fn condition(&self) -> Result<AsyncConditionProxy, ManagerError> {
        self.create("Condition", vec![]).await
    }

    /// A new shared `Barrier` for `parties`.
    pub async fn barrier(&self, parties: usize) -> Result<AsyncBarrierProxy, ManagerError> {
        self.create("Barrier", vec![to_wire(&parties)?]).await
    }

    /// A new shared `Value` of `typecode` holding `value`.
    pub async fn value<T: Serialize + DeserializeOwned>(
        &self,
        typecode: &str,
        value: impl Arg<T>,
    ) -> Result<AsyncValueProxy<T>, ManagerError> {
        let args = vec![Value::Str(typecode.to_owned()), to_wire(&value)?];
        self.create("Value", args).await
    }

    /// A new shared `Namespace`.
    pub async fn namespace(&self) -> Result<AsyncNamespaceProxy, ManagerError> {
        self.create("Namespace", vec![]).await
    }

    /// A new shared `Array` of `typecode` holding `items`.
    pub async fn array<T: Serialize + DeserializeOwned>(
        &self,
        typecode: &str,
        items: impl IntoIterator<Item = impl Arg<T>>,
    ) -> Result<AsyncArrayProxy<T>, ManagerError> {
        let items = items
            .into_iter()
            .map(|i| to_wire(&i))
            .collect::<Result<Vec<_>, _>>()?;
        self.create(
            "Array",
            vec![Value::Str(typecode.to_owned()), Value::List(items)],
        )
        .await
    }
}
