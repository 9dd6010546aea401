//! The child's side of a start: becoming the new process (name, parent,
//! authkey, start method, logging, the daemon lifeline), running the
//! target, and leaving the way Python's `BaseProcess._bootstrap` does
//! (clean up our own children, flush, `_exit`). Also the main process's
//! exit hook (Python's `util._exit_function`).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

use serde::{Deserialize, Serialize};

use super::current::{self, AuthKey, ProcessTable};
use super::start::method::{self, StartMethod};
use super::{sys, Process};
use crate::log;

/// How a daemonic child learns that its parent died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Lifeline {
    /// `PR_SET_PDEATHSIG`: exact and free, but tied to the *thread* that
    /// created the child, so only used when that is a main thread.
    DeathSignal,
    /// A thread in the child that waits on the parent's pidfd, for
    /// children started from other threads (a thread pool could retire
    /// the creating thread long before the parent exits).
    WatchParent,
}

/// What a child needs to know to become itself; sent to re-executed
/// children, moved into forked ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChildSpec {
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    #[serde(with = "serde_bytes")]
    pub(crate) authkey: Vec<u8>,
    pub(crate) parent_pid: u32,
    pub(crate) parent_name: String,
    /// The parent's start method if it fixed one, so grandchildren start
    /// the same way (Python passes it in the preparation data).
    pub(crate) start_method: Option<StartMethod>,
    /// The `log_to_stderr` level in force in the parent.
    pub(crate) log_level: Option<u8>,
    pub(crate) lifeline: Lifeline,
}

/// Turns the process table into the child's: called right after `fork`
/// (with the parent's table, whose lock this thread holds) or after a
/// re-executed child has read its payload.
///
/// `os_parent` is the pid `getppid()` must return (the forkserver for its
/// children); `parent_pidfd` watches the logical parent.
pub(crate) fn become_child(
    table: &mut ProcessTable,
    spec: &ChildSpec,
    os_parent: libc::pid_t,
    parent_pidfd: Option<OwnedFd>,
) {
    if spec.daemon {
        hold_lifeline(spec.lifeline, os_parent, parent_pidfd.as_ref());
    }
    current::set_current_name(&spec.name);
    let parent = Process::parent_handle(
        spec.parent_name.clone(),
        spec.parent_pid,
        parent_pidfd.map(Arc::new),
    );
    let me = Process::current_child(spec, AuthKey::new(spec.authkey.clone()));
    // Dropping the parent's handles in a forked child closes nothing the
    // parent needs: these are our copies of its descriptors. It does
    // close the parent's forkserver connection here, which must not keep
    // that server alive after the parent dies.
    table.children.clear();
    table.forkserver = None;
    table.self_pidfd = None;
    table.counter = 0;
    table.current = me;
    table.parent = Some(parent);
    if let Some(method) = spec.start_method {
        method::force_start_method(method);
    }
    if let Some(level) = spec.log_level {
        log::inherit_level(level);
    }
    // A forked child has the hook from its parent (installed before the
    // fork); a re-executed one installs it here, still single-threaded.
    super::target::install_panic_hook();
    super::target::set_panic_name(&spec.name);
    tracing::info!(target: "multiprocessing", "child process calling self.run()");
}

/// Makes sure a daemonic child dies with its parent, even an abrupt death.
fn hold_lifeline(lifeline: Lifeline, os_parent: libc::pid_t, parent_pidfd: Option<&OwnedFd>) {
    match lifeline {
        Lifeline::DeathSignal => {
            // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            // The parent may have died before the prctl: then nobody will
            // send the signal, and we are already an orphan.
            // SAFETY: getppid cannot fail.
            if unsafe { libc::getppid() } != os_parent {
                die_with_parent();
            }
        }
        Lifeline::WatchParent => {
            let Some(fd) = parent_pidfd.and_then(|fd| fd.try_clone().ok()) else {
                die_with_parent();
            };
            let spawned = std::thread::Builder::new()
                .name("mp-lifeline".into())
                .spawn(move || {
                    if sys::wait_readable(fd.as_fd(), None).unwrap_or(true) {
                        die_with_parent();
                    }
                });
            if spawned.is_err() {
                die_with_parent();
            }
        }
    }
}

fn die_with_parent() -> ! {
    // SAFETY: raising SIGKILL on ourselves; it cannot be caught.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    // SAFETY: unreachable in practice; _exit never returns.
    unsafe { libc::_exit(1) }
}

/// Leaves a child: our own children are dealt with as at any exit, the
/// standard streams flushed, and the process ends with `code` without
/// running the parent's `atexit` handlers (a forked child has copies).
pub(crate) fn finish(code: i32) -> ! {
    exit_function();
    tracing::info!(target: "multiprocessing", "process exiting with exitcode {code}");
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process at once; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// Ends a child whose bootstrap panicked outside the target (the message
/// is already on stderr): code 1, like a failed target, with no unwinding
/// into code the child must not run.
pub(crate) fn abort_child() -> ! {
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process at once.
    unsafe { libc::_exit(1) }
}

static EXITING: AtomicBool = AtomicBool::new(false);

/// Python's `_exit_function`: terminate daemonic children, then join all
/// children. Runs once per process.
pub(crate) fn exit_function() {
    if EXITING.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::info!(target: "multiprocessing", "process shutting down");
    for child in current::active_children() {
        if child.daemon() {
            tracing::info!(target: "multiprocessing", "calling terminate() for daemon {}", child.name());
            let _ = child.terminate();
        }
    }
    for child in current::active_children() {
        tracing::info!(target: "multiprocessing", "calling join() for process {}", child.name());
        let _ = child.join();
    }
}

extern "C" fn exit_hook() {
    exit_function();
}

/// Registers [`exit_function`] to run when the process exits normally
/// (return from `main` or `std::process::exit`).
pub(crate) fn register_exit_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain extern "C" function with no captures.
        unsafe { libc::atexit(exit_hook) };
    });
}
