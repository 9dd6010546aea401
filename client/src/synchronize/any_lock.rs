//! `AnyLock`: either of the two locks, where Python accepts "a lock" (a
//! `Condition`'s lock, the lock of a synchronized shared ctype).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ReleaseError;
use super::lock::Lock;
use super::rlock::RLock;

/// A [`Lock`] or an [`RLock`], used by [`Condition`](super::Condition) and
/// by synchronized shared ctypes. `From` both, so `lock.into()` or
/// `Some(lock.into())` works where one is asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AnyLock {
    /// A non-recursive lock.
    Lock(Lock),
    /// A recursive lock.
    RLock(RLock),
}

impl AnyLock {
    /// Blocks until acquired.
    #[inline]
    pub fn acquire(&self) {
        match self {
            AnyLock::Lock(l) => l.acquire(),
            AnyLock::RLock(l) => l.acquire(),
        }
    }

    /// Acquires, waiting at most `timeout`; returns whether it did.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        match self {
            AnyLock::Lock(l) => l.acquire_timeout(timeout),
            AnyLock::RLock(l) => l.acquire_timeout(timeout),
        }
    }

    /// Acquires only if that succeeds at once.
    pub fn acquire_nowait(&self) -> bool {
        match self {
            AnyLock::Lock(l) => l.acquire_nowait(),
            AnyLock::RLock(l) => l.acquire_nowait(),
        }
    }

    /// Releases (one level of an `RLock`).
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        match self {
            AnyLock::Lock(l) => l.release(),
            AnyLock::RLock(l) => l.release(),
        }
    }

    /// Acquires and returns a guard that releases on drop.
    #[inline]
    pub fn lock(&self) -> AnyLockGuard<'_> {
        self.acquire();
        AnyLockGuard { lock: self }
    }

    /// Like [`AnyLock::lock`], waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<AnyLockGuard<'_>> {
        self.acquire_timeout(timeout)
            .then(|| AnyLockGuard { lock: self })
    }

    /// Like [`AnyLock::lock`] if that succeeds at once.
    pub fn try_lock(&self) -> Option<AnyLockGuard<'_>> {
        self.acquire_nowait().then(|| AnyLockGuard { lock: self })
    }

    /// Whether the holder took the lock over from a dead owner.
    pub fn owner_died(&self) -> bool {
        match self {
            AnyLock::Lock(l) => l.owner_died(),
            AnyLock::RLock(l) => l.owner_died(),
        }
    }

    /// Whether the calling thread holds it (for a `Lock`: acquired it).
    pub(crate) fn is_mine(&self) -> bool {
        match self {
            AnyLock::Lock(l) => l.is_mine(),
            AnyLock::RLock(l) => l.is_owned(),
        }
    }

    /// Acquires for a guard that hands out references into shared memory;
    /// refuses (panics, as `RefCell` does) when this thread already holds an
    /// `RLock`, since two such guards would alias.
    pub(crate) fn lock_exclusive(&self) -> AnyLockGuard<'_> {
        let guard = self.lock();
        if let AnyLock::RLock(l) = self {
            if l.depth() > 1 {
                drop(guard);
                panic!(
                    "shared value locked twice by one thread: take the guard once and \
                     use it (nested guards would alias)"
                );
            }
        }
        guard
    }

    /// Releases completely, returning what [`AnyLock::acquire_restore`]
    /// needs to take it back as it was.
    pub(crate) fn release_save(&self) -> Result<u64, ReleaseError> {
        match self {
            AnyLock::Lock(l) => l.release().map(|()| 1),
            AnyLock::RLock(l) => l.release_save(),
        }
    }

    /// Re-acquires after [`AnyLock::release_save`].
    pub(crate) fn acquire_restore(&self, saved: u64) {
        match self {
            AnyLock::Lock(l) => l.acquire(),
            AnyLock::RLock(l) => l.acquire_restore(saved),
        }
    }
}

impl From<Lock> for AnyLock {
    fn from(l: Lock) -> Self {
        AnyLock::Lock(l)
    }
}

impl From<RLock> for AnyLock {
    fn from(l: RLock) -> Self {
        AnyLock::RLock(l)
    }
}

/// Holds an [`AnyLock`] (one level) until dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct AnyLockGuard<'a> {
    lock: &'a AnyLock,
}

impl AnyLockGuard<'_> {
    /// Whether the holder took the lock over from a dead owner.
    pub fn owner_died(&self) -> bool {
        self.lock.owner_died()
    }
}

impl Drop for AnyLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

impl fmt::Debug for AnyLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyLockGuard").finish_non_exhaustive()
    }
}
