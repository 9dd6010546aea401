//! The typed proxies of SyncManager's types (Python's `DictProxy`,
//! `ListProxy`, `AcquirerProxy`, …), one concept per file.
//!
//! * [`auto`]: [`AutoProxy`] for any registered typeid.
//! * [`collections`]: [`DictProxy`], [`ListProxy`].
//! * [`coordination`]: [`ConditionProxy`], [`BarrierProxy`].
//! * [`queue`]: [`QueueProxy`] (also for `JoinableQueue`).
//! * [`sync`]: [`LockProxy`], [`RLockProxy`], [`SemaphoreProxy`],
//!   [`EventProxy`].
//! * [`value`]: [`ValueProxy`], [`NamespaceProxy`], [`ArrayProxy`].

pub mod auto;
pub mod collections;
pub mod coordination;
mod errors;
pub mod queue;
pub mod sync;
pub mod value;

pub use auto::{AutoProxy, AutoReturn};
pub use collections::{DictProxy, ListProxy};
pub use coordination::{BarrierProxy, ConditionProxy};
pub use queue::{JoinableQueueProxy, QueueProxy};
pub use sync::{
    AcquireGuard, BoundedSemaphoreProxy, EventProxy, LockProxy, RLockProxy, SemaphoreProxy,
};
pub use value::{ArrayProxy, NamespaceProxy, ValueProxy};
