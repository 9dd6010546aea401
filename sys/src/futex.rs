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
//! [`wait_any`] (`futex_waitv`) lets one thread sleep on many words: the
//! SDK's async waits are served by such a thread, so the waking side is
//! the same [`wake`] whoever sleeps.

use std::io;
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

/// The most words one [`wait_any`] takes (the kernel's `FUTEX_WAITV_MAX`).
pub const WAIT_ANY_MAX: usize = 128;

/// `struct futex_waitv` of `<linux/futex.h>`.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: a 32-bit word, shared (no `FUTEX2_PRIVATE`).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Sleeps while every `word` holds its `expected` value, for at most
/// `timeout` (`None`: no limit): Linux's `futex_waitv` (5.16 and later),
/// the one thread that waits for many futexes at once. Returns at once if
/// some word holds something else. As with [`wait`], a wake-up is a hint:
/// callers look at their words again in every case.
///
/// # Errors
///
/// `ENOSYS` on a kernel older than 5.16 (callers fall back to [`wait`]
/// on one word); `InvalidInput` for no words or more than
/// [`WAIT_ANY_MAX`]; `EFAULT`/`EINVAL` from the kernel otherwise.
pub fn wait_any(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> io::Result<Wake> {
    if words.is_empty() || words.len() > WAIT_ANY_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "futex_waitv takes 1 to 128 words",
        ));
    }
    let waiters: Vec<FutexWaitv> = words
        .iter()
        .map(|(word, expected)| FutexWaitv {
            val: u64::from(*expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    // futex_waitv's timeout is absolute, on the monotonic clock.
    let deadline = match timeout {
        None => None,
        Some(d) => {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid timespec to write into.
            if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let secs = libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX);
            let mut nsec = now.tv_nsec + libc::c_long::from(d.subsec_nanos());
            let mut sec = now.tv_sec.saturating_add(secs);
            if nsec >= 1_000_000_000 {
                nsec -= 1_000_000_000;
                sec = sec.saturating_add(1);
            }
            Some(libc::timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            })
        }
    };
    let ts_ptr = deadline
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `waiters` holds `words.len()` (1..=128) initialised
    // futex_waitv entries whose addresses are live, aligned 32-bit atomics
    // borrowed for the duration of the call (the kernel only reads them);
    // `ts_ptr` is null or points at a timespec that outlives the call; the
    // flags argument must be 0.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0u32,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if rc >= 0 {
        return Ok(Wake::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ETIMEDOUT) => Ok(Wake::TimedOut),
        // A word no longer held its value, or a signal: look again.
        Some(libc::EAGAIN | libc::EINTR) => Ok(Wake::Woken),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_any_returns_for_a_changed_word_and_times_out_otherwise() {
        let a = AtomicU32::new(1);
        let b = AtomicU32::new(2);
        let got = wait_any(&[(&a, 1), (&b, 2)], Some(Duration::from_millis(5)));
        assert_eq!(got.unwrap(), Wake::TimedOut);
        let got = wait_any(&[(&a, 1), (&b, 3)], None);
        assert_eq!(got.unwrap(), Wake::Woken);
        assert!(wait_any(&[], None).is_err());
    }

    #[test]
    fn wait_any_is_woken_through_any_of_its_words() {
        let words = std::sync::Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let sleeper = {
            let words = words.clone();
            std::thread::spawn(move || {
                while words[1].load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    let got = wait_any(
                        &[(&words[0], 0), (&words[1], 0)],
                        Some(Duration::from_secs(30)),
                    );
                    assert_eq!(got.unwrap(), Wake::Woken);
                }
            })
        };
        words[1].store(1, std::sync::atomic::Ordering::SeqCst);
        wake_all(&words[1]);
        sleeper.join().unwrap();
    }

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
