//! [`AsyncManagerClient`]: one multiplexed connection to a manager server
//! for async code, shared by any number of tasks.
//!
//! # How tasks share the connection
//!
//! The connection is a [`ManagerClient`]'s: one set of pending calls and
//! one reading role for its threads and its tasks alike (see
//! `managers::client::reading`). A call registers its id, writes its
//! frame (under the write lock, a short critical section: frames are
//! small and the server never stops reading a connection whose answers
//! are read) and awaits its answer. The awaiting task reads the
//! connection itself when nobody else is — polling for its answer up to
//! the connection's spin, as a blocking caller does, and handing others'
//! answers to their wakers — so one task calling one call at a time pays
//! what a blocking thread does. A task never blocks in `read`: when its
//! answer is slow (a `get` waiting on an empty queue), a thread of the
//! connection reads instead, so a blocked call holds up nothing but
//! itself. A shared-memory channel wakes its reader through a futex no
//! runtime can poll; the same rules serve it, under a current-thread or a
//! multi-thread runtime.
//!
//! [`AsyncManagerClient::from_sync`] and [`AsyncManagerClient::to_sync`]
//! give the async and the blocking API one connection in a process that
//! uses both.
//!
//! The connection is opened by the sync client's own code
//! (`managers::client::connect`: TCP, Unix, TLS, the handshake, the hello,
//! the channel), on the runtime's blocking pool.
//!
//! # Dropped calls
//!
//! Dropping a call's future before its answer forgets the call. If the
//! call may wait on the server (a declared `blocking` method), a
//! `cancel(id)` goes out so the server drops it, and whatever the answer
//! brings back when it won the race is handed back (`Undo`): an item
//! to the queue's front, a lock released.
//!
//! # Reconnection
//!
//! As the blocking client's ([`Reconnect`](crate::managers::Reconnect)):
//! when the connection breaks, every call in flight fails with
//! [`ManagerError::ConnectionLost`], a background thread connects again
//! with backoff, and a new generation starts (see [`super::proxy`] for
//! what proxies do about it).

use std::future::poll_fn;

use mp_proto::message::{Kwargs, ProxyInfo, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::reports::{NamedObject, ObjectInfo};
use mp_proto::value::from_value;
use mp_proto::{ErrorKind, ObjectId, RemoteError, Value};

pub(super) use super::pending::CallKind;
use super::pending::Pending;
use crate::connection::Address;
use crate::managers::client::{create_args, encode_request_as, fresh_thread_no};
use crate::managers::client::{
    ConnectOptions, ConnectionState, ManagerClient, Return, ServerStatus,
};
use crate::managers::error::ManagerError;

pub(super) use crate::managers::client::undo::Undo;

/// A connection to a manager server for async code: the async
/// counterpart of [`ManagerClient`].
/// Cheap to clone; clones share the connection, which closes when the
/// last one is dropped.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use multiprocessing::managers::asyncio::AsyncManagerClient;
/// use multiprocessing::managers::Manager;
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let client = AsyncManagerClient::connect(&address, b"key").await.unwrap();
///     client.ping().await.unwrap();
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncManagerClient {
    client: ManagerClient,
}

/// A fresh owner number for an acquisition: lock ownership is per
/// connection and number, and async owners are drawn from the blocking
/// client's thread numbers, so the two never own a lock as one on a
/// shared connection.
pub(super) fn fresh_owner() -> u64 {
    fresh_thread_no()
}

impl AsyncManagerClient {
    /// Connects to the manager at `address` and authenticates with
    /// `authkey` (over TLS if
    /// [`use_tls_for`](crate::managers::tls::use_tls_for) registered
    /// `address`). The socket, handshake and hello run on the runtime's
    /// blocking pool.
    pub async fn connect(address: &Address, authkey: &[u8]) -> Result<Self, ManagerError> {
        let options = ConnectOptions {
            #[cfg(feature = "tls")]
            tls: crate::managers::tls::registered(address),
            ..ConnectOptions::default()
        };
        Self::connect_with(address, authkey, &options).await
    }

    /// [`connect`](Self::connect) with options (TLS, timeouts, the
    /// shared-memory channel, reconnection).
    pub async fn connect_with(
        address: &Address,
        authkey: &[u8],
        options: &ConnectOptions,
    ) -> Result<Self, ManagerError> {
        let (a, k, o) = (address.clone(), authkey.to_vec(), options.clone());
        let client = tokio::task::spawn_blocking(move || ManagerClient::connect_with(&a, &k, &o))
            .await
            .map_err(|e| ManagerError::ConnectionLost(format!("connecting failed: {e}")))??;
        Ok(AsyncManagerClient { client })
    }

    /// An async handle on `client`'s connection: its threads and this
    /// handle's tasks share one connection and one reader (the reading
    /// role, see the module docs), and it closes when the last handle of
    /// either kind is dropped.
    ///
    /// ```
    /// # #[cfg(feature = "server")] {
    /// use multiprocessing::managers::asyncio::AsyncManagerClient;
    /// use multiprocessing::managers::{Manager, ManagerClient};
    ///
    /// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
    /// let sync = ManagerClient::connect(server.address(), b"key").unwrap();
    /// let client = AsyncManagerClient::from_sync(&sync);
    /// tokio::runtime::Runtime::new().unwrap().block_on(async {
    ///     client.ping().await.unwrap();
    /// });
    /// sync.ping().unwrap();
    /// assert!(client.to_sync().same_connection(&sync));
    /// # }
    /// ```
    pub fn from_sync(client: &ManagerClient) -> AsyncManagerClient {
        AsyncManagerClient {
            client: client.clone(),
        }
    }

    /// The blocking client on this connection (see
    /// [`from_sync`](Self::from_sync)).
    pub fn to_sync(&self) -> ManagerClient {
        self.client.clone()
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        self.client.address()
    }

    /// Whether `other` shares this one's connection (is a clone of it).
    pub fn same_connection(&self, other: &AsyncManagerClient) -> bool {
        self.client.same_connection(&other.client)
    }

    /// Whether calls go through a shared-memory channel.
    pub fn uses_shared_memory(&self) -> bool {
        self.client.uses_shared_memory()
    }

    /// How many times this client has reconnected: references taken in
    /// an earlier generation are gone from the server.
    pub fn generation(&self) -> u64 {
        self.client.generation()
    }

    /// Where the connection stands now.
    pub fn connection_state(&self) -> ConnectionState {
        self.client.connection_state()
    }

    /// Waits until the connection is back in a generation after `seen`;
    /// false if it will not come back (reconnection off or given up).
    pub async fn wait_reconnected(&self, seen: u64) -> bool {
        poll_fn(|cx| self.client.poll_reconnected(seen, cx)).await
    }

    /// Sends one request and awaits its answer. `blocking` says the
    /// method may wait on the server (it is then cancelled there if the
    /// future is dropped first), `thread` is the owner the server records
    /// for a lock, and `undo` what to give back when the future is
    /// dropped but the call succeeded anyway.
    pub(super) fn start(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
        call: CallKind,
    ) -> Result<Pending, ManagerError> {
        let client = &self.client;
        let id = client.next_id();
        let mut frame = Vec::with_capacity(64);
        encode_request_as(&mut frame, id, target, method, args, kwargs, call.thread)?;
        let task = client.register_task(id, !call.blocking)?;
        let pending = Pending {
            client: client.clone(),
            call: task,
            kind: call,
            done: false,
        };
        // A failed write kills the connection (the dropped `pending`
        // forgets the call).
        client.send(&frame, &[])?;
        Ok(pending)
    }

    /// Sends one request and awaits its answer (Python's `_callmethod`
    /// for an object target, or a server call).
    pub async fn call(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Return, ManagerError> {
        self.start(target, method, args, kwargs, CallKind::quick())?
            .await
    }

    /// Calls `method` of the shared object `id`. A method the server may
    /// hold (a built-in type's `blocking` method) is cancelled there when
    /// the future is dropped first.
    pub async fn call_method(
        &self,
        id: ObjectId,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Return, ManagerError> {
        self.call(Target::Object(id), method, args, kwargs).await
    }

    async fn server(&self, method: ServerMethod, args: Vec<Value>) -> Result<Value, ManagerError> {
        self.call(Target::Server, method.name(), args, Kwargs::new())
            .await?
            .into_value()
    }

    /// Creates a shared object of `typeid`; this connection owns its one
    /// reference.
    pub async fn create(
        &self,
        typeid: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<ProxyInfo, ManagerError> {
        self.call(
            Target::Server,
            ServerMethod::Create.name(),
            create_args(typeid, args),
            kwargs,
        )
        .await?
        .into_proxy()
    }

    /// Adds a reference to `id`, owned by this connection.
    pub async fn incref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server(ServerMethod::Incref, vec![id_value(id)])
            .await
            .map(drop)
    }

    /// Gives back a reference to `id` this connection owns.
    pub async fn decref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server(ServerMethod::Decref, vec![id_value(id)])
            .await
            .map(drop)
    }

    /// A round trip that does nothing.
    pub async fn ping(&self) -> Result<(), ManagerError> {
        self.server(ServerMethod::Ping, vec![]).await.map(drop)
    }

    /// How many shared objects are alive.
    pub async fn number_of_objects(&self) -> Result<u64, ManagerError> {
        convert(self.server(ServerMethod::NumberOfObjects, vec![]).await?)
    }

    /// Every live object with its typeid and refcount.
    pub async fn debug_info(&self) -> Result<Vec<ObjectInfo>, ManagerError> {
        convert(self.server(ServerMethod::DebugInfo, vec![]).await?)
    }

    /// The server's status.
    pub async fn status(&self) -> Result<ServerStatus, ManagerError> {
        convert(self.server(ServerMethod::Status, vec![]).await?)
    }

    /// Names the object `id` refers to `name` on the server (see
    /// [`ManagerClient::publish`](crate::managers::ManagerClient::publish)).
    pub async fn publish_id(
        &self,
        name: &str,
        id: ObjectId,
        replace: bool,
    ) -> Result<(), ManagerError> {
        let args = vec![
            Value::Str(name.to_owned()),
            id_value(id),
            Value::Bool(replace),
        ];
        self.server(ServerMethod::Publish, args).await.map(drop)
    }

    /// Removes `name` (a `KeyError` if nothing has it).
    pub async fn unpublish(&self, name: &str) -> Result<(), ManagerError> {
        self.server(ServerMethod::Unpublish, vec![Value::Str(name.to_owned())])
            .await
            .map(drop)
    }

    /// The server's `lookup`: a new reference to the object `name`
    /// names, which this connection then owns.
    pub async fn lookup_info(&self, name: &str) -> Result<ProxyInfo, ManagerError> {
        self.call(
            Target::Server,
            ServerMethod::Lookup.name(),
            vec![Value::Str(name.to_owned())],
            Kwargs::new(),
        )
        .await?
        .into_proxy()
    }

    /// Every name on the server, with its object and typeid.
    pub async fn names(&self) -> Result<Vec<NamedObject>, ManagerError> {
        convert(self.server(ServerMethod::Names, vec![]).await?)
    }

    /// Sends a request whose answer nobody awaits (a dropped proxy's
    /// `decref`, a guard's `release`): a failure means the connection is
    /// gone, and the server released what it held with it.
    pub(super) fn send_and_forget(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        thread: u64,
    ) {
        self.client.send_and_forget(target, method, args, thread);
    }
}

pub(super) fn id_value(id: ObjectId) -> Value {
    // Server ids stay below 2^52, so they fit an int.
    Value::Int(id.0 as i64)
}

fn convert<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ManagerError> {
    from_value(value).map_err(|e| ManagerError::Protocol(format!("unexpected answer: {e}")))
}

/// The error a lookup of the wrong type gets.
pub(super) fn wrong_type(name: &str, typeid: &str, wanted: &[&str]) -> ManagerError {
    ManagerError::Remote(RemoteError::new(
        ErrorKind::TypeError,
        format!("the name '{name}' is a '{typeid}' object, not one of {wanted:?}"),
    ))
}

impl std::fmt::Debug for AsyncManagerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncManagerClient")
            .field("address", self.client.address())
            .finish()
    }
}
