//! The typed proxies of SyncManager's types (Python's `DictProxy`,
//! `ListProxy`, `AcquirerProxy`, …), one concept per file.
//!
//! * [`auto`]: [`AutoProxy`] for any registered typeid.
//! * [`arg`]: [`Arg`], what a typed method accepts for a `T` (the value,
//!   a reference, or a borrowed form such as `&str` for a `String`).
//! * [`slicing`]: [`IntoSlice`], Rust ranges as Python slices.
//! * [`chunks`]: [`ListIter`], [`DictIter`], iteration one round trip per
//!   chunk of items.
//! * [`dict`](mod@dict): [`DictProxy`], a shared `dict`.
//! * [`list`](mod@list): [`ListProxy`], a shared `list`.
//! * [`coordination`]: [`ConditionProxy`], [`BarrierProxy`].
//! * [`queue`]: [`QueueProxy`] (also for `JoinableQueue`).
//! * [`sync`]: [`LockProxy`], [`RLockProxy`], [`SemaphoreProxy`],
//!   [`EventProxy`].
//! * [`value`]: [`ValueProxy`], [`NamespaceProxy`], [`ArrayProxy`].

pub mod arg;
pub mod auto;
pub mod chunks;
pub mod coordination;
pub mod dict;
mod errors;
pub mod list;
pub mod queue;
pub mod slicing;
pub mod sync;
pub mod value;

pub use arg::Arg;
pub use auto::{AutoProxy, AutoReturn};
pub use chunks::{DictIter, ListIter};
pub use coordination::{BarrierProxy, ConditionProxy};
pub use dict::DictProxy;
pub use list::ListProxy;
pub use queue::{JoinableQueueProxy, QueueProxy};
pub use slicing::IntoSlice;
pub use sync::{
    AcquireGuard, BoundedSemaphoreProxy, EventProxy, LockProxy, RLockProxy, SemaphoreProxy,
};
pub use value::{ArrayProxy, NamespaceProxy, ValueProxy};
