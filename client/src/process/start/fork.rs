//! The `fork` start method (Python's `popen_fork`): the child is a copy of
//! the parent and runs the target — any closure — directly, with no
//! serialization.
//!
//! Only the calling thread exists in the child. Locks other threads held at
//! the moment of the fork stay locked there forever, which is why `fork`
//! is unsafe in programs that run threads (tokio, rayon, …): this module
//! holds the crate's own locks across the fork so at least they are
//! consistent, and glibc does the same for `malloc`, but nothing can do it
//! for every lock of every library. Prefer `forkserver` or `spawn` there.

use std::io::Write;
use std::sync::MutexGuard;

use super::super::at_fork;
use super::super::bootstrap::{self, ChildSpec};
use super::super::current::{self, ProcessTable};
use super::super::error::ProcessError;
use super::super::popen::Popen;
use super::super::sys;
use super::super::target::Launch;

/// Forks a child that runs `launch`. `launch` is taken only in the child,
/// so the caller keeps it if the fork fails. The table lock is held across
/// the fork (and released in the child before the target runs), so the
/// child's copy of the table is consistent.
pub(crate) fn start(
    mut table: MutexGuard<'static, ProcessTable>,
    spec: &ChildSpec,
    launch: &mut Option<Box<dyn Launch>>,
) -> (
    MutexGuard<'static, ProcessTable>,
    Result<Popen, ProcessError>,
) {
    // Unflushed output would be written twice, once by each process.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    finish_one_time_setup();
    let hooks = at_fork::run_before_fork();
    let name_guard = current::lock_current_name();
    // SAFETY: fork has no memory-safety preconditions of its own; the child
    // below only touches state this thread owns or holds the lock of
    // (the table, the name) before running the target.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = ProcessError::os("fork", std::io::Error::last_os_error());
        drop(name_guard);
        drop(hooks);
        return (table, Err(e));
    }
    if pid == 0 {
        drop(name_guard);
        drop(hooks);
        // Nothing may unwind out of here: it would resume the parent's
        // code in the child.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let parent_pidfd = open_parent_pidfd(spec.parent_pid as libc::pid_t);
            bootstrap::become_child(
                &mut table,
                spec,
                spec.parent_pid as libc::pid_t,
                parent_pidfd,
            );
            drop(table);
            let code = match launch.take() {
                Some(target) => target.run_here(&spec.name),
                None => 1,
            };
            bootstrap::finish(code)
        }));
        bootstrap::abort_child()
    }
    drop(name_guard);
    drop(hooks);
    let result = match sys::pidfd_open(pid) {
        Ok(pidfd) => Ok(Popen::direct(pid, pidfd)),
        Err(e) => {
            // SAFETY: `pid` is our unreaped child, so it cannot be reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = sys::try_reap(pid);
            Err(ProcessError::os("opening a pidfd for the child", e))
        }
    };
    (table, result)
}

/// A pidfd of the parent, opened from the child: only trusted if the
/// parent is still our parent afterwards (otherwise the pid may already
/// name another process, and the parent is gone anyway).
fn open_parent_pidfd(parent: libc::pid_t) -> Option<std::os::fd::OwnedFd> {
    let fd = sys::pidfd_open(parent).ok()?;
    // SAFETY: getppid cannot fail.
    (unsafe { libc::getppid() } == parent).then_some(fd)
}

/// Completes, in the forking thread, every one-time registration of
/// `process` a child may reach. A `Once` that another thread is running at
/// the moment of the fork is inherited half-done, and the child would wait
/// on it forever; the panic hook's lock likewise (see
/// [`install_panic_hook`](super::super::target::install_panic_hook)).
/// Other modules' setup runs through [`at_fork`].
fn finish_one_time_setup() {
    super::super::target::install_panic_hook();
    super::super::bootstrap::register_exit_hook();
    let _ = crate::synchronize::engine::identity::pid();
}
