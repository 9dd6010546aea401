//! [`wait`]: block until any of several connections, sockets or process
//! sentinels is ready (Python's `multiprocessing.connection.wait`).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::fdio::poll_readable;
use super::{Connection, ConnectionError};

/// Something [`wait`] can wait on: readable data, end of file, or (for a
/// process sentinel such as a pidfd) the process's exit.
///
/// Every [`AsFd`] type is one; a [`Connection`] is one too, and counts as
/// ready while it holds buffered bytes its descriptor no longer shows.
pub trait Waitable {
    /// The descriptor to poll; `None` when closed.
    fn wait_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Whether the object is ready without looking at its descriptor.
    fn ready_now(&self) -> bool {
        false
    }
}

impl<T: AsFd + ?Sized> Waitable for T {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl Waitable for Connection {
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        self.borrowed_fd()
    }

    fn ready_now(&self) -> bool {
        self.has_pending()
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: no limit), and returns the indices of the ready ones — empty on
/// timeout. A connection whose peer has closed counts as ready (its `recv`
/// then reports end of file).
///
/// ```
/// use multiprocessing::connection::{wait, Waitable};
/// let (mut a, b) = multiprocessing::Pipe(true)?;
/// let (_c, d) = multiprocessing::Pipe(true)?;
/// a.send(&1)?;
/// assert_eq!(wait(&[&b as &dyn Waitable, &d], None)?, vec![0]);
/// # Ok::<(), multiprocessing::connection::ConnectionError>(())
/// ```
pub fn wait(
    objects: &[&dyn Waitable],
    timeout: Option<Duration>,
) -> Result<Vec<usize>, ConnectionError> {
    let mut fds = Vec::with_capacity(objects.len());
    for object in objects {
        fds.push(object.wait_fd().ok_or(ConnectionError::Closed)?);
    }
    let buffered: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i].ready_now())
        .collect();
    if !buffered.is_empty() {
        return Ok(buffered);
    }
    let ready = poll_readable(&fds, timeout)?;
    Ok(ready
        .iter()
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| i)
        .collect())
}
