//! The framing rules over `std::io::{Read, Write}`.

use std::io::{self, Read, Write};

use super::{concat, decode_header, encode_header, next_capacity, write_zero, FrameError, Parts};
use super::{MAX_HEADER_LEN, SMALL_FRAME};

/// Writes `payload` as one frame.
///
/// Up to [`SMALL_FRAME`](super::SMALL_FRAME) bytes, header and payload go
/// out in a single `write`; larger frames use vectored writes, so the
/// payload is never copied.
pub fn write_frame<W: Write + ?Sized>(writer: &mut W, payload: &[u8]) -> io::Result<()> {
    write_frame_parts(writer, &[payload])
}

/// Writes one frame whose payload is the concatenation of `parts`.
///
/// For callers that hold a payload in pieces (a codec's head and a large
/// byte buffer): the pieces are not joined in memory unless the frame is
/// small.
pub fn write_frame_parts<W: Write + ?Sized>(writer: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let header = encode_header(total as u64);
    if total <= SMALL_FRAME {
        return writer.write_all(&concat(header.as_bytes(), parts, total));
    }
    let mut cursor = Parts::new(header.as_bytes(), parts);
    while !cursor.is_done() {
        match writer.write_vectored(&cursor.slices()) {
            Ok(0) => return Err(write_zero()),
            Ok(n) => cursor.advance(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one frame of at most `max` payload bytes.
///
/// Returns `Ok(None)` on a clean end of file before the frame's first byte.
pub fn read_frame<R: Read + ?Sized>(
    reader: &mut R,
    max: u64,
) -> Result<Option<Vec<u8>>, FrameError> {
    let Some(len) = read_frame_header(reader, max)? else {
        return Ok(None);
    };
    read_payload(reader, len).map(Some)
}

/// Reads one frame of at most `max` payload bytes into the start of `buf`
/// and returns its length.
///
/// A message longer than `buf` is still read whole (the stream stays in
/// step) and returned in [`FrameError::BufferTooShort`]. Returns `Ok(None)`
/// on a clean end of file before the frame's first byte.
pub fn read_frame_into<R: Read + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
    max: u64,
) -> Result<Option<usize>, FrameError> {
    let Some(len) = read_frame_header(reader, max)? else {
        return Ok(None);
    };
    match buf.get_mut(..len) {
        Some(dest) => {
            fill_exact(reader, dest, len as u64, 0)?;
            Ok(Some(len))
        }
        None => Err(FrameError::BufferTooShort {
            message: read_payload(reader, len)?,
        }),
    }
}

/// Reads and checks one frame header and returns the payload length, for
/// callers that read the payload their own way; `Ok(None)` on a clean end
/// of file before the header's first byte.
///
/// The payload must be read next, or the stream is out of step.
pub fn read_frame_header<R: Read + ?Sized>(
    reader: &mut R,
    max: u64,
) -> Result<Option<usize>, FrameError> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let got = fill(reader, &mut header[..4])?;
    if got == 0 {
        return Ok(None);
    }
    if got < 4 {
        return Err(FrameError::Truncated {
            expected: 4,
            received: got as u64,
        });
    }
    if let Some((_, len)) = decode_header(&header[..4], max)? {
        return Ok(Some(len));
    }
    fill_exact(reader, &mut header[4..], MAX_HEADER_LEN as u64, 4)?;
    match decode_header(&header, max)? {
        Some((_, len)) => Ok(Some(len)),
        // Twelve bytes always complete a header; kept as an error rather
        // than a panic so no input can crash a reader.
        None => Err(FrameError::BadLength(-1)),
    }
}

/// Reads a payload of `len` bytes, growing the buffer with the data
/// received rather than trusting `len` up front.
fn read_payload<R: Read + ?Sized>(reader: &mut R, len: usize) -> Result<Vec<u8>, FrameError> {
    let mut payload = Vec::new();
    let mut filled = 0;
    while filled < len {
        let target = next_capacity(filled, len);
        payload.resize(target, 0);
        fill_exact(
            reader,
            &mut payload[filled..target],
            len as u64,
            filled as u64,
        )?;
        filled = target;
    }
    Ok(payload)
}

/// Fills `dest` completely, or reports the frame as truncated: `expected`
/// and `already` (bytes of the frame part received before `dest`) make the
/// error say how far the frame got.
fn fill_exact<R: Read + ?Sized>(
    reader: &mut R,
    dest: &mut [u8],
    expected: u64,
    already: u64,
) -> Result<(), FrameError> {
    let got = fill(reader, dest)?;
    if got < dest.len() {
        return Err(FrameError::Truncated {
            expected,
            received: already + got as u64,
        });
    }
    Ok(())
}

/// Reads until `dest` is full or end of file; returns the bytes read.
fn fill<R: Read + ?Sized>(reader: &mut R, dest: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < dest.len() {
        match reader.read(&mut dest[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
