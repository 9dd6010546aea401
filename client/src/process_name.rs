//! The name this process goes by (Python's `current_process().name`:
//! `MainProcess`, or the name its parent gave it).
//!
//! Kept below both `process`, which sets it in a child and reads it for
//! `repr` and the children it starts, and `log`, which prints it on every
//! line: neither has to import the other for it.

use std::sync::{Arc, PoisonError, RwLock, RwLockWriteGuard};

/// The name of this process, kept apart from the table so that logging,
/// which needs it for every line, never waits on a `start`.
static CURRENT_NAME: RwLock<Option<Arc<str>>> = RwLock::new(None);

/// The current process's name (`MainProcess` in the main process).
pub(crate) fn current_name() -> Arc<str> {
    CURRENT_NAME
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| Arc::from("MainProcess"))
}

/// Renames the current process (what logging shows).
pub(crate) fn set_current_name(name: &str) {
    *CURRENT_NAME.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::from(name));
}

/// Holds the name lock across a `fork`, so the child never inherits it
/// locked by a thread that does not exist there.
pub(crate) fn lock_current_name() -> RwLockWriteGuard<'static, Option<Arc<str>>> {
    CURRENT_NAME.write().unwrap_or_else(PoisonError::into_inner)
}
