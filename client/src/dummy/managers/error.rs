//! [`ManagerError`]: why a call on a [`dummy` manager](super)'s object
//! failed — the exceptions Python's plain `dict`, `list`, `Namespace`
//! and `array` raise.

use thiserror::Error;

use crate::synchronize::SyncError;

/// Why a call on an object of [`dummy::Manager`](struct@super::Manager) failed.
///
/// Named as the managed flavour's error
/// ([`managers::ManagerError`](crate::managers::ManagerError)) so that
/// code returning it changes by its `use` line only. Each variant is the
/// Python exception the same misuse raises on the plain object; nothing
/// here is about a connection, since there is none.
///
/// ```
/// use multiprocessing::dummy::managers::{Manager, ManagerError};
///
/// let m = Manager()?;
/// let d = m.dict::<String, i64>()?;
/// assert!(matches!(d.get_item("missing"), Err(ManagerError::KeyError(_))));
/// # Ok::<(), ManagerError>(())
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// A missing dict key (`d[key]`).
    #[error("KeyError: {0}")]
    KeyError(String),
    /// A list or array index out of range.
    #[error("IndexError: {0}")]
    IndexError(String),
    /// A right type with a wrong value (`list.remove(x)` without `x`).
    #[error("ValueError: {0}")]
    ValueError(String),
    /// A missing namespace attribute.
    #[error("AttributeError: {0}")]
    AttributeError(String),
    /// A namespace attribute read as a type it does not convert to, or a
    /// value that cannot be stored.
    #[error("TypeError: {0}")]
    TypeError(String),
    /// A lock, event, condition, semaphore or barrier could not be made
    /// (the operating system refused its memory).
    #[error(transparent)]
    Sync(#[from] SyncError),
}
