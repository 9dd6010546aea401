//! [`SyncManager`]: a connection to a manager server serving SyncManager's
//! types, and the typed constructors of its shared objects (Python's
//! `multiprocessing.managers.SyncManager`).
//!
//! Every proxy made by one `SyncManager` (and every clone of it) shares
//! the manager's one multiplexed connection.

use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::ManagerClient;
use super::error::ManagerError;
use super::proxies::arg::{wire_all, wire_pairs, Arg};
use super::proxies::{
    ArrayProxy, AutoProxy, BarrierProxy, BoundedSemaphoreProxy, ConditionProxy, DictProxy,
    EventProxy, JoinableQueueProxy, ListProxy, LockProxy, NamespaceProxy, QueueProxy, RLockProxy,
    SemaphoreProxy, ValueProxy,
};
use super::proxy::{secs, to_wire, BaseProxy, ProxyType};
use super::shared_type::SharedType;
use crate::connection::Address;

/// A client of a SyncManager server.
#[derive(Clone, Debug)]
pub struct SyncManager {
    client: ManagerClient,
}

impl SyncManager {
    /// Connects to the manager at `address` with `authkey` (Python's
    /// `SyncManager(address, authkey).connect()`), reusing this process's
    /// live connection to that server if it has one: one multiplexed
    /// connection per process per server.
    pub fn connect(address: &Address, authkey: &[u8]) -> Result<Self, ManagerError> {
        Ok(SyncManager {
            client: super::transfer::shared_connection(address, authkey)?,
        })
    }

    /// [`connect`](Self::connect) with options (TLS, timeouts).
    pub fn connect_with(
        address: &Address,
        authkey: &[u8],
        options: &super::ConnectOptions,
    ) -> Result<Self, ManagerError> {
        Ok(Self::from_client(ManagerClient::connect_with(
            address, authkey, options,
        )?))
    }

    /// Wraps an existing connection.
    /// Proxies received later for this server reuse it.
    pub fn from_client(client: ManagerClient) -> Self {
        super::transfer::register_connection(&client);
        SyncManager { client }
    }

    /// The connection every proxy of this manager shares.
    pub fn client(&self) -> &ManagerClient {
        &self.client
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        self.client.address()
    }

    fn make(&self, typeid: &str, args: Vec<Value>) -> Result<BaseProxy, ManagerError> {
        BaseProxy::create(&self.client, typeid, args, Kwargs::new())
    }

    /// A new object of any registered `typeid`, behind an [`AutoProxy`].
    pub fn create_auto(
        &self,
        typeid: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<AutoProxy, ManagerError> {
        let info = self.client.create(typeid, args, kwargs)?;
        Ok(AutoProxy::from_info(self.client.clone(), info))
    }

    /// A new object of a [`#[shared]`](super::shared) type made with
    /// `Default` (or a constructor without parameters), behind its typed
    /// proxy; the server must serve the type (an embedded server
    /// registered with [`BaseManager::register`](super::BaseManager::register)).
    pub fn create<T: SharedType<NewArgs = ()>>(&self) -> Result<T::Proxy, ManagerError> {
        super::shared_type::create::<T>(&self.client, ())
    }

    /// [`create`](Self::create) with the constructor's arguments as a
    /// tuple: `create_with::<Counter>((5,))`.
    pub fn create_with<T: SharedType>(&self, args: T::NewArgs) -> Result<T::Proxy, ManagerError> {
        super::shared_type::create::<T>(&self.client, args)
    }

    /// Names the object `proxy` refers to `name` on the server, so that
    /// other clients find it with [`lookup`](Self::lookup) — even after
    /// this one is gone; a taken name is a `ValueError` (see
    /// [`ManagerClient::publish`] to replace one).
    ///
    /// ```no_run
    /// use multiprocessing::managers::{QueueProxy, SyncManager};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // One client, on one host, makes a queue and names it …
    /// let m = SyncManager::connect(&"10.0.0.5:50000".parse()?, b"key")?;
    /// let jobs = m.queue::<String>()?;
    /// m.publish("jobs", &jobs)?;
    /// // … any other finds it (or `mpserver serve --shared jobs=Queue`
    /// // made it at start).
    /// let other = SyncManager::connect(&"10.0.0.5:50000".parse()?, b"key")?;
    /// let jobs: QueueProxy<String> = other.lookup("jobs")?;
    /// jobs.put("job-1")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish(&self, name: &str, proxy: &impl AsRef<BaseProxy>) -> Result<(), ManagerError> {
        self.client.publish(name, proxy, false)
    }

    /// Removes a name (the object lives on while referred to).
    pub fn unpublish(&self, name: &str) -> Result<(), ManagerError> {
        self.client.unpublish(name)
    }

    /// A typed proxy to the object published as `name`: `KeyError` for a
    /// name nothing has, `TypeError` for an object `P` does not serve.
    /// After a reconnection the proxy finds the object again by this name.
    pub fn lookup<P: ProxyType>(&self, name: &str) -> Result<P, ManagerError> {
        self.client.lookup(name)
    }

    /// A new empty shared `dict`.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, ManagerError>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        self.make("dict", vec![]).map(DictProxy::from_base)
    }

    /// A new shared `dict` holding `pairs`, in order, a later pair's value
    /// replacing an earlier one's for the same key (Python's
    /// `dict(mapping)` or `dict(iterable_of_pairs)`): an array of tuples,
    /// a `HashMap` or `&HashMap`, another dict's items.
    ///
    /// When the pairs' own types could be more than one `K` or `V` (an
    /// integer or a string literal also fills a [`PyObject`] slot), name
    /// them: `dict_from::<String, i64>([("a", 1)])`.
    ///
    /// [`PyObject`]: super::PyObject
    pub fn dict_from<K, V>(
        &self,
        pairs: impl IntoIterator<Item = (impl Arg<K>, impl Arg<V>)>,
    ) -> Result<DictProxy<K, V>, ManagerError>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        self.make("dict", vec![wire_pairs(pairs)?])
            .map(DictProxy::from_base)
    }

    /// A new empty shared `list`.
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>, ManagerError> {
        self.make("list", vec![]).map(ListProxy::from_base)
    }

    /// A new shared list holding `items` (Python's `list(iterable)`): a
    /// slice or `&Vec` of `T`, a `Vec<T>`, a range, any iterator of what
    /// [`Arg<T>`] accepts. Name `T` when the items could be more than one
    /// type of item (`list_from::<i64>(0..10)`).
    pub fn list_from<T: Serialize + DeserializeOwned>(
        &self,
        items: impl IntoIterator<Item = impl Arg<T>>,
    ) -> Result<ListProxy<T>, ManagerError> {
        self.make("list", vec![wire_all(items)?])
            .map(ListProxy::from_base)
    }

    /// A new unbounded shared queue.
    pub fn queue<T: Serialize + DeserializeOwned>(&self) -> Result<QueueProxy<T>, ManagerError> {
        self.make("Queue", vec![]).map(QueueProxy::from_base)
    }

    /// A new shared queue holding at most `maxsize` items.
    pub fn queue_bounded<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<QueueProxy<T>, ManagerError> {
        self.make("Queue", vec![to_wire(&maxsize)?])
            .map(QueueProxy::from_base)
    }

    /// A new unbounded shared `JoinableQueue` (`task_done`, `join`).
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(
        &self,
    ) -> Result<JoinableQueueProxy<T>, ManagerError> {
        self.make("JoinableQueue", vec![])
            .map(QueueProxy::from_base)
    }

    /// A new shared `Lock`.
    pub fn lock(&self) -> Result<LockProxy, ManagerError> {
        self.make("Lock", vec![]).map(LockProxy::from_base)
    }

    /// A new shared `RLock`.
    pub fn rlock(&self) -> Result<RLockProxy, ManagerError> {
        self.make("RLock", vec![]).map(RLockProxy::from_base)
    }

    /// A new shared `Semaphore(value)`.
    pub fn semaphore(&self, value: u32) -> Result<SemaphoreProxy, ManagerError> {
        self.make("Semaphore", vec![Value::Int(value.into())])
            .map(SemaphoreProxy::from_base)
    }

    /// A new shared `BoundedSemaphore(value)`: releasing past `value` is a
    /// `ValueError`.
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphoreProxy, ManagerError> {
        self.make("BoundedSemaphore", vec![Value::Int(value.into())])
            .map(SemaphoreProxy::from_base)
    }

    /// A new shared `Event`, clear.
    pub fn event(&self) -> Result<EventProxy, ManagerError> {
        self.make("Event", vec![]).map(EventProxy::from_base)
    }

    /// A new shared `Value(typecode, value)`.
    pub fn value<T: Serialize + DeserializeOwned>(
        &self,
        typecode: &str,
        value: impl Arg<T>,
    ) -> Result<ValueProxy<T>, ManagerError> {
        self.make(
            "Value",
            vec![Value::Str(typecode.to_owned()), to_wire(&value)?],
        )
        .map(ValueProxy::from_base)
    }

    /// A new empty shared `Namespace`.
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        self.make("Namespace", vec![])
            .map(NamespaceProxy::from_base)
    }

    /// A new shared `Condition` with its own `RLock`.
    pub fn condition(&self) -> Result<ConditionProxy, ManagerError> {
        self.make("Condition", vec![])
            .map(ConditionProxy::from_base)
    }

    /// A new shared `Condition` around the shared `Lock` of `lock`.
    pub fn condition_with_lock(&self, lock: &LockProxy) -> Result<ConditionProxy, ManagerError> {
        self.condition_around(lock.base())
    }

    /// A new shared `Condition` around the shared `RLock` of `lock`
    /// (`Condition(rlock)`): whoever holds the `RLock`, at any depth,
    /// holds the condition's lock, and a `wait` releases every level and
    /// restores them.
    ///
    /// ```
    /// use multiprocessing::managers::Manager;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = Manager()?;
    /// let rlock = manager.rlock()?;
    /// let cond = manager.condition_with_rlock(&rlock)?;
    /// let outer = rlock.acquire()?;
    /// let inner = cond.acquire()?; // the same RLock, one level deeper
    /// assert!(!cond.wait_timeout(std::time::Duration::from_millis(10))?);
    /// drop(inner);
    /// drop(outer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn condition_with_rlock(&self, lock: &RLockProxy) -> Result<ConditionProxy, ManagerError> {
        self.condition_around(lock.base())
    }

    fn condition_around(&self, lock: &BaseProxy) -> Result<ConditionProxy, ManagerError> {
        let token = Value::Proxy(Box::new(lock.token().clone()));
        self.make("Condition", vec![token])
            .map(ConditionProxy::from_base)
    }

    /// A new shared `Barrier(parties)`.
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy, ManagerError> {
        self.make("Barrier", vec![to_wire(&parties)?])
            .map(BarrierProxy::from_base)
    }

    /// A new shared `Barrier(parties, timeout=timeout)`: `timeout` is the
    /// default of every [`wait`](BarrierProxy::wait), after which the
    /// barrier breaks. (An `action` cannot be sent to the server: a
    /// barrier with one is a type an embedding program registers.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocessing::managers::Manager;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = Manager()?;
    /// let b = manager.barrier_with_timeout(2, Duration::from_millis(50))?;
    /// // The second party never comes: the wait times out and breaks it.
    /// assert!(b.wait().unwrap_err().is_broken());
    /// assert!(b.broken()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn barrier_with_timeout(
        &self,
        parties: usize,
        timeout: Duration,
    ) -> Result<BarrierProxy, ManagerError> {
        self.make(
            "Barrier",
            vec![to_wire(&parties)?, Value::None, secs(timeout)],
        )
        .map(BarrierProxy::from_base)
    }

    /// A new shared `Array(typecode, items)`; each item is checked against
    /// the typecode (`OverflowError`, `TypeError`).
    pub fn array<T: Serialize + DeserializeOwned>(
        &self,
        typecode: &str,
        items: impl IntoIterator<Item = impl Arg<T>>,
    ) -> Result<ArrayProxy<T>, ManagerError> {
        self.make(
            "Array",
            vec![Value::Str(typecode.to_owned()), wire_all(items)?],
        )
        .map(ArrayProxy::from_base)
    }

    /// Waits until the server holds exactly `n` objects, at most `timeout`
    /// (drops release references in the background); whether it did.
    pub fn wait_for_object_count(&self, n: u64, timeout: Duration) -> Result<bool, ManagerError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.client.number_of_objects()? == n {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
