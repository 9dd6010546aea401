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
//! * `evented`: one task per connection on the event loop, blocking
//!   calls as tasks — every connection starts here.
//! * `dedicated`: a connection sending requests back to back is served
//!   by a thread of its own for as long as it keeps doing so.
//! * `requests`: the buffers both share, and a request's answer.
//!
//! Each frame's header is checked before it is trusted
//! ([`mp_proto::frame::decode_header`]). A request that does not decode
//! but whose id can be read is answered with its error (`ProtocolError`,
//! `OverflowError` for an int beyond 64 bits, `TypeError` for an
//! unhashable key) and the connection goes on. A frame that is too large
//! or has a bad length, or a request without a readable id, gets an error
//! addressed to no request ([`mp_proto::message::CONNECTION_ID`]) and
//! closes this connection only. Answers are held to the connection's
//! output cap (`requests`, "Bounds"; `evented`, "Backpressure"). When the
//! connection ends, its waiting calls are cancelled and awaited first,
//! then its session is ended (locks released, references dropped). On
//! server shutdown the loop answers what it has read, answers its waiting
//! calls with `ShuttingDown`, flushes and closes.

mod channel;
mod dedicated;
mod evented;
mod requests;

use std::sync::Arc;

use mp_proto::auth::{server_handshake_async, AuthOptions, AuthenticationError};
use mp_proto::codec::{decode, encode_into};
use mp_proto::frame::{read_frame_async, write_frame_async};
use mp_proto::message::{
    is_cpython_manager_message, negotiate, ChannelAnswer, Hello, HelloReply, SUPPORTED_VERSIONS,
};

use channel::Offered;
pub(crate) use dedicated::{is_timeout, BlockingSocket, Promotion, ReaderSpin, Socket, QUIET};
use evented::Connection;

use crate::admission::{Admission, HandshakeTicket};
use crate::engine::Engine;
use crate::limits::Limits;
use crate::metrics::HandshakeFailure;
use crate::quiet_log;

/// What every connection task shares.
pub(crate) struct ConnContext {
    pub(crate) authkey: Vec<u8>,
    pub(crate) auth: AuthOptions,
    pub(crate) limits: Limits,
    pub(crate) throttle: crate::throttle::AuthThrottle,
    pub(crate) admission: Admission,
    /// Who owns CPython clients' references ([`crate::cpython`]).
    pub(crate) python: crate::cpython::owners::Owners,
}

/// The most a hello may weigh.
const MAX_HELLO: u64 = 64 * 1024;

/// Serves one accepted connection to its end. `ticket` is its place
/// among the connections in their handshake, given back once the
/// handshake is over; a peer that authenticates then takes a connection
/// slot, or is told the server is full and dropped.
pub(crate) async fn serve_connection<S>(
    engine: Arc<Engine>,
    ctx: Arc<ConnContext>,
    mut stream: S,
    peer: String,
    ticket: HandshakeTicket,
) where
    S: Socket,
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
    // A shared-memory channel the client asked for, and its place under
    // the limit, once it has mapped it.
    let mut offered = None;
    let mut channel_place = None;
    let mut slot = None;
    // The first request of a CPython manager client, which is served by
    // `crate::cpython` instead of this protocol.
    let mut cpython_first = None;
    let handshake = tokio::time::timeout(ctx.limits.handshake_timeout, async {
        let authed = server_handshake_async(&mut stream, &ctx.authkey, &ctx.auth).await;
        ctx.throttle.record(&peer, &authed, &engine.metrics);
        authed.map_err(|e| match e {
            AuthenticationError::LegacyDisabled => "the peer uses the legacy CPython <= 3.11 \
                handshake (HMAC-MD5); start the server with --legacy-auth to accept it"
                .to_string(),
            e => e.to_string(),
        })?;
        slot = ctx.admission.slot();
        // CPython's client writes its first request right behind the
        // handshake's last message: acknowledge at once, not ~40 ms later.
        crate::cpython::quick_ack(stream.channel_fd());
        let hello = read_frame_async(&mut stream, MAX_HELLO)
            .await
            .map_err(|e| engine.metrics.bad_hello(HandshakeFailure::of_frame(&e), e))?
            .ok_or_else(|| {
                engine
                    .metrics
                    .bad_hello(HandshakeFailure::Closed, "closed before hello")
            })?;
        if is_cpython_manager_message(&hello) {
            if slot.is_none() {
                return Ok(false);
            }
            session = Some(engine.open_session(peer.clone()));
            cpython_first = Some(hello);
            return Ok(true);
        }
        let hello: Hello =
            decode(&hello).map_err(|e| engine.metrics.bad_hello(HandshakeFailure::Protocol, e))?;
        let mut reply = match (&slot, negotiate(&hello.versions, SUPPORTED_VERSIONS)) {
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
                channel: None,
            },
        };
        if let HelloReply::Welcome { channel, .. } = &mut reply {
            let max = ctx.limits.shared_memory_channels;
            let place = (hello.channel && stream.channel_fd().is_some())
                .then(|| engine.metrics.channel(max))
                .flatten();
            if let Some(place) = place {
                match Offered::new() {
                    Ok(o) => {
                        *channel = Some(o.offer());
                        offered = Some(o);
                        channel_place = Some(place);
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "cannot make a shared-memory channel")
                    }
                }
            }
        }
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
        if offered.is_some() {
            let answer = read_frame_async(&mut stream, MAX_HELLO)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("closed before answering the channel offer")?;
            let answer: ChannelAnswer = decode(&answer).map_err(|e| e.to_string())?;
            if !answer.attached {
                offered = None;
                channel_place = None;
            }
        }
        Ok::<bool, String>(welcome)
    });
    // A stop does not wait for peers still in their handshake.
    let greeted = tokio::select! {
        greeted = handshake => greeted,
        () = engine.shutdown.wait() => Ok(Err("the server is stopping".to_string())),
    };
    drop(ticket);
    if !matches!(greeted, Ok(Ok(true))) {
        if let Some(session) = session.take() {
            engine.end_session(&session);
        }
    }
    match greeted {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            engine.metrics.refused();
            quiet_log::info("refused", || tracing::info!(%peer, "refused a connection"));
            return;
        }
        Ok(Err(e)) => {
            quiet_log::info(
                "handshake",
                || tracing::info!(%peer, error = %e, "handshake failed"),
            );
            return;
        }
        Err(_) => {
            engine.metrics.handshake_failed(HandshakeFailure::Timeout);
            quiet_log::info("timeout", || tracing::info!(%peer, "handshake timed out"));
            return;
        }
    }
    let Some(session) = session else {
        return;
    };
    tracing::debug!(peer = session.peer(), session = session.id().0, "connected");
    if let Some(first) = cpython_first {
        let end = crate::cpython::serve(&engine, &ctx, stream, &session, first).await;
        engine.end_session(&session);
        drop(slot);
        tracing::debug!(peer = session.peer(), session = session.id().0, reason = %end, "CPython client disconnected");
        return;
    }
    let mut conn = Connection::new(&engine, &ctx, &session);
    let end = match (offered, stream.channel_fd()) {
        (Some(offered), Some(fd)) => {
            let (socket, closer) = offered.attach(stream, fd);
            let end = conn.run(socket).await;
            drop(closer);
            end
        }
        _ => conn.run(stream).await,
    };
    drop(channel_place);
    // Cancel the waiting calls and wait until they are gone, so nothing
    // can be granted to this session after it is torn down.
    conn.waiting.shutdown().await;
    engine.end_session(&session);
    drop(slot);
    tracing::debug!(peer = session.peer(), session = session.id().0, reason = %end, "disconnected");
}
