//! [`Connection`]: one end of a pipe or socket carrying framed messages
//! (Python's `multiprocessing.connection.Connection`).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use mp_proto::frame::{self, FrameError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec;
use super::fdio::{poll_readable, FdIo, RecvBuf};
use super::ConnectionError;
use crate::reduction::{FdSink, FdSource, SharedFd};
use crate::sys;

/// Runs `decode` with the message's descriptors available to the
/// [`SharedFd`]s in it (or fails with the reason they are missing).
fn with_fds<T>(
    fds: Result<Vec<OwnedFd>, ConnectionError>,
    decode: impl FnOnce() -> Result<T, ConnectionError>,
) -> Result<T, ConnectionError> {
    let fds = fds?;
    if fds.is_empty() {
        return decode();
    }
    FdSource::provide(fds, decode)
}

/// One end of a [`Pipe`](super::Pipe) or of a socket from
/// [`Listener::accept`](super::Listener::accept) / [`Client`](super::Client).
///
/// Messages are framed exactly as CPython frames them, so
/// [`send_bytes`](Connection::send_bytes) / [`recv_bytes`](Connection::recv_bytes)
/// talk to a CPython peer; [`send`](Connection::send) / [`recv`](Connection::recv)
/// carry serde values as CBOR between peers of this crate.
///
/// Dropping a connection closes it (Python's `with` / `close()`); a
/// connection can be handed to a child process: its serde form carries the
/// descriptor as a [`SharedFd`].
///
/// ```
/// let (mut a, mut b) = multiprocessing::Pipe(true)?;
/// a.send(&("hello", 42))?;
/// let (word, n): (String, i32) = b.recv()?;
/// assert_eq!((word.as_str(), n), ("hello", 42));
/// b.send_bytes(b"raw")?;
/// assert_eq!(a.recv_bytes(None)?, b"raw");
/// # Ok::<(), multiprocessing::connection::ConnectionError>(())
/// ```
pub struct Connection {
    /// `None` once closed, so every later call reports `Closed`.
    fd: Option<SharedFd>,
    readable: bool,
    writable: bool,
    /// Sockets are written with `MSG_NOSIGNAL`, pipes with `write`.
    socket: bool,
    /// Bytes read past the last message; consulted by `poll` and `wait`.
    buf: RecvBuf,
    /// The largest message `recv` / `recv_bytes_into` accept.
    max_message: u64,
    /// Reused by `send` to encode small values without allocating.
    wbuf: Vec<u8>,
    /// Reused by `recv` as the decoder's scratch space.
    scratch: Vec<u8>,
}

/// The largest encode buffer `send` keeps between calls.
const KEEP_WBUF: usize = 64 * 1024;

impl Connection {
    /// Wraps a connected stream socket or pipe end.
    ///
    /// `socket` says whether `fd` is a socket (written with `MSG_NOSIGNAL`,
    /// so a vanished peer is an error, not a `SIGPIPE`); `readable` and
    /// `writable` say which directions may be used.
    pub fn from_fd(fd: OwnedFd, socket: bool, readable: bool, writable: bool) -> Self {
        Connection {
            fd: Some(SharedFd::new(fd)),
            readable,
            writable,
            socket,
            buf: RecvBuf::default(),
            max_message: u64::MAX,
            wbuf: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Limits the size of messages this end accepts (default: no limit, as
    /// in Python; a lying length still only costs what really arrives).
    /// Use it on connections to peers you do not trust.
    pub fn set_max_message(&mut self, max: u64) {
        self.max_message = max;
    }

    /// Whether this end may receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end may send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether [`close`](Connection::close) was called.
    pub fn closed(&self) -> bool {
        self.fd.is_none()
    }

    /// The descriptor's number (Python's `fileno()`).
    pub fn fileno(&self) -> Result<RawFd, ConnectionError> {
        Ok(self.fd()?.as_raw_fd())
    }

    /// Closes this end now; later calls fail with
    /// [`ConnectionError::Closed`]. Dropping the connection does the same.
    pub fn close(&mut self) {
        self.fd = None;
    }

    /// Sends a value, encoded as CBOR (see the `codec` notes in the module
    /// docs: `Vec<u8>` and `[u8]` go out as raw bytes, as fast as
    /// [`send_bytes`](Connection::send_bytes)).
    ///
    /// A value may hold file descriptors — a [`SharedFd`], another
    /// `Connection`, a lock or a shared-memory block — when this is a Unix
    /// socket: they travel beside the bytes (`SCM_RIGHTS`, at most 253 per
    /// message) and the receiver's [`recv`](Connection::recv) gets its own
    /// copies, as with CPython's `reduction`. Over a pipe or TCP that is an
    /// [`Encode`](ConnectionError::Encode) error.
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConnectionError> {
        if let Some(bytes) = codec::as_bytes(value) {
            let head = codec::bytes_head(bytes.len());
            return self.write_parts(&[head.as_bytes(), bytes]);
        }
        // Encode after four bytes kept for the header, so header and value
        // go out in one write with no second copy.
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        let (result, fds) = FdSink::collect(|| codec::encode_into(value, &mut buf));
        let result = result.and_then(|()| {
            if !fds.is_empty() {
                return self.send_with_fds(&buf[4..], &fds);
            }
            let len = buf.len() - 4;
            let header = frame::encode_header(len as u64);
            if header.as_bytes().len() == 4 {
                buf[..4].copy_from_slice(header.as_bytes());
                self.write_whole(&buf)
            } else {
                self.write_parts(&[&buf[4..]])
            }
        });
        // Keep a modest buffer for the next small value, not a huge one.
        if buf.capacity() <= KEEP_WBUF {
            self.wbuf = buf;
        }
        result
    }

    /// Receives a value sent with [`send`](Connection::send).
    ///
    /// Fails with [`ConnectionError::Eof`] once the peer has closed and
    /// everything it sent has been read.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, ConnectionError> {
        let len = self.read_header(self.max_message)?;
        if !codec::wants_bytes::<T>() && self.buf.pending().len() >= len {
            // The whole message came with the header: decode it in place.
            let envelope = codec::parse_envelope(&self.buf.pending()[..len]);
            let (skip, fds) = self.claim_enveloped(envelope);
            let result = with_fds(fds, || {
                codec::decode_with(&self.buf.pending()[skip..len], &mut self.scratch)
            });
            self.buf.consume(len);
            return result;
        }
        let mut io = self.io()?;
        let mut payload = Vec::new();
        if codec::wants_bytes::<T>() {
            // Read the CBOR head first: a byte string's data then goes
            // straight into its own buffer, with no copy to strip the head.
            io.append_exact(&mut payload, len.min(9))?;
            if let Some((head, n)) = codec::parse_bytes_head(&payload) {
                if head as u64 + n == len as u64 {
                    let mut data = Vec::new();
                    data.extend_from_slice(&payload[head..]);
                    io.append_exact(&mut data, len - payload.len())?;
                    if let Some(value) = codec::bytes_as::<T>(data) {
                        return Ok(value);
                    }
                    return Err(ConnectionError::Decode("byte buffer type mismatch".into()));
                }
            }
            let got = payload.len();
            io.append_exact(&mut payload, len - got)?;
        } else {
            io.append_exact(&mut payload, len)?;
        }
        let (skip, fds) = self.claim_fds(&payload);
        with_fds(fds, || {
            codec::decode_with(&payload[skip..], &mut self.scratch)
        })
    }

    /// For a received message: where its value starts, and the
    /// descriptors it carries — `Err` if they did not all arrive. Called
    /// for every message, even one read as bytes, so that each message's
    /// descriptors leave the queue with it.
    fn claim_fds(&mut self, payload: &[u8]) -> (usize, Result<Vec<OwnedFd>, ConnectionError>) {
        self.claim_enveloped(codec::parse_envelope(payload))
    }

    /// [`claim_fds`](Self::claim_fds) for an already parsed envelope.
    fn claim_enveloped(
        &mut self,
        envelope: Option<(usize, usize)>,
    ) -> (usize, Result<Vec<OwnedFd>, ConnectionError>) {
        match envelope {
            None => (0, Ok(Vec::new())),
            Some((skip, count)) => (
                skip,
                self.buf.take_fds(count).ok_or_else(|| {
                    ConnectionError::Decode(format!(
                        "the message's {count} file descriptors did not arrive"
                    ))
                }),
            ),
        }
    }

    /// Sends `body` (an encoded value) with `fds` attached.
    fn send_with_fds(&mut self, body: &[u8], fds: &[OwnedFd]) -> Result<(), ConnectionError> {
        let fd = self.fd()?;
        if !self.writable {
            return Err(ConnectionError::NotWritable);
        }
        if !self.socket {
            return Err(ConnectionError::Encode(
                "file descriptors can only be sent over a Unix socket connection, not a pipe"
                    .into(),
            ));
        }
        let envelope = codec::envelope_head(fds.len());
        let header = frame::encode_header((envelope.len() + body.len()) as u64);
        let message = [header.as_bytes(), &envelope, body].concat();
        let fds: Vec<BorrowedFd<'_>> = fds.iter().map(|fd| fd.as_fd()).collect();
        sys::send_all_with_fds(fd.as_fd(), &message, &fds).map_err(|e| {
            ConnectionError::Encode(format!(
                "cannot send file descriptors on this connection: {e}"
            ))
        })
    }

    /// Sends `buf` as one message (Python's `send_bytes(buf)`).
    pub fn send_bytes(&mut self, buf: &[u8]) -> Result<(), ConnectionError> {
        self.write_parts(&[buf])
    }

    /// Sends `size` bytes of `buf` from `offset` (all the rest for `None`)
    /// as one message (Python's `send_bytes(buf, offset, size)`).
    pub fn send_bytes_range(
        &mut self,
        buf: &[u8],
        offset: usize,
        size: Option<usize>,
    ) -> Result<(), ConnectionError> {
        let rest = buf.get(offset..).ok_or_else(|| {
            ConnectionError::BadRange(format!(
                "offset {offset} is beyond the buffer's {} bytes",
                buf.len()
            ))
        })?;
        let part = match size {
            None => rest,
            Some(size) => rest.get(..size).ok_or_else(|| {
                ConnectionError::BadRange(format!(
                    "buffer length {} < offset {offset} + size {size}",
                    buf.len()
                ))
            })?,
        };
        self.send_bytes(part)
    }

    /// Receives one message as bytes (Python's `recv_bytes(maxlength)`).
    ///
    /// A message longer than `maxlength` fails with
    /// [`ConnectionError::BadMessageLength`] and closes the connection, as
    /// in Python: its body is never read.
    pub fn recv_bytes(&mut self, maxlength: Option<usize>) -> Result<Vec<u8>, ConnectionError> {
        let max = maxlength.map_or(self.max_message, |m| (m as u64).min(self.max_message));
        let len = self.read_header(max)?;
        let mut payload = Vec::new();
        self.io()?.append_exact(&mut payload, len)?;
        // Descriptors sent with a value read as bytes are closed.
        let _ = self.claim_fds(&payload);
        Ok(payload)
    }

    /// Receives one message into `buf` from `offset` and returns its length
    /// (Python's `recv_bytes_into(buf, offset)`).
    ///
    /// A message longer than the room after `offset` fails with
    /// [`ConnectionError::BufferTooShort`], which carries the whole message.
    pub fn recv_bytes_into(
        &mut self,
        buf: &mut [u8],
        offset: usize,
    ) -> Result<usize, ConnectionError> {
        let room = buf.len().checked_sub(offset).ok_or_else(|| {
            ConnectionError::BadRange(format!(
                "offset {offset} is beyond the buffer's {} bytes",
                buf.len()
            ))
        })?;
        let len = self.read_header(self.max_message)?;
        let mut io = self.io()?;
        if len > room {
            let mut message = Vec::new();
            io.append_exact(&mut message, len)?;
            let _ = self.claim_fds(&message);
            return Err(ConnectionError::BufferTooShort { message });
        }
        io.fill_exact(&mut buf[offset..offset + len])?;
        let _ = self.claim_fds(&buf[offset..offset + len]);
        Ok(len)
    }

    /// Whether a message (or end of file) can be read without blocking,
    /// waiting up to `timeout` (`None`: until there is). Python's
    /// `poll(timeout)`; its default `poll()` is `poll(Some(Duration::ZERO))`.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        self.check_readable()?;
        if !self.buf.pending().is_empty() {
            return Ok(true);
        }
        Ok(poll_readable(&[self.fd()?.as_fd()], timeout)?[0])
    }

    /// Bytes received and buffered but not yet returned by a `recv` call:
    /// `poll` and `wait` treat the connection as ready when there are some.
    pub(crate) fn has_pending(&self) -> bool {
        !self.buf.pending().is_empty()
    }

    pub(crate) fn borrowed_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Runs `f` over this connection's descriptor and receive buffer, for
    /// exchanges (the handshake) that must share the buffer with later
    /// messages.
    pub(crate) fn with_io<R>(
        &mut self,
        f: impl FnOnce(&mut FdIo<'_>) -> R,
    ) -> Result<R, ConnectionError> {
        Ok(f(&mut self.io()?))
    }

    fn fd(&self) -> Result<&SharedFd, ConnectionError> {
        self.fd.as_ref().ok_or(ConnectionError::Closed)
    }

    fn check_readable(&self) -> Result<(), ConnectionError> {
        self.fd()?;
        if self.readable {
            Ok(())
        } else {
            Err(ConnectionError::NotReadable)
        }
    }

    fn io(&mut self) -> Result<FdIo<'_>, ConnectionError> {
        let fd = self.fd.as_ref().ok_or(ConnectionError::Closed)?.as_fd();
        Ok(FdIo {
            fd,
            buf: &mut self.buf,
            socket: self.socket,
        })
    }

    /// Writes an already framed message.
    fn write_whole(&mut self, framed: &[u8]) -> Result<(), ConnectionError> {
        self.fd()?;
        if !self.writable {
            return Err(ConnectionError::NotWritable);
        }
        std::io::Write::write_all(&mut self.io()?, framed)?;
        Ok(())
    }

    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), ConnectionError> {
        self.fd()?;
        if !self.writable {
            return Err(ConnectionError::NotWritable);
        }
        frame::write_frame_parts(&mut self.io()?, parts)?;
        Ok(())
    }

    /// Reads the next header: the payload length, `Eof` at a clean end of
    /// file, and a closed connection after a length over `max`.
    fn read_header(&mut self, max: u64) -> Result<usize, ConnectionError> {
        self.check_readable()?;
        match frame::read_frame_header(&mut self.io()?, max) {
            Ok(Some(len)) => Ok(len),
            Ok(None) => Err(ConnectionError::Eof),
            Err(err @ (FrameError::TooLarge { .. } | FrameError::BadLength(_))) => {
                // The body was not read, so the stream is out of step.
                self.close();
                Err(err.into())
            }
            Err(err) => Err(err.into()),
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_ref().map(|fd| fd.as_raw_fd()))
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish()
    }
}

/// The serde form: the descriptor as a [`SharedFd`] (so it travels only
/// inside `FdSink::collect` / `FdSource::provide`), the direction flags and
/// any bytes already buffered, which belong to the next message.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Connection")]
struct Repr<F> {
    fd: F,
    readable: bool,
    writable: bool,
    socket: bool,
    max_message: u64,
    #[serde(with = "serde_bytes")]
    pending: Vec<u8>,
    /// Descriptors received for messages not yet read.
    #[serde(default)]
    pending_fds: Vec<SharedFd>,
}

impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fd = self
            .fd
            .as_ref()
            .ok_or_else(|| serde::ser::Error::custom("cannot send a closed connection"))?;
        Repr {
            fd,
            readable: self.readable,
            writable: self.writable,
            socket: self.socket,
            max_message: self.max_message,
            pending: self.buf.pending().to_vec(),
            pending_fds: self
                .buf
                .pending_fds()
                .iter()
                .map(|fd| fd.try_clone().map(SharedFd::new))
                .collect::<Result<_, _>>()
                .map_err(serde::ser::Error::custom)?,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = Repr::<SharedFd>::deserialize(deserializer)?;
        Ok(Connection {
            fd: Some(repr.fd),
            readable: repr.readable,
            writable: repr.writable,
            socket: repr.socket,
            buf: RecvBuf::with_pending(
                repr.pending,
                repr.pending_fds
                    .into_iter()
                    .map(SharedFd::into_inner)
                    .collect(),
            ),
            max_message: repr.max_message,
            wbuf: Vec::new(),
            scratch: Vec::new(),
        })
    }
}
