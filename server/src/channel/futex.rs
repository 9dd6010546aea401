//! The two futex operations a channel needs, on words that live in memory
//! shared between processes (so never `FUTEX_PRIVATE_FLAG`); public for
//! the benchmark of the raw primitive.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `expected`, for at most `timeout` (`None`:
/// until woken). Returns at once if it holds something else; may also
/// return spuriously, so the caller always looks again.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 for the duration of the call;
    // FUTEX_WAIT only reads it, and `ts_ptr` is null or points at a valid
    // timespec that outlives the call. Errors (EAGAIN: the value changed;
    // ETIMEDOUT; EINTR) all mean "look again".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes every thread, in any process, sleeping in [`wait`] on `word`.
pub fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not touch the
    // memory, it only looks up waiters keyed by its physical page.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}
