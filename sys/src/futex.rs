//! The one blocking operation every cross-process wait uses: a shared (not
//! process-private) Linux futex on a 32-bit word in a `MAP_SHARED`
//! mapping.
//!
//! No Python counterpart: CPython's `multiprocessing.synchronize` sleeps in
//! POSIX semaphores, which are futexes underneath. The kernel keys a shared
//! futex by the backing file and offset, so two processes that mapped the
//! same memfd at different addresses wait on the same queue. Never
//! `FUTEX_PRIVATE_FLAG`: the waiters of a word may live in other processes.
//! The local primitives (`multiprocessing::synchronize`) and the
//! shared-memory channel ([`crate::channel`]) both sleep here.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Why a [`wait`] returned. Callers re-check their word in every case: a
/// futex wake-up is a hint, never a promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word no longer held `expected`, or a signal arrived.
    Woken,
    /// `timeout` elapsed.
    TimedOut,
}

/// Sleeps while `*word == expected`, for at most `timeout` (`None`: no
/// limit). Returns at once if the word holds something else.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts;
    let ts_ptr = match timeout {
        None => std::ptr::null(),
        Some(d) => {
            ts = libc::timespec {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(d.subsec_nanos()),
            };
            &ts as *const libc::timespec
        }
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of
    // the call; FUTEX_WAIT only reads it. `ts_ptr` is null or points at a
    // timespec that outlives the call; the last two arguments are unused
    // by FUTEX_WAIT.
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
#[inline]
pub fn wake(word: &AtomicU32, n: u32) {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not
    // touch its value, it only looks up the waiters keyed by its page.
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
#[inline]
pub fn wake_all(word: &AtomicU32) {
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
    fn a_sleeper_is_woken_by_another_thread() {
        let w = std::sync::Arc::new(AtomicU32::new(0));
        let sleeper = {
            let w = w.clone();
            std::thread::spawn(move || {
                while w.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    wait(&w, 0, Some(Duration::from_secs(30)));
                }
            })
        };
        w.store(1, std::sync::atomic::Ordering::SeqCst);
        wake_all(&w);
        sleeper.join().unwrap();
    }
}
