//! Errors of the synchronization primitives, named after the Python
//! exceptions the same misuse raises.
//!
//! # One vocabulary for both flavours
//!
//! A primitive comes in two flavours: the local one in this module
//! ([`Lock`](super::Lock), [`Barrier`](super::Barrier), …) and a
//! manager's proxy of the same type
//! ([`LockProxy`](crate::managers::LockProxy),
//! [`BarrierProxy`](crate::managers::BarrierProxy), …). As
//! crossbeam-channel has one set of errors whatever the channel's flavour,
//! each operation here has one error type whichever flavour runs it, so
//! code that matches on a failure works with either:
//!
//! | operation | error | the variants a user matches |
//! | --- | --- | --- |
//! | `release` (locks, semaphores, a condition's lock, guards) | [`ReleaseError`] | `NotLocked`, `NotOwner`, `TooManyReleases` |
//! | `Condition::wait*`/`notify*` | [`ConditionError`] | `NotOwned` |
//! | `Barrier::wait*` | [`BarrierError`] | `Broken` |
//!
//! Each type has one more variant, `Manager`, for what only a managed
//! primitive meets (a lost connection, an exception the server raised
//! that has no local counterpart); the local flavour never returns it.
//! Where Python's call returns `False` on a timeout (`acquire`,
//! `Event.wait`, `Condition.wait`) both flavours return `false`/`None`;
//! a barrier's timeout breaks it, as in Python, so it is `Broken`.
//!
//! Sharing the type costs the local [`ReleaseError`] its `Copy` and `Eq`
//! (a [`ManagerError`] has neither): compare with `matches!`. A type
//! generic over the extra variant (`ReleaseError<Infallible>` locally)
//! would have kept them, but would have given the two flavours two
//! types again, and the queues' [`QueueError`](crate::queues::QueueError)
//! already made this choice. The translation of a server's exceptions
//! into these variants belongs to the managed flavour
//! (`managers::proxies::errors`); this module names a [`ManagerError`]
//! only as an opaque payload.

use std::io;

use thiserror::Error;

use crate::manager_error::ManagerError;

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
    /// An async wait needed a thread to sleep on its futex and none could
    /// be started (feature `asyncio`; see `Event::wait_async`).
    #[cfg(feature = "asyncio")]
    #[error("cannot start the thread that waits on futexes for async tasks: {0}")]
    AsyncWaiter(io::Error),
}

/// A release that the primitive's rules forbid. Python raises `ValueError`
/// (Lock, BoundedSemaphore) or `AssertionError`/`RuntimeError` (RLock).
#[derive(Debug, Error)]
pub enum ReleaseError {
    /// `release` of a lock nobody holds (`Lock::release`,
    /// `LockProxy::release`).
    #[error("release of an unlocked lock")]
    NotLocked,
    /// `release` of a lock by a thread that does not own it: an `RLock`
    /// (either flavour), or a manager's `Lock`, whose server records the
    /// thread that acquired it.
    #[error("attempt to release recursive lock not owned by thread")]
    NotOwner,
    /// A semaphore released past its bound: a `BoundedSemaphore` past its
    /// initial value, any semaphore past the largest count it can hold
    /// (Python's `ValueError`, `OverflowError`).
    #[error("semaphore or lock released too many times")]
    TooManyReleases,
    /// A managed primitive's release failed otherwise: the connection, or
    /// another exception raised on the server.
    #[error(transparent)]
    Manager(ManagerError),
}

/// `Condition::wait`/`notify` failed (either flavour).
#[derive(Debug, Error)]
pub enum ConditionError {
    /// Called without holding the condition's lock (Python's
    /// `AssertionError: lock is not owned`, a manager's `RuntimeError:
    /// cannot wait on un-acquired lock`).
    #[error("lock is not owned")]
    NotOwned,
    /// A managed condition's call failed otherwise: the connection, or
    /// another exception raised on the server.
    #[error(transparent)]
    Manager(ManagerError),
}

impl ConditionError {
    /// Whether the caller did not hold the condition's lock.
    pub fn is_not_owned(&self) -> bool {
        matches!(self, ConditionError::NotOwned)
    }
}

/// `Barrier::wait` failed (either flavour).
#[derive(Debug, Error)]
pub enum BarrierError {
    /// The barrier was broken (aborted, reset, timed out, or its action
    /// failed) while a party waited or before it arrived (Python's
    /// `threading.BrokenBarrierError`).
    #[error("barrier is broken")]
    Broken,
    /// A managed barrier's call failed otherwise: the connection, or
    /// another exception raised on the server.
    #[error(transparent)]
    Manager(ManagerError),
}

impl BarrierError {
    /// Whether the barrier was broken: Python's `BrokenBarrierError`.
    pub fn is_broken(&self) -> bool {
        matches!(self, BarrierError::Broken)
    }
}
