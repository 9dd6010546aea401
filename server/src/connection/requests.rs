//! What both ways of serving a connection share: the bytes read and not
//! yet answered, the answers not yet written, and the step from one
//! request frame to its answer.
//!
//! The event loop ([`super::evented`]) and a dedicated reader thread
//! ([`super::dedicated`]) hand these buffers to each other, so a
//! connection can move between them at any request boundary without
//! losing a byte.
//!
//! # Bounds
//!
//! Frames are answered only while the output holds less than the
//! connection's cap ([`Limits::max_output_bytes`]), so unwritten answers
//! never pass the cap by more than one answer, and one answer is never
//! more than [`Limits::max_frame_bytes`]: a larger one is replaced by a
//! `LimitExceeded` error (the encoder stops at the limit, so the large
//! encoding is never built in full).
//!
//! # Bad input
//!
//! A request that does not decode but whose id can be read is answered
//! with its error (`ProtocolError`, or `OverflowError`/`TypeError` for a
//! well-formed value the server cannot take) and the connection goes on:
//! the frame's length kept it in step. Anything worse — a bad or
//! oversized frame header, a request without a readable id — is
//! [`Fatal`]: the peer gets an error addressed to no request
//! ([`Response::connection_error`]) and the connection closes.
//!
//! [`Limits::max_output_bytes`]: crate::limits::Limits::max_output_bytes
//! [`Limits::max_frame_bytes`]: crate::limits::Limits::max_frame_bytes

use std::sync::Arc;
use std::time::Instant;

use mp_proto::codec::{decode_within, encode_frame_into, CodecError};
use mp_proto::frame::{decode_header, FrameError};
use mp_proto::message::{Outcome, Request, Response, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::engine::Engine;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::object::{PendingCall, Reply};
use crate::session::Session;

/// Read buffer kept by an idle connection.
pub(super) const IDLE_BUFFER: usize = 2048;
/// A buffer grown past this is shrunk back when it empties.
const SHRINK_ABOVE: usize = 256 * 1024;

/// A blocking call's outcome, once it has one (timed: the latency is
/// recorded when the future yields).
pub(super) type Waiting = PendingCall<Outcome>;

/// Whether to go on answering the frames already buffered.
pub(super) enum Flow {
    /// Answer the next one.
    Next,
    /// Stop after this one; the rest stay buffered.
    Stop,
}

/// What ends a connection because of what the peer sent: the error it is
/// told (addressed to no request) before the connection closes.
#[derive(Debug)]
pub(super) struct Fatal(pub(super) RemoteError);

impl Fatal {
    fn protocol(message: String) -> Fatal {
        Fatal(RemoteError::new(ErrorKind::ProtocolError, message))
    }
}

/// The bounds one connection's answers are held to.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// The largest request frame accepted.
    pub(super) max_frame: u64,
    /// The largest answer (its encoding, without the frame header).
    pub(super) max_answer: usize,
    /// Stop answering while the output holds this many bytes (at least 1,
    /// so an empty output never stops a connection).
    pub(super) max_output: usize,
    /// The most memory one request's decoded values may take
    /// (`max_value_bytes`): a frame of tiny items would otherwise decode
    /// to many times its size.
    pub(super) max_decoded: usize,
}

impl Bounds {
    pub(super) fn new(limits: &Limits) -> Bounds {
        Bounds {
            max_frame: limits.max_frame_bytes,
            max_answer: usize::try_from(limits.max_frame_bytes).unwrap_or(usize::MAX),
            max_output: limits.max_output_bytes.max(1),
            max_decoded: usize::try_from(limits.max_value_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// A connection's unanswered input and unwritten output.
#[derive(Default)]
pub(super) struct Buffers {
    /// Bytes read, starting at a frame boundary.
    pub(super) input: Vec<u8>,
    /// Encoded response frames; those before `sent` are written.
    output: Vec<u8>,
    /// How much of `output` is written.
    sent: usize,
}

impl Buffers {
    pub(super) fn new() -> Buffers {
        Buffers {
            input: Vec::with_capacity(IDLE_BUFFER),
            output: Vec::new(),
            sent: 0,
        }
    }

    /// The output not yet written.
    pub(super) fn unwritten(&self) -> &[u8] {
        &self.output[self.sent..]
    }

    /// Whether the output holds `bounds.max_output` bytes or more: then
    /// nothing more is answered until the peer reads.
    pub(super) fn is_full(&self, bounds: &Bounds) -> bool {
        self.output.len() >= bounds.max_output
    }

    /// The output buffer, to answer into.
    pub(super) fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Passes every complete buffered frame, in order, to `answer` (with
    /// the output buffer to answer into) until it says stop or the output
    /// is full, then drops the answered bytes and leaves room to read the
    /// next ones. Returns whether it stopped because the output is full
    /// (frames may be left). A header that is malformed or over the limit
    /// is [`Fatal`].
    pub(super) fn answer_frames(
        &mut self,
        bounds: &Bounds,
        mut answer: impl FnMut(&[u8], &mut Vec<u8>) -> Result<Flow, Fatal>,
    ) -> Result<bool, Fatal> {
        let mut start = 0;
        let mut full = false;
        let result = loop {
            if self.output.len() >= bounds.max_output {
                full = true;
                break Ok(());
            }
            match decode_header(&self.input[start..], bounds.max_frame) {
                Ok(Some((header, len))) if self.input.len() - start >= header + len => {
                    let body = start + header..start + header + len;
                    start = body.end;
                    match answer(&self.input[body], &mut self.output) {
                        Ok(Flow::Next) => {}
                        Ok(Flow::Stop) => break Ok(()),
                        Err(fatal) => break Err(fatal),
                    }
                }
                Ok(Some((header, len))) => {
                    // Grow toward the frame as its bytes arrive, never
                    // trusting the header for more than double.
                    let need = header + len - (self.input.len() - start);
                    let grow = need.min(self.input.len().max(64 * 1024));
                    self.input.reserve(grow);
                    break Ok(());
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(bad_header(e)),
            }
        };
        if start > 0 {
            self.input.drain(..start);
        }
        if self.input.is_empty() && self.input.capacity() > SHRINK_ABOVE {
            self.input.shrink_to(IDLE_BUFFER);
        }
        if self.input.capacity() - self.input.len() < IDLE_BUFFER / 2 {
            self.input.reserve(IDLE_BUFFER);
        }
        result.map(|()| full)
    }

    /// Forgets the first `n` unwritten bytes, written to the peer. The
    /// written part is dropped when all is written, or when it is most of
    /// a large buffer (so a slow reader costs no copy per write).
    pub(super) fn written(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.output.len());
        if self.sent == self.output.len() {
            self.output.clear();
            self.sent = 0;
            if self.output.capacity() > SHRINK_ABOVE {
                self.output.shrink_to(IDLE_BUFFER);
            }
        } else if self.sent > SHRINK_ABOVE && self.sent * 2 >= self.output.len() {
            self.output.drain(..self.sent);
            self.sent = 0;
        }
    }
}

/// The error a bad frame header gets before the connection closes.
fn bad_header(e: FrameError) -> Fatal {
    match e {
        FrameError::TooLarge { len, max } => Fatal(RemoteError::new(
            ErrorKind::LimitExceeded,
            format!(
                "a request of {len} bytes is over the server's frame limit of {max} bytes; \
                 the connection is closed"
            ),
        )),
        other => Fatal::protocol(format!("{other}; the connection is closed")),
    }
}

/// Decodes one request frame and answers it into `out` (`None`), or
/// returns the blocking call to wait on: its request id and the future of
/// its outcome. A request that does not decode is answered with its error
/// when its id can be read; otherwise it is [`Fatal`].
///
/// Every call is timed here, from the moment its frame is decoded to its
/// outcome (for a blocking call, when the future yields): the latency is
/// the serving layer's measure, not the engine's.
///
/// A well-formed `cancel(request_id)` is answered here, not by the
/// engine: `cancel` drops that blocking call of this connection if it
/// still waits, and says whether it did.
pub(super) fn answer(
    engine: &Arc<Engine>,
    session: &Arc<Session>,
    bounds: &Bounds,
    frame: &[u8],
    out: &mut Vec<u8>,
    cancel: &mut dyn FnMut(u64) -> bool,
) -> Result<Option<(u64, Waiting)>, Fatal> {
    let request: Request = match decode_within(frame, bounds.max_decoded) {
        Ok(r) => r,
        Err(e) => return refuse(engine, session, bounds, frame, e, out).map(|()| None),
    };
    let id = request.id;
    let started = Instant::now();
    if let Some(waiting) = cancel_of(&request) {
        engine.metrics.server_call(Some(ServerMethod::Cancel));
        let outcome = Outcome::Return(Value::Bool(cancel(waiting)));
        engine.metrics.answered(started, &outcome);
        return respond(out, id, outcome, bounds, &engine.metrics).map(|()| None);
    }
    match engine.call(session, request) {
        Reply::Ready(outcome) => {
            engine.metrics.answered(started, &outcome);
            respond(out, id, outcome, bounds, &engine.metrics).map(|()| None)
        }
        Reply::Pending(future) => {
            let engine = Arc::clone(engine);
            Ok(Some((
                id,
                Box::pin(async move {
                    let outcome = future.await;
                    engine.metrics.answered(started, &outcome);
                    outcome
                }),
            )))
        }
    }
}

/// The request id a well-formed `cancel(request_id)` names (anything
/// else goes to the engine, which answers a malformed one's error).
fn cancel_of(request: &Request) -> Option<u64> {
    match (&request.target, request.args.as_slice()) {
        (Target::Server, [Value::Int(id)])
            if request.kwargs.is_empty() && request.method == ServerMethod::Cancel.name() =>
        {
            u64::try_from(*id).ok()
        }
        _ => None,
    }
}

/// Answers a request that did not decode, or gives up on the connection
/// when not even its id can be read.
#[cold]
fn refuse(
    engine: &Engine,
    session: &Session,
    bounds: &Bounds,
    frame: &[u8],
    e: CodecError,
    out: &mut Vec<u8>,
) -> Result<(), Fatal> {
    let kind = e.kind();
    let message = match &e {
        CodecError::Decode(what) => format!("malformed request: {what}"),
        CodecError::Trailing(n) => format!(
            "malformed request: {} after its end",
            if *n == 1 {
                "1 byte".to_owned()
            } else {
                format!("{n} bytes")
            }
        ),
        other => other.to_string(),
    };
    let Some(id) = Request::id_of(frame) else {
        return Err(Fatal(RemoteError::new(
            kind,
            format!("{message}; without a readable request id the connection is closed"),
        )));
    };
    // Answered, so the peer learns why; a debug line only, as a peer can
    // send any number of them.
    tracing::debug!(peer = session.peer(), id, error = %message, "bad request answered");
    engine.metrics.error(&kind);
    respond(
        out,
        id,
        Outcome::Error(RemoteError::new(kind, message)),
        bounds,
        &engine.metrics,
    )
}

/// Appends one response frame to `out`. An answer whose encoding would
/// pass `bounds.max_answer` is replaced by a `LimitExceeded` error (and
/// one that memory cannot hold by a `MemoryError`); only when not even
/// that can be encoded is it [`Fatal`].
pub(super) fn respond(
    out: &mut Vec<u8>,
    id: u64,
    outcome: Outcome,
    bounds: &Bounds,
    metrics: &Metrics,
) -> Result<(), Fatal> {
    let response = Response { id, outcome };
    let Err(e) = encode_frame_into(&response, out, bounds.max_answer) else {
        return Ok(());
    };
    let error = match e {
        CodecError::TooLarge { limit } => RemoteError::new(
            ErrorKind::LimitExceeded,
            format!(
                "the answer is larger than the server's frame limit of {limit} bytes, \
                 so it was not sent"
            ),
        ),
        other => RemoteError::new(
            ErrorKind::MemoryError,
            format!("the answer could not be encoded: {other}"),
        ),
    };
    metrics.error(&error.kind);
    let response = Response {
        id,
        outcome: Outcome::Error(error),
    };
    encode_frame_into(&response, out, usize::MAX)
        .map_err(|e| Fatal(RemoteError::new(ErrorKind::MemoryError, e.to_string())))
}

/// Appends the error frame that ends a connection.
pub(super) fn respond_fatal(out: &mut Vec<u8>, fatal: &Fatal) {
    // A short error: failing to encode it leaves the close to speak.
    let _ = encode_frame_into(
        &Response::connection_error(fatal.0.clone()),
        out,
        usize::MAX,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp_proto::codec::decode;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn bounds(max_frame: u64, max_output: usize) -> Bounds {
        Bounds {
            max_frame,
            max_answer: max_frame as usize,
            max_output,
            max_decoded: usize::MAX,
        }
    }

    fn decode_response(out: &[u8]) -> (Response, usize) {
        let len = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        (decode(&out[4..4 + len]).unwrap(), 4 + len)
    }

    #[test]
    fn frames_are_answered_in_order_and_a_partial_one_stays() {
        let mut b = Buffers::new();
        b.input.extend(frame(b"one"));
        b.input.extend(frame(b"two"));
        b.input.extend(&frame(b"three")[..6]);
        let mut seen = Vec::new();
        let full = b
            .answer_frames(&bounds(1024, 1024), |f, _| {
                seen.push(f.to_vec());
                Ok(Flow::Next)
            })
            .unwrap();
        assert!(!full);
        assert_eq!(seen, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(b.input, &frame(b"three")[..6]);
    }

    #[test]
    fn stop_leaves_the_rest_buffered() {
        let mut b = Buffers::new();
        b.input.extend(frame(b"one"));
        b.input.extend(frame(b"two"));
        let mut seen = 0;
        b.answer_frames(&bounds(1024, 1024), |_, _| {
            seen += 1;
            Ok(Flow::Stop)
        })
        .unwrap();
        assert_eq!(seen, 1);
        assert_eq!(b.input, frame(b"two"));
    }

    #[test]
    fn a_full_output_stops_answering_until_it_is_written() {
        let mut b = Buffers::new();
        for _ in 0..10 {
            b.input.extend(frame(b"get"));
        }
        // Each answer is 100 bytes; the cap is 250: three answers (the
        // third starts under the cap), then nothing until the peer reads.
        let answer = |_: &[u8], out: &mut Vec<u8>| {
            out.extend_from_slice(&[7; 100]);
            Ok(Flow::Next)
        };
        let cap = bounds(1024, 250);
        assert!(b.answer_frames(&cap, answer).unwrap());
        assert_eq!(b.unwritten().len(), 300);
        assert_eq!(b.input.len(), 7 * frame(b"get").len());
        assert!(b.is_full(&cap));
        assert!(b.answer_frames(&cap, answer).unwrap());
        assert_eq!(b.unwritten().len(), 300, "answered while full");
        // Partly read: still full until the output drops under the cap.
        b.written(40);
        assert!(b.is_full(&cap));
        b.written(260);
        assert!(!b.is_full(&cap));
        assert!(b.answer_frames(&cap, answer).unwrap());
        assert_eq!(b.unwritten().len(), 300);
        assert_eq!(b.input.len(), 4 * frame(b"get").len());
    }

    #[test]
    fn an_oversized_header_is_fatal_with_a_limit_error() {
        let mut b = Buffers::new();
        b.input.extend(frame(&[0; 100]));
        let Fatal(e) = b
            .answer_frames(&bounds(10, 1024), |_, _| Ok(Flow::Next))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert!(e.message.contains("100 bytes"), "{e}");
        let mut b = Buffers::new();
        b.input.extend((-7i32).to_be_bytes());
        let Fatal(e) = b
            .answer_frames(&bounds(10, 1024), |_, _| Ok(Flow::Next))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ProtocolError);
        assert!(e.message.contains("bad message length"), "{e}");
    }

    #[test]
    fn written_bytes_leave_the_output() {
        let mut b = Buffers::new();
        b.output().extend_from_slice(b"abcdef");
        b.written(2);
        assert_eq!(b.unwritten(), b"cdef");
        b.written(4);
        assert!(b.unwritten().is_empty());
        assert!(b.output().is_empty());
        // A large buffer written in small steps keeps its unwritten bytes,
        // and drops the written ones once they are most of it.
        b.output().extend((0..SHRINK_ABOVE * 3).map(|i| i as u8));
        for _ in 0..SHRINK_ABOVE * 2 / 1000 {
            b.written(1000);
        }
        let done = SHRINK_ABOVE * 2 / 1000 * 1000;
        assert_eq!(b.unwritten().len(), SHRINK_ABOVE * 3 - done);
        assert_eq!(b.unwritten()[0], done as u8);
        assert!(
            b.output().len() < SHRINK_ABOVE * 3,
            "the written part stayed"
        );
    }

    #[test]
    fn a_response_frame_carries_its_length() {
        let mut out = vec![9];
        let metrics = Metrics::new(&indexmap::IndexMap::new());
        respond(
            &mut out,
            7,
            Outcome::Return(mp_proto::Value::None),
            &bounds(1024, 1024),
            &metrics,
        )
        .unwrap();
        let (r, n) = decode_response(&out[1..]);
        assert_eq!(1 + n, out.len());
        assert_eq!(r.id, 7);
    }

    #[test]
    fn an_answer_over_the_frame_limit_is_replaced_by_an_error() {
        let mut out = Vec::new();
        let metrics = Metrics::new(&indexmap::IndexMap::new());
        let big = mp_proto::Value::Str("x".repeat(10_000));
        respond(
            &mut out,
            3,
            Outcome::Return(big.clone()),
            &bounds(1000, 1 << 20),
            &metrics,
        )
        .unwrap();
        let (r, n) = decode_response(&out);
        assert_eq!(n, out.len());
        assert_eq!(r.id, 3);
        match r.outcome {
            Outcome::Error(e) => {
                assert_eq!(e.kind, ErrorKind::LimitExceeded);
                assert!(e.message.contains("frame limit of 1000 bytes"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // Under the limit, the same answer goes out whole.
        out.clear();
        respond(
            &mut out,
            4,
            Outcome::Return(big.clone()),
            &bounds(20_000, 1 << 20),
            &metrics,
        )
        .unwrap();
        assert_eq!(decode_response(&out).0.outcome, Outcome::Return(big));
    }

    #[test]
    fn a_fatal_error_is_addressed_to_no_request() {
        let mut out = Vec::new();
        let fatal = Fatal::protocol("bad".into());
        respond_fatal(&mut out, &fatal);
        let (r, _) = decode_response(&out);
        assert_eq!(r.as_connection_error(), Some(&fatal.0));
    }
}
