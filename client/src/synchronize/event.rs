//! `Event`: a flag processes can wait on (Python's `multiprocessing.Event`).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::engine::deadline::Deadline;
#[cfg(feature = "asyncio")]
use super::engine::waiter::FutexWait;
use super::error::SyncError;
use super::handle::{Handle, State};
use mp_sys::futex;

/// Flag bit of the event word.
const SET: u32 = 1;
/// Someone may be asleep on the word: `set` must wake.
const WAITERS: u32 = 2;

/// The shared part of an [`Event`].
#[repr(C)]
pub(crate) struct EventState {
    kind: AtomicU32,
    /// `SET | WAITERS` bits; the futex word.
    word: AtomicU32,
}

// SAFETY: repr(C), atomics only, kind first.
unsafe impl State for EventState {
    const KIND: u32 = 0x4d50_4556; // "MPEV"
    const NAME: &'static str = "Event";
    fn kind_word(&self) -> &AtomicU32 {
        &self.kind
    }
}

/// A flag that starts false: `set` makes it true and wakes every waiter,
/// `clear` makes it false again, `wait` blocks while it is false.
///
/// ```
/// use multiprocessing::synchronize::Event;
/// use std::time::Duration;
///
/// let ev = Event::new()?;
/// assert!(!ev.wait_timeout(Duration::ZERO));
/// ev.set();
/// assert!(ev.is_set());
/// ev.wait();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event {
    handle: Handle<EventState>,
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Result<Event, SyncError> {
        Ok(Event {
            handle: Handle::create()?,
        })
    }

    #[inline]
    fn word(&self) -> &AtomicU32 {
        &self.handle.get().word
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.word().load(Ordering::Acquire) & SET != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let prev = self.word().swap(SET, Ordering::AcqRel);
        if prev & WAITERS != 0 {
            futex::wake_all(self.word());
        }
    }

    /// Resets the flag to false.
    pub fn clear(&self) {
        // Only a set flag is cleared; a waiters-only word stays as it is.
        let _ = self
            .word()
            .compare_exchange(SET, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    fn wait_until(&self, deadline: Deadline) -> bool {
        let w = self.word();
        loop {
            let v = w.load(Ordering::Acquire);
            if v & SET != 0 {
                return true;
            }
            if v & WAITERS == 0
                && w.compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let left = deadline.remaining();
            if left.is_some_and(|d| d.is_zero()) {
                return false;
            }
            futex::wait(w, v | WAITERS, left);
        }
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.wait_until(Deadline::Never);
    }

    /// Blocks until the flag is set or `timeout` passes; returns the flag.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Deadline::after(Some(timeout)))
    }

    /// Waits until the flag is set, without blocking the thread (feature
    /// `asyncio`): the async twin of [`wait`](Event::wait), for any
    /// executor. Bound it with `tokio::time::timeout` for Python's
    /// `wait(timeout)`.
    ///
    /// The task sleeps as one registration with this process's futex
    /// waiter thread (see [`crate::synchronize`], "Async waits"), woken
    /// by a `set` from any thread or process.
    ///
    /// # Cancel safety
    ///
    /// Cancellation safe: waiting takes nothing, so a dropped future
    /// changes nothing.
    ///
    /// # Errors
    ///
    /// [`SyncError::AsyncWaiter`] if the waiter thread it needed could not
    /// be started.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiprocessing::synchronize::Event;
    ///
    /// let ev = Event::new()?;
    /// let setter = ev.clone();
    /// std::thread::spawn(move || setter.set());
    /// ev.wait_async().await?;
    /// assert!(ev.is_set());
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "asyncio")]
    pub async fn wait_async(&self) -> Result<(), SyncError> {
        let w = self.word();
        loop {
            let v = w.load(Ordering::Acquire);
            if v & SET != 0 {
                return Ok(());
            }
            if v & WAITERS == 0
                && w.compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            FutexWait::new(self.handle.region(), w, v | WAITERS, None).await?;
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}
