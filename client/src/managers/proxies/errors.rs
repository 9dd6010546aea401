//! How a managed flavour's failures join the vocabulary its local flavour
//! already speaks: the exceptions a manager's server raises for a queue,
//! a lock, a condition or a barrier become the variants of
//! [`QueueError`], [`ReleaseError`], [`ConditionError`] and
//! [`BarrierError`] that the local `Queue`, `Lock`, `Condition` and
//! `Barrier` return (see `synchronize::error` and `queues::error` for the
//! design). Anything else (a lost connection, an exception with no local
//! counterpart) stays a [`ManagerError`] inside the variant `Manager`.
//!
//! The translation lives here, in `managers`, because only this layer
//! knows what a server raises; the local modules name a [`ManagerError`]
//! only as an opaque payload. It goes by the exception's name and, where
//! one name covers two local variants (`RuntimeError` for an unlocked and
//! for a foreign lock), by its message. Those are CPython's own: the
//! bundled server raises what a CPython manager raises for the same call
//! (`mp_server::errors`), so a CPython manager's answers are translated
//! alike. The tests in `client/tests/managers.rs` run each case against
//! the real server, so a message changed on one side fails them.

use mp_proto::{ErrorKind, RemoteError};

use crate::managers::error::ManagerError;
use crate::queues::error::TASK_DONE;
use crate::queues::QueueError;
use crate::synchronize::{BarrierError, ConditionError, ReleaseError};

/// `threading.Lock.release` of an unlocked lock (`RuntimeError`).
const RELEASE_UNLOCKED: &str = "release unlocked lock";
/// `threading.RLock.release` by a thread that does not hold it, which a
/// manager's `Lock` says too, since its server records the holder
/// (`RuntimeError`).
const RELEASE_UN_ACQUIRED: &str = "cannot release un-acquired lock";
/// `threading.BoundedSemaphore.release` past the initial value
/// (`ValueError`).
const RELEASED_TOO_MANY_TIMES: &str = "Semaphore released too many times";
/// `threading.Condition.wait` without the lock (`RuntimeError`).
const WAIT_UN_ACQUIRED: &str = "cannot wait on un-acquired lock";
/// `threading.Condition.notify` without the lock (`RuntimeError`).
const NOTIFY_UN_ACQUIRED: &str = "cannot notify on un-acquired lock";

/// The server's exception, if the call failed with one.
fn raised(e: &ManagerError) -> Option<(&ErrorKind, &str)> {
    e.remote()
        .map(|RemoteError { kind, message }| (kind, message.as_str()))
}

impl From<ManagerError> for QueueError {
    /// The server's `queue.Empty`, `queue.Full` and surplus `task_done`
    /// become the variants a local queue reports.
    fn from(e: ManagerError) -> QueueError {
        match raised(&e) {
            Some((ErrorKind::Empty, _)) => QueueError::Empty,
            Some((ErrorKind::Full, _)) => QueueError::Full,
            Some((ErrorKind::ValueError, TASK_DONE)) => QueueError::TaskDone,
            _ => QueueError::Manager(e),
        }
    }
}

impl From<ManagerError> for ReleaseError {
    /// A release the server refused becomes the local flavour's reason: an
    /// unlocked lock, a lock this thread does not hold, a semaphore past
    /// its bound (a bounded semaphore's `ValueError`, or the
    /// `OverflowError` of a count past what the server can hold, which is
    /// what the local semaphore reports at its own limit).
    fn from(e: ManagerError) -> ReleaseError {
        match raised(&e) {
            Some((ErrorKind::RuntimeError, RELEASE_UNLOCKED)) => ReleaseError::NotLocked,
            Some((ErrorKind::RuntimeError, RELEASE_UN_ACQUIRED)) => ReleaseError::NotOwner,
            Some((ErrorKind::ValueError, RELEASED_TOO_MANY_TIMES))
            | Some((ErrorKind::OverflowError, _)) => ReleaseError::TooManyReleases,
            _ => ReleaseError::Manager(e),
        }
    }
}

impl From<ManagerError> for ConditionError {
    /// A wait or notify without the condition's lock becomes `NotOwned`.
    fn from(e: ManagerError) -> ConditionError {
        match raised(&e) {
            Some((ErrorKind::RuntimeError, WAIT_UN_ACQUIRED | NOTIFY_UN_ACQUIRED)) => {
                ConditionError::NotOwned
            }
            _ => ConditionError::Manager(e),
        }
    }
}

impl From<ManagerError> for BarrierError {
    /// The server's `BrokenBarrierError` becomes `Broken`.
    fn from(e: ManagerError) -> BarrierError {
        match raised(&e) {
            Some((ErrorKind::BrokenBarrierError, _)) => BarrierError::Broken,
            _ => BarrierError::Manager(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(kind: ErrorKind, message: &str) -> ManagerError {
        ManagerError::Remote(RemoteError::new(kind, message))
    }

    fn lost() -> ManagerError {
        ManagerError::ConnectionLost("gone".into())
    }

    #[test]
    fn a_refused_release_is_the_local_reason() {
        let cases = [
            (ErrorKind::RuntimeError, RELEASE_UNLOCKED, "NotLocked"),
            (ErrorKind::RuntimeError, RELEASE_UN_ACQUIRED, "NotOwner"),
            (
                ErrorKind::ValueError,
                RELEASED_TOO_MANY_TIMES,
                "TooManyReleases",
            ),
            (ErrorKind::OverflowError, "past 2**64-1", "TooManyReleases"),
        ];
        for (kind, message, want) in cases {
            let got = ReleaseError::from(remote(kind.clone(), message));
            let name = match got {
                ReleaseError::NotLocked => "NotLocked",
                ReleaseError::NotOwner => "NotOwner",
                ReleaseError::TooManyReleases => "TooManyReleases",
                ReleaseError::Manager(_) => "Manager",
            };
            assert_eq!(name, want, "{kind:?}: {message}");
        }
    }

    #[test]
    fn what_has_no_local_counterpart_stays_a_manager_error() {
        // Another message under a known name, another name, no exception.
        let other = || remote(ErrorKind::RuntimeError, "something else");
        assert!(matches!(
            ReleaseError::from(other()),
            ReleaseError::Manager(ManagerError::Remote(_))
        ));
        assert!(matches!(
            ReleaseError::from(remote(ErrorKind::TypeError, RELEASE_UNLOCKED)),
            ReleaseError::Manager(ManagerError::Remote(_))
        ));
        assert!(matches!(
            ReleaseError::from(lost()),
            ReleaseError::Manager(ManagerError::ConnectionLost(_))
        ));
        assert!(matches!(
            ConditionError::from(other()),
            ConditionError::Manager(ManagerError::Remote(_))
        ));
        assert!(matches!(
            ConditionError::from(lost()),
            ConditionError::Manager(ManagerError::ConnectionLost(_))
        ));
        assert!(matches!(
            BarrierError::from(remote(ErrorKind::RuntimeError, "")),
            BarrierError::Manager(ManagerError::Remote(_))
        ));
        assert!(matches!(
            BarrierError::from(lost()),
            BarrierError::Manager(ManagerError::ConnectionLost(_))
        ));
        assert!(matches!(
            QueueError::from(remote(ErrorKind::ValueError, "other")),
            QueueError::Manager(ManagerError::Remote(_))
        ));
    }

    #[test]
    fn condition_and_barrier_failures_are_the_local_variants() {
        for message in [WAIT_UN_ACQUIRED, NOTIFY_UN_ACQUIRED] {
            assert!(ConditionError::from(remote(ErrorKind::RuntimeError, message)).is_not_owned());
        }
        assert!(BarrierError::from(remote(ErrorKind::BrokenBarrierError, "")).is_broken());
        assert!(QueueError::from(remote(ErrorKind::Empty, "")).is_empty());
        assert!(QueueError::from(remote(ErrorKind::Full, "")).is_full());
        assert!(matches!(
            QueueError::from(remote(ErrorKind::ValueError, TASK_DONE)),
            QueueError::TaskDone
        ));
    }
}
