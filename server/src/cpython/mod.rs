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
//! otherwise. Each becomes an engine [`Request`], so every object and
//! limit is the one SDK clients meet. The reply is pickled in the
//! request's protocol (`replies`). A request that cannot be read — a
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

mod input;
pub(crate) mod owners;
mod replies;
pub mod values;

use std::os::fd::RawFd;
use std::sync::Arc;

use mp_pickle::{Address, Protocol, Value as Py};
use mp_proto::frame::write_frame_async;
use mp_proto::message::{Kwargs, Outcome, Request, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::{ErrorKind, ObjectId, RemoteError};

use crate::connection::{ConnContext, Socket};
use crate::engine::Engine;
use crate::object::Reply;
use crate::quiet_log;
use crate::session::Session;
use input::Input;
use values::Side;

/// CPython's server call that makes a connection a thread's own.
const ACCEPT_CONNECTION: &str = "accept_connection";

/// What one connection needs, besides its socket.
struct Conn<'a> {
    engine: &'a Arc<Engine>,
    python: &'a owners::Owners,
    session: &'a Arc<Session>,
    owner: Arc<Session>,
    client_address: Address,
    tcp: Option<RawFd>,
    limits: mp_pickle::Limits,
    max_frame: u64,
}

/// Serves a CPython manager client whose first request is `first`, until
/// it closes, breaks a frame, or the server stops. Returns why it ended.
pub(crate) async fn serve<S: Socket>(
    engine: &Arc<Engine>,
    ctx: &ConnContext,
    stream: &mut S,
    session: &Arc<Session>,
    first: Vec<u8>,
) -> String {
    let fd = stream.channel_fd();
    let (client_address, tcp) = client_address(fd, &engine.address());
    let owner = ctx.python.owner(engine, fd, tcp.is_none());
    let conn = Conn {
        engine,
        python: &ctx.python,
        session,
        owner,
        client_address,
        tcp,
        limits: mp_pickle::Limits {
            max_input_bytes: usize::try_from(ctx.limits.max_frame_bytes).unwrap_or(usize::MAX),
            max_value_bytes: usize::try_from(ctx.limits.max_value_bytes)
                .unwrap_or(usize::MAX)
                .max(1024 * 1024),
            ..mp_pickle::Limits::default()
        },
        max_frame: ctx.limits.max_frame_bytes,
    };
    let mut input = Input::new();
    let mut next = Some(first);
    loop {
        let request = match next.take() {
            Some(frame) => mp_pickle::read(&frame, &conn.limits),
            None => {
                let read = tokio::select! {
                    read = input.next(stream, conn.max_frame, conn.tcp) => read,
                    () = engine.shutdown.wait() => return "the server is stopping".into(),
                };
                match read {
                    Ok(Some(frame)) => mp_pickle::read(input.frame(frame), &conn.limits),
                    Ok(None) => return "closed by the client".into(),
                    Err(e) => return format!("bad frame: {e}"),
                }
            }
        };
        let (reply, protocol, end) = conn.answer(request, stream, &mut input).await;
        let bytes = match mp_pickle::dumps(&reply, protocol) {
            Ok(bytes) if bytes.len() as u64 <= conn.max_frame => bytes,
            Ok(bytes) => encode_error(&RemoteError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "the answer of {} bytes exceeds the server's frame limit of {} bytes",
                    bytes.len(),
                    conn.max_frame
                ),
            )),
            Err(e) => encode_error(&RemoteError::new(
                ErrorKind::Other("PicklingError".into()),
                format!("cannot pickle the answer: {e}"),
            )),
        };
        if let Err(e) = write_frame_async(stream, &bytes).await {
            return format!("write failed: {e}");
        }
        if let Some(end) = end {
            return end;
        }
    }
}

fn encode_error(e: &RemoteError) -> Vec<u8> {
    // A traceback of a str always pickles.
    mp_pickle::dumps(&replies::error(e), Protocol::V4).unwrap_or_default()
}

impl Conn<'_> {
    /// The reply to one request frame (as unpickled), its protocol, and
    /// a reason to end the connection after it, if any.
    async fn answer<S: Socket>(
        &self,
        request: Result<mp_pickle::Unpickled, mp_pickle::UnpicklingError>,
        stream: &mut S,
        input: &mut Input,
    ) -> (Py, Protocol, Option<String>) {
        let read = match request {
            Ok(read) => read,
            Err(e) => {
                let peer = self.session.peer().to_owned();
                quiet_log::info(
                    "pickle",
                    || tracing::info!(%peer, error = %e, "refused a request from a CPython client"),
                );
                let text = format!("ProtocolError: the server refused the request: {e}");
                return (replies::traceback(&text), Protocol::V4, None);
            }
        };
        let protocol = Protocol::for_reply(read.protocol);
        let server_address = self.engine.address();
        let exposed = |typeid: &str| self.engine.spec(typeid).map(|s| s.exposed.clone());
        let side = Side {
            server_address: &server_address,
            client_address: &self.client_address,
            exposed: &exposed,
            limits: &self.limits,
        };
        let request = match self.request(read.value, &side) {
            Ok(request) => request,
            Err(e) => return (replies::error(&e), protocol, None),
        };
        // CPython's `accept_connection(name)` turns a connection into a
        // thread's connection for method calls; here every connection
        // serves both kinds of call, so it only answers.
        if request.target == Target::Server && request.method == ACCEPT_CONNECTION {
            return (
                replies::outcome(&Outcome::Return(mp_proto::Value::None), false, &side),
                protocol,
                None,
            );
        }
        let created = request.target == Target::Server
            && matches!(
                ServerMethod::from_name(&request.method),
                Some(ServerMethod::Create | ServerMethod::Lookup)
            );
        let unowned;
        let (session, object_call) = match request.target {
            Target::Server => (&self.owner, false),
            Target::Object(id) if self.acquires_unowned(id) => {
                unowned = self.python.unowned(self.engine);
                (&unowned, true)
            }
            Target::Object(_) => (self.session, true),
        };
        let outcome = match self.engine.call(session, request) {
            Reply::Ready(outcome) => outcome,
            Reply::Pending(future) => {
                tokio::select! {
                    outcome = future => outcome,
                    gone = input.carry(stream) => {
                        let why = match gone {
                            Ok(()) => "closed by the client during a call".to_string(),
                            Err(e) => format!("read failed during a call: {e}"),
                        };
                        let e = RemoteError::new(ErrorKind::Other("EOFError".into()), why.clone());
                        return (replies::error(&e), protocol, Some(why));
                    }
                    () = self.engine.shutdown.wait() => {
                        let e = crate::errors::shutting_down();
                        return (replies::error(&e), protocol, Some("the server is stopping".into()));
                    }
                }
            }
        };
        // A new object a method made is given back by the client on
        // another connection: its reference goes to the owner.
        if let (true, Outcome::Proxy(info)) = (object_call, &outcome) {
            if self.session.take_ref(info.token.id) {
                self.owner.add_ref(info.token.id);
            }
        }
        (replies::outcome(&outcome, created, &side), protocol, None)
    }

    /// Whether object `id` is one whose acquisitions have no owner in
    /// Python (`owners::acquires_unowned`).
    fn acquires_unowned(&self, id: ObjectId) -> bool {
        self.engine
            .table()
            .get(id)
            .is_some_and(|(object, _)| owners::acquires_unowned(&*object))
    }

    /// The engine request a pickled `(ident, methodname, args, kwds)` is.
    fn request(&self, value: Py, side: &Side<'_>) -> Result<Request, RemoteError> {
        let protocol_error = |what: &str| {
            RemoteError::new(
                ErrorKind::ProtocolError,
                format!("a request is (ident, methodname, args, kwds); {what}"),
            )
        };
        let Py::Tuple(items) = value else {
            return Err(protocol_error(&format!("got a {}", value.type_name())));
        };
        let Ok([ident, method, args, kwds]) = <[Py; 4]>::try_from(items) else {
            return Err(protocol_error("got a tuple of another length"));
        };
        let target = match ident {
            Py::None => Target::Server,
            Py::Str(s) => Target::Object(s.parse::<ObjectId>().map_err(|_| {
                RemoteError::new(ErrorKind::KeyError, format!("{s:?} is not an object id"))
            })?),
            other => return Err(protocol_error(&format!("ident is a {}", other.type_name()))),
        };
        let Py::Str(method) = method else {
            return Err(protocol_error("methodname is not a str"));
        };
        let args = match args {
            Py::Tuple(items) | Py::List(items) => items
                .into_iter()
                .map(|v| values::from_pickle(v, side))
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(protocol_error(&format!("args is a {}", other.type_name()))),
        };
        let mut kwargs = Kwargs::new();
        match kwds {
            Py::Dict(pairs) => {
                for (k, v) in pairs {
                    let Py::Str(k) = k else {
                        return Err(RemoteError::new(
                            ErrorKind::TypeError,
                            "keywords must be strings",
                        ));
                    };
                    kwargs.insert(k, values::from_pickle(v, side)?);
                }
            }
            Py::None => {}
            other => return Err(protocol_error(&format!("kwds is a {}", other.type_name()))),
        }
        Ok(Request {
            id: 1,
            target,
            method,
            args,
            kwargs,
            thread: 0,
        })
    }
}

/// The address tokens given to this client name (the server's own
/// address as the client reached it), and the socket's descriptor if it
/// is TCP.
fn client_address(fd: Option<RawFd>, server_address: &str) -> (Address, Option<RawFd>) {
    if let Some(fd) = fd {
        // SAFETY: `fd` is the connection's open socket, which the caller's
        // stream owns for longer than this borrow; `ManuallyDrop` never
        // closes it.
        let socket = std::mem::ManuallyDrop::new(unsafe {
            <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd)
        });
        if let Ok(local) = socket.local_addr() {
            let address = Address::Inet {
                host: local.ip().to_string(),
                port: local.port(),
            };
            return (address, Some(fd));
        }
        return (Address::Path(server_address.to_owned()), None);
    }
    // TLS: the configured address.
    let address = match server_address.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(port) => Address::Inet {
                host: host.trim_matches(['[', ']']).to_owned(),
                port,
            },
            Err(_) => Address::Path(server_address.to_owned()),
        },
        None => Address::Path(server_address.to_owned()),
    };
    (address, None)
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
