//! `Lock`: a non-recursive lock shared by processes (Python's
//! `multiprocessing.Lock`).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::engine::deadline::Deadline;
use super::engine::{identity, owner};
use super::error::{ReleaseError, SyncError};
use super::handle::{Handle, State};

/// The shared part of a [`Lock`].
#[repr(C)]
pub(crate) struct LockState {
    kind: AtomicU32,
    /// The owner word (holder's pid; see the engine's `owner` module).
    pub(crate) word: AtomicU32,
    /// Keeps `holder_tid` off the owner word's cache line: a contender
    /// spinning on the word would otherwise turn the holder's store into
    /// a second cache miss per hand-off.
    _pad: [u32; 14],
    /// The tid of the thread that acquired, for `Condition`'s "is the lock
    /// mine" check only. Not in the owner word: a `Lock` may be released by
    /// another thread after the acquiring thread ended, which must not
    /// look like a dead holder.
    holder_tid: AtomicU32,
}

// SAFETY: repr(C), atomics only, kind first.
unsafe impl State for LockState {
    const KIND: u32 = 0x4d50_4c4b; // "MPLK"
    const NAME: &'static str = "Lock";
    fn kind_word(&self) -> &AtomicU32 {
        &self.kind
    }
}

/// A lock that any thread of any process holding a handle can acquire.
///
/// As in Python, a `Lock` is not owned by a thread: any thread or process
/// may release it, and acquiring it twice from the same thread deadlocks
/// (use [`RLock`](super::RLock) for that). Releasing a lock that is not
/// held is an error.
///
/// If the process holding the lock dies, a process blocked in `acquire`
/// takes it over (within about 100 ms of the death) instead of waiting
/// forever; [`Lock::owner_died`] then reports it until the next release, so
/// the new holder can repair what the dead one left half-done.
///
/// Clones share the lock; so do copies received by children (serde, or
/// inherited by fork).
///
/// ```
/// use multiprocessing::synchronize::Lock;
///
/// let lock = Lock::new()?;
/// {
///     let _guard = lock.lock();
///     assert!(!lock.acquire_nowait());
/// }
/// assert!(lock.acquire_nowait());
/// lock.release()?;
/// assert!(lock.release().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lock {
    handle: Handle<LockState>,
}

impl Lock {
    /// A new, unlocked lock in fresh shared memory.
    pub fn new() -> Result<Lock, SyncError> {
        Ok(Lock {
            handle: Handle::create()?,
        })
    }

    pub(crate) fn from_handle(handle: Handle<LockState>) -> Lock {
        Lock { handle }
    }

    #[inline]
    fn word(&self) -> &AtomicU32 {
        &self.handle.get().word
    }

    #[inline]
    fn acquired(&self) {
        self.handle
            .get()
            .holder_tid
            .store(identity::tid(), Ordering::Relaxed);
    }

    /// Blocks until the lock is acquired.
    #[inline]
    pub fn acquire(&self) {
        // With no deadline the engine only returns once it holds the lock.
        let _ = owner::acquire(self.word(), identity::pid(), Deadline::Never);
        self.acquired();
    }

    /// Acquires, waiting at most `timeout`; returns whether it did.
    /// `Duration::ZERO` makes one attempt (Python's negative timeouts).
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        let got =
            owner::acquire(self.word(), identity::pid(), Deadline::after(Some(timeout))).is_some();
        if got {
            self.acquired();
        }
        got
    }

    /// Acquires only if the lock is free now, or its holder has died
    /// (Python's `acquire(block=False)`; see [`Lock::owner_died`]).
    #[inline]
    pub fn acquire_nowait(&self) -> bool {
        let got = owner::try_acquire_or_recover(self.word(), identity::pid()).is_some();
        if got {
            self.acquired();
        }
        got
    }

    /// Releases the lock, from any thread or process.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::NotLocked`] if nobody holds it.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        if owner::release(self.word()) & owner::ID_MASK == 0 {
            return Err(ReleaseError::NotLocked);
        }
        Ok(())
    }

    /// Acquires without blocking the thread (feature `asyncio`): the
    /// async twin of [`acquire`](Lock::acquire), for any executor; pair it
    /// with [`release`](Lock::release), or use
    /// [`lock_async`](Lock::lock_async) for a guard. Bound it with
    /// `tokio::time::timeout` for Python's `acquire(timeout=…)`.
    ///
    /// The task sleeps as a registration with this process's futex waiter
    /// thread (see [`crate::synchronize`], "Async waits"); a holder that
    /// died is taken over as by [`acquire`](Lock::acquire). The lock
    /// belongs to the process, not to the task or the thread that polled
    /// it (as any `Lock`).
    ///
    /// # Cancel safety
    ///
    /// Cancellation safe: the lock is taken in the same poll that
    /// completes the future, so a future dropped before completing holds
    /// nothing, and a wake-up it was given is passed on to the next
    /// waiter.
    ///
    /// # Errors
    ///
    /// [`SyncError::AsyncWaiter`] if the waiter thread it needed could not
    /// be started.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiprocessing::synchronize::Lock;
    ///
    /// let lock = Lock::new()?;
    /// lock.acquire_async().await?;
    /// assert!(!lock.acquire_nowait());
    /// lock.release()?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "asyncio")]
    pub async fn acquire_async(&self) -> Result<(), SyncError> {
        owner::acquire_async(self.handle.region(), self.word(), identity::pid()).await?;
        self.acquired();
        Ok(())
    }

    /// [`acquire_async`](Lock::acquire_async) returning a guard that
    /// releases on drop (the async twin of [`lock`](Lock::lock), as
    /// `tokio::sync::Mutex::lock`). Cancellation safe.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiprocessing::synchronize::Lock;
    ///
    /// let lock = Lock::new()?;
    /// {
    ///     let _held = lock.lock_async().await?;
    ///     assert!(lock.is_locked());
    /// }
    /// assert!(!lock.is_locked());
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "asyncio")]
    pub async fn lock_async(&self) -> Result<LockGuard<'_>, SyncError> {
        self.acquire_async().await?;
        Ok(LockGuard { lock: self })
    }

    /// Acquires and returns a guard that releases on drop.
    #[inline]
    pub fn lock(&self) -> LockGuard<'_> {
        self.acquire();
        LockGuard { lock: self }
    }

    /// Like [`Lock::lock`], waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockGuard<'_>> {
        self.acquire_timeout(timeout)
            .then(|| LockGuard { lock: self })
    }

    /// Like [`Lock::lock`] if the lock is free now.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.acquire_nowait().then(|| LockGuard { lock: self })
    }

    /// Whether some thread or process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        owner::owner(self.word()) != 0
    }

    /// Whether the current holder took the lock over from a process that
    /// died holding it. Cleared by the next release.
    pub fn owner_died(&self) -> bool {
        self.word().load(Ordering::Relaxed) & owner::OWNER_DIED != 0
    }

    /// Whether this thread of this process acquired the lock (Python's
    /// `SemLock._is_mine`).
    pub(crate) fn is_mine(&self) -> bool {
        owner::owner(self.word()) == identity::pid()
            && self.handle.get().holder_tid.load(Ordering::Relaxed) == identity::tid()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.word().load(Ordering::Relaxed);
        f.debug_struct("Lock")
            .field("owner", &(w & owner::ID_MASK))
            .field("owner_died", &(w & owner::OWNER_DIED != 0))
            .finish()
    }
}

/// Holds a [`Lock`] until dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl LockGuard<'_> {
    /// Whether this holder took the lock over from a dead process.
    pub fn owner_died(&self) -> bool {
        self.lock.owner_died()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Another thread or process may have released it already (a Lock
        // allows that); nothing is left to do then.
        let _ = self.lock.release();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
