//! Errors of the pools, named after what Python's `multiprocessing.pool`
//! raises (`TimeoutError`, `ValueError`, the task's own exception).

use thiserror::Error;

/// Why a pool call, or one of its tasks, failed.
///
/// `Clone` so that an [`AsyncResult`](super::AsyncResult) can hand the
/// same error to every `get` and to its error callback, as Python re-raises
/// the same exception object.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// The task at `index` (its position in the input; 0 for `apply`)
    /// panicked or returned `Err`; `message` is the panic message or the
    /// error's `Display` (Python re-raises the task's exception).
    #[error("task {index} failed: {message}")]
    Task {
        /// Position of the task in its input.
        index: usize,
        /// What the task reported.
        message: String,
    },
    /// The worker process running the task at `index` died (killed, out of
    /// memory, `exit()` inside the task); the pool replaced it. CPython
    /// hangs forever here.
    #[error("task {index} failed: the worker process (pid {pid}) running it died with exit code {exitcode}")]
    WorkerLost {
        /// Position of the task in its input.
        index: usize,
        /// The dead worker's pid.
        pid: u32,
        /// Its exit code (`-N`: killed by signal `N`).
        exitcode: i32,
    },
    /// `get_timeout`/`next_timeout` ran out of time (Python's
    /// `multiprocessing.TimeoutError`). The result may still come.
    #[error("timed out waiting for the result")]
    Timeout,
    /// `successful()` on a result that is not ready (Python's
    /// `ValueError: ... not ready`).
    #[error("the result is not ready")]
    NotReady,
    /// A call that needs a running pool after `close` or `terminate`
    /// (Python's `ValueError: Pool not running`).
    #[error("Pool not running")]
    NotRunning,
    /// `join` before `close` or `terminate` (Python's `ValueError`).
    #[error("Pool is still running: call close() or terminate() before join()")]
    StillRunning,
    /// The pool was terminated (or dropped) before the task finished.
    #[error("the pool was terminated before task {index} finished")]
    Terminated {
        /// Position of the task in its input.
        index: usize,
    },
    /// An argument is out of range, e.g. zero processes (Python's
    /// `ValueError`).
    #[error("{0}")]
    ValueError(String),
    /// A task's arguments or result could not be encoded or decoded (CBOR),
    /// or a worker could not find the task's function.
    #[error("task {index}: {message}")]
    Transfer {
        /// Position of the task in its input.
        index: usize,
        /// What went wrong.
        message: String,
    },
    /// The pool gave up: its initializer failed in every new worker, or
    /// no worker could be started; pending and new tasks fail with this
    /// instead of hanging (CPython retries forever).
    #[error("the pool cannot run tasks: {0}")]
    Broken(String),
    /// A worker process could not be started.
    #[error("cannot start a pool worker: {0}")]
    Start(String),
    /// The pool's task or result queue failed.
    #[error("pool queue: {0}")]
    Queue(String),
}

impl PoolError {
    /// The same error for the task at `index` instead (a chunk-wide failure
    /// is reported once per task of the chunk).
    pub(crate) fn at(&self, index: usize) -> PoolError {
        match self {
            PoolError::Task { message, .. } => PoolError::Task {
                index,
                message: message.clone(),
            },
            PoolError::WorkerLost { pid, exitcode, .. } => PoolError::WorkerLost {
                index,
                pid: *pid,
                exitcode: *exitcode,
            },
            PoolError::Terminated { .. } => PoolError::Terminated { index },
            PoolError::Transfer { message, .. } => PoolError::Transfer {
                index,
                message: message.clone(),
            },
            other => other.clone(),
        }
    }

    /// The position of the task this error is about, if it is about one.
    pub fn index(&self) -> Option<usize> {
        match self {
            PoolError::Task { index, .. }
            | PoolError::WorkerLost { index, .. }
            | PoolError::Terminated { index }
            | PoolError::Transfer { index, .. } => Some(*index),
            _ => None,
        }
    }
}
