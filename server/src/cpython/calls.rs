//! One request of a CPython client, from the unpickled `(ident,
//! methodname, args, kwds)` to the reply frame: the part of serving a
//! connection that does not depend on how its socket is read, shared by
//! the event loop (`super::serve`) and a dedicated thread
//! (`super::dedicated`).
//!
//! A request the engine answers at once is [`Step::Answer`]; one that
//! waits (`Queue.get`, `Lock.acquire`) is [`Step::Wait`], whose future
//! the event loop awaits and [`Conn::finish`] turns into the answer.

use std::os::fd::RawFd;
use std::sync::Arc;

use mp_pickle::{Address, Protocol, Unpickled, UnpicklingError, Value as Py};
use mp_proto::frame::encode_header;
use mp_proto::message::{Kwargs, Outcome, Request, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::{ErrorKind, ObjectId, RemoteError};

use super::values::{self, Side};
use super::{owners, replies};
use crate::connection::ConnContext;
use crate::engine::Engine;
use crate::object::{PendingCall, Reply};
use crate::quiet_log;
use crate::session::Session;

/// CPython's server call that makes a connection a thread's own.
const ACCEPT_CONNECTION: &str = "accept_connection";

/// One connection's setting: who it is, whose references it makes, and
/// its bounds.
pub(super) struct Conn {
    pub(super) engine: Arc<Engine>,
    ctx: Arc<ConnContext>,
    session: Arc<Session>,
    owner: Arc<Session>,
    /// The server's address as put in tokens (set before any connection
    /// is accepted).
    server_address: String,
    client_address: Address,
    /// The socket's descriptor if it is TCP (for `super::quick_ack`).
    pub(super) tcp: Option<RawFd>,
    limits: mp_pickle::Limits,
    /// The largest frame read or written.
    pub(super) max_frame: u64,
}

/// How far a request got without waiting.
pub(super) enum Step {
    /// It is answered.
    Answer(Answer),
    /// It waits for the engine.
    Wait(Waiting),
}

/// The reply to a request.
pub(super) struct Answer {
    reply: Py,
    protocol: Protocol,
    /// Why the connection ends after this reply, if it does.
    pub(super) end: Option<String>,
}

/// A request waiting in the engine.
pub(super) struct Waiting {
    /// The engine's call; its outcome goes to [`Conn::finish`].
    pub(super) call: PendingCall<Outcome>,
    /// How its answer is made.
    pub(super) then: Then,
}

/// How a waiting request's answer is made.
pub(super) struct Then {
    /// How its reply is pickled.
    pub(super) protocol: Protocol,
    object_call: bool,
    created: bool,
}

impl Answer {
    /// An error reply, ending the connection for `end` if given.
    pub(super) fn error(e: &RemoteError, protocol: Protocol, end: Option<String>) -> Answer {
        Answer {
            reply: replies::error(e),
            protocol,
            end,
        }
    }
}

impl Conn {
    /// The setting of a new connection on socket `fd` (`None` for TLS).
    pub(super) fn new(
        engine: &Arc<Engine>,
        ctx: &Arc<ConnContext>,
        fd: Option<RawFd>,
        session: &Arc<Session>,
    ) -> Conn {
        let server_address = engine.address();
        let (client_address, tcp) = client_address(fd, &server_address);
        Conn {
            engine: Arc::clone(engine),
            ctx: Arc::clone(ctx),
            session: Arc::clone(session),
            owner: ctx.python.owner(engine, fd, tcp.is_none()),
            server_address,
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
        }
    }

    /// Unpickles request frame `frame` and takes it as far as it goes
    /// without waiting.
    pub(super) fn begin(&self, frame: &[u8]) -> Step {
        self.step(mp_pickle::read(frame, &self.limits))
    }

    fn step(&self, request: Result<Unpickled, UnpicklingError>) -> Step {
        let read = match request {
            Ok(read) => read,
            Err(e) => {
                let peer = self.session.peer().to_owned();
                quiet_log::info(
                    "pickle",
                    || tracing::info!(%peer, error = %e, "refused a request from a CPython client"),
                );
                let text = format!("ProtocolError: the server refused the request: {e}");
                return Step::Answer(Answer {
                    reply: replies::traceback(&text),
                    protocol: Protocol::V4,
                    end: None,
                });
            }
        };
        let protocol = Protocol::for_reply(read.protocol);
        let request = match self.with_side(|side| self.request(read.value, side)) {
            Ok(request) => request,
            Err(e) => return Step::Answer(Answer::error(&e, protocol, None)),
        };
        // CPython's `accept_connection(name)` turns a connection into a
        // thread's connection for method calls; here every connection
        // serves both kinds of call, so it only answers.
        if request.target == Target::Server && request.method == ACCEPT_CONNECTION {
            return Step::Answer(self.answer(
                &Outcome::Return(mp_proto::Value::None),
                protocol,
                false,
                false,
            ));
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
                unowned = self.ctx.python.unowned(&self.engine);
                (&unowned, true)
            }
            Target::Object(_) => (&self.session, true),
        };
        match self.engine.call(session, request) {
            Reply::Ready(outcome) => {
                Step::Answer(self.answer(&outcome, protocol, object_call, created))
            }
            Reply::Pending(call) => Step::Wait(Waiting {
                call,
                then: Then {
                    protocol,
                    object_call,
                    created,
                },
            }),
        }
    }

    /// The answer to a request that waited, once its call finished.
    pub(super) fn finish(&self, outcome: &Outcome, then: &Then) -> Answer {
        self.answer(outcome, then.protocol, then.object_call, then.created)
    }

    fn answer(
        &self,
        outcome: &Outcome,
        protocol: Protocol,
        object_call: bool,
        created: bool,
    ) -> Answer {
        // A new object a method made is given back by the client on
        // another connection: its reference goes to the owner.
        if let (true, Outcome::Proxy(info)) = (object_call, outcome) {
            if self.session.take_ref(info.token.id) {
                self.owner.add_ref(info.token.id);
            }
        }
        Answer {
            reply: self.with_side(|side| replies::outcome(outcome, created, side)),
            protocol,
            end: None,
        }
    }

    /// Appends `answer` as a frame to `out`: pickled in its protocol, or
    /// an error if it cannot be, or if it is past the frame limit.
    pub(super) fn encode(&self, answer: &Answer, out: &mut Vec<u8>) {
        let bytes = match mp_pickle::dumps(&answer.reply, answer.protocol) {
            Ok(bytes) if bytes.len() as u64 <= self.max_frame => bytes,
            Ok(bytes) => encode_error(&RemoteError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "the answer of {} bytes exceeds the server's frame limit of {} bytes",
                    bytes.len(),
                    self.max_frame
                ),
            )),
            Err(e) => encode_error(&RemoteError::new(
                ErrorKind::Other("PicklingError".into()),
                format!("cannot pickle the answer: {e}"),
            )),
        };
        out.extend_from_slice(encode_header(bytes.len() as u64).as_bytes());
        out.extend_from_slice(&bytes);
    }

    /// Runs `f` with the way values cross between this client and the
    /// engine.
    fn with_side<R>(&self, f: impl FnOnce(&Side<'_>) -> R) -> R {
        let exposed = |typeid: &str| self.engine.spec(typeid).map(|s| s.exposed.clone());
        f(&Side {
            server_address: &self.server_address,
            client_address: &self.client_address,
            exposed: &exposed,
            limits: &self.limits,
        })
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

fn encode_error(e: &RemoteError) -> Vec<u8> {
    // A traceback of a str always pickles.
    mp_pickle::dumps(&replies::error(e), Protocol::V4).unwrap_or_default()
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
