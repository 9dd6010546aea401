//! Shared-memory channels: a faster path for a client on the server's own
//! machine.
//!
//! No Python counterpart: CPython's manager always talks over its socket.
//! Over loopback TCP or a Unix socket, every call costs each side a send
//! and a receive through the kernel's network stack; with several busy
//! clients that stack, not the manager, sets the pace. A channel carries
//! the same frames through two byte rings in memory both processes map
//! ([`region`]), and a side that has to wait sleeps on a futex in that
//! memory ([`Reader`], [`Writer`]): a call then costs a copy each way and, when the
//! other side sleeps, one wake-up.
//!
//! The socket stays open beside the channel as its lifeline: the session
//! belongs to it, its end (a client killed with SIGKILL, a server gone) is
//! how each side notices the other left, and an event loop waiting for
//! requests waits on it — a client rings it with one byte when the server
//! asked for that ([`Reader::wait_on_socket`]).
//!
//! The client asks for a channel in its hello; the server offers one in
//! its welcome (the region's `memfd`, its size and a nonce); the client
//! maps it and says whether it did. Either side can decline, and the
//! connection then goes on over the socket alone.

pub mod region;
mod ring;

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

pub use region::{Direction, Region, MAX_RING, MIN_RING};
pub use ring::{Reader, Writer};

use crate::spin::{spin_until, Contention, Spun};

/// What can go wrong with a channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Creating, opening or mapping the region failed.
    #[error("shared-memory channel: {0}")]
    Io(#[from] io::Error),
    /// The region does not have the expected layout.
    #[error("shared-memory channel: unexpected layout ({0})")]
    Layout(String),
    /// The region mapped is not the one the server offered (another host
    /// or pid namespace).
    #[error("shared-memory channel: the region is not the server's")]
    NotOurs,
    /// The peer wrote impossible ring positions.
    #[error("shared-memory channel: {0}")]
    Corrupt(String),
}

impl From<ChannelError> for io::Error {
    fn from(e: ChannelError) -> io::Error {
        match e {
            ChannelError::Io(e) => e,
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// Which end of a channel this process holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Writes requests, reads answers.
    Client,
    /// Reads requests, writes answers.
    Server,
}

/// Both directions of a channel, from one side.
#[derive(Debug)]
pub struct Duplex {
    /// What the peer sends.
    pub reader: Reader,
    /// What this side sends.
    pub writer: Writer,
    region: Arc<Region>,
    side: Side,
    /// The lifeline socket: rung by the client, watched by both.
    socket: RawFd,
}

impl Duplex {
    /// `side`'s ends of the channel in `region`, with `socket` the
    /// connection beside it (which must outlive this value).
    pub fn new(region: Arc<Region>, side: Side, socket: RawFd) -> Self {
        let (inbound, outbound) = match side {
            Side::Client => (Direction::ToClient, Direction::ToServer),
            Side::Server => (Direction::ToServer, Direction::ToClient),
        };
        // Only the client rings the socket: the server never waits on
        // one for the client.
        let doorbell = (side == Side::Client).then_some(socket);
        Duplex {
            reader: Reader::new(Arc::clone(&region), inbound, doorbell),
            writer: Writer::new(Arc::clone(&region), outbound, doorbell),
            region,
            side,
            socket,
        }
    }

    /// Another handle on the same ends, for a second thread, with
    /// `socket` (a duplicate of this one's) as its lifeline; each
    /// direction must still be used by one handle at a time.
    pub fn with_socket(&self, socket: RawFd) -> Duplex {
        Duplex::new(Arc::clone(&self.region), self.side, socket)
    }

    /// The region.
    #[inline]
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Whether either side has left.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.region.closed().load(SeqCst) != 0
    }

    /// Leaves the channel: the peer's waits end and its reads see the end
    /// once the bytes already sent are read.
    pub fn close(&self) {
        self.region.close();
    }

    /// Polls for bytes from the peer for up to `spin` (see
    /// [`spin_until`]); a busy CPU does not stop it.
    #[inline]
    pub fn spin_until_readable(&self, spin: Duration) -> Spun {
        spin_until(spin, Contention::Continues, || {
            !matches!(self.reader.available(), Ok(0))
        })
    }

    /// Reads what the peer sent, sleeping up to `tick` for it: `Ok(0)`
    /// once the peer has left (the channel closed, or the lifeline socket
    /// at its end) and everything it sent is read, `WouldBlock` when the
    /// tick passed first.
    pub fn read_blocking(&mut self, buf: &mut [u8], tick: Duration) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        self.reader.sleep(tick);
        // Whether the peer left is known before the last look at the
        // ring, so bytes it wrote just before leaving are still read.
        let gone = self.is_closed() || !socket_open(self.socket)?;
        let n = self.reader.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        if gone {
            return Ok(0);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Writes what fits of `buf`, sleeping up to `tick` for room;
    /// `BrokenPipe` once the peer has left, `WouldBlock` when the tick
    /// passed first.
    pub fn write_blocking(&mut self, buf: &[u8], tick: Duration) -> io::Result<usize> {
        if self.is_closed() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = self.writer.write(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        self.writer.sleep(tick);
        let n = self.writer.write(buf)?;
        if n > 0 {
            return Ok(n);
        }
        if self.is_closed() || !socket_open(self.socket)? {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Whether the lifeline `socket` is still open, draining the doorbell
/// bytes waiting there (a peer that left shows as its end, or an error).
pub fn socket_open(socket: RawFd) -> io::Result<bool> {
    let mut scratch = [0u8; 64];
    loop {
        // SAFETY: recv(2) into a live local buffer of the given length on
        // a descriptor the caller keeps open; never blocks.
        let n = unsafe {
            libc::recv(
                socket,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return Ok(false),
            n if n > 0 => continue,
            _ => {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(true),
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Ok(false),
                    _ => Err(e),
                };
            }
        }
    }
}
