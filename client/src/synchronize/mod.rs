//! Synchronization primitives shared by processes (Python's
//! `multiprocessing.synchronize`).
//!
//! Every primitive lives in a small shared memory region (a `memfd`) and
//! blocks on Linux futexes in it, so it works between threads, between a
//! parent and forked children, and between processes that received it
//! serialized (spawn, forkserver, a Unix-socket `Connection`): its serde
//! form carries the region's descriptor as a
//! [`SharedFd`](crate::reduction::SharedFd). Clones are handles to the same
//! primitive.
//!
//! # Which one to use
//!
//! | primitive | use it when | owner | dead holder |
//! | --- | --- | --- | --- |
//! | [`Lock`] | mutual exclusion; one party may lock and another unlock | none (any thread or process may release) | recovered, [`Lock::owner_died`] set |
//! | [`RLock`] | a thread must re-enter code that locks | the thread (process + thread) | recovered, [`RLock::owner_died`] set |
//! | [`Semaphore`] | at most N parties at a time | none | permits stay taken |
//! | [`BoundedSemaphore`] | the same, and a double release is a bug to report | none | permits stay taken |
//! | [`Condition`] | wait for a state change made under a lock | its lock's | its lock's |
//! | [`Event`] | one-shot or resettable "go" signal | none | n/a |
//! | [`Barrier`] | N parties meet before going on, in rounds | none | a timeout breaks it |
//!
//! # Blocking calls
//!
//! Where Python has `acquire(block=True, timeout=None)`, each primitive
//! has `acquire()`, `acquire_timeout(d)` and `acquire_nowait()`, plus
//! guards (`lock()`, `lock_timeout(d)`, `try_lock()`) that release on drop.
//! Python's negative timeout is `Duration::ZERO`: one attempt, no wait. A
//! timeout too large for the clock means no limit. [`timeout_secs`] turns
//! a Python-style float into such a `Duration`.
//!
//! # Async waits (feature `asyncio`)
//!
//! `Event::wait_async`, `Lock::acquire_async` and `Lock::lock_async` (and
//! the queues' `get_async`/`put_async`, `Process::join_async`, and
//! `AsyncResult`, a future) are the async twins of the
//! blocking calls: the same name with `_async`, the same result, and no
//! thread of the caller's blocked. They run on any executor; Python's
//! timeouts are `tokio::time::timeout` around them, which is sound because
//! each is cancellation safe (a dropped future has taken nothing).
//!
//! A futex cannot be polled, so an awaiting task registers its word with
//! one of this process's *futex waiter threads*, which sleep in
//! `futex_waitv` (Linux 5.16+) on up to 127 distinct words each and wake
//! the tasks whose word changed; tasks waiting on the same word share one
//! slot. The threads start on first use and stay. To whoever sets the
//! event or releases the lock — another thread, another process, blocking
//! or async — the waiter thread is one more sleeper on the word, so the
//! blocking paths are unchanged and pay nothing. On an older kernel each
//! waiter thread watches one word.
//!
//! # A process that dies holding a lock
//!
//! CPython deadlocks here. This crate stores the holder's pid (`Lock`) or
//! tid (`RLock`) in the lock word. An acquirer that has been blocked for
//! about 100 ms on the same holder asks the kernel whether it still lives;
//! if not, it takes the lock over atomically and sets the owner-died flag,
//! which the new holder can read ([`Lock::owner_died`],
//! [`LockGuard::owner_died`]) until it releases: the protected data may be
//! half-updated. A warning is logged through `tracing`. Limits: all
//! processes must share a pid namespace, and a pid recycled by an unrelated
//! process before anyone checks keeps the lock held (CPython's behaviour).
//!
//! Only ownership is recovered. A process that dies while *waiting* on a
//! `Condition` stays counted as a waiter, so a `notify(1)` may be spent on
//! it instead of a live waiter (`notify_all` is unaffected; CPython's
//! `notify` hangs for ever in that case); one that dies inside
//! `Barrier::wait` keeps its place, so the round never fills and only a
//! timeout or `abort` frees the others; permits a dead process took from a
//! `Semaphore` are not returned (there is no owner).
//!
//! # Cost
//!
//! An uncontended acquire is one compare-and-swap; a release is one swap,
//! plus a `FUTEX_WAKE` only if someone sleeps. Each primitive holds one
//! file descriptor for its region (as a `Connection` does).
//!
//! # Layout
//!
//! * `engine`: futex waits, pid/tid identity, the owner word, the counter,
//!   the condition's wake-up tokens.
//! * one file per primitive: `lock`, `rlock`, `semaphore`,
//!   `bounded_semaphore`, `condition`, `event`, `barrier`; `any_lock` for
//!   "any of our locks"; `error` for the error types.

mod any_lock;
mod barrier;
mod bounded_semaphore;
mod condition;
pub(crate) mod engine;
mod error;
mod event;
pub(crate) mod handle;
mod lock;
mod rlock;
mod semaphore;

pub use any_lock::{AnyLock, AnyLockGuard};

/// Converts a Python timeout in seconds to the `Duration` the `*_timeout`
/// methods take: negative or NaN is zero (one attempt), infinite or too
/// large for a `Duration` is `Duration::MAX` (no limit).
///
/// ```
/// use multiprocessing::synchronize::{timeout_secs, Lock};
/// use std::time::Duration;
///
/// assert_eq!(timeout_secs(-1.0), Duration::ZERO);
/// assert_eq!(timeout_secs(0.25), Duration::from_millis(250));
/// assert_eq!(timeout_secs(f64::INFINITY), Duration::MAX);
/// let lock = Lock::new()?;
/// let _held = lock.lock();
/// assert!(!lock.acquire_timeout(timeout_secs(-5.0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn timeout_secs(secs: f64) -> std::time::Duration {
    if secs.is_nan() || secs <= 0.0 {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::try_from_secs_f64(secs).unwrap_or(std::time::Duration::MAX)
    }
}
pub use barrier::{Barrier, BarrierAction};
pub use bounded_semaphore::BoundedSemaphore;
pub use condition::Condition;
pub use error::{BarrierError, ConditionError, ReleaseError, SyncError};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{Semaphore, SemaphoreGuard};
