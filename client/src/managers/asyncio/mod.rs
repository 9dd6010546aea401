//! Async managers and proxies on tokio (feature `asyncio`): the same
//! servers, types and errors as the blocking API, with `async fn`
//! methods, for code that must not block a runtime thread on a proxy
//! call (an axum or tonic handler, a tokio worker).
//!
//! * [`client`](mod@client): [`AsyncManagerClient`], one multiplexed
//!   connection per process and server, shared with the blocking client
//!   ([`AsyncSyncManager::connect`] reuses a `SyncManager`'s, and
//!   [`AsyncManagerClient::from_sync`] wraps one); the awaiting task reads answers
//!   itself when nobody else is, and a blocked `get` holds up nothing
//!   else.
//! * [`proxy`](mod@proxy): [`AsyncBaseProxy`] and [`AsyncProxyType`].
//! * [`queue`](mod@queue), [`sync`](mod@sync),
//!   [`collections`](mod@collections): the typed proxies, with the
//!   methods and parameters of the blocking ones (a test compares the
//!   two).
//! * [`chunks`](mod@chunks): [`AsyncListIter`], [`AsyncDictIter`], the
//!   async lists', arrays' and dicts' chunked iteration.
//! * [`manager`](mod@manager): [`AsyncSyncManager`].
//! * [`shared`](mod@shared): [`AsyncSharedType`], the async proxies
//!   [`#[shared]`](crate::managers::shared) writes for a program's own
//!   types.
//!
//! The connection is opened by the blocking client's own code, so TCP,
//! Unix sockets, TLS ([`ConnectOptions::tls`](crate::managers::ConnectOptions)),
//! the shared-memory channel and reconnection
//! ([`Reconnect`](crate::managers::Reconnect)) work as there. A proxy
//! found by name finds its object again after a reconnection; any other
//! fails with [`ManagerError::ObjectLost`](crate::managers::ManagerError).
//!
//! # Cancellation safety
//!
//! In tokio's sense (dropping the future, in a `select!` say, loses
//! nothing):
//!
//! | call | dropped before its answer |
//! | --- | --- |
//! | queue `get`, `get_timeout` | safe: the server drops the wait (`cancel`); an item already on its way goes back to the queue's front (`_unget`) |
//! | lock/semaphore/condition `acquire`, `acquire_timeout` | safe: nothing stays held (a grant already on its way is released) |
//! | event `wait`, queue `join` | safe |
//! | condition `wait` | safe, but the lock is left released and the guard holds nothing |
//! | barrier `wait` | breaks the barrier, as a Python timeout does |
//! | an iterator's `next()` ([`AsyncListIter`], [`AsyncDictIter`]) | safe: nothing skipped or yielded twice; a dict's keeps its call for the next `next()` |
//! | a `#[shared(blocking)]` method | the server drops the call; a method already running finishes there, its answer dropped |
//! | queue `put` waiting for room | not safe: the item may or may not have been put |
//! | any other call | the request is already sent: it happens, its answer is dropped |
//!
//! Cancelling is a server call, `cancel(request_id)`
//! (`mp_proto::methods::builtin::ServerMethod::Cancel`), which the
//! server answers by dropping that pending call as if its connection had
//! ended. A server without it (CPython's) answers `AttributeError` and
//! the call goes on there; its answer is still undone here.
//!
//! # Not yet
//!
//! Proxies inside values (a dict of queues) come back as plain tokens,
//! not as async proxies.

pub mod chunks;
pub mod client;
pub mod collections;
pub mod manager;
#[cfg(test)]
mod parity;
mod pending;
pub mod proxy;
pub mod queue;
pub mod shared;
pub mod sync;

pub use chunks::{AsyncDictIter, AsyncListIter};
pub use client::AsyncManagerClient;
pub use collections::{
    AsyncArrayProxy, AsyncDictProxy, AsyncListProxy, AsyncNamespaceProxy, AsyncValueProxy,
};
pub use manager::AsyncSyncManager;
pub use proxy::{AsyncBaseProxy, AsyncProxyType};
pub use queue::AsyncQueueProxy;
pub use shared::AsyncSharedType;
pub use sync::{
    AsyncAcquireGuard, AsyncBarrierProxy, AsyncConditionGuard, AsyncConditionProxy,
    AsyncEventProxy, AsyncLockProxy, AsyncRLockProxy, AsyncSemaphoreProxy,
};
