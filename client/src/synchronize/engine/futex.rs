//! The one blocking operation every primitive uses: a shared (not
//! process-private) Linux futex on a word in a `MAP_SHARED` mapping, with a
//! deadline.
//!
//! The kernel keys a shared futex by the backing file and offset, so two
//! processes that mapped the same memfd at different addresses wait on the
//! same queue. Nothing here is specific to one primitive.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// When a blocking call gives up: never, or at an instant.
///
/// Python takes a timeout in seconds where a negative value means zero; a
/// [`Duration`] cannot be negative, and a timeout too large to add to the
/// clock means "never" instead of overflowing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// Block until the condition holds.
    Never,
    /// Give up at this instant.
    At(Instant),
}

impl Deadline {
    /// The deadline `timeout` from now (`None`: block forever).
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Never,
            Some(d) => match Instant::now().checked_add(d) {
                Some(at) => Deadline::At(at),
                None => Deadline::Never,
            },
        }
    }

    /// Time left, `None` for "forever"; zero once passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
        }
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        matches!(self.remaining(), Some(d) if d.is_zero())
    }
}

/// Why a [`wait`] returned. Callers re-check their word in every case: a
/// futex wake-up is a hint, never a promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, or the word no longer held `expected`, or a signal arrived.
    Woken,
    /// `timeout` elapsed.
    TimedOut,
}

/// Sleeps while `*word == expected`, for at most `timeout` (`None`: no
/// limit).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts;
    let ts_ptr = match timeout {
        None => std::ptr::null(),
        Some(d) => {
            ts = libc::timespec {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            &ts as *const libc::timespec
        }
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of
    // the call; FUTEX_WAIT only reads it. The timespec outlives the call.
    // Not FUTEX_PRIVATE_FLAG: waiters in other processes share the queue.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        Wake::TimedOut
    } else {
        // EAGAIN (the word changed), EINTR and real wake-ups all mean
        // "look again".
        Wake::Woken
    }
}

/// Wakes up to `n` waiters on `word`, in any process.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not
    // touch its value.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every waiter on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    wake(word, u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_timeout_does_not_block_and_a_changed_word_returns() {
        let w = AtomicU32::new(5);
        assert_eq!(wait(&w, 5, Some(Duration::ZERO)), Wake::TimedOut);
        assert_eq!(wait(&w, 6, None), Wake::Woken);
    }

    #[test]
    fn huge_timeouts_mean_never() {
        assert!(matches!(
            Deadline::after(Some(Duration::MAX)),
            Deadline::Never
        ));
        assert!(Deadline::after(Some(Duration::ZERO)).expired());
        assert!(!Deadline::after(None).expired());
    }
}
