//! Errors of the pools, named after what Python's `multiprocessing.pool`
//! raises (`TimeoutError`, `ValueError`, the task's own exception), and
//! [`NoError`], the error of a task that cannot fail.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a pool call, or one of its tasks, failed.
///
/// `E` is the error type of the task's function: a function returning
/// `Result<R, E>` that returns `Err(e)` fails its task with
/// [`PoolError::Task`] carrying that very `e` (Python re-raises the task's
/// own exception), at the task's position. A function returning a plain
/// value cannot fail that way, and its calls give `PoolError<NoError>`,
/// which is what `PoolError` alone means: the default `E`. The calls that
/// run no function of yours (`Pool::new`, `close`, `terminate`, `join`,
/// `successful`) return that plain `PoolError`; [`widen`](PoolError::widen)
/// turns one into a `PoolError<E>` where `?` needs it.
///
/// A panic is not an `E`: it is [`PoolError::Panic`], with its message.
///
/// ```
/// use multiprocessing::pool::{PoolError, ThreadPool};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// enum MathError {
///     DivisionByZero,
/// }
///
/// impl std::fmt::Display for MathError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("division by zero")
///     }
/// }
///
/// fn inverse(x: i32) -> Result<f64, MathError> {
///     if x == 0 { Err(MathError::DivisionByZero) } else { Ok(1.0 / f64::from(x)) }
/// }
///
/// let pool = ThreadPool::new(2)?;
/// match pool.map(inverse, [4, 0, 2]) {
///     Err(PoolError::Task { index: 1, error: MathError::DivisionByZero }) => {}
///     other => panic!("{other:?}"),
/// }
/// match pool.apply(|| -> u8 { panic!("boom") }, ()) {
///     Err(PoolError::Panic { index: 0, message, .. }) => assert_eq!(message, "boom"),
///     other => panic!("{other:?}"),
/// }
/// pool.close()?;
/// pool.join()?;
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError<E = NoError> {
    /// The task at `index` (its position in the input; 0 for `apply`)
    /// returned `Err(error)` (Python re-raises the task's exception).
    #[error("task {index} failed: {error}")]
    Task {
        /// Position of the task in its input.
        index: usize,
        /// The function's own error.
        error: E,
    },
    /// The task at `index` panicked.
    #[error("task {index} panicked{}: {message}", at(.location))]
    Panic {
        /// Position of the task in its input.
        index: usize,
        /// The panic's message (`"Box<dyn Any>"` when it has none).
        message: String,
        /// Where it panicked (`file:line:column`), when known: a process
        /// pool's worker records it; a thread pool leaves the program's
        /// panic hook alone, and that hook reports it.
        location: Option<String>,
    },
    /// The input of an `imap` panicked while making item `index`; that
    /// item fails with this and the iteration ends there, as Python's
    /// does when the iterable raises.
    #[error("the input iterator panicked making item {index}: {message}")]
    InputPanic {
        /// The position the item would have had.
        index: usize,
        /// The panic's message.
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
    /// `multiprocessing.TimeoutError`).
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
    /// `close`, `terminate` or `join` in a process that did not make the
    /// pool (a forked child holding a copy): the workers and threads are
    /// the maker's, and the copy cannot stop or wait for them.
    #[error(
        "this pool belongs to process {owner}: only that process can close, terminate or join it"
    )]
    NotOwner {
        /// The pid of the process that made the pool.
        owner: u32,
    },
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

/// ` at <location>`, or nothing.
fn at(location: &Option<String>) -> String {
    location
        .as_ref()
        .map(|l| format!(" at {l}"))
        .unwrap_or_default()
}

impl<E> PoolError<E> {
    /// The position of the task this error is about, if it is about one.
    pub fn index(&self) -> Option<usize> {
        match self {
            PoolError::Task { index, .. }
            | PoolError::Panic { index, .. }
            | PoolError::InputPanic { index, .. }
            | PoolError::WorkerLost { index, .. }
            | PoolError::Terminated { index }
            | PoolError::Transfer { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The function's own error, if the task returned one.
    pub fn task_error(&self) -> Option<&E> {
        match self {
            PoolError::Task { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The same error with the function's error mapped by `f` (every
    /// other variant is kept as it is).
    pub fn map_task_error<F>(self, f: impl FnOnce(E) -> F) -> PoolError<F> {
        match self {
            PoolError::Task { index, error } => PoolError::Task {
                index,
                error: f(error),
            },
            PoolError::Panic {
                index,
                message,
                location,
            } => PoolError::Panic {
                index,
                message,
                location,
            },
            PoolError::InputPanic { index, message } => PoolError::InputPanic { index, message },
            PoolError::WorkerLost {
                index,
                pid,
                exitcode,
            } => PoolError::WorkerLost {
                index,
                pid,
                exitcode,
            },
            PoolError::Timeout => PoolError::Timeout,
            PoolError::NotReady => PoolError::NotReady,
            PoolError::NotRunning => PoolError::NotRunning,
            PoolError::StillRunning => PoolError::StillRunning,
            PoolError::NotOwner { owner } => PoolError::NotOwner { owner },
            PoolError::Terminated { index } => PoolError::Terminated { index },
            PoolError::ValueError(m) => PoolError::ValueError(m),
            PoolError::Transfer { index, message } => PoolError::Transfer { index, message },
            PoolError::Broken(m) => PoolError::Broken(m),
            PoolError::Start(m) => PoolError::Start(m),
            PoolError::Queue(m) => PoolError::Queue(m),
        }
    }
}

impl PoolError<NoError> {
    /// The same error as a `PoolError<E>`, for `?` in a function whose
    /// error is the `PoolError<E>` of its tasks: an error that is not a
    /// task's own fits any `E`.
    ///
    /// ```
    /// use multiprocessing::pool::{PoolError, ThreadPool};
    ///
    /// fn parse_all(words: Vec<String>) -> Result<Vec<u32>, PoolError<String>> {
    ///     let pool = ThreadPool::new(2).map_err(PoolError::widen)?;
    ///     pool.map(|w: String| w.parse::<u32>().map_err(|e| e.to_string()), words)
    /// }
    /// assert_eq!(parse_all(vec!["1".into(), "2".into()]), Ok(vec![1, 2]));
    /// ```
    pub fn widen<E>(self) -> PoolError<E> {
        self.map_task_error(|never| match never {})
    }

    /// The same error for the task at `index` instead, as a
    /// `PoolError<E>` (a chunk-wide failure is reported once per task of
    /// the chunk).
    pub(crate) fn at<E>(&self, index: usize) -> PoolError<E> {
        match self.clone() {
            PoolError::WorkerLost { pid, exitcode, .. } => PoolError::WorkerLost {
                index,
                pid,
                exitcode,
            },
            PoolError::Terminated { .. } => PoolError::Terminated { index },
            PoolError::Transfer { message, .. } => PoolError::Transfer { index, message },
            PoolError::Panic {
                message, location, ..
            } => PoolError::Panic {
                index,
                message,
                location,
            },
            PoolError::InputPanic { message, .. } => PoolError::InputPanic { index, message },
            other => other.widen(),
        }
    }
}

/// The error of a task that cannot fail: the `E` of [`PoolError`],
/// [`AsyncResult`](super::AsyncResult) and
/// [`IMapIterator`](super::IMapIterator) for a function that returns a
/// plain value. It has no values, like [`std::convert::Infallible`];
/// unlike it, it is a serde type, so it can cross to a worker process and
/// back.
///
/// ```
/// use multiprocessing::pool::{NoError, PoolError, ThreadPool};
///
/// // A value type outside `TaskResult`'s list of plain values is
/// // returned in a `Result` that cannot fail.
/// struct Point(i32, i32);
/// fn mirror(x: i32) -> Result<Point, NoError> {
///     Ok(Point(x, -x))
/// }
///
/// let pool = ThreadPool::new(2)?;
/// let points = pool.map(mirror, [1, 2])?;
/// assert_eq!(points[1].1, -2);
/// // Its pool errors are the plain `PoolError`.
/// let _: Result<Vec<Point>, PoolError<NoError>> = pool.map(mirror, [3]);
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NoError {}

impl fmt::Display for NoError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for NoError {}

impl From<std::convert::Infallible> for NoError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_errors_widen_and_move_to_another_task() {
        let lost: PoolError = PoolError::WorkerLost {
            index: 0,
            pid: 7,
            exitcode: -9,
        };
        assert_eq!(
            lost.at::<String>(3),
            PoolError::WorkerLost {
                index: 3,
                pid: 7,
                exitcode: -9
            }
        );
        assert_eq!(
            PoolError::NotRunning.widen::<u8>(),
            PoolError::<u8>::NotRunning
        );
        let task = PoolError::Task {
            index: 2,
            error: 5u8,
        };
        assert_eq!(task.task_error(), Some(&5));
        assert_eq!(task.index(), Some(2));
        assert_eq!(
            task.map_task_error(|e| e.to_string()),
            PoolError::Task {
                index: 2,
                error: "5".to_string()
            }
        );
    }

    #[test]
    fn messages_name_the_task() {
        let e: PoolError<String> = PoolError::Task {
            index: 4,
            error: "bad input".into(),
        };
        assert_eq!(e.to_string(), "task 4 failed: bad input");
        let p: PoolError = PoolError::Panic {
            index: 1,
            message: "boom".into(),
            location: Some("src/main.rs:3:5".into()),
        };
        assert_eq!(p.to_string(), "task 1 panicked at src/main.rs:3:5: boom");
        // A task error that is a std error converts into a boxed error.
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        assert!(boxed.to_string().contains("bad input"));
    }
}
