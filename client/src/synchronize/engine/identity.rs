//! Who is calling: the process id and the thread id that go into an owner
//! word, and whether the owner recorded there is still alive.
//!
//! Both ids are cached because an uncontended acquire must not make a system
//! call; a `pthread_atfork` child handler refreshes them, since a forked
//! child has a new pid and its only thread a new tid.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// This process's pid, 0 until first asked.
static PID: AtomicU32 = AtomicU32::new(0);
/// Guards the one-time `pthread_atfork` registration.
static ATFORK: Once = Once::new();

thread_local! {
    /// This thread's kernel tid, 0 until first asked. `const` so that the
    /// fork handler touches no lazy initialisation.
    static TID: Cell<u32> = const { Cell::new(0) };
}

extern "C" fn after_fork_in_child() {
    // Only async-signal-safe work here: two syscalls and two stores.
    PID.store(raw_getpid(), Ordering::Relaxed);
    TID.with(|t| t.set(raw_gettid()));
}

fn raw_getpid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

fn raw_gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: the handler is a plain `extern "C" fn` with no captured
        // state, valid for the life of the program.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

/// The calling process's pid (cached).
#[inline]
pub(crate) fn pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    register_atfork();
    let p = raw_getpid();
    PID.store(p, Ordering::Relaxed);
    p
}

/// The calling thread's tid (cached); unique system-wide while the thread
/// lives, so it names a process and a thread at once.
#[inline]
pub(crate) fn tid() -> u32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        register_atfork();
        let v = raw_gettid();
        t.set(v);
        v
    })
}

/// Whether the process or thread `id` has ended (gone, or a zombie nobody
/// has reaped yet).
///
/// Ids are only meaningful inside one pid namespace; every process sharing
/// a primitive must be in the same one (true for fork, spawn and forkserver
/// children). A recycled id looks alive: recovery is then no better than
/// CPython's (it waits), never wrong in the other direction.
pub(crate) fn is_dead(id: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(id) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the target exists.
    let rc = unsafe { libc::kill(raw, 0) };
    if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    // It exists or we may not signal it; a zombie still exists, so look at
    // its state letter, which follows the last ')' of /proc/<id>/stat.
    match std::fs::read(format!("/proc/{id}/stat")) {
        Ok(stat) => {
            let after = stat
                .iter()
                .rposition(|&b| b == b')')
                .map(|i| &stat[i + 1..]);
            matches!(after, Some([b' ', b'Z' | b'X', ..]))
        }
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_kernel_and_the_living_are_alive() {
        assert_eq!(pid(), std::process::id());
        assert_eq!(tid(), raw_gettid());
        assert!(!is_dead(pid()));
        assert!(!is_dead(tid()));
        let other = std::thread::spawn(tid).join().unwrap();
        assert_ne!(other, tid());
    }

    #[test]
    fn an_exited_child_is_dead_even_before_it_is_reaped() {
        // SAFETY: the child only calls _exit.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(0) };
        }
        let child = child as u32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !is_dead(child) {
            assert!(
                std::time::Instant::now() < deadline,
                "child never seen dead"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child as i32, &mut status, 0) };
        assert!(is_dead(child));
    }
}
