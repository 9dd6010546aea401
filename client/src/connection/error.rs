//! The errors of connections, listeners and `wait`, named after the Python
//! exceptions `multiprocessing.connection` raises.

use std::io;

use mp_proto::auth::AuthenticationError;
use mp_proto::frame::FrameError;

/// Why a connection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The peer closed its end: nothing more will arrive (Python's
    /// `EOFError`).
    #[error("end of file: the other end of the connection was closed")]
    Eof,
    /// This connection was closed with `close()` (Python's `OSError("handle
    /// is closed")`).
    #[error("the connection is closed")]
    Closed,
    /// `recv` on the write-only end of a one-way `Pipe(false)`.
    #[error("the connection is write-only")]
    NotReadable,
    /// `send` on the read-only end of a one-way `Pipe(false)`.
    #[error("the connection is read-only")]
    NotWritable,
    /// The message did not fit the buffer given to `recv_bytes_into`; it
    /// was read whole and is here (Python's `BufferTooShort`).
    #[error("buffer too short for a {}-byte message", message.len())]
    BufferTooShort {
        /// The complete message.
        message: Vec<u8>,
    },
    /// A message longer than the limit arrived; the connection was closed,
    /// since the rest of the stream can no longer be trusted (Python's
    /// `OSError("bad message length")`).
    #[error(
        "bad message length: {len} bytes announced, the limit is {max}; the connection was closed"
    )]
    BadMessageLength {
        /// The announced length.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// The peer closed the stream partway through a message.
    #[error("got end of file during message: received {received} of {expected} bytes")]
    Truncated {
        /// Bytes announced.
        expected: u64,
        /// Bytes received before end of file.
        received: u64,
    },
    /// An offset or size outside the buffer (Python's `ValueError`).
    #[error("{0}")]
    BadRange(String),
    /// A value could not be encoded for `send`.
    #[error("cannot encode the value: {0}")]
    Encode(String),
    /// A message could not be decoded as the requested type by `recv`.
    #[error("cannot decode the message: {0}")]
    Decode(String),
    /// The authentication handshake failed (Python's `AuthenticationError`).
    #[error(transparent)]
    Authentication(#[from] AuthenticationError),
    /// An address could not be parsed or resolved.
    #[error("bad address {address:?}: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system refused an operation (Python's `OSError`).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<FrameError> for ConnectionError {
    fn from(err: FrameError) -> Self {
        match err {
            FrameError::Truncated { expected, received } => {
                ConnectionError::Truncated { expected, received }
            }
            FrameError::TooLarge { len, max } => ConnectionError::BadMessageLength { len, max },
            FrameError::BadLength(n) => ConnectionError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad message length: header holds {n}; the connection was closed"),
            )),
            FrameError::BufferTooShort { message } => ConnectionError::BufferTooShort { message },
            FrameError::Io(e) => ConnectionError::Io(e),
        }
    }
}

impl From<nix::Error> for ConnectionError {
    fn from(err: nix::Error) -> Self {
        ConnectionError::Io(err.into())
    }
}
