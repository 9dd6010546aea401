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
pub mod sync_manager;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transfer;

#[cfg(feature = "server")]
pub use base_manager::Manager;
pub use base_manager::{BaseManager, ClientRegistration};
pub use client::batch::Call;
pub use client::{
    ConnectOptions, ManagerClient, Return, ServerStatus, TypeInfo, WeakClient, SHARED_MEMORY_ENV,
};
pub use error::ManagerError;
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
/// ```no_run
/// use multiprocessing::managers::{PyObject, SyncManager};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let m = SyncManager::connect(&"127.0.0.1:50000".parse()?, b"key")?;
/// let d = m.dict::<PyObject, PyObject>()?;
/// d.set(&PyObject::from("answer"), &PyObject::from(42))?;
/// d.set(&PyObject::from(1), &PyObject::List(vec![PyObject::None, 2.5.into()]))?;
/// assert_eq!(d.get(&PyObject::from("answer"))?, Some(PyObject::from(42)));
/// # Ok(())
/// # }
/// ```
pub use mp_proto::Value as PyObject;
pub use proxies::*;
pub use proxy::{BaseProxy, ProxyType};
#[cfg(feature = "server")]
pub use server::{register_shared, ManagerServer, Shared};
pub use shared_memory_manager::SharedMemoryManager;
pub use sync_manager::SyncManager;
#[cfg(feature = "tls")]
pub use tls::{use_tls_for, TlsConnector};
