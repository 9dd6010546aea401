//! `Process::join_async` (feature `asyncio`): awaiting a process's end on
//! its sentinel — the child's pidfd, or the forkserver's status socket —
//! registered with tokio's reactor, so no thread sleeps for it.

use std::os::fd::{AsFd, BorrowedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{Kind, Process, ProcessError};

/// Waits until `fd` is readable, through the current tokio reactor. The
/// descriptor is duplicated so the registration owns what it watches
/// (and closes it when dropped).
async fn readable(fd: BorrowedFd<'_>, what: &'static str) -> Result<(), ProcessError> {
    let owned = fd
        .try_clone_to_owned()
        .map_err(|e| ProcessError::os(what, e))?;
    // SAFETY: `owned` is an open descriptor that the AsyncFd owns from
    // here on; nothing closes or replaces it while registered.
    let watched = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
        .map_err(|e| ProcessError::os(what, e))?;
    let _ready = watched
        .readable()
        .await
        .map_err(|e| ProcessError::os(what, e))?;
    Ok(())
}

impl Process {
    /// Waits until the process finishes, without blocking the thread: the
    /// async twin of [`join`](Process::join) (Python's `join()`), for a
    /// tokio runtime. Bound it with `tokio::time::timeout` for
    /// `join(timeout)`.
    ///
    /// The process's sentinel (a pidfd for `fork` and `spawn` children,
    /// the forkserver's status socket for its children, the parent's
    /// pidfd for [`parent_process`](crate::parent_process)) is registered
    /// with tokio's reactor: the task is woken by the kernel when the
    /// process ends, and the exit code is then collected as `join` does.
    ///
    /// # Cancel safety
    ///
    /// Cancellation safe: waiting takes nothing; the process can be
    /// joined again.
    ///
    /// # Errors
    ///
    /// As [`join`](Process::join): [`ProcessError::NotStarted`],
    /// [`ProcessError::JoinSelf`], [`ProcessError::NotAChild`],
    /// [`ProcessError::Closed`], or an OS error.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with its I/O driver enabled, as tokio's own
    /// I/O types do.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiprocessing::{get_context, StartMethod};
    ///
    /// let p = get_context(StartMethod::Fork).process_fn(|| 3);
    /// p.start()?;
    /// p.join_async().await?;
    /// assert_eq!(p.exitcode()?, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join_async(&self) -> Result<(), ProcessError> {
        const WHAT: &str = "waiting for a process";
        if self.inner.kind == Kind::Parent {
            let fd = self.state().parent_pidfd.clone();
            if let Some(fd) = fd {
                readable(fd.as_fd(), WHAT).await?;
            }
            return Ok(());
        }
        let popen = self.started_popen("join")?;
        while popen.poll()?.is_none() {
            readable(popen.sentinel(), WHAT).await?;
        }
        self.forget();
        Ok(())
    }
}
