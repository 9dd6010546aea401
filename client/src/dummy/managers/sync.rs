//! The locks, semaphores, events, conditions and barriers of a
//! [`dummy` manager](super): the crate's own primitives
//! ([`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`],
//! [`Condition`], [`Barrier`]), which work between threads, behind the
//! method names and signatures of the managed flavour's proxies
//! ([`managers::LockProxy`](crate::managers::LockProxy), …).
//!
//! Their errors are the primitives' own ([`ReleaseError`],
//! [`ConditionError`], [`BarrierError`]), which the proxies share; the
//! calls Python cannot fail return `Ok`.

use std::fmt;
use std::time::Duration;

use super::error::ManagerError;
use crate::synchronize::{
    Barrier, BarrierError, BoundedSemaphore, Condition, ConditionError, Event, Lock, RLock,
    ReleaseError, Semaphore,
};

/// What an [`AcquireGuard`] gives back.
trait Release: Sync {
    fn release(&self) -> Result<(), ReleaseError>;
}

impl Release for Lock {
    fn release(&self) -> Result<(), ReleaseError> {
        Lock::release(self)
    }
}

impl Release for RLock {
    fn release(&self) -> Result<(), ReleaseError> {
        RLock::release(self)
    }
}

impl Release for Semaphore {
    fn release(&self) -> Result<(), ReleaseError> {
        Semaphore::release(self)
    }
}

impl Release for Condition {
    fn release(&self) -> Result<(), ReleaseError> {
        Condition::release(self)
    }
}

/// A held acquisition of a dummy manager's lock, semaphore or condition;
/// dropping it releases (a failed release is logged), as the managed
/// flavour's [`AcquireGuard`](crate::managers::AcquireGuard) does.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let lock = m.lock()?;
/// let guard = lock.acquire()?;
/// assert!(lock.locked()?);
/// guard.release()?;
/// assert!(!lock.locked()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the guard releases at once"]
pub struct AcquireGuard<'a> {
    held: &'a dyn Release,
    released: bool,
}

impl<'a> AcquireGuard<'a> {
    fn new(held: &'a dyn Release) -> Self {
        AcquireGuard {
            held,
            released: false,
        }
    }

    /// Releases now, reporting a failure.
    pub fn release(mut self) -> Result<(), ReleaseError> {
        self.released = true;
        self.held.release()
    }
}

impl Drop for AcquireGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.held.release() {
                tracing::warn!(target: "multiprocessing", error = %e, "releasing a dummy manager's lock failed");
            }
        }
    }
}

impl fmt::Debug for AcquireGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dummy::AcquireGuard")
    }
}

/// `acquire`, `acquire_timeout`, `try_acquire` and `release` over a
/// primitive that has `acquire`, `acquire_timeout`, `acquire_nowait` and
/// `release`.
macro_rules! acquirer_methods {
    ($field:ident) => {
        /// Acquires, waiting as long as it takes.
        pub fn acquire(&self) -> Result<AcquireGuard<'_>, ManagerError> {
            self.$field.acquire();
            Ok(AcquireGuard::new(&self.$field))
        }

        /// Acquires, waiting at most `timeout`; `None` if it timed out.
        pub fn acquire_timeout(
            &self,
            timeout: Duration,
        ) -> Result<Option<AcquireGuard<'_>>, ManagerError> {
            Ok(self
                .$field
                .acquire_timeout(timeout)
                .then(|| AcquireGuard::new(&self.$field)))
        }

        /// Acquires only if that needs no waiting (`acquire(False)`).
        pub fn try_acquire(&self) -> Result<Option<AcquireGuard<'_>>, ManagerError> {
            Ok(self
                .$field
                .acquire_nowait()
                .then(|| AcquireGuard::new(&self.$field)))
        }

        /// Releases an acquisition made without a guard (one forgotten
        /// with `std::mem::forget`).
        pub fn release(&self) -> Result<(), ReleaseError> {
            self.$field.release()
        }
    };
}

/// A `threading.Lock` shared by threads. Clones share it.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let lock = m.lock()?;
/// let held = lock.acquire()?;
/// let other = lock.clone();
/// let tried = std::thread::spawn(move || other.try_acquire().map(|g| g.is_some()));
/// assert!(!tried.join().unwrap()?);
/// drop(held);
/// assert!(lock.try_acquire()?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LockProxy {
    lock: Lock,
}

impl LockProxy {
    pub(super) fn new() -> Result<Self, ManagerError> {
        Ok(LockProxy { lock: Lock::new()? })
    }

    /// The lock underneath, for what needs the primitive itself (a
    /// [`Condition`] around it).
    pub fn as_lock(&self) -> &Lock {
        &self.lock
    }

    acquirer_methods!(lock);

    /// Whether the lock is held.
    pub fn locked(&self) -> Result<bool, ManagerError> {
        Ok(self.lock.is_locked())
    }
}

/// A `threading.RLock` shared by threads: the thread holding it may
/// acquire it again. Clones share it.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let r = m.rlock()?;
/// let outer = r.acquire()?;
/// let inner = r.acquire()?; // the same thread: no deadlock
/// drop(inner);
/// drop(outer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RLockProxy {
    lock: RLock,
}

impl RLockProxy {
    pub(super) fn new() -> Result<Self, ManagerError> {
        Ok(RLockProxy {
            lock: RLock::new()?,
        })
    }

    acquirer_methods!(lock);
}

/// A `threading.Semaphore` (or `BoundedSemaphore`) shared by threads.
/// Clones share it.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
/// use multiprocessing::synchronize::ReleaseError;
///
/// let m = Manager()?;
/// let s = m.semaphore(2)?;
/// let a = s.acquire()?;
/// let b = s.acquire()?;
/// assert!(s.try_acquire()?.is_none());
/// drop((a, b));
///
/// let bounded = m.bounded_semaphore(1)?;
/// assert!(matches!(bounded.release(), Err(ReleaseError::TooManyReleases)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SemaphoreProxy {
    sem: Semaphore,
}

/// A `threading.BoundedSemaphore`: the same type as [`SemaphoreProxy`],
/// as in the managed flavour; releasing past the initial value is
/// [`ReleaseError::TooManyReleases`].
///
/// ```
/// use multiprocessing::dummy::managers::{BoundedSemaphoreProxy, Manager};
///
/// let s: BoundedSemaphoreProxy = Manager()?.bounded_semaphore(1)?;
/// let permit = s.acquire()?;
/// permit.release()?;
/// assert!(s.release().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type BoundedSemaphoreProxy = SemaphoreProxy;

impl SemaphoreProxy {
    pub(super) fn new(value: u32) -> Result<Self, ManagerError> {
        Ok(SemaphoreProxy {
            sem: Semaphore::new(value)?,
        })
    }

    pub(super) fn bounded(value: u32) -> Result<Self, ManagerError> {
        let bounded = BoundedSemaphore::new(value)?;
        Ok(SemaphoreProxy {
            sem: (*bounded).clone(),
        })
    }

    acquirer_methods!(sem);
}

/// A `threading.Event` shared by threads. Clones share it.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
/// use std::time::Duration;
///
/// let m = Manager()?;
/// let e = m.event()?;
/// let setter = e.clone();
/// std::thread::spawn(move || setter.set());
/// e.wait()?;
/// assert!(e.is_set()?);
/// e.clear()?;
/// assert!(!e.wait_timeout(Duration::from_millis(1))?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct EventProxy {
    event: Event,
}

impl EventProxy {
    pub(super) fn new() -> Result<Self, ManagerError> {
        Ok(EventProxy {
            event: Event::new()?,
        })
    }

    /// Sets the flag, waking every waiter.
    pub fn set(&self) -> Result<(), ManagerError> {
        self.event.set();
        Ok(())
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.event.clear();
        Ok(())
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        Ok(self.event.is_set())
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<(), ManagerError> {
        self.event.wait();
        Ok(())
    }

    /// Waits at most `timeout`; whether the flag was set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        Ok(self.event.wait_timeout(timeout))
    }
}

/// A `threading.Condition` shared by threads, with its own `RLock`
/// unless made around a [`LockProxy`]'s lock. Clones share it.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let ready = m.value("b", &false)?;
/// let cond = m.condition()?;
/// let (c, r) = (cond.clone(), ready.clone());
/// let notifier = std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     let _held = c.acquire()?;
///     r.set(true)?;
///     c.notify_all()?;
///     Ok(())
/// });
/// let held = cond.acquire()?;
/// assert!(cond.wait_for(|| ready.get().unwrap_or(false), None)?);
/// drop(held);
/// notifier.join().unwrap().map_err(|e| e.to_string())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConditionProxy {
    cond: Condition,
}

impl ConditionProxy {
    pub(super) fn new() -> Result<Self, ManagerError> {
        Ok(ConditionProxy {
            cond: Condition::new()?,
        })
    }

    pub(super) fn with_lock(lock: &LockProxy) -> Result<Self, ManagerError> {
        Ok(ConditionProxy {
            cond: Condition::with_lock(lock.as_lock().clone())?,
        })
    }

    /// Acquires the condition's lock, waiting as long as it takes.
    pub fn acquire(&self) -> Result<AcquireGuard<'_>, ManagerError> {
        self.cond.acquire();
        Ok(AcquireGuard::new(&self.cond))
    }

    /// Acquires the lock, waiting at most `timeout`; `None` if it timed
    /// out.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<AcquireGuard<'_>>, ManagerError> {
        Ok(self
            .cond
            .acquire_timeout(timeout)
            .then(|| AcquireGuard::new(&self.cond)))
    }

    /// Releases the lock, waits for a notification, takes the lock back.
    /// The calling thread must hold the lock
    /// ([`ConditionError::NotOwned`] otherwise).
    pub fn wait(&self) -> Result<(), ConditionError> {
        self.cond.wait()
    }

    /// [`wait`](Self::wait) for at most `timeout`; whether it was
    /// notified.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ConditionError> {
        self.cond.wait_timeout(timeout)
    }

    /// Waits until `predicate` holds, at most `timeout` in all (`None`:
    /// no limit); the predicate's last result. The calling thread must
    /// hold the lock.
    pub fn wait_for<F: FnMut() -> bool>(
        &self,
        predicate: F,
        timeout: Option<Duration>,
    ) -> Result<bool, ConditionError> {
        match timeout {
            Some(t) => self.cond.wait_for_timeout(predicate, t),
            None => self.cond.wait_for(predicate),
        }
    }

    /// Wakes one waiter. The calling thread must hold the lock.
    pub fn notify(&self) -> Result<(), ConditionError> {
        self.cond.notify()
    }

    /// Wakes up to `n` waiters.
    pub fn notify_n(&self, n: usize) -> Result<(), ConditionError> {
        self.cond.notify_n(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> Result<(), ConditionError> {
        self.cond.notify_all()
    }
}

/// A `threading.Barrier` for a fixed number of threads. Clones share it.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let b = m.barrier(2)?;
/// let other = b.clone();
/// let t = std::thread::spawn(move || other.wait());
/// let mine = b.wait()?;
/// let theirs = t.join().unwrap()?;
/// assert_eq!(mine + theirs, 1); // arrival indices 0 and 1
/// assert_eq!(b.parties()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BarrierProxy {
    barrier: Barrier,
}

impl BarrierProxy {
    pub(super) fn new(parties: usize) -> Result<Self, ManagerError> {
        let parties = u32::try_from(parties)
            .map_err(|_| ManagerError::ValueError(format!("{parties} parties are too many")))?;
        Ok(BarrierProxy {
            barrier: Barrier::new(parties)?,
        })
    }

    /// Waits for every party; the arrival index, `0..parties`. A broken
    /// barrier is [`BarrierError::Broken`].
    pub fn wait(&self) -> Result<usize, BarrierError> {
        self.barrier.wait().map(|i| i as usize)
    }

    /// [`wait`](Self::wait) for at most `timeout`; timing out breaks the
    /// barrier.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, BarrierError> {
        self.barrier.wait_timeout(timeout).map(|i| i as usize)
    }

    /// Breaks the barrier: every waiter, now and later, fails.
    pub fn abort(&self) -> Result<(), ManagerError> {
        self.barrier.abort();
        Ok(())
    }

    /// Returns the barrier to its empty, unbroken state.
    pub fn reset(&self) -> Result<(), ManagerError> {
        self.barrier.reset();
        Ok(())
    }

    /// How many parties it waits for.
    pub fn parties(&self) -> Result<usize, ManagerError> {
        Ok(self.barrier.parties() as usize)
    }

    /// How many parties wait now.
    pub fn n_waiting(&self) -> Result<usize, ManagerError> {
        Ok(self.barrier.n_waiting() as usize)
    }

    /// Whether it is broken.
    pub fn broken(&self) -> Result<bool, ManagerError> {
        Ok(self.barrier.broken())
    }
}

impl fmt::Debug for BarrierProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("dummy::BarrierProxy")
            .field("parties", &self.barrier.parties())
            .field("n_waiting", &self.barrier.n_waiting())
            .field("broken", &self.barrier.broken())
            .finish()
    }
}
