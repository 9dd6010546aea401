//! One-time setup other modules need finished before this process forks
//! (CPython's `os.register_at_fork(before=…)` and `util.register_after_fork`
//! play the same part for its modules).
//!
//! A `Once` another thread is running at the moment of a fork is inherited
//! half-done: the child, which has only the forking thread, would wait on
//! it forever. A module whose first use runs such a setup (the managers
//! install their `pthread_atfork` handlers that way) registers a hook
//! here, and the `fork` start method runs every hook in the forking thread
//! before it forks, which waits for any setup still running elsewhere.
//!
//! The registry's lock is held from the hooks to the fork, and given back
//! on both sides after it (the child's one thread is the one that holds
//! it): a registration made meanwhile waits for the fork, so a hook is
//! either run before the fork or its setup has not started. That is why
//! `process` never names its users: they register with it.

use std::sync::{Mutex, MutexGuard};

use mp_sys::lock;

/// Setup to finish before a fork, in registration order.
static BEFORE_FORK: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Runs `hook` in the forking thread before every later fork made with
/// the `fork` start method. A hook must finish its own setup (call its
/// `Once`) and must not register hooks or fork. Registering the same
/// function again has no effect.
pub(crate) fn register_before_fork(hook: fn()) {
    let mut hooks = lock(&BEFORE_FORK);
    // Compared by address: a function registered twice runs twice at
    // worst, which its `Once` makes harmless.
    if !hooks.iter().any(|h| *h as usize == hook as usize) {
        hooks.push(hook);
    }
}

/// Runs every hook; the returned guard keeps registrations out until the
/// caller has forked and dropped it (in the parent and in the child).
pub(crate) fn run_before_fork() -> MutexGuard<'static, Vec<fn()>> {
    let hooks = lock(&BEFORE_FORK);
    for hook in hooks.iter() {
        hook();
    }
    hooks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    fn count() {
        RUNS.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_hook_registered_twice_runs_once_per_fork() {
        register_before_fork(count);
        register_before_fork(count);
        let before = RUNS.load(Ordering::SeqCst);
        drop(run_before_fork());
        assert_eq!(RUNS.load(Ordering::SeqCst), before + 1);
    }
}
