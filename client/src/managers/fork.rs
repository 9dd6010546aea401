//! Keeps the managers' process-wide tables usable in a forked child
//! (what CPython's `util.register_after_fork` and its `ForkAwareLocal`
//! do for its managers).
//!
//! A child forked while another thread holds one of these mutexes would
//! inherit it locked by a thread that does not exist there, and hang on
//! first use. So the forking thread takes every one of them just before
//! `fork` (`pthread_atfork`'s prepare handler) and gives them back on both
//! sides just after: the child gets them unlocked, with consistent
//! contents. The tables are keyed by pid, so the child then starts afresh.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Once, PoisonError};

/// Forks this process has made since the handlers were installed.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// How many forks this process has made (that the tables saw): a proxy
/// made before the latest one may be shared with a child.
pub(crate) fn forks() -> u64 {
    protect_tables();
    FORKS.load(Ordering::SeqCst)
}

thread_local! {
    /// The guards taken by the prepare handler, in lock order.
    static HELD: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Takes every table's lock, always in this order (no code path holds
/// one of them while taking another, so the order cannot deadlock).
extern "C" fn prepare() {
    let guards: Vec<Box<dyn Any>> = vec![
        Box::new(
            super::transfer::CONNECTIONS
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
        Box::new(
            super::transfer::KEYS
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
        Box::new(
            super::client::release::RELEASER
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
        Box::new(
            super::after_fork::SERVERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
        Box::new(
            super::after_fork::WAITER
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
    ];
    FORKS.fetch_add(1, Ordering::SeqCst);
    HELD.with(|held| *held.borrow_mut() = guards);
}

/// Gives the locks back (in the parent, and in the child's one thread).
extern "C" fn release() {
    HELD.with(|held| {
        let mut guards = std::mem::take(&mut *held.borrow_mut());
        while guards.pop().is_some() {}
    });
}

/// Installs the fork handlers, once per process (a child inherits them),
/// after registering that installation with `process`'s fork hooks, so a
/// fork never meets it half-done.
pub(crate) fn protect_tables() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if !REGISTERED.load(Ordering::Acquire) {
        // Before the `Once` starts: a fork waits for a registration in
        // progress, and runs `install_handlers` once it is registered.
        crate::process::at_fork::register_before_fork(install_handlers);
        REGISTERED.store(true, Ordering::Release);
    }
    install_handlers();
}

/// The `pthread_atfork` registration, once per process.
fn install_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handlers are plain functions that only lock and
        // unlock static mutexes through a thread-local of the forking
        // thread; registering them has no other precondition.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
        if rc != 0 {
            tracing::warn!(
                rc,
                "pthread_atfork failed: a fork may inherit a locked manager table"
            );
        }
    });
}
