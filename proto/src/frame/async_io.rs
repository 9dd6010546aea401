//! The framing rules over tokio's `AsyncRead` / `AsyncWrite`.
//!
//! Mirrors [`blocking`](super::blocking) step for step; the rules
//! themselves (header, limit, allocation growth) are shared in the parent
//! module.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{concat, decode_header, encode_header, next_capacity, write_zero, FrameError, Parts};
use super::{MAX_HEADER_LEN, SMALL_FRAME};

/// Writes `payload` as one frame; async counterpart of
/// [`write_frame`](super::write_frame).
pub async fn write_frame_async<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    payload: &[u8],
) -> io::Result<()> {
    write_frame_parts_async(writer, &[payload]).await
}

/// Writes one frame whose payload is the concatenation of `parts`; async
/// counterpart of [`write_frame_parts`](super::write_frame_parts).
pub async fn write_frame_parts_async<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    parts: &[&[u8]],
) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let header = encode_header(total as u64);
    if total <= SMALL_FRAME {
        return writer
            .write_all(&concat(header.as_bytes(), parts, total))
            .await;
    }
    let mut cursor = Parts::new(header.as_bytes(), parts);
    while !cursor.is_done() {
        let n = writer.write_vectored(&cursor.slices()).await?;
        if n == 0 {
            return Err(write_zero());
        }
        cursor.advance(n);
    }
    Ok(())
}

/// Reads one frame of at most `max` payload bytes; async counterpart of
/// [`read_frame`](super::read_frame). `Ok(None)` on a clean end of file.
pub async fn read_frame_async<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    max: u64,
) -> Result<Option<Vec<u8>>, FrameError> {
    let Some(len) = read_header(reader, max).await? else {
        return Ok(None);
    };
    read_payload(reader, len).await.map(Some)
}

/// Reads one frame into the start of `buf`; async counterpart of
/// [`read_frame_into`](super::read_frame_into).
pub async fn read_frame_into_async<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
    max: u64,
) -> Result<Option<usize>, FrameError> {
    let Some(len) = read_header(reader, max).await? else {
        return Ok(None);
    };
    match buf.get_mut(..len) {
        Some(dest) => {
            fill_exact(reader, dest, len as u64, 0).await?;
            Ok(Some(len))
        }
        None => Err(FrameError::BufferTooShort {
            message: read_payload(reader, len).await?,
        }),
    }
}

async fn read_header<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    max: u64,
) -> Result<Option<usize>, FrameError> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let got = fill(reader, &mut header[..4]).await?;
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
    fill_exact(reader, &mut header[4..], MAX_HEADER_LEN as u64, 4).await?;
    match decode_header(&header, max)? {
        Some((_, len)) => Ok(Some(len)),
        None => Err(FrameError::BadLength(-1)),
    }
}

async fn read_payload<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    len: usize,
) -> Result<Vec<u8>, FrameError> {
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
        )
        .await?;
        filled = target;
    }
    Ok(payload)
}

async fn fill_exact<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    dest: &mut [u8],
    expected: u64,
    already: u64,
) -> Result<(), FrameError> {
    let got = fill(reader, dest).await?;
    if got < dest.len() {
        return Err(FrameError::Truncated {
            expected,
            received: already + got as u64,
        });
    }
    Ok(())
}

async fn fill<R: AsyncRead + Unpin + ?Sized>(reader: &mut R, dest: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < dest.len() {
        match reader.read(&mut dest[got..]).await {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
