//! `Barrier`: a fixed number of parties wait for each other (Python's
//! `multiprocessing.Barrier`, which is `threading.Barrier` over
//! process-shared locks).
//!
//! # Design
//!
//! One shared region holds the barrier's state, a [`Lock`] and a
//! [`Condition`] over it; the algorithm is `threading.Barrier`'s: a barrier
//! is filling, draining (releasing a full round), resetting or broken, and
//! every transition happens under the lock and ends in `notify_all`.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::shared_memory::region::Region;

use super::condition::{CondState, Condition};
use super::error::{BarrierError, SyncError};
use super::handle::{Handle, State};
use super::lock::{Lock, LockState};

const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const RESETTING: u32 = 2;
const BROKEN: u32 = 3;

/// No default timeout.
const NO_TIMEOUT: u64 = u64::MAX;

/// Where the parts sit in the barrier's region (whole cache lines each;
/// a Lock takes two).
const LOCK_OFFSET: usize = 64;
const COND_OFFSET: usize = 192;
const REGION_LEN: usize = 4096;

/// The shared part of a [`Barrier`]; changed only under its lock.
#[repr(C)]
pub(crate) struct BarrierState {
    kind: AtomicU32,
    /// FILLING, DRAINING, RESETTING or BROKEN.
    state: AtomicU32,
    /// Parties inside `wait` now.
    count: AtomicU32,
    /// Parties needed to release a round.
    parties: AtomicU32,
    /// Default timeout of `wait` in nanoseconds, or `NO_TIMEOUT`.
    timeout_ns: AtomicU64,
    /// Whether the creator gave an action (so a party that lacks it knows).
    has_action: AtomicU32,
}

const _: () = assert!(LOCK_OFFSET + std::mem::size_of::<LockState>() <= COND_OFFSET);
const _: () = assert!(COND_OFFSET + std::mem::size_of::<CondState>() <= REGION_LEN);

// SAFETY: repr(C), atomics only, kind first.
unsafe impl State for BarrierState {
    const KIND: u32 = 0x4d50_4252; // "MPBR"
    const NAME: &'static str = "Barrier";
    fn kind_word(&self) -> &AtomicU32 {
        &self.kind
    }
}

/// The action run when a round is complete.
pub type BarrierAction = Arc<dyn Fn() + Send + Sync>;

/// Lets `parties` threads or processes wait until all have arrived.
///
/// `wait` returns each party a distinct index in `0..parties`. If an
/// action was given, the last party to arrive runs it before the others
/// are released; if it panics, the barrier breaks and the panic continues
/// in that party.
///
/// The action is a closure of this process: a forked child inherits it,
/// but a handle a child receives by serialization (spawn, forkserver)
/// carries none; give it one with [`Barrier::set_action`]. A party without
/// the action that arrives last breaks the barrier, as a failing action
/// would.
///
/// ```
/// use multiprocessing::synchronize::Barrier;
/// use std::time::Duration;
///
/// let b = Barrier::new(2)?;
/// let b2 = b.clone();
/// let t = std::thread::spawn(move || b2.wait());
/// let mine = b.wait()?;
/// let theirs = t.join().unwrap()?;
/// assert_eq!(mine + theirs, 1);
/// assert!(b.wait_timeout(Duration::from_millis(1)).is_err()); // alone: times out
/// assert!(b.broken());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    handle: Handle<BarrierState>,
    cond: Condition,
    action: Option<BarrierAction>,
}

impl Barrier {
    /// A barrier for `parties` parties (at least 1), no action, no default
    /// timeout.
    pub fn new(parties: u32) -> Result<Barrier, SyncError> {
        Self::with_options(parties, None, None)
    }

    /// A barrier with an action and a default timeout for `wait`
    /// (Python's `Barrier(parties, action, timeout)`).
    pub fn with_options(
        parties: u32,
        action: Option<BarrierAction>,
        timeout: Option<Duration>,
    ) -> Result<Barrier, SyncError> {
        if parties == 0 {
            return Err(SyncError::ValueError("parties must be > 0".into()));
        }
        let region = Region::new(REGION_LEN)?;
        let handle = Handle::<BarrierState>::create_at(Arc::clone(&region), 0)?;
        let lock = Lock::from_handle(Handle::<LockState>::create_at(
            Arc::clone(&region),
            LOCK_OFFSET,
        )?);
        let cond = Condition::from_parts(
            lock.into(),
            Handle::<CondState>::create_at(region, COND_OFFSET)?,
        );
        let s = handle.get();
        s.parties.store(parties, Ordering::Relaxed);
        let ns = timeout.map_or(NO_TIMEOUT, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        s.timeout_ns.store(ns, Ordering::Relaxed);
        s.has_action
            .store(u32::from(action.is_some()), Ordering::Release);
        Ok(Barrier {
            handle,
            cond,
            action,
        })
    }

    /// Gives this handle the action (for a handle received by a child).
    pub fn set_action(&mut self, action: BarrierAction) {
        self.action = Some(action);
    }

    fn state(&self) -> &BarrierState {
        self.handle.get()
    }

    /// Waits with the barrier's default timeout (none: forever).
    pub fn wait(&self) -> Result<u32, BarrierError> {
        let ns = self.state().timeout_ns.load(Ordering::Relaxed);
        let timeout = (ns != NO_TIMEOUT).then(|| Duration::from_nanos(ns));
        self.wait_inner(timeout)
    }

    /// Waits at most `timeout`; on timeout the barrier breaks.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BarrierError> {
        self.wait_inner(Some(timeout))
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<u32, BarrierError> {
        let s = self.state();
        let _held = self.cond.lock();
        // Wait out a draining or resetting round.
        let _ = self.cond.wait_for(|| {
            let st = s.state.load(Ordering::Relaxed);
            st != DRAINING && st != RESETTING
        });
        if s.state.load(Ordering::Relaxed) == BROKEN {
            return Err(BarrierError::Broken);
        }
        let index = s.count.load(Ordering::Relaxed);
        s.count.store(index + 1, Ordering::Relaxed);
        let result = if index + 1 == s.parties.load(Ordering::Relaxed) {
            self.release_round()
        } else {
            self.wait_round(timeout)
        };
        // Leaving (Python's `finally: count -= 1; _exit()`).
        let left = s.count.load(Ordering::Relaxed).saturating_sub(1);
        s.count.store(left, Ordering::Relaxed);
        let st = s.state.load(Ordering::Relaxed);
        if left == 0 && (st == RESETTING || st == DRAINING) {
            s.state.store(FILLING, Ordering::Relaxed);
            let _ = self.cond.notify_all();
        }
        result.map(|()| index)
    }

    /// Last party in: run the action, then release the round.
    fn release_round(&self) -> Result<(), BarrierError> {
        let s = self.state();
        match &self.action {
            Some(action) => {
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| action())) {
                    self.break_locked();
                    // The count bookkeeping in wait_inner is skipped by the
                    // panic, as Python's would be by the exception;
                    // breaking already freed the others.
                    let left = s.count.load(Ordering::Relaxed).saturating_sub(1);
                    s.count.store(left, Ordering::Relaxed);
                    panic::resume_unwind(p);
                }
            }
            None if s.has_action.load(Ordering::Acquire) != 0 => {
                self.break_locked();
                return Err(BarrierError::Broken);
            }
            None => {}
        }
        s.state.store(DRAINING, Ordering::Relaxed);
        let _ = self.cond.notify_all();
        Ok(())
    }

    fn wait_round(&self, timeout: Option<Duration>) -> Result<(), BarrierError> {
        let s = self.state();
        let filled = || s.state.load(Ordering::Relaxed) != FILLING;
        let done = match timeout {
            None => self.cond.wait_for(filled),
            Some(t) => self.cond.wait_for_timeout(filled, t),
        };
        if !done.unwrap_or(false) {
            self.break_locked();
            return Err(BarrierError::Broken);
        }
        match s.state.load(Ordering::Relaxed) {
            BROKEN | RESETTING => Err(BarrierError::Broken),
            _ => Ok(()),
        }
    }

    fn break_locked(&self) {
        self.state().state.store(BROKEN, Ordering::Relaxed);
        let _ = self.cond.notify_all();
    }

    /// Returns the barrier to its empty state; parties waiting now get
    /// [`BarrierError::Broken`].
    pub fn reset(&self) {
        let s = self.state();
        let _held = self.cond.lock();
        if s.count.load(Ordering::Relaxed) > 0 {
            let st = s.state.load(Ordering::Relaxed);
            if st == FILLING || st == BROKEN {
                s.state.store(RESETTING, Ordering::Relaxed);
            }
        } else {
            s.state.store(FILLING, Ordering::Relaxed);
        }
        let _ = self.cond.notify_all();
    }

    /// Breaks the barrier: current and future waits fail until
    /// [`Barrier::reset`].
    pub fn abort(&self) {
        let _held = self.cond.lock();
        self.break_locked();
    }

    /// Parties needed to pass the barrier.
    pub fn parties(&self) -> u32 {
        self.state().parties.load(Ordering::Relaxed)
    }

    /// Parties waiting now.
    pub fn n_waiting(&self) -> u32 {
        let s = self.state();
        let _held = self.cond.lock();
        if s.state.load(Ordering::Relaxed) == FILLING {
            s.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.state().state.load(Ordering::Relaxed) == BROKEN
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("broken", &self.broken())
            .field("has_action", &self.action.is_some())
            .finish()
    }
}

impl Serialize for Barrier {
    /// Only the region travels; the lock and condition are found in it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.handle.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let handle = Handle::<BarrierState>::deserialize(deserializer)?;
        let region = Arc::clone(handle.region());
        let lock = Handle::<LockState>::attach(Arc::clone(&region), LOCK_OFFSET)
            .map_err(D::Error::custom)?;
        let cond = Handle::<CondState>::attach(region, COND_OFFSET).map_err(D::Error::custom)?;
        Ok(Barrier {
            handle,
            cond: Condition::from_parts(Lock::from_handle(lock).into(), cond),
            action: None,
        })
    }
}
