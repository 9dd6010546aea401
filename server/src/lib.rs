//! The manager engine behind `mpserver`: Python's
//! `multiprocessing.managers.Server`, as a library.
//!
//! It hosts shared objects — SyncManager's dicts, lists, queues, locks,
//! conditions, events, barriers, namespaces, values and arrays, plus any
//! type an embedding program registers — and serves them to clients that
//! connect with an address and an authkey, many calls in flight per
//! connection, blocking calls as futures.
//!
//! ```no_run
//! use mp_server::{Registry, Server, Listen};
//!
//! # async fn run() -> Result<(), mp_server::ServeError> {
//! let server = Server::new(Registry::sync_manager(), b"secret".to_vec())
//!     .bind(&Listen::Tcp("127.0.0.1:0".into()))
//!     .await?;
//! println!("serving at {}", server.address());
//! server.run().await
//! # }
//! ```
//!
//! # Layout
//!
//! * [`object`]: the [`SharedObject`] trait embedders implement, [`Reply`].
//! * [`registry`]: typeids, exposed methods, `method_to_typeid`.
//! * [`args`]: Python-style argument binding and conversion.
//! * [`held`]: stored values that keep nested shared objects alive and
//!   are charged to the memory [`budget`].
//! * [`table`]: live objects and their refcounts.
//! * [`session`]: per-connection references and locks, released at its end.
//! * [`wait`]: the fair waiting engine under every blocking object.
//! * [`objects`]: the built-in SyncManager types, one file each.
//! * [`engine`]: answers a decoded request (codec-independent).
//! * [`engine::control`]: the server-level calls (`create`, `incref`,
//!   `status`, …), `Engine`'s other half.
//! * [`server`] and `connection`: the tokio serve loop over TCP and Unix
//!   sockets, and a thread of its own for a connection that sends
//!   requests back to back; [`tls`] for TLS on TCP; [`limits`];
//!   [`shutdown`].
//! * [`metrics`]: counters; [`scrape`]: reading them out (Prometheus
//!   text, the `/metrics` endpoint); `throttle`:
//!   slowing down peers that fail authentication; `admission`: what a
//!   peer may hold before and after it authenticates; `quiet_log`: log
//!   lines a peer can provoke, rate-limited.
//! * [`slice`](mod@slice), `compare`, [`errors`]: Python's slices, ordering and
//!   exceptions.
//!
//! Below it: `mp-proto` (the bytes on the wire and the types they carry)
//! and `mp-sys` (the shared-memory channel, poll-before-sleep, futexes),
//! both shared with the SDK.

pub(crate) mod admission;
pub mod args;
pub mod budget;
pub(crate) mod compare;
pub(crate) mod connection;
pub mod cpython;
pub mod durable;
pub mod engine;
pub mod errors;
pub mod held;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod object;
pub mod objects;
pub mod persist;
pub(crate) mod quiet_log;
pub mod registry;
pub mod scrape;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod slice;
pub mod table;
pub(crate) mod throttle;
pub mod tls;
pub(crate) mod transit;
pub mod wait;

pub use args::Args;
pub use budget::Budget;
pub use engine::Engine;
pub use held::Held;
pub use limits::Limits;
pub use object::{CallContext, Owner, Reply, Return, SessionId, SharedObject};
pub use registry::Registry;
pub use scrape::MetricsEndpoint;
pub use server::{BoundServer, Listen, ServeError, Server};

/// The names an embedder implementing a type needs.
pub mod prelude {
    pub use crate::args::Args;
    pub use crate::held::Held;
    pub use crate::object::{CallContext, Reply, Return, SharedObject};
    pub use crate::registry::Registry;
    pub use mp_proto::methods::MethodSpec;
    pub use mp_proto::{shared_methods, ErrorKind, RemoteError, Value};
}

/// Locks a std mutex, recovering from poisoning: every state guarded here
/// is left consistent between statements, so a panic elsewhere must not
/// take the whole server down with it.
pub(crate) use mp_sys::lock;
