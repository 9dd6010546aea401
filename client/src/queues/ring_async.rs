//! The ring's operations for async tasks (feature `asyncio`): the same
//! records under the same lock, with every sleep a
//! [`FutexWait`](crate::synchronize::engine::waiter::FutexWait) on the same
//! sequence words, so blocking and async users of one queue wake each
//! other.
//!
//! # Cancellation
//!
//! A record is appended or taken out only inside the poll that completes
//! the operation, under the ring lock taken with
//! [`Lock::acquire_async`](crate::synchronize::Lock::acquire_async) (itself
//! cancellation safe). A future dropped while it waits for the lock, for
//! an item or for room has changed nothing: the sleeper count it raised
//! is lowered by its drop, and a wake-up it was given is passed on.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{QueueError, Ring, RingGuard, RECHECK};
use crate::synchronize::engine::waiter::FutexWait;
use mp_sys::futex;

/// Counts one sleeper on a word (`getters`, `putters`) for as long as it
/// lives, so a dropped future does not stay counted.
struct Sleeping<'a>(&'a AtomicU32);

impl<'a> Sleeping<'a> {
    fn new(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Sleeping(count)
    }
}

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ring {
    /// [`lock`](Ring::lock) for an async task.
    async fn lock_async(&self) -> Result<RingGuard<'_>, QueueError> {
        self.lock.acquire_async().await?;
        let g = RingGuard { ring: self };
        if self.lock.owner_died() {
            tracing::warn!("a process died while using a queue; recounting its items");
            self.repair();
        }
        Ok(g)
    }

    /// [`put`](Ring::put) without a deadline, for an async task.
    pub(crate) async fn put_async(
        &self,
        bytes: &[u8],
        task: bool,
        side: bool,
    ) -> Result<(), QueueError> {
        let len = self.prefix(bytes, side)?;
        let s = self.s();
        loop {
            let guard = self.lock_async().await?;
            if let Some(wake) = self.append(&guard, len, bytes, task)? {
                drop(guard);
                if wake {
                    futex::wake(&s.put_seq, 1);
                }
                return Ok(());
            }
            let seq = s.get_seq.load(Ordering::Acquire);
            let sleeping = Sleeping::new(&s.putters);
            drop(guard);
            FutexWait::new(self.state.region(), &s.get_seq, seq, Some(RECHECK)).await?;
            drop(sleeping);
        }
    }

    /// [`get`](Ring::get) without a deadline, for an async task.
    pub(crate) async fn get_async(&self) -> Result<(Vec<u8>, bool), QueueError> {
        let s = self.s();
        loop {
            let guard = self.lock_async().await?;
            if let Some((taken, wake)) = self.take(&guard, &mut |_, _| {})? {
                drop(guard);
                if wake {
                    futex::wake_all(&s.get_seq);
                }
                return Ok(taken);
            }
            let seq = s.put_seq.load(Ordering::Acquire);
            let sleeping = Sleeping::new(&s.getters);
            drop(guard);
            FutexWait::new(self.state.region(), &s.put_seq, seq, Some(RECHECK)).await?;
            drop(sleeping);
        }
    }

    /// [`join`](Ring::join) without a deadline, for an async task.
    pub(crate) async fn join_async(&self) -> Result<(), QueueError> {
        let s = self.s();
        loop {
            let seq = s.done_seq.load(Ordering::Acquire);
            if s.unfinished.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            let sleeping = Sleeping::new(&s.joiners);
            // As in join: a task_done that saw no joiner must not leave
            // us asleep (the seq word catches it too).
            if s.unfinished.load(Ordering::Acquire) != 0 {
                FutexWait::new(self.state.region(), &s.done_seq, seq, Some(RECHECK)).await?;
            }
            drop(sleeping);
        }
    }
}
