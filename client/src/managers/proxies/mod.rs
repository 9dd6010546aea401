//! The typed proxies of SyncManager's types (Python's `DictProxy`,
//! `ListProxy`, `AcquirerProxy`, …), one concept per file.
//!
//! * [`collections`]: [`DictProxy`], [`ListProxy`].
//! * [`queue`]: [`QueueProxy`] (also for `JoinableQueue`).
//! * [`sync`]: [`LockProxy`], [`RLockProxy`], [`SemaphoreProxy`],
//!   [`EventProxy`].
//! * [`value`]: [`ValueProxy`], [`NamespaceProxy`].

pub mod collections;
pub mod queue;
pub mod sync;
pub mod value;

pub use collections::{DictProxy, ListProxy};
pub use queue::QueueProxy;
pub use sync::{AcquireGuard, EventProxy, LockProxy, RLockProxy, SemaphoreProxy};
pub use value::{NamespaceProxy, ValueProxy};
