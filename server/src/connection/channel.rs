//! A connection whose frames come through a shared-memory channel
//! ([`mp_sys::channel`]), seen by the rest of the connection code as one
//! more kind of socket.
//!
//! On the event loop ([`ChannelSocket`]) an empty ring makes the task wait
//! on the connection's socket, after asking the client to ring it with a
//! byte; the socket's end is the client's. On a dedicated thread
//! ([`BlockingSocket::Channel`]) the thread sleeps on the ring's futex,
//! and looks at the socket once a tick. Either way the frames, the
//! buffers and every rule about them are the socket's.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use mp_proto::message::ChannelOffer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::dedicated::{BlockingSocket, Socket};
use crate::limits::CHANNEL_RING;
use mp_sys::channel::{ChannelError, Duplex, Region, Side};

/// A channel this server made and offered, until the client answers.
pub(super) struct Offered {
    region: Arc<Region>,
    /// The `memfd`, open until the client has mapped it (or declined).
    fd: OwnedFd,
    nonce: u64,
}

impl Offered {
    /// Makes a region for one client.
    pub(super) fn new() -> Result<Offered, ChannelError> {
        let nonce = rand::random();
        let (region, fd) = Region::create(CHANNEL_RING, nonce)?;
        Ok(Offered {
            region: Arc::new(region),
            fd,
            nonce,
        })
    }

    /// What the welcome tells the client.
    pub(super) fn offer(&self) -> ChannelOffer {
        ChannelOffer {
            pid: std::process::id(),
            fd: self.fd.as_raw_fd(),
            ring: self.region.ring_size(),
            nonce: self.nonce,
        }
    }

    /// The client mapped the region: `socket` (whose descriptor is
    /// `fd`) now carries only doorbells and its end. The region's
    /// descriptor closes; the mapping stays.
    pub(super) fn attach<S: Socket>(self, socket: S, fd: RawFd) -> (ChannelSocket<S>, Closer) {
        let duplex = Duplex::new(Arc::clone(&self.region), Side::Server, fd);
        (ChannelSocket { socket, duplex }, Closer(self.region))
    }
}

/// Marks the channel closed when the connection ends, waking a client
/// that waits on it.
pub(super) struct Closer(Arc<Region>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A connection's socket with a channel beside it, on the event loop.
pub(crate) struct ChannelSocket<S> {
    socket: S,
    duplex: Duplex,
}

impl<S: Socket> ChannelSocket<S> {
    /// Waits for a doorbell byte on the socket: `true` when one (or more)
    /// came, `false` at the socket's end.
    fn poll_doorbell(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut scratch = [0u8; 64];
        let mut buf = ReadBuf::new(&mut scratch);
        ready!(Pin::new(&mut self.socket).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(!buf.filled().is_empty()))
    }
}

impl<S: Socket> AsyncRead for ChannelSocket<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut socket_ended = false;
        loop {
            // Whether the peer left is known before the look at the ring,
            // so bytes it wrote just before leaving are still read.
            let gone = socket_ended || this.duplex.is_closed();
            let waiting = this.duplex.reader.available()? as usize;
            if waiting > 0 {
                // Zero only the bytes about to be filled.
                let room = buf.initialize_unfilled_to(waiting.min(buf.remaining()));
                let n = this.duplex.reader.read(room)?;
                buf.advance(n);
                this.duplex.reader.awake();
                return Poll::Ready(Ok(()));
            }
            if gone {
                return Poll::Ready(Ok(()));
            }
            this.duplex.reader.wait_on_socket();
            if this.duplex.reader.available()? > 0 {
                continue;
            }
            socket_ended = !ready!(this.poll_doorbell(cx))?;
        }
    }
}

impl<S: Socket> AsyncWrite for ChannelSocket<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.duplex.is_closed() {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let n = this.duplex.writer.write(buf)?;
            if n > 0 || buf.is_empty() {
                this.duplex.writer.awake();
                return Poll::Ready(Ok(n));
            }
            this.duplex.writer.wait_on_socket();
            if this.duplex.writer.room()? > 0 {
                continue;
            }
            if !ready!(this.poll_doorbell(cx))? {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.duplex.close();
        Pin::new(&mut this.socket).poll_shutdown(cx)
    }
}

impl<S: Socket> Socket for ChannelSocket<S> {
    const DEDICATED: bool = S::DEDICATED;

    fn channel_fd(&self) -> Option<RawFd> {
        // A channel does not nest.
        None
    }

    fn into_blocking(self) -> io::Result<BlockingSocket> {
        Ok(BlockingSocket::Channel {
            duplex: self.duplex,
            lifeline: Box::new(self.socket.into_blocking()?),
        })
    }

    fn from_blocking(socket: BlockingSocket) -> io::Result<Self> {
        match socket {
            BlockingSocket::Channel { duplex, lifeline } => Ok(ChannelSocket {
                socket: S::from_blocking(*lifeline)?,
                duplex,
            }),
            _ => Err(io::Error::other("not a channel")),
        }
    }
}
