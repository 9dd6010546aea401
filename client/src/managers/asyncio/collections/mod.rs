//! Async proxies of SyncManager's containers, the async counterparts of
//! the sync proxies of the same names, with the same methods and
//! parameters (a test of the SDK compares the two lists):
//!
//! * [`dict`](mod@dict): [`AsyncDictProxy`], a shared `dict`.
//! * [`list`](mod@list): [`AsyncListProxy`], a shared `list`.
//! * [`value`]: [`AsyncValueProxy`], [`AsyncNamespaceProxy`],
//!   [`AsyncArrayProxy`].
//!
//! None of their calls waits on the server; a dropped future forgets its
//! answer, but a call already sent still happens. Their `iter()`s are
//! in [`chunks`](super::chunks).

pub mod dict;
pub mod list;
pub mod value;

pub use dict::AsyncDictProxy;
pub use list::AsyncListProxy;
pub use value::{AsyncArrayProxy, AsyncNamespaceProxy, AsyncValueProxy};
