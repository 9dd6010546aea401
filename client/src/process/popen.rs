//! The parent's handle on a started child (Python's `popen_fork.Popen`,
//! `popen_spawn_posix.Popen` and `popen_forkserver.Popen`): its pid, a
//! pollable sentinel, the exit code once known, signals.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::error::ProcessError;
use super::sys;

/// How the exit code reaches us.
#[derive(Debug)]
enum Reaper {
    /// Our own child (`fork`, `spawn`): `waitpid`.
    Direct,
    /// A child of the forkserver, which reaps it and writes its exit code
    /// (a native-endian `i32`) on this socket; the socket is the sentinel.
    ForkServer(OwnedFd),
}

/// A running or finished child.
#[derive(Debug)]
pub(crate) struct Popen {
    pid: libc::pid_t,
    /// Signals go through the pidfd so they can never hit a process that
    /// reused the pid after the child was reaped.
    pidfd: OwnedFd,
    reaper: Reaper,
    /// `None` until the child is known to have finished. The lock also
    /// serializes reaping, so exactly one caller collects the status.
    returncode: Mutex<Option<i32>>,
}

impl Popen {
    /// A child of this process.
    pub(crate) fn direct(pid: libc::pid_t, pidfd: OwnedFd) -> Self {
        Popen {
            pid,
            pidfd,
            reaper: Reaper::Direct,
            returncode: Mutex::new(None),
        }
    }

    /// A child of the forkserver; `status` receives its exit code.
    pub(crate) fn forkserver(pid: libc::pid_t, pidfd: OwnedFd, status: OwnedFd) -> Self {
        Popen {
            pid,
            pidfd,
            reaper: Reaper::ForkServer(status),
            returncode: Mutex::new(None),
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// A descriptor that becomes readable when the child has finished and
    /// its exit code can be read without blocking.
    pub(crate) fn sentinel(&self) -> BorrowedFd<'_> {
        match &self.reaper {
            Reaper::Direct => self.pidfd.as_fd(),
            Reaper::ForkServer(status) => status.as_fd(),
        }
    }

    /// The exit code if the child has finished (never blocks).
    pub(crate) fn poll(&self) -> Result<Option<i32>, ProcessError> {
        let mut code = self
            .returncode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if code.is_some() {
            return Ok(*code);
        }
        *code = match &self.reaper {
            Reaper::Direct => sys::try_reap(self.pid)
                .map_err(|e| ProcessError::os("waiting for a child process", e))?,
            Reaper::ForkServer(status) => match sys::try_recv_i32(status.as_fd()) {
                Ok(found) => found,
                // The forkserver died before reporting: the code is lost,
                // as in CPython, which then reports 255.
                Err(_) => Some(255),
            },
        };
        Ok(*code)
    }

    /// Waits for the child to finish, for at most `timeout`; the exit code,
    /// or `None` on timeout.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Result<Option<i32>, ProcessError> {
        if let Some(code) = self.poll()? {
            return Ok(Some(code));
        }
        let ready = sys::wait_readable(self.sentinel(), timeout)
            .map_err(|e| ProcessError::os("waiting for a child process", e))?;
        if !ready {
            return Ok(None);
        }
        self.poll()
    }

    /// Sends `signal` unless the child is already known to be finished.
    pub(crate) fn send_signal(&self, signal: libc::c_int) -> Result<(), ProcessError> {
        if self.poll()?.is_some() {
            return Ok(());
        }
        match sys::pidfd_send_signal(self.pidfd.as_fd(), signal) {
            Ok(()) => Ok(()),
            // Exited between the poll and the signal.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(ProcessError::os("sending a signal to a child process", e)),
        }
    }
}
