//! The counter: a futex semaphore (the engine of `Semaphore` and
//! `BoundedSemaphore`, and the wake-up tokens of `Condition`).
//!
//! # Format
//!
//! ```text
//! value: u32    permits available (the futex word)
//! sleepers: u32 acquirers that may be asleep on `value`
//! ```
//!
//! An acquirer that finds no permit registers in `sleepers` before it
//! sleeps; a releaser adds a permit and wakes one sleeper only if `sleepers`
//! is non-zero. Both sides use sequentially consistent operations, so either
//! the releaser sees the sleeper or the sleeper sees the permit: no wake-up
//! is lost and an uncontended release makes no system call.

use std::sync::atomic::{AtomicU32, Ordering};

use super::deadline::Deadline;
use mp_sys::futex;

/// The shared part of a counter; lives in a shared region.
#[repr(C)]
pub(crate) struct Counter {
    /// Permits available.
    pub(crate) value: AtomicU32,
    /// Acquirers that may be asleep.
    pub(crate) sleepers: AtomicU32,
}

impl Counter {
    /// Takes a permit if one is there.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes a permit, sleeping until one is released or `deadline` passes.
    pub(crate) fn acquire(&self, deadline: Deadline) -> bool {
        loop {
            if self.try_acquire() {
                return true;
            }
            let left = deadline.remaining();
            if left.is_some_and(|d| d.is_zero()) {
                return false;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            if self.value.load(Ordering::SeqCst) == 0 {
                futex::wait(&self.value, 0, left);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Adds a permit unless that would make more than `max`; returns false
    /// (and adds nothing) in that case.
    #[inline]
    pub(crate) fn release_bounded(&self, max: u32) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            if v >= max {
                return false;
            }
            match self
                .value
                .compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            futex::wake(&self.value, 1);
        }
        true
    }

    /// Permits available now (a snapshot).
    pub(crate) fn value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }
}
