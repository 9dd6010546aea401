//! The byte stream under a [`ManagerClient`](super::ManagerClient): TCP,
//! a Unix socket, TLS over TCP (Python's manager connections are the
//! first two; TLS is `mpserver`'s own), or a shared-memory channel beside
//! a TCP or Unix socket ([`mp_sys::channel`], `mpserver`'s own too).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tls")]
use crate::managers::tls::TlsStream;
use mp_sys::channel::{Duplex, Region, Side};
use mp_sys::spin::{spin_until_readable, Spun};

/// How often a thread waiting on a channel looks at the socket beside it
/// (a server that died without closing the channel shows there).
const CHANNEL_TICK: Duration = Duration::from_millis(50);

/// A TCP or Unix stream, TLS over TCP, or a channel.
pub(in crate::managers) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    Tls(TlsStream),
    Channel(ChannelStream),
}

/// A shared-memory channel and the socket it was set up on.
pub(in crate::managers) struct ChannelStream {
    duplex: Duplex,
    /// The lifeline: open as long as the session lasts.
    socket: Box<Stream>,
}

impl Stream {
    /// This socket with the channel in `region` beside it.
    pub(super) fn with_channel(self, region: Region) -> Stream {
        let duplex = Duplex::new(Arc::new(region), Side::Client, self.fd());
        Stream::Channel(ChannelStream {
            duplex,
            socket: Box::new(self),
        })
    }

    /// Whether the peer runs on this machine, as far as the address
    /// tells: a Unix socket, or TCP to a loopback address.
    pub(super) fn is_local(&self) -> bool {
        match self {
            Stream::Unix(_) => true,
            Stream::Tcp(s) => s.peer_addr().is_ok_and(|a| a.ip().is_loopback()),
            #[cfg(feature = "tls")]
            Stream::Tls(_) => false,
            Stream::Channel(_) => false,
        }
    }

    /// Whether calls go through a shared-memory channel.
    pub(super) fn is_channel(&self) -> bool {
        matches!(self, Stream::Channel(_))
    }

    pub(super) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Stream::Tls(s.try_clone()?),
            Stream::Channel(c) => {
                let socket = c.socket.try_clone()?;
                Stream::Channel(ChannelStream {
                    duplex: c.duplex.with_socket(socket.fd()),
                    socket: Box::new(socket),
                })
            }
        })
    }

    pub(super) fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                s.socket().set_read_timeout(t)?;
                s.socket().set_write_timeout(t)
            }
            Stream::Channel(c) => c.socket.set_timeouts(t),
        }
    }

    pub(super) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.socket().as_raw_fd(),
            Stream::Channel(c) => c.socket.fd(),
        }
    }

    /// Polls for readable data for up to `spin` (see
    /// [`spin_until_readable`]); skipped when decrypted bytes already wait
    /// inside the TLS session while the socket has none.
    pub(in crate::managers) fn spin_until_readable(&self, spin: Duration) -> Spun {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(s) if s.has_buffered() => Spun::Skipped,
            Stream::Channel(c) => c.duplex.spin_until_readable(spin),
            s => spin_until_readable(s.fd(), spin),
        }
    }

    pub(in crate::managers) fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                s.shutdown();
                Ok(())
            }
            Stream::Channel(c) => {
                c.duplex.close();
                c.socket.shutdown();
                Ok(())
            }
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
            Stream::Channel(c) => loop {
                match c.duplex.read_blocking(buf, CHANNEL_TICK) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => break r,
                }
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
            Stream::Channel(c) => loop {
                match c.duplex.write_blocking(buf, CHANNEL_TICK) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => break r,
                }
            },
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
