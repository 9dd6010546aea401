//! CPython's own manager clients: `SyncManager(address=..., authkey=...)
//! .connect()` in an unmodified Python program, served by the same engine
//! and on the same port as the SDK's clients.
//!
//! # Recognition
//!
//! After the handshake an SDK client sends a CBOR hello; a CPython client
//! sends its first request, a pickle, which opens with `PROTO` (`0x80`)
//! and its version ([`mp_proto::message::is_cpython_manager_message`]).
//! The connection is then served here, one request and one reply at a
//! time, as CPython's `Server.serve_client` does.
//!
//! # Conversation
//!
//! A request is the pickled tuple `(ident, methodname, args, kwds)`;
//! `ident` is `None` for the server's own calls (`create`, `incref`,
//! `decref`, `get_methods`, `debug_info`, `number_of_objects`,
//! `accept_connection`, `dummy`, `shutdown`) and the object's hex id
//! otherwise. Each becomes an engine [`Request`](mp_proto::message::Request), so every object and
//! limit is the one SDK clients meet. The reply is pickled in the
//! request's protocol (`calls`, `replies`). A request that cannot be read — a
//! pickle the allow-list refuses (`os.system` in a `__reduce__`), one past
//! a bound, one that is not such a tuple — is answered `#TRACEBACK`
//! (raised as `RemoteError` by the client) and the connection goes on: it
//! costs that client that one call. A frame whose header is past
//! `max_frame_bytes`, or a broken frame, closes the connection.
//!
//! CPython opens a connection for each `create`, `incref` and `decref`
//! and closes it after the one reply, and keeps one connection per thread
//! for method calls (`accept_connection`); both are served by the same
//! loop. A blocking call (`Queue.get`, `Lock.acquire`) is awaited while
//! the socket is watched, so a client that goes away cancels it.
//!
//! # Where a connection is served
//!
//! Every connection starts on the event loop (`serve`). One that keeps
//! sending requests back to back (the SDK's `Promotion` rule) is handed,
//! with where it stands (`State`), to a thread of its own (`dedicated`)
//! until it waits on a call, stops reading, goes quiet or the server
//! stops, as busy SDK connections are (`crate::connection`).
//!
//! # References
//!
//! A CPython client's references cross its connections (made on one,
//! given back on another), so they cannot belong to the connection's
//! session as an SDK client's do. They belong to an owner session
//! (`owners`): for a client on the Unix socket, one per client process,
//! ended (its references dropped, as for an SDK client that disconnects)
//! when that process exits; for TCP clients, whose process the server
//! cannot see, one shared by them all, whose references live until given
//! back, as with CPython's own server. An `RLock`, waits and the
//! references inside returned values (held until the client has increfed
//! them) stay with the connection's own session and end with it; what a
//! `Lock` or semaphore holds has no owner, as in Python (`owners`).
//!
//! # Values
//!
//! [`values`] maps pickled values onto the engine's and back, and says
//! how proxies are kept to this server's address.
//!
//! # Latency
//!
//! CPython's client writes the handshake's last message and its request
//! as two small writes, so with Nagle on its side and delayed ACK on ours
//! every new connection would wait ~40 ms. On TCP the server sets
//! `TCP_QUICKACK` (`quick_ack`) once the handshake is over, and again
//! whenever a read leaves a frame unfinished (`input`), which sends an
//! ACK the kernel was holding back. Requests are cut from one buffered
//! read each (`input`): one `recv` per call where CPython's server makes
//! two.

mod calls;
mod dedicated;
mod input;
pub(crate) mod owners;
mod replies;
pub mod values;

use std::os::fd::RawFd;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::connection::{ConnContext, Promotion, ReaderSpin, Socket};
use crate::engine::Engine;
use crate::session::Session;
use calls::{Answer, Conn, Step, Waiting};
use dedicated::Handback;
use input::Input;

/// Where a connection stands between two requests; it goes with the
/// connection to a dedicated thread and back.
struct State {
    input: Input,
    /// Reply bytes not yet written.
    out: Vec<u8>,
    /// Why the connection ends once `out` is written, if it does.
    end: Option<String>,
    /// A request waiting in the engine, to answer next.
    waiting: Option<Waiting>,
    /// Whether a thread polls for the next request, learned across its
    /// turns on threads.
    spin: ReaderSpin,
}

/// Serves a CPython manager client whose first request is `first`, until
/// it closes, breaks a frame, or the server stops. Returns why it ended.
pub(crate) async fn serve<S: Socket>(
    engine: &Arc<Engine>,
    ctx: &Arc<ConnContext>,
    mut stream: S,
    session: &Arc<Session>,
    first: Vec<u8>,
) -> String {
    let conn = Arc::new(Conn::new(engine, ctx, stream.channel_fd(), session));
    // One shutdown future for the whole connection, not one per request.
    let stopping = engine.shutdown.wait();
    tokio::pin!(stopping);
    let mut state = State {
        input: Input::new(),
        out: Vec::new(),
        end: None,
        waiting: None,
        spin: ReaderSpin::default(),
    };
    let mut promotion = Promotion::default();
    state.take(&conn, conn.begin(&first));
    loop {
        if let Some(Waiting { call, then }) = state.waiting.take() {
            promotion.reset();
            let answer = tokio::select! {
                outcome = call => conn.finish(&outcome, &then),
                gone = state.input.carry(&mut stream) => {
                    let why = match gone {
                        Ok(()) => "closed by the client during a call".to_string(),
                        Err(e) => format!("read failed during a call: {e}"),
                    };
                    let e = mp_proto::RemoteError::new(
                        mp_proto::ErrorKind::Other("EOFError".into()),
                        why.clone(),
                    );
                    Answer::error(&e, then.protocol, Some(why))
                }
                () = &mut stopping => {
                    let e = crate::errors::shutting_down();
                    Answer::error(&e, then.protocol, Some("the server is stopping".into()))
                }
            };
            state.queue(&conn, answer);
        }
        if !state.out.is_empty() {
            if let Err(e) = stream.write_all(&state.out).await {
                return format!("write failed: {e}");
            }
            state.out.clear();
        }
        if let Some(end) = state.end.take() {
            return end;
        }
        if S::DEDICATED && promotion.due() {
            promotion.reset();
            if let Some(_place) = engine
                .metrics
                .dedicated_reader(ctx.limits.dedicated_readers)
            {
                match dedicate(&conn, stream, state).await {
                    Ok((back, returned)) => (stream, state) = (back, returned),
                    Err(why) => return why,
                }
                continue;
            }
        }
        promotion.waiting();
        let read = tokio::select! {
            read = state.input.next(&mut stream, conn.max_frame, conn.tcp) => read,
            () = &mut stopping => return "the server is stopping".into(),
        };
        match read {
            Ok(Some(frame)) => {
                promotion.read();
                let step = conn.begin(state.input.frame(frame));
                state.take(&conn, step);
            }
            Ok(None) => return "closed by the client".into(),
            Err(e) => return format!("bad frame: {e}"),
        }
    }
}

impl State {
    /// Takes in how far a request got: an answer to write, or a call to
    /// wait on.
    fn take(&mut self, conn: &Conn, step: Step) {
        match step {
            Step::Answer(answer) => self.queue(conn, answer),
            Step::Wait(waiting) => self.waiting = Some(waiting),
        }
    }

    /// Adds `answer` to what is to be written.
    fn queue(&mut self, conn: &Conn, answer: Answer) {
        conn.encode(&answer, &mut self.out);
        self.end = answer.end;
    }
}

/// Hands the connection to a thread of its own (`dedicated`) until it
/// gives it back: the stream and where it stands, or why it ended.
async fn dedicate<S: Socket>(
    conn: &Arc<Conn>,
    stream: S,
    mut state: State,
) -> Result<(S, State), String> {
    let mut socket = stream
        .into_blocking()
        .map_err(|e| format!("cannot hand the socket to a thread: {e}"))?;
    let thread_conn = Arc::clone(conn);
    let (socket, state, handback) = tokio::task::spawn_blocking(move || {
        let handback = dedicated::serve(&thread_conn, &mut socket, &mut state);
        (socket, state, handback)
    })
    .await
    .map_err(|e| format!("dedicated reader failed: {e}"))?;
    match handback {
        Handback::Resume => {
            let stream = S::from_blocking(socket)
                .map_err(|e| format!("cannot take the socket back from its thread: {e}"))?;
            Ok((stream, state))
        }
        Handback::Ended(why) => Err(why),
    }
}

/// Turns on `TCP_QUICKACK` for TCP socket `fd` (the kernel turns it off
/// again by itself), sending at once an ACK it was delaying. A no-op for
/// other sockets.
pub(crate) fn quick_ack(fd: Option<RawFd>) {
    let Some(fd) = fd else { return };
    let one: libc::c_int = 1;
    // SAFETY: `fd` is an open TCP socket; the option value is a live
    // `c_int` of the size passed. A failure changes nothing and is
    // ignored (the ACK is then only later).
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
