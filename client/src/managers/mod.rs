//! Clients of a manager server (Python's `multiprocessing.managers`).
//!
//! [`ManagerClient`] is the low-level client of `mpserver` (or any
//! embedded `mp-server`): connect with an address and an authkey, then
//! `create` shared objects, `call_method` on them by id, move references
//! with `incref`/`decref`, and ask the server about itself (`status`,
//! `debug_info`, `shutdown`, …). It is what Python's `BaseProxy` does with
//! `dispatch` and `_callmethod`, minus the typing: typed proxies are built
//! on it.
//!
//! One connection carries the calls of every thread that shares the
//! client: each call has an id, the server answers in any order, and
//! whichever waiting thread is free reads the socket and hands other
//! threads their answers. A single thread pays no extra hop, so a call
//! costs one round trip. On the server's own machine (a Unix socket, or
//! TCP to a loopback address) that round trip goes through shared memory
//! when `mpserver` offers a channel, the socket kept open beside it
//! ([`ConnectOptions::shared_memory`], `mp_sys::channel`): the same
//! frames, without the kernel's network stack.
//!
//! ```no_run
//! use multiprocessing::managers::ManagerClient;
//! use mp_proto::Value;
//!
//! let client = ManagerClient::connect(&"127.0.0.1:50000".parse()?, b"secret")?;
//! let d = client.create("dict", vec![], Default::default())?;
//! client.call_method(d.token.id, "__setitem__", vec!["k".into(), 1.into()], Default::default())?;
//! let v = client.call_method(d.token.id, "__getitem__", vec!["k".into()], Default::default())?;
//! assert_eq!(v.into_value()?, Value::Int(1));
//! client.decref(d.token.id)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # References
//!
//! The server counts references per connection: `create`, `incref`, a
//! method returning a new object, and every proxy token inside a returned
//! value each give this connection one reference, which `decref` gives
//! back. Whatever a connection still holds when it closes — even when the
//! process is killed — is released by the server, with every lock its
//! threads held.
//!
//! A proxy serialized for another process (a `Pipe`, a `Queue`, a spawned
//! child's arguments) carries a reference *in transit*, held by the server
//! itself until the receiver takes it over or a lease ends (see
//! [`transfer`]): the sender may drop its copy, or exit, at once.
//!
//! # One connection per process
//!
//! Every proxy, manager and thread of a process shares one connection per
//! server: [`SyncManager::connect`], [`BaseManager::connect`] and the
//! rebuilding of received proxies reuse a live one made with the same
//! authkey. A forked child never uses its parent's socket: it opens its
//! own on first use.
//!
//! # Layout
//!
//! * [`client`]: [`ManagerClient`], with what its calls return (private
//!   `answers`) over a TCP, Unix or TLS stream (private `stream`);
//!   [`client::batch`]: many calls in flight at once ([`Call`]); `release`: drops'
//!   decrefs riding on later calls; whether to poll before sleeping for
//!   an answer is `mp_sys::spin`'s policy, shared with the server.
//! * [`error`]: [`ManagerError`], why a call failed.
//! * [`proxy`]: [`BaseProxy`], one counted reference to a shared object.
//! * [`proxies`]: the typed proxies ([`DictProxy`], [`LockProxy`], …).
//! * [`base_manager`]: [`BaseManager`] (start a server in a child,
//!   shut it down), [`Manager`](struct@Manager) and [`Manager()`].
//! * [`server`]: [`ManagerServer`] (`get_server().serve_forever()`),
//!   [`register_shared`] (a typeid handing out one object).
//! * [`transfer`]: proxies as serde values (nesting, sending, references
//!   in transit).
//! * [`sync_manager`]: [`SyncManager`], typed constructors on one
//!   connection.
//! * [`tls`]: [`TlsConnector`], TLS to a server started with
//!   `--tls-cert`.

mod after_fork;
#[cfg(feature = "asyncio")]
pub mod asyncio;
pub mod base_manager;
pub mod client;
/// [`ManagerError`]: why a call to a manager server failed.
pub mod error {
    pub use crate::manager_error::ManagerError;
}
pub(crate) mod fork;
pub mod proxies;
pub mod proxy;
#[cfg(feature = "server")]
pub mod server;
pub mod shared_memory_manager;
pub mod shared_type;
pub mod sync_manager;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transfer;

#[cfg(feature = "server")]
pub use base_manager::Manager;
pub use base_manager::{BaseManager, ClientRegistration};
pub use client::batch::Call;
pub use client::{
    ConnectOptions, ConnectionEvent, ConnectionState, ManagerClient, Reconnect, Return,
    ServerStatus, TypeInfo, WeakClient, SHARED_MEMORY_ENV,
};
pub use error::ManagerError;

/// Reads a manager's authkey from a file exactly as `mpserver
/// --authkey-file` does: the file's bytes without one trailing newline
/// (`\n` or `\r\n`, as `echo key > file` writes it); an empty key is an
/// error. A key read with `std::fs::read` keeps that newline, and the
/// server refuses it — the error then says so
/// ([`AuthenticationError::RejectedKeyEndsInNewline`](mp_proto::auth::AuthenticationError)).
///
/// ```
/// use multiprocessing::managers::read_authkey_file;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("key");
/// std::fs::write(&path, "s3cret\n")?;
/// assert_eq!(read_authkey_file(&path)?, b"s3cret");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_authkey_file(path: impl AsRef<std::path::Path>) -> std::io::Result<Vec<u8>> {
    mp_proto::auth::read_key_file(path.as_ref())
}
/// Each shared type's methods, declared once (what the server dispatches
/// on and the proxies call by): the built-in types' declarations and
/// [`shared_methods!`] for a program's own.
pub use mp_proto::methods;
pub use mp_proto::reports::ObjectInfo;
pub use mp_proto::shared_methods;
pub use mp_proto::slice::Slice;
/// Any value a Python manager can hold — `None`, a bool, an int, a
/// float, a str, bytes, a list, a tuple, a dict or a proxy — for shared
/// objects whose items have no one Rust type:
/// `manager.dict::<PyObject, PyObject>()`. It is the wire's dynamic value
/// (`mp_proto::Value`), named so it does not clash with the shared ctype
/// [`crate::Value`].
///
/// It compares as Python does (`1 == 1.0 == True`, so they are one dict
/// key, on the server as here) and prints as Python's `repr()`.
///
/// ```
/// use multiprocessing::managers::{Manager, PyObject};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let m = Manager()?;
/// let d = m.dict::<PyObject, PyObject>()?;
/// d.set("answer", 42)?;
/// d.set(1, PyObject::List(vec![PyObject::None, 2.5.into()]))?;
/// assert_eq!(d.get("answer")?, Some(PyObject::from(42)));
/// assert_eq!(PyObject::from(1.0), PyObject::from(1));
/// let one = d.get(1.0)?.ok_or("1.0 finds the key 1")?;
/// assert_eq!(one.repr(), "[None, 2.5]");
/// # Ok(())
/// # }
/// ```
pub use mp_proto::Value as PyObject;
/// Makes the type of an `impl` block a shared type a manager serves, with
/// a typed proxy of the same methods (Python's
/// `MyManager.register('Maths', MathsClass)` and the proxy it builds):
/// see [`shared_type`] for what it writes and how the server runs it.
///
/// ```
/// use multiprocessing::managers::{shared, BaseManager, MethodError, NewObject};
/// use serde::{Deserialize, Serialize};
///
/// /// A counter the server keeps.
/// #[derive(Default)]
/// pub struct Counter {
///     n: i64,
/// }
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// pub struct Underflow;
///
/// #[shared]
/// impl Counter {
///     /// Starts at `n` (`manager.create_with::<Counter>((n,))`).
///     #[shared(new)]
///     pub fn starting_at(n: i64) -> Self {
///         Counter { n }
///     }
///     pub fn add(&mut self, by: i64) -> i64 {
///         self.n += by;
///         self.n
///     }
///     pub fn take(&mut self, by: i64) -> Result<i64, Underflow> {
///         if by > self.n {
///             return Err(Underflow);
///         }
///         self.n -= by;
///         Ok(self.n)
///     }
///     /// Python's `__len__`, under its Rust name.
///     #[shared(name = "__len__")]
///     pub fn len(&self) -> usize {
///         self.n.max(0) as usize
///     }
///     /// A new counter on the server; the caller gets its proxy.
///     pub fn fork(&self) -> NewObject<Counter> {
///         NewObject(Counter { n: self.n })
///     }
///     /// Served, not exposed: its name starts with `_`.
///     pub fn _reset(&mut self) {
///         self.n = 0;
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut manager = BaseManager::new("127.0.0.1:0", b"key");
/// manager.register::<Counter>()?;
/// manager.start()?;
/// let counter = manager.create_with::<Counter>((5,))?;
/// assert_eq!(counter.add(2)?, 7);
/// assert!(matches!(counter.take(10), Err(MethodError::Raised(Underflow))));
/// let copy = counter.fork()?;
/// assert_eq!(copy.take(7)?, 0);
/// assert_eq!(counter.len()?, 7);
/// assert!(counter._reset().is_err(), "not exposed");
/// # Ok(())
/// # }
/// ```
pub use multiprocessing_macros::shared;
pub use proxies::*;
pub use proxy::{BaseProxy, ProxyType};
#[cfg(feature = "server")]
pub use server::{register_shared, ManagerServer, Shared};
pub use shared_memory_manager::SharedMemoryManager;
pub use shared_type::{MethodError, NewObject, SharedType};
pub use sync_manager::SyncManager;
#[cfg(feature = "tls")]
pub use tls::{use_tls_for, TlsConnector};
