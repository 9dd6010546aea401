//! Errors of process objects (the `AssertionError`s, `ValueError`s and
//! `OSError`s that Python's `multiprocessing.process` raises).

use std::io;

use super::start::method::StartMethod;

/// Why an operation on a [`Process`](super::Process) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `start` was called on a process that was already started (Python's
    /// "cannot start a process twice").
    #[error("cannot start a process twice")]
    AlreadyStarted,
    /// `join`, `sentinel`, `terminate`, … on a process that was never
    /// started.
    #[error("process not started: can only use a started process")]
    NotStarted,
    /// The handle refers to a process that is not a child of this one: the
    /// current process, the parent process, or a `Process` created by
    /// another process and inherited through `fork`.
    #[error("can only {0} a child process")]
    NotAChild(&'static str),
    /// A process tried to join itself.
    #[error("a process cannot join itself")]
    JoinSelf,
    /// The process object was closed with `close()` (Python's
    /// `ValueError: process object is closed`).
    #[error("process object is closed")]
    Closed,
    /// `close()` on a process that is still running.
    #[error("cannot close a process while it is still running; join or terminate it first")]
    StillRunning,
    /// `daemon`, `name` or `authkey` changed after `start`, which the child
    /// would never see.
    #[error("cannot change {0} after the process has started")]
    AlreadyRunning(&'static str),
    /// A daemonic process tried to start a child.
    #[error("daemonic processes are not allowed to have children")]
    DaemonChildren,
    /// The target cannot be found in a re-executed child: it is a capturing
    /// closure (only `fork` can run one) or it lives outside the main
    /// executable.
    #[error("the {method} start method cannot run this target: {reason}")]
    TargetNotPortable {
        /// The start method that was asked for.
        method: StartMethod,
        /// What is wrong with the target.
        reason: String,
    },
    /// `spawn` and `forkserver` re-execute the program, which only works
    /// when `multiprocessing::init()` runs first in `main`.
    #[error(
        "the {0} start method re-executes this program, so multiprocessing::init() must be \
         the first call in main (in a test, use a `harness = false` target whose main calls it)"
    )]
    InitNotCalled(StartMethod),
    /// The arguments could not be serialized for the child (Python's
    /// `PicklingError`).
    #[error("cannot serialize the process arguments: {0}")]
    Serialize(String),
    /// The forkserver process failed or broke its protocol.
    #[error("forkserver: {0}")]
    ForkServer(String),
    /// An operating-system call failed (Python's `OSError`).
    #[error("{context}: {source}")]
    Os {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ProcessError {
    /// Wraps an OS error with what was being done.
    pub(crate) fn os(context: &'static str, source: impl Into<io::Error>) -> Self {
        ProcessError::Os {
            context,
            source: source.into(),
        }
    }
}

impl From<nix::Error> for ProcessError {
    fn from(e: nix::Error) -> Self {
        ProcessError::os("system call failed", io::Error::from(e))
    }
}
