//! Errors of the synchronization primitives, named after the Python
//! exceptions the same misuse raises.

use std::io;

use thiserror::Error;

/// A primitive could not be created or received.
#[derive(Debug, Error)]
pub enum SyncError {
    /// The operating system refused the shared memory (descriptor limit,
    /// memory limit, ...).
    #[error("cannot set up shared memory for a primitive: {0}")]
    Os(#[from] io::Error),
    /// A handle received from another process does not describe the
    /// primitive it was deserialized as.
    #[error("shared state is not a {0} (mismatched or corrupt handle)")]
    WrongKind(&'static str),
    /// An argument is out of range (Python's `ValueError`).
    #[error("{0}")]
    ValueError(String),
}

/// A release that the primitive's rules forbid. Python raises `ValueError`
/// (Lock, BoundedSemaphore) or `AssertionError`/`RuntimeError` (RLock).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ReleaseError {
    /// `Lock::release` on a lock nobody holds.
    #[error("release of an unlocked lock")]
    NotLocked,
    /// `RLock::release` by a thread that does not own it.
    #[error("attempt to release recursive lock not owned by thread")]
    NotOwner,
    /// `BoundedSemaphore::release` past its initial value.
    #[error("semaphore or lock released too many times")]
    TooManyReleases,
}

/// `Condition::wait`/`notify` without holding the condition's lock
/// (Python's `AssertionError: lock is not owned`).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("lock is not owned")]
pub struct NotOwnedError;

/// A `Barrier` was broken (aborted, reset, timed out, or its action
/// failed) while a party waited or before it arrived (Python's
/// `threading.BrokenBarrierError`).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("barrier is broken")]
pub struct BrokenBarrierError;
