//! `Semaphore`: a counter of permits shared by processes (Python's
//! `multiprocessing.Semaphore`).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::engine::counter::Counter;
use super::engine::deadline::Deadline;
use super::error::{ReleaseError, SyncError};
use super::handle::{Handle, State};

/// The shared part of a [`Semaphore`] or
/// [`BoundedSemaphore`](super::BoundedSemaphore).
#[repr(C)]
pub(crate) struct SemState {
    kind: AtomicU32,
    /// Most permits the counter may hold (`u32::MAX` when unbounded).
    pub(crate) max: AtomicU32,
    /// Permits and sleepers.
    pub(crate) counter: Counter,
}

// SAFETY: repr(C), atomics only, kind first.
unsafe impl State for SemState {
    const KIND: u32 = 0x4d50_534d; // "MPSM"
    const NAME: &'static str = "Semaphore";
    fn kind_word(&self) -> &AtomicU32 {
        &self.kind
    }
}

impl Handle<SemState> {
    pub(crate) fn create_sem(value: u32, max: u32) -> Result<Self, SyncError> {
        let h = Handle::<SemState>::create()?;
        h.get().max.store(max, Ordering::Relaxed);
        h.get().counter.value.store(value, Ordering::Release);
        Ok(h)
    }
}

/// A counter of permits: `acquire` takes one (waiting while there are
/// none), `release` gives one back. No permit has an owner: any thread or
/// process may release, and a process that dies holding permits does not
/// return them (there is no owner to detect).
///
/// ```
/// use multiprocessing::synchronize::Semaphore;
///
/// let sem = Semaphore::new(2)?;
/// assert!(sem.acquire_nowait());
/// assert!(sem.acquire_nowait());
/// assert!(!sem.acquire_nowait());
/// sem.release()?;
/// assert_eq!(sem.get_value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Semaphore {
    pub(crate) handle: Handle<SemState>,
}

impl Semaphore {
    /// A semaphore holding `value` permits.
    pub fn new(value: u32) -> Result<Semaphore, SyncError> {
        Ok(Semaphore {
            handle: Handle::create_sem(value, u32::MAX)?,
        })
    }

    #[inline]
    fn counter(&self) -> &Counter {
        &self.handle.get().counter
    }

    /// Takes a permit, blocking while there is none.
    pub fn acquire(&self) {
        self.counter().acquire(Deadline::Never);
    }

    /// Takes a permit, waiting at most `timeout`; returns whether it did.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.counter().acquire(Deadline::after(Some(timeout)))
    }

    /// Takes a permit only if one is available now.
    pub fn acquire_nowait(&self) -> bool {
        self.counter().try_acquire()
    }

    /// Gives a permit back and wakes one waiter.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::TooManyReleases`] if the count would pass
    /// `u32::MAX` (Python's `OverflowError`) or, for a bounded semaphore,
    /// its initial value.
    pub fn release(&self) -> Result<(), ReleaseError> {
        let max = self.handle.get().max.load(Ordering::Relaxed);
        if self.counter().release_bounded(max) {
            Ok(())
        } else {
            Err(ReleaseError::TooManyReleases)
        }
    }

    /// Takes a permit and returns a guard that gives it back on drop.
    pub fn lock(&self) -> SemaphoreGuard<'_> {
        self.acquire();
        SemaphoreGuard { sem: self }
    }

    /// Like [`Semaphore::lock`], waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.acquire_timeout(timeout)
            .then(|| SemaphoreGuard { sem: self })
    }

    /// Like [`Semaphore::lock`] if a permit is available now.
    pub fn try_lock(&self) -> Option<SemaphoreGuard<'_>> {
        self.acquire_nowait().then(|| SemaphoreGuard { sem: self })
    }

    /// Permits available now (Python's `get_value()`).
    pub fn get_value(&self) -> u32 {
        self.counter().value()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.get_value())
            .finish()
    }
}

/// Holds a permit of a [`Semaphore`] or
/// [`BoundedSemaphore`](super::BoundedSemaphore) until dropped.
#[must_use = "the permit is returned as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // Only fails if someone else over-released meanwhile; the permit is
        // then already back.
        let _ = self.sem.release();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}
