//! `RLock`: a recursive lock owned by one thread of one process (Python's
//! `multiprocessing.RLock`).

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::engine::deadline::Deadline;
use super::engine::identity;
use super::engine::owner::{self, Taken};
use super::error::{ReleaseError, SyncError};
use super::handle::{Handle, State};

/// The shared part of an [`RLock`].
#[repr(C)]
pub(crate) struct RLockState {
    kind: AtomicU32,
    /// The owner word (holder's tid, which names process and thread).
    pub(crate) word: AtomicU32,
    /// Recursion depth; only the owner touches it. 64 bits so that it
    /// cannot overflow in practice.
    pub(crate) count: AtomicU64,
}

// SAFETY: repr(C), atomics only, kind first.
unsafe impl State for RLockState {
    const KIND: u32 = 0x4d50_524c; // "MPRL"
    const NAME: &'static str = "RLock";
    fn kind_word(&self) -> &AtomicU32 {
        &self.kind
    }
}

/// A recursive lock: the owning thread may acquire it again, and must
/// release it as many times. Only the owner may release.
///
/// The owner is a thread of a process (its kernel tid). If the owner dies
/// holding the lock, a blocked acquirer takes it over as for
/// [`Lock`](super::Lock), with [`RLock::owner_died`] set until the next
/// full release.
///
/// ```
/// use multiprocessing::synchronize::RLock;
///
/// let lock = RLock::new()?;
/// let outer = lock.lock();
/// let inner = lock.lock(); // the same thread may re-enter
/// drop(inner);
/// drop(outer);
/// assert!(lock.release().is_err()); // not held any more
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RLock {
    handle: Handle<RLockState>,
}

impl RLock {
    /// A new, unlocked recursive lock in fresh shared memory.
    pub fn new() -> Result<RLock, SyncError> {
        Ok(RLock {
            handle: Handle::create()?,
        })
    }

    #[inline]
    fn state(&self) -> &RLockState {
        self.handle.get()
    }

    #[inline]
    fn acquire_with(&self, deadline: Deadline) -> bool {
        let s = self.state();
        let me = identity::tid();
        if owner::owner(&s.word) == me {
            // Only this thread writes the count while it owns the lock.
            let c = s.count.load(Ordering::Relaxed);
            s.count.store(c.saturating_add(1), Ordering::Relaxed);
            return true;
        }
        match owner::acquire(&s.word, me, deadline) {
            Some(Taken::Clean) | Some(Taken::OwnerDied) => {
                s.count.store(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Blocks until acquired (at once if this thread already owns it).
    #[inline]
    pub fn acquire(&self) {
        self.acquire_with(Deadline::Never);
    }

    /// Acquires, waiting at most `timeout`; returns whether it did.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_with(Deadline::after(Some(timeout)))
    }

    /// Acquires only if free now or already owned by this thread.
    pub fn acquire_nowait(&self) -> bool {
        let s = self.state();
        let me = identity::tid();
        if owner::owner(&s.word) == me {
            let c = s.count.load(Ordering::Relaxed);
            s.count.store(c.saturating_add(1), Ordering::Relaxed);
            return true;
        }
        if owner::try_acquire_or_recover(&s.word, me).is_some() {
            s.count.store(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Releases one level; the lock is free when the count reaches zero.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::NotOwner`] if this thread does not own the lock.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        let s = self.state();
        if owner::owner(&s.word) != identity::tid() {
            return Err(ReleaseError::NotOwner);
        }
        let c = s.count.load(Ordering::Relaxed);
        if c > 1 {
            s.count.store(c - 1, Ordering::Relaxed);
        } else {
            s.count.store(0, Ordering::Relaxed);
            owner::release(&s.word);
        }
        Ok(())
    }

    /// Acquires and returns a guard that releases one level on drop.
    #[inline]
    pub fn lock(&self) -> RLockGuard<'_> {
        self.acquire();
        RLockGuard { lock: self }
    }

    /// Like [`RLock::lock`], waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        self.acquire_timeout(timeout)
            .then(|| RLockGuard { lock: self })
    }

    /// Like [`RLock::lock`] if free now or already owned by this thread.
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        self.acquire_nowait().then(|| RLockGuard { lock: self })
    }

    /// Whether the calling thread owns the lock.
    pub fn is_owned(&self) -> bool {
        owner::owner(&self.state().word) == identity::tid()
    }

    /// Whether the current owner took the lock over from a thread or
    /// process that died holding it. Cleared by the next full release.
    pub fn owner_died(&self) -> bool {
        self.state().word.load(Ordering::Relaxed) & owner::OWNER_DIED != 0
    }

    /// Recursion depth if this thread owns the lock, else 0.
    pub(crate) fn depth(&self) -> u64 {
        if self.is_owned() {
            self.state().count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Releases every level held by this thread and returns the count, for
    /// `Condition::wait` (Python's `_release_save`).
    pub(crate) fn release_save(&self) -> Result<u64, ReleaseError> {
        let s = self.state();
        if owner::owner(&s.word) != identity::tid() {
            return Err(ReleaseError::NotOwner);
        }
        let c = s.count.swap(0, Ordering::Relaxed);
        owner::release(&s.word);
        Ok(c)
    }

    /// Re-acquires and restores a saved count (Python's `_acquire_restore`).
    pub(crate) fn acquire_restore(&self, count: u64) {
        self.acquire();
        self.state().count.store(count.max(1), Ordering::Relaxed);
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("RLock")
            .field("owner", &owner::owner(&s.word))
            .field("count", &s.count.load(Ordering::Relaxed))
            .finish()
    }
}

/// Holds one level of an [`RLock`] until dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
}

impl RLockGuard<'_> {
    /// Whether the owner took the lock over from a dead thread or process.
    pub fn owner_died(&self) -> bool {
        self.lock.owner_died()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // Only fails if the owning thread released past its own guards.
        let _ = self.lock.release();
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}
