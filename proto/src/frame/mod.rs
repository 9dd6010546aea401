//! Length-prefixed framing, byte-compatible with CPython's
//! `multiprocessing.connection` (`Connection.send_bytes` / `recv_bytes`).
//!
//! The rules live here once — [`encode_header`], [`decode_header`] and the
//! size check — and two thin drivers apply them: [`write_frame`] /
//! [`read_frame`] over `std::io` and [`write_frame_async`] /
//! [`read_frame_async`] over tokio.
//!
//! # Format
//!
//! ```text
//! payload ≤ 2^31-1 bytes:  [len: i32 big-endian][payload]
//! larger payloads:         [-1: i32 big-endian][len: u64 big-endian][payload]
//! ```
//!
//! A 4-byte header is used up to 2^31-1 bytes even though the 12-byte form
//! could carry any length, because CPython 3.7 and older only read the short
//! one. Readers accept both forms at any length.
//!
//! # Limits
//!
//! Every reader takes a maximum payload length. A header announcing more is
//! rejected with [`FrameError::TooLarge`] before anything is allocated or
//! read past the header. Even under a large maximum, a reader never
//! allocates far ahead of the bytes that actually arrived: payloads above
//! [`EAGER_ALLOC`] grow their buffer as data comes in, so a lying header
//! costs at most twice what the peer really sent.
//!
//! # Buffering
//!
//! The readers take exactly the bytes of one frame from the stream: the
//! header, then the payload. Straight from a socket that is two `read`
//! calls per frame, which costs ~20 % of a small-message round trip; wrap
//! the socket in a `std::io::BufReader` (or tokio's) to read small frames in
//! one call. The writers need no buffer: they already write a frame in one
//! call (small) or without copying (large).
//!
//! # Errors
//!
//! A clean end of file between frames is `Ok(None)` (Python's `EOFError`);
//! end of file inside a header or payload is [`FrameError::Truncated`]
//! (Python's `OSError("got end of file during message")`).

#[cfg(feature = "tokio")]
mod async_io;
mod blocking;

use std::io::{self, IoSlice};

#[cfg(feature = "tokio")]
pub use async_io::{
    read_frame_async, read_frame_into_async, write_frame_async, write_frame_parts_async,
};
pub use blocking::{
    read_frame, read_frame_header, read_frame_into, write_frame, write_frame_parts,
};

/// The maximum payload a reader accepts unless told otherwise: 64 MiB.
///
/// CPython's `recv()` has no cap; a server facing untrusted peers needs one.
/// Callers that trust their peer (a `Pipe` between processes of one program)
/// pass a larger maximum, up to `u64::MAX`.
pub const DEFAULT_MAX_FRAME: u64 = 64 * 1024 * 1024;

/// Payloads up to this size are sent as one write of header and payload.
///
/// Same threshold as CPython (bpo-20540): two small writes in a row on a TCP
/// socket meet Nagle's algorithm and the peer's delayed ACK, a ~40 ms stall.
pub const SMALL_FRAME: usize = 16384;

/// Payloads up to this size are allocated in full as soon as the header is
/// read; larger ones grow as the bytes arrive (see the module's "Limits").
pub const EAGER_ALLOC: usize = 4 * 1024 * 1024;

/// The largest header: the `-1` marker and an 8-byte length.
pub const MAX_HEADER_LEN: usize = 12;

/// The largest payload length the 4-byte header form carries.
const SHORT_FORM_MAX: u64 = 0x7fff_ffff;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the stream partway through a frame.
    #[error("got end of file during message: received {received} of {expected} bytes")]
    Truncated {
        /// Bytes the header (or the header itself) announced.
        expected: u64,
        /// Bytes that arrived before end of file.
        received: u64,
    },
    /// The header announced a payload above the reader's maximum.
    #[error("bad message length: {len} bytes announced, the limit is {max}")]
    TooLarge {
        /// The announced payload length.
        len: u64,
        /// The reader's maximum.
        max: u64,
    },
    /// A 4-byte header held a negative length other than the `-1` marker.
    #[error("bad message length: header holds {0}")]
    BadLength(i32),
    /// The message did not fit the caller's buffer (Python's
    /// `BufferTooShort`); the whole message was read and is carried here, so
    /// the stream stays in step.
    #[error("buffer too short for a {}-byte message", message.len())]
    BufferTooShort {
        /// The complete message.
        message: Vec<u8>,
    },
    /// The underlying read or write failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// An encoded frame header: 4 or 12 bytes.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl Header {
    /// The header's bytes, to be written before the payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Encodes the header for a payload of `payload_len` bytes.
///
/// # Format
///
/// `00 00 00 0a` for 10 bytes; `ff ff ff ff 00 00 00 00 80 00 00 00` for
/// 2 GiB (the first length that needs the long form).
pub fn encode_header(payload_len: u64) -> Header {
    let mut bytes = [0u8; MAX_HEADER_LEN];
    if payload_len <= SHORT_FORM_MAX {
        // The guard above makes the cast lossless.
        bytes[..4].copy_from_slice(&(payload_len as i32).to_be_bytes());
        Header { bytes, len: 4 }
    } else {
        bytes[..4].copy_from_slice(&(-1i32).to_be_bytes());
        bytes[4..].copy_from_slice(&payload_len.to_be_bytes());
        Header {
            bytes,
            len: MAX_HEADER_LEN,
        }
    }
}

/// Decodes a frame header at the start of `buf` and checks it against `max`.
///
/// Returns `Ok(None)` when `buf` is too short to hold the whole header
/// (4 bytes, or 12 after a `-1` marker), else the header's length and the
/// payload's. Allocates nothing, so it is the check to run before trusting a
/// length, for streaming readers and for buffered ones alike.
pub fn decode_header(buf: &[u8], max: u64) -> Result<Option<(usize, usize)>, FrameError> {
    let Some(short) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let (header_len, len) = match i32::from_be_bytes(*short) {
        n if n >= 0 => (4, u64::from(n.unsigned_abs())),
        -1 => match buf.get(4..MAX_HEADER_LEN) {
            Some(long) => {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(long);
                (MAX_HEADER_LEN, u64::from_be_bytes(eight))
            }
            None => return Ok(None),
        },
        n => return Err(FrameError::BadLength(n)),
    };
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let len = usize::try_from(len).map_err(|_| FrameError::TooLarge {
        len,
        max: usize::MAX as u64,
    })?;
    Ok(Some((header_len, len)))
}

/// How far the payload buffer may be extended before more bytes arrive.
///
/// Small payloads get their full size at once; large ones at most double
/// what has been received so far (see the module's "Limits").
fn next_capacity(filled: usize, total: usize) -> usize {
    total.min(filled.saturating_mul(2).max(EAGER_ALLOC))
}

/// A write position across the frame's header and payload parts, so a
/// vectored write can resume after a short write without copying.
struct Parts<'a> {
    parts: Vec<&'a [u8]>,
    index: usize,
    offset: usize,
}

impl<'a> Parts<'a> {
    fn new(header: &'a [u8], payload: &[&'a [u8]]) -> Self {
        let mut parts = Vec::with_capacity(payload.len() + 1);
        parts.push(header);
        parts.extend(payload.iter().copied().filter(|p| !p.is_empty()));
        Parts {
            parts,
            index: 0,
            offset: 0,
        }
    }

    fn is_done(&self) -> bool {
        self.index >= self.parts.len()
    }

    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.parts
            .iter()
            .skip(self.index)
            .enumerate()
            .map(|(i, p)| IoSlice::new(if i == 0 { &p[self.offset..] } else { p }))
            .collect()
    }

    fn advance(&mut self, mut n: usize) {
        while let Some(part) = self.parts.get(self.index) {
            let left = part.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
        }
    }
}

/// Concatenates header and payload for a small frame, so it goes out in a
/// single write (see [`SMALL_FRAME`]).
fn concat(header: &[u8], payload: &[&[u8]], total: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(header.len() + total);
    buf.extend_from_slice(header);
    for part in payload {
        buf.extend_from_slice(part);
    }
    buf
}

/// The error for a write that made no progress.
fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "failed to write the whole frame")
}

#[cfg(test)]
mod tests;
