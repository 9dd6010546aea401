//! Forked children for the cross-process tests (until `Process` lands,
//! these use raw `fork`: the child runs a closure and `_exit`s with its
//! result, so no test-harness state runs twice).

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Generous limit so that a broken primitive fails the test instead of
/// hanging it; never a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A forked child.
pub struct Child {
    pub pid: libc::pid_t,
    reaped: Option<i32>,
}

/// Forks; the child runs `f` and exits with its return value (101 if it
/// panicked).
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // This fork bypasses the crate's own (which first finishes every
    // one-time setup a child may reach). The test binary runs tests on
    // several threads: if one of them were inside the primitives' first
    // use (the pid/tid cache and its atfork handler) at the moment of the
    // fork, the child would inherit that setup half-done and hang on its
    // first lock. Acquiring a lock once, in every forking thread, waits
    // for that setup to finish.
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| {
        let lock = multiprocessing::Lock::new().expect("a lock for the one-time setup");
        lock.acquire();
        lock.release().expect("releasing the setup lock");
    });
    // SAFETY: the child runs `f` and `_exit`s without returning to the
    // test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: ends the child without running the harness's exit path.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: None }
}

impl Child {
    /// Waits for the child (killing it after [`PATIENCE`]); returns its
    /// exit code, or `-signal` if a signal ended it.
    pub fn join(&mut self) -> i32 {
        if let Some(code) = self.reaped {
            return code;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(code) = self.try_join() {
                return code;
            }
            if Instant::now() > deadline {
                // SAFETY: killing our own child.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                panic!("child {} did not finish in time", self.pid);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The exit code if the child has finished, without waiting.
    pub fn try_join(&mut self) -> Option<i32> {
        if let Some(code) = self.reaped {
            return Some(code);
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == self.pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -libc::WTERMSIG(status)
            };
            self.reaped = Some(code);
            return Some(code);
        }
        None
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            // SAFETY: a test that failed early must not leave its child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// Polls `cond` until true; panics after [`PATIENCE`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills the calling process with SIGKILL (a crash no code can catch).
pub fn die() -> ! {
    // SAFETY: raising a signal at ourselves.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL returned")
}
