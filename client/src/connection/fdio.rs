//! Reading and writing a connection's file descriptor: a small receive
//! buffer so a small frame costs one `read`, large payloads read straight
//! into uninitialised memory, and writes that cannot raise `SIGPIPE`.
//!
//! Sockets are read with `recvmsg`, so descriptors a peer attaches
//! (`SCM_RIGHTS`, see [`Connection::send`](super::Connection::send)) are
//! kept, in arrival order, until the message that carries them is decoded.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use mp_proto::frame::{FrameError, EAGER_ALLOC};

use crate::sys::recv_with_fds;

/// Size of the receive buffer; also the request size from which a read
/// bypasses it (as `std::io::BufReader` does).
const RECV_BUF: usize = 16 * 1024;

/// Bytes read from the descriptor but not yet consumed.
///
/// It only ever holds bytes the peer already sent, so a connection handed
/// to another process carries them along (see the connection's serde form).
#[derive(Debug, Default)]
pub(crate) struct RecvBuf {
    /// Allocated (and zeroed) once, on the first buffered read.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Descriptors received and not yet claimed by a message, oldest first.
    fds: VecDeque<OwnedFd>,
}

impl RecvBuf {
    /// A buffer pre-loaded with bytes and descriptors received elsewhere.
    pub(crate) fn with_pending(pending: Vec<u8>, fds: Vec<OwnedFd>) -> Self {
        let end = pending.len();
        RecvBuf {
            buf: pending,
            pos: 0,
            end,
            fds: fds.into(),
        }
    }

    /// Descriptors received but not yet claimed, oldest first.
    pub(crate) fn pending_fds(&self) -> &VecDeque<OwnedFd> {
        &self.fds
    }

    /// Takes the `count` oldest received descriptors: those of the message
    /// being decoded. `None` (taking nothing) if fewer arrived.
    pub(crate) fn take_fds(&mut self, count: usize) -> Option<Vec<OwnedFd>> {
        if self.fds.len() < count {
            return None;
        }
        Some(self.fds.drain(..count).collect())
    }

    /// The unread bytes.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

/// A descriptor with its receive buffer, readable through `std::io::Read`
/// (so the proto crate's header reader can run over it) and writable
/// through `std::io::Write`.
pub(crate) struct FdIo<'a> {
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) buf: &'a mut RecvBuf,
    /// Sockets are written with `MSG_NOSIGNAL`; pipes with `write`.
    pub(crate) socket: bool,
}

impl FdIo<'_> {
    /// Appends exactly `count` bytes to `out`: first from the buffer, then
    /// from the descriptor into `out`'s spare capacity without zeroing it.
    /// Capacity grows with the data received (see `mp_proto::frame`), so a
    /// lying length costs what arrived, not what it claims.
    pub(crate) fn append_exact(
        &mut self,
        out: &mut Vec<u8>,
        count: usize,
    ) -> Result<(), FrameError> {
        let goal = out.len() + count;
        let take = self.buf.pending().len().min(count);
        out.reserve(take.max(count.min(EAGER_ALLOC)));
        out.extend_from_slice(&self.buf.pending()[..take]);
        self.buf.consume(take);
        while out.len() < goal {
            let want = (goal - out.len()).min(out.len().max(EAGER_ALLOC));
            out.reserve(want);
            let spare = &mut out.spare_capacity_mut()[..want];
            // SAFETY: `spare` is writable memory of `want` bytes owned by
            // `out`; the read writes at most that many.
            let n = unsafe { self.read_raw(spare.as_mut_ptr().cast(), want) }?;
            if n == 0 {
                return Err(FrameError::Truncated {
                    expected: count as u64,
                    received: (count - (goal - out.len())) as u64,
                });
            }
            // SAFETY: read(2) initialised the first `n` spare bytes.
            unsafe { out.set_len(out.len() + n) };
        }
        Ok(())
    }

    /// Fills `dest` completely, or reports the message as truncated.
    pub(crate) fn fill_exact(&mut self, dest: &mut [u8]) -> Result<(), FrameError> {
        let mut got = 0;
        while got < dest.len() {
            match self.read(&mut dest[got..])? {
                0 => {
                    return Err(FrameError::Truncated {
                        expected: dest.len() as u64,
                        received: got as u64,
                    })
                }
                n => got += n,
            }
        }
        Ok(())
    }
}

impl FdIo<'_> {
    /// One read of up to `len` bytes into `dest`, straight from the
    /// descriptor; a socket's attached descriptors join the queue.
    ///
    /// # Safety
    ///
    /// `dest` must be valid for writes of `len` bytes.
    unsafe fn read_raw(&mut self, dest: *mut u8, len: usize) -> io::Result<usize> {
        if self.socket {
            // SAFETY: the caller's contract.
            return unsafe { recv_with_fds(self.fd, dest, len, &mut self.buf.fds) };
        }
        // SAFETY: the caller's contract.
        retry(|| unsafe { libc::read(self.fd.as_raw_fd(), dest.cast(), len) })
    }
}

impl Read for FdIo<'_> {
    fn read(&mut self, dest: &mut [u8]) -> io::Result<usize> {
        if self.buf.pending().is_empty() {
            if dest.len() >= RECV_BUF {
                // SAFETY: dest is writable memory of its length.
                return unsafe { self.read_raw(dest.as_mut_ptr(), dest.len()) };
            }
            if self.buf.buf.len() < RECV_BUF {
                self.buf.buf = vec![0; RECV_BUF];
            }
            let (ptr, len) = (self.buf.buf.as_mut_ptr(), self.buf.buf.len());
            // SAFETY: the receive buffer is writable memory of `len` bytes,
            // not otherwise borrowed during the call.
            let n = unsafe { self.read_raw(ptr, len) };
            self.buf.pos = 0;
            self.buf.end = *n.as_ref().unwrap_or(&0);
            n?;
        }
        let pending = self.buf.pending();
        let n = pending.len().min(dest.len());
        dest[..n].copy_from_slice(&pending[..n]);
        self.buf.consume(n);
        Ok(n)
    }
}

impl Write for FdIo<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        retry(|| {
            let (fd, ptr, len) = (self.fd.as_raw_fd(), data.as_ptr().cast(), data.len());
            if self.socket {
                // SAFETY: data is valid for len bytes during the call.
                unsafe { libc::send(fd, ptr, len, libc::MSG_NOSIGNAL) }
            } else {
                // SAFETY: as above.
                unsafe { libc::write(fd, ptr, len) }
            }
        })
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let count = bufs.len().min(libc::c_int::MAX as usize);
        retry(|| {
            if self.socket {
                // SAFETY: msghdr is plain data; IoSlice is ABI-compatible
                // with iovec and the slices outlive the call.
                unsafe {
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                    msg.msg_iovlen = count as _;
                    libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
                }
            } else {
                // SAFETY: as above, for writev(2).
                unsafe {
                    libc::writev(
                        self.fd.as_raw_fd(),
                        bufs.as_ptr().cast(),
                        count as libc::c_int,
                    )
                }
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs a syscall returning `ssize_t`, retrying on `EINTR`.
fn retry(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Waits until one of `fds` is readable (or hung up), up to `timeout`
/// (`None`: no limit), and returns the readiness of each.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a short timeout does not turn into a busy poll.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: pollfds is a valid array of pollfds.len() entries.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if pollfds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(pollfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}
