//! What both ways of serving a connection share: the bytes read and not
//! yet answered, the answers not yet written, and the step from one
//! request frame to its answer.
//!
//! The event loop ([`super::evented`]) and a dedicated reader thread
//! ([`super::dedicated`]) hand these buffers to each other, so a
//! connection can move between them at any request boundary without
//! losing a byte.

use std::pin::Pin;
use std::sync::Arc;

use mp_proto::codec::{decode, encode_into};
use mp_proto::frame::decode_header;
use mp_proto::message::{Outcome, Request, Response};

use crate::engine::{Dispatch, Engine};
use crate::session::Session;

/// Read buffer kept by an idle connection.
pub(super) const IDLE_BUFFER: usize = 2048;
/// A buffer grown past this is shrunk back when it empties.
const SHRINK_ABOVE: usize = 256 * 1024;

/// A blocking call's outcome, once it has one.
pub(super) type Waiting = Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>;

/// Whether to go on answering the frames already buffered.
pub(super) enum Flow {
    /// Answer the next one.
    Next,
    /// Stop after this one; the rest stay buffered.
    Stop,
}

/// One request answered, or a blocking call to wait on.
pub(super) enum Answer {
    /// The answer is in the output buffer.
    Sent,
    /// A blocking call: request id and the future of its outcome.
    Waits(u64, Waiting),
}

/// A connection's unanswered input and unwritten output.
#[derive(Default)]
pub(super) struct Buffers {
    /// Bytes read, starting at a frame boundary.
    pub(super) input: Vec<u8>,
    /// Encoded response frames not yet written.
    pub(super) output: Vec<u8>,
}

impl Buffers {
    pub(super) fn new() -> Buffers {
        Buffers {
            input: Vec::with_capacity(IDLE_BUFFER),
            output: Vec::new(),
        }
    }

    /// Passes every complete buffered frame, in order, to `answer` (with
    /// the output buffer to answer into) until it says stop, then drops
    /// the answered bytes and leaves room to read the next ones. A header
    /// that is malformed or over `max` bytes is an error.
    pub(super) fn answer_frames(
        &mut self,
        max: u64,
        mut answer: impl FnMut(&[u8], &mut Vec<u8>) -> Result<Flow, String>,
    ) -> Result<(), String> {
        let mut start = 0;
        loop {
            match decode_header(&self.input[start..], max) {
                Ok(Some((header, len))) if self.input.len() - start >= header + len => {
                    let body = start + header..start + header + len;
                    start = body.end;
                    if let Flow::Stop = answer(&self.input[body], &mut self.output)? {
                        break;
                    }
                }
                Ok(Some((header, len))) => {
                    // Grow toward the frame as its bytes arrive, never
                    // trusting the header for more than double.
                    let need = header + len - (self.input.len() - start);
                    let grow = need.min(self.input.len().max(64 * 1024));
                    self.input.reserve(grow);
                    break;
                }
                Ok(None) => break,
                Err(e) => return Err(format!("bad frame: {e}")),
            }
        }
        if start > 0 {
            self.input.drain(..start);
        }
        if self.input.is_empty() && self.input.capacity() > SHRINK_ABOVE {
            self.input.shrink_to(IDLE_BUFFER);
        }
        if self.input.capacity() - self.input.len() < IDLE_BUFFER / 2 {
            self.input.reserve(IDLE_BUFFER);
        }
        Ok(())
    }

    /// Forgets the first `n` output bytes, written to the peer.
    pub(super) fn written(&mut self, n: usize) {
        if n >= self.output.len() {
            self.output.clear();
            if self.output.capacity() > SHRINK_ABOVE {
                self.output.shrink_to(IDLE_BUFFER);
            }
        } else {
            self.output.drain(..n);
        }
    }
}

/// Decodes one request frame and answers it into `out`, or returns the
/// blocking call to wait on. A frame that does not decode is an error
/// that closes the connection (the caller counts it: every error out of
/// [`Buffers::answer_frames`] is a protocol error).
pub(super) fn answer(
    engine: &Arc<Engine>,
    session: &Arc<Session>,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<Answer, String> {
    let request: Request = match decode(frame) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(peer = session.peer(), error = %e, "malformed request");
            return Err(format!("malformed request: {e}"));
        }
    };
    let id = request.id;
    match engine.call(session, request) {
        Dispatch::Ready(outcome) => respond(out, id, outcome).map(|()| Answer::Sent),
        Dispatch::Pending(future) => Ok(Answer::Waits(id, future)),
    }
}

/// Appends one response frame to `out`.
pub(super) fn respond(out: &mut Vec<u8>, id: u64, outcome: Outcome) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let response = Response { id, outcome };
    if let Err(e) = encode_into(&response, out) {
        out.truncate(at);
        return Err(format!("cannot encode a response: {e}"));
    }
    let len = out.len() - at - 4;
    match i32::try_from(len) {
        Ok(n) => out[at..at + 4].copy_from_slice(&n.to_be_bytes()),
        Err(_) => {
            // Over 2 GiB: CPython's long form, -1 then 8 bytes.
            let mut long = Vec::with_capacity(12);
            long.extend_from_slice(&(-1i32).to_be_bytes());
            long.extend_from_slice(&(len as u64).to_be_bytes());
            out.splice(at..at + 4, long);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_are_answered_in_order_and_a_partial_one_stays() {
        let mut b = Buffers::new();
        b.input.extend(frame(b"one"));
        b.input.extend(frame(b"two"));
        b.input.extend(&frame(b"three")[..6]);
        let mut seen = Vec::new();
        b.answer_frames(1024, |f, _| {
            seen.push(f.to_vec());
            Ok(Flow::Next)
        })
        .unwrap();
        assert_eq!(seen, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(b.input, &frame(b"three")[..6]);
    }

    #[test]
    fn stop_leaves_the_rest_buffered() {
        let mut b = Buffers::new();
        b.input.extend(frame(b"one"));
        b.input.extend(frame(b"two"));
        let mut seen = 0;
        b.answer_frames(1024, |_, _| {
            seen += 1;
            Ok(Flow::Stop)
        })
        .unwrap();
        assert_eq!(seen, 1);
        assert_eq!(b.input, frame(b"two"));
    }

    #[test]
    fn an_oversized_header_is_an_error() {
        let mut b = Buffers::new();
        b.input.extend(frame(&[0; 100]));
        assert!(b.answer_frames(10, |_, _| Ok(Flow::Next)).is_err());
    }

    #[test]
    fn written_bytes_leave_the_output() {
        let mut b = Buffers::new();
        b.output.extend_from_slice(b"abcdef");
        b.written(2);
        assert_eq!(b.output, b"cdef");
        b.written(4);
        assert!(b.output.is_empty());
    }

    #[test]
    fn a_response_frame_carries_its_length() {
        let mut out = vec![9];
        respond(&mut out, 7, Outcome::Return(mp_proto::Value::None)).unwrap();
        let len = i32::from_be_bytes(out[1..5].try_into().unwrap()) as usize;
        assert_eq!(out.len(), 1 + 4 + len);
        let r: Response = decode(&out[5..]).unwrap();
        assert_eq!(r.id, 7);
    }
}
