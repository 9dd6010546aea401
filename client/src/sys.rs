//! Thin, checked wrappers over the Linux calls the start methods need:
//! pidfds, polling one descriptor with a deadline, and messages carrying
//! descriptors (`SCM_RIGHTS`). CPython keeps the same pieces in
//! `multiprocessing.util`, `popen_*` and `reduction`.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// The most descriptors one message may carry (Linux's `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// Opens a pidfd for `pid` (close-on-exec; Linux ≥ 5.3).
///
/// Race-free only for an unreaped child of the caller, or when the caller
/// otherwise knows `pid` cannot have been reused.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `signal` to the process a pidfd refers to; unlike `kill(pid)` it
/// cannot hit a process that reused the pid.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: the descriptor is valid for the call; info is NULL, which the
    // kernel accepts (it then behaves like kill).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable (or hung up), for at most `timeout`
/// (`None`: forever). Returns whether it became ready. Retries on `EINTR`
/// without extending the deadline.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let poll_timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up so a sub-millisecond remainder still waits.
                let ms = left.as_nanos().div_ceil(1_000_000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, poll_timeout) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends all of `bytes` on a stream socket, with `fds` attached to the
/// first chunk. Never raises `SIGPIPE`.
pub(crate) fn send_all_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other(format!(
            "cannot send {} file descriptors in one message (at most {MAX_FDS})",
            fds.len()
        )));
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut sent = 0;
    let mut first = true;
    while sent < bytes.len() || first {
        let iov = [IoSlice::new(&bytes[sent..])];
        let rights = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if first && !raw.is_empty() {
            &rights
        } else {
            &[]
        };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => {
                sent += n;
                first = false;
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes from a stream socket, collecting the
/// descriptors that arrive with them (close-on-exec). An EOF before the
/// first byte returns `Ok(None)`; inside the message it is an error.
pub(crate) fn recv_exact_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<Vec<OwnedFd>>> {
    let mut fds = Vec::new();
    let mut got = 0;
    while got < buf.len() {
        let rest = &mut buf[got..];
        // SAFETY: `rest` is initialised writable memory of its length.
        let n = unsafe { recv_with_fds(sock, rest.as_mut_ptr(), rest.len(), &mut fds)? };
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(Some(fds))
}

/// Room for the control message of the most descriptors one message can
/// carry: `CMSG_SPACE(MAX_FDS * 4)` = 1,032 bytes, kept u64-aligned as
/// `cmsghdr` requires.
const CONTROL_WORDS: usize = 130;

/// One `recvmsg` on a stream socket into `len` bytes at `dest` (which may
/// be uninitialised), retried on `EINTR`; the descriptors that came with
/// the bytes (close-on-exec) are appended to `fds`. Returns the byte count,
/// 0 at end of file.
///
/// Costs what `read` does when no descriptor comes: the control buffer is
/// on the stack.
///
/// # Safety
///
/// `dest` must be valid for writes of `len` bytes.
pub(crate) unsafe fn recv_with_fds(
    sock: BorrowedFd<'_>,
    dest: *mut u8,
    len: usize,
    fds: &mut impl Extend<OwnedFd>,
) -> io::Result<usize> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: dest.cast(),
        iov_len: len,
    };
    // SAFETY: msghdr is plain data, valid all-zero.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: msg points at `iov` (valid for `len` bytes by the
        // caller's contract) and at `control`, both live for the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    if msg.msg_controllen > 0 {
        // SAFETY: the kernel filled `control` with well-formed cmsghdrs up
        // to msg_controllen; the CMSG_* macros stay within it.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                    let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    for i in 0..bytes / std::mem::size_of::<RawFd>() {
                        // SCM_RIGHTS just installed this descriptor in our
                        // table; nothing else owns it.
                        fds.extend(Some(OwnedFd::from_raw_fd(data.add(i).read_unaligned())));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("descriptors were truncated in transit"));
    }
    Ok(n)
}

/// Reads a native-endian `i32` from a socket without blocking; `Ok(None)`
/// when nothing is there yet, `Err(UnexpectedEof)` when the peer closed.
pub(crate) fn try_recv_i32(sock: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let mut buf = [0u8; 4];
    // SAFETY: buf is valid for 4 bytes of writes for the duration of the
    // call.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_PEEK,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if (n as usize) < buf.len() {
        // The server writes the four bytes in one call; a partial read
        // means they are still in flight.
        return Ok(None);
    }
    let mut out = [0u8; 4];
    if recv_exact_with_fds(sock, &mut out)?.is_none() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(i32::from_ne_bytes(out)))
}

/// A connected pair of Unix stream sockets, both close-on-exec.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    Ok((OwnedFd::from(a), OwnedFd::from(b)))
}

/// Decodes a `waitpid` status into Python's exit code convention: the exit
/// status, or `-N` for a death by signal `N`.
pub(crate) fn exitcode_from_status(status: libc::c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(-libc::WTERMSIG(status))
    } else {
        None
    }
}

/// `waitpid(pid, WNOHANG)`: the exit code if the child has finished.
pub(crate) fn try_reap(pid: libc::pid_t) -> io::Result<Option<i32>> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer for the call.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == 0 {
            return Ok(None);
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if let Some(code) = exitcode_from_status(status) {
            return Ok(Some(code));
        }
        // Stopped or continued (only reported with WUNTRACED/WCONTINUED,
        // which we never pass): keep waiting.
        return Ok(None);
    }
}

/// Writes `bytes` to a descriptor we do not own (stdout/stderr flushing and
/// the forkserver's status messages).
pub(crate) fn write_all_fd(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    send_all_with_fds(fd, bytes, &[])
}

/// The number of this thread (`gettid`).
pub(crate) fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// Whether the calling thread is the process's main thread.
pub(crate) fn is_main_thread() -> bool {
    gettid() == std::process::id() as libc::pid_t
}
