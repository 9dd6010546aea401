//! The bytes a CPython client's connection has read and not yet served.
//!
//! Reading a frame as CPython's server does — its 4-byte header, then its
//! payload — costs two `recv`s per request, and on the event loop a third
//! that finds the socket empty before the task sleeps. Reading whatever
//! the socket holds into this buffer and cutting frames out of it takes
//! one `recv` per request (a read that comes back short tells tokio the
//! socket is drained). What a client sends during a blocking call is kept
//! here too, up to [`MAX_CARRY`] bytes, and served after the answer.
//!
//! # Bounds
//!
//! A frame's header is checked against the connection's frame limit
//! before its length is trusted ([`decode_header`]), and the buffer grows
//! toward a large frame as its bytes arrive, never by more than it
//! already holds (at least [`IDLE_BUFFER`]): what a peer makes the server
//! allocate is a small multiple of what it sent. An idle connection keeps
//! [`IDLE_BUFFER`] bytes; a buffer grown past [`SHRINK_ABOVE`] is given
//! back when it empties.
//!
//! # Delayed ACKs
//!
//! A client that writes a frame in two parts (CPython sends the header
//! and the payload of a frame over 16 KiB as two writes) waits, with
//! Nagle's algorithm, for the first part's ACK before it sends the
//! second, and the kernel may delay that ACK by ~40 ms. So when a read
//! leaves a frame unfinished, `TCP_QUICKACK` sends the ACK at once
//! ([`super::quick_ack`]). A request that arrives whole needs none: the
//! answer carries the ACK.

use std::io::Read;
use std::ops::Range;
use std::os::fd::RawFd;

use mp_proto::frame::{decode_header, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Read buffer kept by an idle connection.
pub(super) const IDLE_BUFFER: usize = 2048;
/// A buffer grown past this is shrunk back when it empties.
const SHRINK_ABOVE: usize = 256 * 1024;
/// The most bytes taken in while a blocking call waits (a CPython client
/// sends nothing then; what it does send is kept for after the answer).
pub(super) const MAX_CARRY: usize = 64 * 1024;

/// What the buffer holds next.
enum Cut {
    /// A whole frame: its payload's range.
    Frame(Range<usize>),
    /// Part of one: this many more bytes are needed at least.
    Need(usize),
}

/// Bytes read and not yet served; they start at a frame boundary.
pub(super) struct Input {
    /// Initialized bytes, room to read into included: a blocking read
    /// takes an initialized slice, and zeroing the room once, when the
    /// buffer grows, keeps a peer sending a byte at a time from costing
    /// a buffer's worth of zeroing per byte.
    buf: Vec<u8>,
    /// Where the bytes not yet served start.
    start: usize,
    /// Where the bytes read end (the room starts).
    end: usize,
}

impl Input {
    /// An empty buffer.
    pub(super) fn new() -> Input {
        Input {
            buf: vec![0; IDLE_BUFFER],
            start: 0,
            end: 0,
        }
    }

    /// Whether a whole frame of at most `max` bytes is buffered.
    pub(super) fn has_frame(&self, max: u64) -> bool {
        matches!(self.peek(max), Ok(Cut::Frame(_)))
    }

    /// The bytes not yet served.
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The payload of frame `range`, as [`next`](Self::next) returned it
    /// (valid until the next read).
    pub(super) fn frame(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads the next request frame, from what is buffered or else from
    /// `stream`; the range of its payload (see [`frame`](Self::frame)),
    /// or `None` when the peer closed between frames. `tcp` is the
    /// socket's descriptor if it is TCP (see "Delayed ACKs").
    pub(super) async fn next<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        max: u64,
        tcp: Option<RawFd>,
    ) -> Result<Option<Range<usize>>, FrameError> {
        self.compact();
        loop {
            let need = match self.cut(max, tcp)? {
                Cut::Frame(body) => return Ok(Some(body)),
                Cut::Need(need) => need,
            };
            let n = stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return self.end_of_file(need);
            }
            self.end += n;
        }
    }

    /// [`next`](Self::next) from a blocking socket, for a connection on
    /// a thread of its own (`super::dedicated`). A read that times out
    /// returns its error (`WouldBlock`); what arrived stays buffered and
    /// the next call goes on from there.
    pub(super) fn next_blocking<R: Read>(
        &mut self,
        socket: &mut R,
        max: u64,
        tcp: Option<RawFd>,
    ) -> Result<Option<Range<usize>>, FrameError> {
        self.compact();
        loop {
            let need = match self.cut(max, tcp)? {
                Cut::Frame(body) => return Ok(Some(body)),
                Cut::Need(need) => need,
            };
            let n = socket.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return self.end_of_file(need);
            }
            self.end += n;
        }
    }

    /// The next whole frame buffered, or how many more bytes it needs,
    /// with room made for them in the buffer.
    fn cut(&mut self, max: u64, tcp: Option<RawFd>) -> Result<Cut, FrameError> {
        let need = match self.peek(max)? {
            Cut::Frame(body) => {
                self.start = body.end;
                return Ok(Cut::Frame(body));
            }
            Cut::Need(need) => need,
        };
        if !self.pending().is_empty() {
            super::quick_ack(tcp);
        }
        // Grow toward the frame as its bytes arrive, never trusting the
        // header for more than what is already here.
        let want = need.max(IDLE_BUFFER / 2).min(self.end.max(IDLE_BUFFER));
        self.make_room(want);
        Ok(Cut::Need(need))
    }

    /// What the buffer holds next, changing nothing.
    fn peek(&self, max: u64) -> Result<Cut, FrameError> {
        Ok(match decode_header(self.pending(), max)? {
            Some((header, len)) => {
                let have = self.pending().len();
                if have >= header + len {
                    Cut::Frame(self.start + header..self.start + header + len)
                } else {
                    Cut::Need(header + len - have)
                }
            }
            None => Cut::Need(1),
        })
    }

    /// The end of the stream while `need` more bytes were wanted: a clean
    /// close between frames, or a truncated frame.
    fn end_of_file(&self, need: usize) -> Result<Option<Range<usize>>, FrameError> {
        let have = self.pending().len();
        if have == 0 {
            return Ok(None);
        }
        Err(FrameError::Truncated {
            expected: (have + need) as u64,
            received: have as u64,
        })
    }

    /// Reads into the buffer while a blocking call waits; returns when
    /// the peer closes (`Ok`) or the read fails. Past [`MAX_CARRY`]
    /// buffered bytes it stops reading and waits forever (the call's end
    /// or the server's stop cancels it).
    pub(super) async fn carry<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> std::io::Result<()> {
        loop {
            if self.pending().len() >= MAX_CARRY {
                return std::future::pending().await;
            }
            self.make_room(IDLE_BUFFER / 2);
            let n = stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(());
            }
            self.end += n;
        }
    }

    /// At least `room` bytes to read into after what is read; the new
    /// room is zeroed once.
    fn make_room(&mut self, room: usize) {
        if self.buf.len() - self.end < room {
            self.buf.resize(self.end + room, 0);
        }
    }

    /// Drops the served bytes, and a large buffer's memory once empty.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        if self.start == self.end {
            if self.buf.len() > SHRINK_ABOVE {
                self.buf.truncate(IDLE_BUFFER);
                self.buf.shrink_to_fit();
            }
        } else {
            self.buf.copy_within(self.start..self.end, 0);
        }
        self.end -= self.start;
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    /// Gives its chunks one per read, then end of file.
    struct Chunks(Vec<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.0.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let chunk = &mut self.0[0];
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.0.remove(0);
            }
            Poll::Ready(Ok(()))
        }
    }

    impl std::io::Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(chunk) = self.0.first_mut() else {
                return Ok(0);
            };
            // An empty chunk is a read that times out.
            if chunk.is_empty() {
                self.0.remove(0);
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    /// The frames read from `chunks`, by the async reader and by the
    /// blocking one, which must agree (the blocking one retrying the reads
    /// that time out, an empty chunk each).
    async fn frames(chunks: Vec<Vec<u8>>, max: u64) -> Result<Vec<Vec<u8>>, FrameError> {
        let (mut input, mut stream, mut out) = (Input::new(), Chunks(chunks.clone()), Vec::new());
        let read = loop {
            match input.next(&mut stream, max, None).await {
                Ok(Some(range)) => out.push(input.frame(range).to_vec()),
                Ok(None) => break Ok(out),
                Err(e) => break Err(e),
            }
        };
        let (blocking, _) = frames_blocking(chunks, max);
        assert_eq!(format!("{read:?}"), format!("{blocking:?}"));
        read
    }

    /// The frames read from `chunks` by the blocking reader, where an
    /// empty chunk is a read that times out; and how many did.
    fn frames_blocking(
        chunks: Vec<Vec<u8>>,
        max: u64,
    ) -> (Result<Vec<Vec<u8>>, FrameError>, usize) {
        let (mut input, mut stream, mut out) = (Input::new(), Chunks(chunks), Vec::new());
        let mut timeouts = 0;
        loop {
            match input.next_blocking(&mut stream, max, None) {
                Ok(Some(range)) => out.push(input.frame(range).to_vec()),
                Ok(None) => return (Ok(out), timeouts),
                Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    timeouts += 1
                }
                Err(e) => return (Err(e), timeouts),
            }
        }
    }

    #[tokio::test]
    async fn frames_are_cut_from_reads_of_any_size() {
        let big = vec![7u8; 100_000];
        let mut all = frame(b"one");
        all.extend(frame(b""));
        all.extend(frame(&big));
        all.extend(frame(b"four"));
        let want = vec![b"one".to_vec(), vec![], big.clone(), b"four".to_vec()];
        // Everything in one read; then one byte per read; then a split
        // inside a header and inside the large payload.
        assert_eq!(frames(vec![all.clone()], 1 << 20).await.unwrap(), want);
        let bytes: Vec<Vec<u8>> = all.iter().map(|b| vec![*b]).collect();
        assert_eq!(frames(bytes, 1 << 20).await.unwrap(), want);
        let split = vec![
            all[..2].to_vec(),
            all[2..9].to_vec(),
            all[9..50_000].to_vec(),
            all[50_000..].to_vec(),
        ];
        assert_eq!(frames(split, 1 << 20).await.unwrap(), want);
    }

    #[test]
    fn a_blocking_read_that_times_out_loses_nothing() {
        let big = vec![7u8; 100_000];
        let mut all = frame(b"one");
        all.extend(frame(&big));
        // A read that times out inside the header, at its end and inside
        // the payload.
        let chunks = vec![
            all[..5].to_vec(),
            vec![],
            all[5..9].to_vec(),
            vec![],
            all[9..60_000].to_vec(),
            vec![],
            all[60_000..].to_vec(),
        ];
        let (got, timeouts) = frames_blocking(chunks, 1 << 20);
        assert_eq!(got.unwrap(), vec![b"one".to_vec(), big]);
        assert_eq!(timeouts, 3);
    }

    #[tokio::test]
    async fn a_header_past_the_limit_is_refused_before_its_bytes_arrive() {
        let err = frames(vec![frame(&[0u8; 100])[..4].to_vec()], 99).await;
        assert!(
            matches!(err, Err(FrameError::TooLarge { len: 100, max: 99 })),
            "{err:?}"
        );
        let err = frames(vec![(-5i32).to_be_bytes().to_vec()], 99).await;
        assert!(matches!(err, Err(FrameError::BadLength(-5))), "{err:?}");
    }

    #[tokio::test]
    async fn an_unfinished_frame_at_end_of_file_is_truncated() {
        let mut f = frame(b"hello");
        f.truncate(6);
        let err = frames(vec![f], 1 << 20).await;
        assert!(
            matches!(
                err,
                Err(FrameError::Truncated {
                    expected: 9,
                    received: 6
                })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_large_frame_promises_no_memory_before_it_arrives() {
        // A header claiming 64 MiB, then two bytes: the buffer stays small.
        let mut f = (64i32 << 20).to_be_bytes().to_vec();
        f.extend_from_slice(b"ab");
        let (mut input, mut stream) = (Input::new(), Chunks(vec![f]));
        assert!(input.next(&mut stream, 1 << 30, None).await.is_err());
        assert!(
            input.buf.capacity() <= 4 * IDLE_BUFFER,
            "{}",
            input.buf.capacity()
        );
    }

    #[tokio::test]
    async fn what_arrives_during_a_call_is_served_after_it() {
        let mut all = frame(b"during");
        all.extend(frame(b"after"));
        let (mut input, mut stream) = (Input::new(), Chunks(vec![all]));
        input.carry(&mut stream).await.unwrap();
        let first = input
            .next(&mut stream, 1 << 20, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(input.frame(first), b"during");
        let second = input
            .next(&mut stream, 1 << 20, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(input.frame(second), b"after");
        assert!(input
            .next(&mut stream, 1 << 20, None)
            .await
            .unwrap()
            .is_none());
    }
}
