//! One client connection: handshake, hello, then many calls in flight.
//!
//! # Conversation
//!
//! CPython's mutual HMAC handshake ([`mp_proto::auth`]), the hello exchange
//! ([`mp_proto::message`]), then frames of requests and responses, each a
//! CBOR message, matched by request id.
//!
//! # How a connection is served
//!
//! One task owns the socket. It reads into a buffer, checks each frame's
//! header before trusting it ([`mp_proto::frame::decode_header`]) and
//! answers every complete request in the buffer: a call that finishes at
//! once is encoded straight into the output buffer, a blocking one becomes
//! a task in a `JoinSet` whose outcome comes back to this loop. Output is
//! written once per batch, so pipelined requests cost one write. A blocking
//! call therefore never holds up the others on this connection, and a
//! connection never holds up another.
//!
//! A frame that is too large or a message that does not decode closes
//! this connection only. When the connection ends, its waiting calls are
//! cancelled and awaited first, then its session is ended (locks released,
//! references dropped). On server shutdown the loop answers what it has
//! read, answers its waiting calls with `ShuttingDown`, flushes and closes.

use std::collections::HashMap;
use std::sync::Arc;

use mp_proto::auth::{server_handshake_async, AuthOptions};
use mp_proto::codec::{decode, encode_into};
use mp_proto::frame::{decode_header, read_frame_async, write_frame_async};
use mp_proto::message::{
    negotiate, Hello, HelloReply, Outcome, Request, Response, SUPPORTED_VERSIONS,
};
use mp_proto::{ErrorKind, RemoteError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use crate::engine::{Dispatch, Engine};
use crate::errors::shutting_down;
use crate::limits::Limits;
use crate::metrics::HandshakeFailure;
use crate::session::Session;

/// What every connection task shares.
pub(crate) struct ConnContext {
    pub(crate) authkey: Vec<u8>,
    pub(crate) auth: AuthOptions,
    pub(crate) limits: Limits,
    pub(crate) throttle: crate::throttle::AuthThrottle,
}

/// The most a hello may weigh.
const MAX_HELLO: u64 = 64 * 1024;
/// Read buffer kept by an idle connection.
const IDLE_BUFFER: usize = 2048;
/// A buffer grown past this is shrunk back when it empties.
const SHRINK_ABOVE: usize = 256 * 1024;

/// Serves one accepted connection to its end. `slot` is `None` when the
/// server is at its connection limit: the peer is told so and dropped.
pub(crate) async fn serve_connection<S>(
    engine: Arc<Engine>,
    ctx: Arc<ConnContext>,
    mut stream: S,
    peer: String,
    slot: Option<OwnedSemaphorePermit>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let _open = engine.metrics.connection();
    if !ctx
        .throttle
        .wait(&peer, &engine.metrics, &engine.shutdown)
        .await
    {
        return;
    }
    let mut session = None;
    let greeted = tokio::time::timeout(ctx.limits.handshake_timeout, async {
        let authed = server_handshake_async(&mut stream, &ctx.authkey, &ctx.auth).await;
        ctx.throttle.record(&peer, &authed, &engine.metrics);
        authed.map_err(|e| e.to_string())?;
        let hello = read_frame_async(&mut stream, MAX_HELLO)
            .await
            .map_err(|e| engine.metrics.bad_hello(HandshakeFailure::of_frame(&e), e))?
            .ok_or_else(|| {
                engine
                    .metrics
                    .bad_hello(HandshakeFailure::Closed, "closed before hello")
            })?;
        let hello: Hello =
            decode(&hello).map_err(|e| engine.metrics.bad_hello(HandshakeFailure::Protocol, e))?;
        let reply = match (&slot, negotiate(&hello.versions, SUPPORTED_VERSIONS)) {
            (None, _) => HelloReply::Refused {
                message: format!(
                    "too many connections: the server's limit is {}",
                    ctx.limits.max_connections
                ),
            },
            (Some(_), Err(e)) => HelloReply::Refused {
                message: e.to_string(),
            },
            (Some(_), Ok(version)) => HelloReply::Welcome {
                version,
                server: format!("mpserver/{}", env!("CARGO_PKG_VERSION")),
            },
        };
        let mut bytes = Vec::new();
        encode_into(&reply, &mut bytes).map_err(|e| e.to_string())?;
        let welcome = matches!(reply, HelloReply::Welcome { .. });
        // The session opens before the peer hears it is welcome, so that
        // what it asks next (`status`, say) already counts it.
        if welcome {
            session = Some(engine.open_session(peer.clone()));
        }
        write_frame_async(&mut stream, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<bool, String>(welcome)
    })
    .await;
    if !matches!(greeted, Ok(Ok(true))) {
        if let Some(session) = session.take() {
            engine.end_session(&session);
        }
    }
    match greeted {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            engine.metrics.refused();
            tracing::info!(%peer, "refused a connection");
            return;
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            engine.metrics.handshake_failed(HandshakeFailure::Timeout);
            tracing::info!(%peer, "handshake timed out");
            return;
        }
    }
    let Some(session) = session else {
        return;
    };
    tracing::debug!(peer = session.peer(), session = session.id().0, "connected");
    let mut conn = Connection {
        engine: &engine,
        ctx: &ctx,
        session: &session,
        waiting: JoinSet::new(),
        waiting_ids: HashMap::new(),
        out: Vec::new(),
    };
    let end = conn.run(&mut stream).await;
    // Cancel the waiting calls and wait until they are gone, so nothing
    // can be granted to this session after it is torn down.
    conn.waiting.shutdown().await;
    engine.end_session(&session);
    drop(slot);
    tracing::debug!(peer = session.peer(), session = session.id().0, reason = %end, "disconnected");
}

struct Connection<'a> {
    engine: &'a Arc<Engine>,
    ctx: &'a ConnContext,
    session: &'a Arc<Session>,
    /// Blocking calls, each yielding its request id and outcome.
    waiting: JoinSet<(u64, Outcome)>,
    /// Request id of each waiting task, to answer one that failed.
    waiting_ids: HashMap<tokio::task::Id, u64>,
    /// Encoded response frames not yet written.
    out: Vec<u8>,
}

impl Connection<'_> {
    /// Serves requests until the peer leaves, misbehaves or the server
    /// stops; returns why it ended.
    async fn run<S>(&mut self, stream: &mut S) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut inbuf: Vec<u8> = Vec::with_capacity(IDLE_BUFFER);
        // One shutdown future for the whole connection: making one per
        // request would register and unregister a waiter every time.
        let engine = Arc::clone(self.engine);
        let stopping = engine.shutdown.wait();
        tokio::pin!(stopping);
        let mut stopped = false;
        let max = self.ctx.limits.max_frame_bytes;
        loop {
            // Answer every complete frame already buffered.
            let mut start = 0;
            loop {
                match decode_header(&inbuf[start..], max) {
                    Ok(Some((header, len))) if inbuf.len() - start >= header + len => {
                        let body = start + header..start + header + len;
                        start = body.end;
                        if let Err(e) = self.handle(&inbuf[body]) {
                            return e;
                        }
                    }
                    Ok(Some((header, len))) => {
                        // Grow toward the frame as its bytes arrive, never
                        // trusting the header for more than double.
                        let need = header + len - (inbuf.len() - start);
                        let grow = need.min(inbuf.len().max(64 * 1024));
                        inbuf.reserve(grow);
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => return self.protocol_error(format!("bad frame: {e}")),
                }
            }
            if start > 0 {
                inbuf.drain(..start);
            }
            if inbuf.is_empty() && inbuf.capacity() > SHRINK_ABOVE {
                inbuf.shrink_to(IDLE_BUFFER);
            }
            if inbuf.capacity() - inbuf.len() < IDLE_BUFFER / 2 {
                inbuf.reserve(IDLE_BUFFER);
            }
            while let Some(done) = self.waiting.try_join_next_with_id() {
                self.finished(done);
            }
            if let Err(e) = self.flush(stream).await {
                return e;
            }
            if stopped {
                return self.stop(stream).await;
            }
            // Biased: the order is fixed, which spares a random number per
            // request; the stop comes first so a flood cannot starve it.
            tokio::select! {
                biased;
                () = &mut stopping, if !stopped => stopped = true,
                read = stream.read_buf(&mut inbuf) => match read {
                    Ok(0) => return "closed by peer".into(),
                    Ok(n) => self.engine.metrics.received(n),
                    Err(e) => return format!("read failed: {e}"),
                },
                Some(done) = self.waiting.join_next_with_id(), if !self.waiting.is_empty() => {
                    self.finished(done);
                }
            }
        }
    }

    /// Answers one request frame; an error closes the connection.
    fn handle(&mut self, frame: &[u8]) -> Result<(), String> {
        let request: Request = match decode(frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(peer = self.session.peer(), error = %e, "malformed request");
                return Err(self.protocol_error(format!("malformed request: {e}")));
            }
        };
        let id = request.id;
        match self.engine.call(self.session, request) {
            Dispatch::Ready(outcome) => self.respond(id, outcome),
            Dispatch::Pending(future) => {
                if self.waiting.len() >= self.ctx.limits.max_in_flight {
                    // Dropping the future cancels the wait it registered.
                    drop(future);
                    self.engine.metrics.error(&ErrorKind::LimitExceeded);
                    let error = RemoteError::new(
                        ErrorKind::LimitExceeded,
                        format!(
                            "too many blocking calls in flight on this connection (limit {})",
                            self.ctx.limits.max_in_flight
                        ),
                    );
                    return self.respond(id, Outcome::Error(error));
                }
                let handle = self.waiting.spawn(async move { (id, future.await) });
                self.waiting_ids.insert(handle.id(), id);
                Ok(())
            }
        }
    }

    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, (u64, Outcome)), tokio::task::JoinError>,
    ) {
        let answer = match done {
            Ok((task, (id, outcome))) => {
                self.waiting_ids.remove(&task);
                Some((id, outcome))
            }
            Err(e) => {
                let id = self.waiting_ids.remove(&e.id());
                let message = if e.is_panic() {
                    tracing::error!(
                        peer = self.session.peer(),
                        "a shared object's method panicked"
                    );
                    "internal error in the shared object's method"
                } else {
                    "the call was cancelled"
                };
                id.map(|id| {
                    (
                        id,
                        Outcome::Error(RemoteError::new(ErrorKind::RuntimeError, message)),
                    )
                })
            }
        };
        if let Some((id, outcome)) = answer {
            // Encoding only fails when memory runs out; the connection
            // ends at the next flush in that case.
            let _ = self.respond(id, outcome);
        }
    }

    /// Counts a frame or request that ends the connection; returns `why`.
    fn protocol_error(&self, why: String) -> String {
        self.engine.metrics.error(&ErrorKind::ProtocolError);
        why
    }

    /// Appends one response frame to the output buffer.
    fn respond(&mut self, id: u64, outcome: Outcome) -> Result<(), String> {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        let response = Response { id, outcome };
        if let Err(e) = encode_into(&response, &mut self.out) {
            self.out.truncate(at);
            return Err(format!("cannot encode a response: {e}"));
        }
        let len = self.out.len() - at - 4;
        match i32::try_from(len) {
            Ok(n) => self.out[at..at + 4].copy_from_slice(&n.to_be_bytes()),
            Err(_) => {
                // Over 2 GiB: CPython's long form, -1 then 8 bytes.
                let mut long = Vec::with_capacity(12);
                long.extend_from_slice(&(-1i32).to_be_bytes());
                long.extend_from_slice(&(len as u64).to_be_bytes());
                self.out.splice(at..at + 4, long);
            }
        }
        Ok(())
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.engine.metrics.sent(self.out.len());
        let result = stream.write_all(&self.out).await;
        self.out.clear();
        if self.out.capacity() > SHRINK_ABOVE {
            self.out.shrink_to(IDLE_BUFFER);
        }
        result.map_err(|e| format!("write failed: {e}"))
    }

    /// The server is stopping: answer the waiting calls and close.
    async fn stop<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> String {
        self.waiting.abort_all();
        while let Some(done) = self.waiting.join_next_with_id().await {
            match done {
                Ok(done) => self.finished(Ok(done)),
                Err(e) => {
                    if let Some(id) = self.waiting_ids.remove(&e.id()) {
                        let _ = self.respond(id, Outcome::Error(shutting_down()));
                    }
                }
            }
        }
        let _ = self.flush(stream).await;
        let _ = stream.shutdown().await;
        "server shutting down".into()
    }
}
