//! Golden bytes and edge cases of the framing; property tests are in
//! `proto/tests/frame_props.rs`.

use std::io::{self, Cursor, Read, Write};

use super::*;

/// A writer that accepts at most `step` bytes a call and records each call,
/// to check short-write handling and the single-write rule.
struct Trickle {
    step: usize,
    data: Vec<u8>,
    calls: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step);
        self.data.extend_from_slice(&buf[..n]);
        self.calls += 1;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hands out one byte a call.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, payload).unwrap();
    out
}

#[test]
fn golden_short_headers() {
    assert_eq!(framed(b""), [0, 0, 0, 0]);
    assert_eq!(framed(b"hello"), b"\x00\x00\x00\x05hello");
    assert_eq!(
        encode_header(0x7fff_ffff).as_bytes(),
        [0x7f, 0xff, 0xff, 0xff]
    );
}

#[test]
fn golden_long_header_starts_past_i32_max() {
    assert_eq!(
        encode_header(0x8000_0000).as_bytes(),
        [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
    );
    assert_eq!(
        decode_header(encode_header(0x8000_0000).as_bytes(), u64::MAX).unwrap(),
        Some((12, 0x8000_0000))
    );
}

#[test]
fn long_header_is_accepted_for_any_length() {
    // CPython reads the 12-byte form whatever the length; so do we.
    let mut wire = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3];
    wire.extend_from_slice(b"abc");
    assert_eq!(read_frame(&mut &wire[..], 10).unwrap().unwrap(), b"abc");
}

#[test]
fn decode_header_needs_whole_header() {
    assert_eq!(decode_header(&[0, 0, 0], 10).unwrap(), None);
    assert_eq!(decode_header(&[0xff; 11], 10).unwrap(), None);
    assert_eq!(decode_header(&[0, 0, 0, 7, 1], 10).unwrap(), Some((4, 7)));
}

#[test]
fn round_trip_sizes() {
    for size in [0, 1, 10, SMALL_FRAME, SMALL_FRAME + 1, 1 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let wire = framed(&payload);
        let mut reader = &wire[..];
        assert_eq!(read_frame(&mut reader, u64::MAX).unwrap().unwrap(), payload);
        assert!(read_frame(&mut reader, u64::MAX).unwrap().is_none());
    }
}

#[test]
fn payload_bigger_than_eager_alloc_is_read_in_steps() {
    let payload: Vec<u8> = (0..EAGER_ALLOC * 2 + 5).map(|i| i as u8).collect();
    let wire = framed(&payload);
    assert_eq!(
        read_frame(&mut &wire[..], u64::MAX).unwrap().unwrap(),
        payload
    );
}

#[test]
fn small_frame_is_one_write() {
    let mut w = Trickle {
        step: usize::MAX,
        data: Vec::new(),
        calls: 0,
    };
    write_frame(&mut w, &[1; SMALL_FRAME]).unwrap();
    assert_eq!(w.calls, 1);
    assert_eq!(w.data.len(), SMALL_FRAME + 4);
}

#[test]
fn short_writes_and_reads_are_resumed() {
    let payload: Vec<u8> = (0..SMALL_FRAME * 3).map(|i| i as u8).collect();
    let parts: [&[u8]; 3] = [&payload[..10], &[], &payload[10..]];
    let mut w = Trickle {
        step: 1000,
        data: Vec::new(),
        calls: 0,
    };
    write_frame_parts(&mut w, &parts).unwrap();
    let got = read_frame(&mut OneByte(&w.data), u64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(got, payload);
}

#[test]
fn clean_eof_and_truncation_are_distinct() {
    assert!(read_frame(&mut &b""[..], 10).unwrap().is_none());
    let err = read_frame(&mut &[0u8, 0][..], 10).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                expected: 4,
                received: 2
            }
        ),
        "{err}"
    );
    let err = read_frame(&mut &b"\x00\x00\x00\x05abc"[..], 10).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                expected: 5,
                received: 3
            }
        ),
        "{err}"
    );
    let err = read_frame(&mut &[0xffu8, 0xff, 0xff, 0xff, 0][..], 10).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                expected: 12,
                received: 5
            }
        ),
        "{err}"
    );
}

#[test]
fn too_large_is_refused_before_reading_the_body() {
    let mut reader = Cursor::new(b"\x00\x00\x00\x0bhello world".to_vec());
    let err = read_frame(&mut reader, 10).unwrap_err();
    assert!(
        matches!(err, FrameError::TooLarge { len: 11, max: 10 }),
        "{err}"
    );
    assert_eq!(reader.position(), 4, "the body must not be read");
}

#[test]
fn negative_length_is_an_error() {
    let err = read_frame(&mut &[0xffu8, 0xff, 0xff, 0xfe][..], 10).unwrap_err();
    assert!(matches!(err, FrameError::BadLength(-2)), "{err}");
}

#[test]
fn read_into_fits_or_carries_the_message() {
    let mut wire = framed(b"abc");
    wire.extend(framed(b"defgh"));
    wire.extend(framed(b"ij"));
    let mut reader = &wire[..];
    let mut buf = [0u8; 4];
    assert_eq!(
        read_frame_into(&mut reader, &mut buf, 100).unwrap(),
        Some(3)
    );
    assert_eq!(&buf[..3], b"abc");
    match read_frame_into(&mut reader, &mut buf, 100) {
        Err(FrameError::BufferTooShort { message }) => assert_eq!(message, b"defgh"),
        other => panic!("{other:?}"),
    }
    // The stream is still in step after BufferTooShort.
    assert_eq!(
        read_frame_into(&mut reader, &mut buf, 100).unwrap(),
        Some(2)
    );
    assert_eq!(&buf[..2], b"ij");
    assert_eq!(read_frame_into(&mut reader, &mut buf, 100).unwrap(), None);
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_round_trip_matches_sync_bytes() {
    let (mut a, mut b) = tokio::io::duplex(1024);
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let expected = [framed(b""), framed(b"ten bytes!"), framed(&big)].concat();
    let writer = tokio::spawn(async move {
        write_frame_async(&mut a, b"").await.unwrap();
        write_frame_async(&mut a, b"ten bytes!").await.unwrap();
        write_frame_async(&mut a, &big).await.unwrap();
    });
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut b, &mut raw)
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(raw, expected);

    let mut reader = &raw[..];
    assert_eq!(
        read_frame_async(&mut reader, u64::MAX)
            .await
            .unwrap()
            .unwrap(),
        b""
    );
    assert_eq!(
        read_frame_async(&mut reader, u64::MAX)
            .await
            .unwrap()
            .unwrap(),
        b"ten bytes!"
    );
    let mut small = [0u8; 16];
    match read_frame_into_async(&mut reader, &mut small, u64::MAX).await {
        Err(FrameError::BufferTooShort { message }) => assert_eq!(message.len(), 1 << 20),
        other => panic!("{other:?}"),
    }
    assert!(read_frame_async(&mut reader, u64::MAX)
        .await
        .unwrap()
        .is_none());
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_errors_match_sync() {
    let err = read_frame_async(&mut &b"\x00\x00\x00\x05abc"[..], 10)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        FrameError::Truncated {
            expected: 5,
            received: 3
        }
    ));
    let err = read_frame_async(&mut &b"\x00\x00\x01\x00"[..], 10)
        .await
        .unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { len: 256, max: 10 }));
}
