//! Connections between processes (Python's `multiprocessing.connection`).
//!
//! * [`Pipe`] makes a pair of connected [`Connection`]s: a socketpair
//!   (duplex) or a `pipe(2)` (one way).
//! * [`Listener`] and [`Client`] connect processes by address, over TCP or
//!   Unix sockets ([`Address`]), with the authkey handshake.
//! * [`wait`] blocks until any of several connections, sockets or process
//!   sentinels is ready.
//!
//! Messages are framed exactly as CPython frames them (`mp_proto::frame`),
//! and the handshake is CPython's (`mp_proto::auth`), so
//! `send_bytes` / `recv_bytes` talk to CPython's own `Listener` / `Client`.
//! `send` / `recv` carry serde values as CBOR rather than pickle, so they
//! talk only to this crate; a `Vec<u8>` or `[u8]` is sent as one CBOR byte
//! string without walking its bytes (nested byte buffers should use
//! `serde_bytes`).
//!
//! Differences from Python: `poll` takes an `Option<Duration>` (`None`
//! blocks; Python's default `poll()` is `poll(Some(Duration::ZERO))`);
//! `send_bytes(buf, offset, size)` is [`Connection::send_bytes_range`];
//! `wait` returns the indices of the ready objects. A [`Listener`] with an
//! authkey always runs the handshake, even for an empty key (CPython 3.12+
//! behaviour; 3.11 skipped it for `b""`).

mod address;
mod codec;
mod conn;
mod error;
mod fdio;
mod listener;
mod wait;

use std::os::fd::OwnedFd;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

pub use address::{Address, Family};
pub use conn::Connection;
pub use error::ConnectionError;
pub use listener::{client_with, Client, Listener, ListenerBuilder};
pub use mp_proto::auth::{AuthOptions, AuthenticationError};
pub use wait::{wait, Waitable};

/// Returns a pair of connected [`Connection`]s (Python's `Pipe(duplex)`).
///
/// Duplex: both ends send and receive (a Unix socketpair). One-way
/// (`duplex == false`): the first end only receives, the second only sends
/// (a `pipe(2)`). Descriptors are close-on-exec; hand a connection to a
/// child through its serde form.
#[allow(non_snake_case)]
pub fn Pipe(duplex: bool) -> Result<(Connection, Connection), ConnectionError> {
    if duplex {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((
            Connection::from_fd(a, true, true, true),
            Connection::from_fd(b, true, true, true),
        ))
    } else {
        let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok((
            Connection::from_fd(r, false, true, false),
            Connection::from_fd(w, false, false, true),
        ))
    }
}
