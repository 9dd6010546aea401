//! The `forkserver` start method (Python's `forkserver` + `popen_forkserver`).
//!
//! On first use the parent re-executes this program as a server
//! ([`crate::init`] recognises it). The server is single-threaded and does
//! nothing but fork, so forking it is safe however many threads the
//! parent runs, and much cheaper than a fresh `exec` per child.
//!
//! # Protocol
//!
//! * Parent → server, on the control socket: one byte with one descriptor
//!   (`SCM_RIGHTS`): the server's end of a fresh socket pair for this child.
//! * The server forks. The child reads its payload ([`super::payload`])
//!   from that socket, then closes its copy.
//! * Server → parent, on that socket: the child's pid (`i32`, native
//!   endian) with a pidfd of the child; later its exit code (`i32`) when
//!   the server has reaped it. The parent's end is the child's sentinel.
//!
//! The server exits when the control socket reaches EOF, i.e. when the
//! parent is gone; daemonic children, whose death signal is tied to the
//! server, go with it.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::super::bootstrap::{self, ChildSpec};
use super::super::current::{self, ProcessTable};
use super::super::error::ProcessError;
use super::super::popen::Popen;
use super::super::sys;
use super::super::target::PortableTarget;
use super::{payload, spawn};

/// The first argument that makes [`crate::init`] run the forkserver.
pub(crate) const FORKSERVER_FLAG: &str = "--multiprocessing-forkserver";

/// The parent's connection to its forkserver.
#[derive(Debug)]
pub(crate) struct ForkServerClient {
    control: OwnedFd,
    /// The server is our child: reaped when replaced.
    pid: libc::pid_t,
}

impl ForkServerClient {
    fn launch() -> Result<Self, ProcessError> {
        let (ours, theirs) = sys::socketpair()
            .map_err(|e| ProcessError::os("creating the forkserver's socket", e))?;
        let pid = spawn::spawn_self(FORKSERVER_FLAG, theirs.as_raw_fd())?;
        tracing::debug!(target: "multiprocessing", "forkserver started as pid {pid}");
        Ok(ForkServerClient { control: ours, pid })
    }

    /// Asks the server for a child; returns our end of its socket.
    fn request(&self) -> Result<OwnedFd, std::io::Error> {
        let (ours, theirs) = sys::socketpair()?;
        sys::send_all_with_fds(self.control.as_fd(), b"F", &[theirs.as_fd()])?;
        Ok(ours)
    }
}

impl Drop for ForkServerClient {
    fn drop(&mut self) {
        // Closing the control socket (after this) makes the server exit;
        // reap it if it already has, so a replaced server is no zombie.
        // A server still running is reaped by init once we exit.
        let _ = sys::try_reap(self.pid);
    }
}

/// Starts a child through the forkserver (starting the server first if
/// needed, or again if it died).
pub(crate) fn start(
    table: &mut ProcessTable,
    spec: &ChildSpec,
    target: &PortableTarget,
) -> Result<Popen, ProcessError> {
    let sock = match table.forkserver.as_ref().map(|c| c.request()) {
        Some(Ok(sock)) => sock,
        _ => {
            table.forkserver = None;
            let client = ForkServerClient::launch()?;
            let sock = client
                .request()
                .map_err(|e| ProcessError::ForkServer(format!("cannot reach the server: {e}")))?;
            table.forkserver = Some(client);
            sock
        }
    };
    let parent_pidfd = current::self_pidfd(table)
        .map_err(|e| ProcessError::os("opening a pidfd for this process", e))?;
    payload::send(sock.as_fd(), spec, target, parent_pidfd.as_fd())?;
    let mut pid = [0u8; 4];
    let fds = sys::recv_exact_with_fds(sock.as_fd(), &mut pid)
        .map_err(|e| ProcessError::ForkServer(format!("reading the child's pid: {e}")))?
        .ok_or_else(|| ProcessError::ForkServer("the server did not start the child".into()))?;
    let pidfd = fds
        .into_iter()
        .next()
        .ok_or_else(|| ProcessError::ForkServer("the server sent no pidfd".into()))?;
    Ok(Popen::forkserver(i32::from_ne_bytes(pid), pidfd, sock))
}

/// A child of the server, as the server tracks it.
struct Child {
    pidfd: OwnedFd,
    status: OwnedFd,
}

/// The server's main loop, from [`crate::init`]. Never returns.
pub(crate) fn server_main(arg: Option<std::ffi::OsString>) -> ! {
    let control = match spawn::inherited_fd(arg) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("multiprocessing forkserver: {e}");
            std::process::exit(1)
        }
    };
    // Ctrl-C goes to the whole process group; the server must outlive it
    // so the parent can still start children (children restore it).
    // SAFETY: setting a signal disposition to SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let me = std::process::id() as libc::pid_t;
    let mut children: HashMap<libc::pid_t, Child> = HashMap::new();
    loop {
        let pids: Vec<libc::pid_t> = children.keys().copied().collect();
        let mut fds = Vec::with_capacity(pids.len() + 1);
        fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
        for pid in &pids {
            if let Some(child) = children.get(pid) {
                fds.push(PollFd::new(child.pidfd.as_fd(), PollFlags::POLLIN));
            }
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                eprintln!("multiprocessing forkserver: poll: {e}");
                break;
            }
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let control_ready = ready(&fds[0]);
        let finished: Vec<libc::pid_t> = pids
            .iter()
            .zip(&fds[1..])
            .filter(|(_, fd)| ready(fd))
            .map(|(pid, _)| *pid)
            .collect();
        drop(fds);
        for pid in finished {
            if let Ok(Some(code)) = sys::try_reap(pid) {
                if let Some(child) = children.remove(&pid) {
                    // The parent may be gone or have closed the process:
                    // nobody to tell, which is fine.
                    let _ = sys::write_all_fd(child.status.as_fd(), &code.to_ne_bytes());
                }
            }
        }
        if control_ready && !serve_one(&control, &mut children, me) {
            break;
        }
    }
    // SAFETY: _exit ends the process at once.
    unsafe { libc::_exit(0) }
}

/// Handles one request; `false` when the parent has gone.
fn serve_one(
    control: &OwnedFd,
    children: &mut HashMap<libc::pid_t, Child>,
    me: libc::pid_t,
) -> bool {
    let mut byte = [0u8; 1];
    let status = match sys::recv_exact_with_fds(control.as_fd(), &mut byte) {
        Ok(Some(fds)) => match fds.into_iter().next() {
            Some(fd) => fd,
            None => return true,
        },
        Ok(None) => return false,
        Err(e) => {
            eprintln!("multiprocessing forkserver: {e}");
            return false;
        }
    };
    // SAFETY: the server is single-threaded, so the child is a complete
    // copy and may run anything.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        // Dropping `status` tells the parent the start failed.
        eprintln!(
            "multiprocessing forkserver: fork: {}",
            std::io::Error::last_os_error()
        );
        return true;
    }
    if pid == 0 {
        // Only the child's own socket stays open in the child.
        // SAFETY: restoring the default disposition installs no handler.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        children.clear();
        // SAFETY: closes the control descriptor in this child only; the
        // OwnedFd in the (never resumed) server frame is not used again
        // here, and the process ends through `_exit`, which runs no
        // destructors.
        unsafe { libc::close(control.as_raw_fd()) };
        // Nothing may unwind back into the server loop (and drop the
        // descriptor closed above a second time).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            payload::run_child(status, Some(me))
        }));
        bootstrap::abort_child()
    }
    match sys::pidfd_open(pid) {
        Ok(pidfd) => {
            // If the parent vanished nobody will join this child, but it
            // must still be reaped, so it is tracked either way.
            let _ = sys::send_all_with_fds(status.as_fd(), &pid.to_ne_bytes(), &[pidfd.as_fd()]);
            children.insert(pid, Child { pidfd, status });
        }
        Err(e) => {
            eprintln!("multiprocessing forkserver: pidfd_open: {e}");
            // SAFETY: `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut st = 0;
            // SAFETY: valid out-pointer.
            unsafe { libc::waitpid(pid, &mut st, 0) };
        }
    }
    true
}
