//! `Condition`: wait until notified, across processes (Python's
//! `multiprocessing.Condition`).
//!
//! # Design
//!
//! Who may wake is decided under the condition's lock by the engine's
//! wake-up tokens (`engine::wakeups`): `notify(n)` leaves tokens for up to
//! `n` of the waiters present at that moment, and only those can take
//! them. Sleeping is on a separate futex word that every `notify` bumps
//! and wakes: a waiter that wakes re-takes the lock, takes a token if one
//! is meant for it and returns, or goes back to sleep. So `notify(n)`
//! wakes exactly `min(n, waiting)` waiters, a waiter never returns without
//! a notification or a timeout, and `notify` never blocks (unlike
//! CPython's, which waits for the woken to run, and hangs if one died).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::any_lock::{AnyLock, AnyLockGuard};
use super::engine::deadline::Deadline;
use super::engine::wakeups::Wakeups;
use super::error::{ConditionError, ReleaseError, SyncError};
use super::handle::{Handle, State};
use super::rlock::RLock;
use mp_sys::futex;

/// The shared part of a [`Condition`].
#[repr(C)]
pub(crate) struct CondState {
    kind: AtomicU32,
    /// The futex word waiters sleep on; every `notify` bumps it.
    seq: AtomicU32,
    /// Who may wake; only changed under the lock.
    wakeups: Wakeups,
}

// SAFETY: repr(C), atomics only, kind first.
unsafe impl State for CondState {
    const KIND: u32 = 0x4d50_434e; // "MPCN"
    const NAME: &'static str = "Condition";
    fn kind_word(&self) -> &AtomicU32 {
        &self.kind
    }
}

/// A condition variable over a [`Lock`](super::Lock) or
/// [`RLock`](super::RLock) (a new `RLock` by default, as in Python).
///
/// `wait*` and `notify*` must be called by the thread holding the lock, or
/// they return [`ConditionError::NotOwned`]. Waiting releases the lock
/// completely (every level of an `RLock`) and takes it back before returning.
///
/// ```
/// use multiprocessing::synchronize::Condition;
/// use std::time::Duration;
///
/// let cond = Condition::new()?;
/// let _held = cond.lock();
/// assert!(!cond.wait_timeout(Duration::from_millis(1))?); // nobody notifies
/// cond.notify_all()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: AnyLock,
    handle: Handle<CondState>,
}

impl Condition {
    /// A condition over a new [`RLock`].
    pub fn new() -> Result<Condition, SyncError> {
        Self::with_lock(RLock::new()?)
    }

    /// A condition over an existing lock.
    pub fn with_lock(lock: impl Into<AnyLock>) -> Result<Condition, SyncError> {
        Ok(Condition {
            lock: lock.into(),
            handle: Handle::create()?,
        })
    }

    pub(crate) fn from_parts(lock: AnyLock, handle: Handle<CondState>) -> Condition {
        Condition { lock, handle }
    }

    /// The underlying lock.
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }

    /// Acquires the underlying lock (blocking).
    pub fn acquire(&self) {
        self.lock.acquire()
    }

    /// Acquires the underlying lock, waiting at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.lock.acquire_timeout(timeout)
    }

    /// Acquires the underlying lock if that succeeds at once.
    pub fn acquire_nowait(&self) -> bool {
        self.lock.acquire_nowait()
    }

    /// Releases the underlying lock.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.lock.release()
    }

    /// Acquires the underlying lock and returns a guard for it.
    pub fn lock(&self) -> AnyLockGuard<'_> {
        self.lock.lock()
    }

    fn wait_until(&self, deadline: Deadline) -> Result<bool, ConditionError> {
        if !self.lock.is_mine() {
            return Err(ConditionError::NotOwned);
        }
        let s = self.handle.get();
        let arrived = s.wakeups.arrive();
        loop {
            // Read under the lock: a notify after the release below changes
            // it, so the futex wait returns at once instead of missing it.
            let seq = s.seq.load(Ordering::Acquire);
            let saved = match self.lock.release_save() {
                Ok(saved) => saved,
                Err(_) => {
                    s.wakeups.leave();
                    return Err(ConditionError::NotOwned);
                }
            };
            futex::wait(&s.seq, seq, deadline.remaining());
            self.lock.acquire_restore(saved);
            if s.wakeups.take(arrived) {
                return Ok(true);
            }
            if deadline.expired() {
                s.wakeups.leave();
                return Ok(false);
            }
        }
    }

    /// Releases the lock, waits until notified, re-acquires.
    pub fn wait(&self) -> Result<(), ConditionError> {
        self.wait_until(Deadline::Never).map(|_| ())
    }

    /// Like [`Condition::wait`] for at most `timeout`; returns false if it
    /// timed out.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ConditionError> {
        self.wait_until(Deadline::after(Some(timeout)))
    }

    /// Waits until `predicate()` is true (checked first, then after every
    /// notification, with the lock held); returns its last value.
    pub fn wait_for(&self, predicate: impl FnMut() -> bool) -> Result<bool, ConditionError> {
        self.wait_for_until(predicate, Deadline::Never)
    }

    /// Like [`Condition::wait_for`], giving up after `timeout`.
    pub fn wait_for_timeout(
        &self,
        predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool, ConditionError> {
        self.wait_for_until(predicate, Deadline::after(Some(timeout)))
    }

    fn wait_for_until(
        &self,
        mut predicate: impl FnMut() -> bool,
        deadline: Deadline,
    ) -> Result<bool, ConditionError> {
        loop {
            if predicate() {
                return Ok(true);
            }
            if deadline.expired() {
                return Ok(false);
            }
            self.wait_until(deadline)?;
        }
    }

    /// Wakes one waiter.
    pub fn notify(&self) -> Result<(), ConditionError> {
        self.notify_n(1)
    }

    /// Wakes up to `n` waiters.
    pub fn notify_n(&self, n: u32) -> Result<(), ConditionError> {
        if !self.lock.is_mine() {
            return Err(ConditionError::NotOwned);
        }
        let s = self.handle.get();
        if s.wakeups.notify(n) > 0 {
            s.seq.fetch_add(1, Ordering::Release);
            // All: the futex cannot tell the waiters a token is meant for
            // from later arrivals; those go back to sleep.
            futex::wake_all(&s.seq);
        }
        Ok(())
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> Result<(), ConditionError> {
        self.notify_n(u32::MAX)
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.handle.get();
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .field("waiting", &s.wakeups.waiting())
            .finish()
    }
}
