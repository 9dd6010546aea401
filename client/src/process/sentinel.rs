//! The sentinel of a process: what Python's `Process.sentinel` is, as an
//! owned descriptor usable with `poll`, `epoll` or `connection::wait`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A process's sentinel: a descriptor that becomes readable when the process
/// has finished (a pidfd, or the forkserver's status socket). Pass it to
/// `poll`/`epoll` or `connection::wait`.
#[derive(Debug)]
pub struct Sentinel(pub(super) OwnedFd);

impl AsFd for Sentinel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Sentinel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl From<Sentinel> for OwnedFd {
    fn from(s: Sentinel) -> OwnedFd {
        s.0
    }
}
