//! The CBOR messages exchanged after the handshake.
//!
//! # Conversation
//!
//! ```text
//! client                                  server
//!   | -- Hello { versions, client } -------> |
//!   | <------ HelloReply::Welcome { version } |   (or Refused, then close)
//!   | -- ChannelAnswer { attached } -------> |   only if Welcome offered a channel
//!   | -- Request { id: 1, .. } ------------> |
//!   | -- Request { id: 2, .. } ------------> |   many in flight at once
//!   | <------------ Response { id: 2, .. } -- |   answers in any order
//!   | <------------ Response { id: 1, .. } -- |
//!   | <------- Response { id: 0, error } ---- |   only before the server closes
//! ```
//!
//! Every message is one frame ([`crate::frame`]) holding one CBOR item.
//! A request names its target (the server itself, or a shared object by
//! id), a method and Python-style positional and keyword arguments; the
//! response carries the request's id and an [`Outcome`]: a value, a new
//! shared object (a proxy), or an error whose [`ErrorKind`] is named after
//! the Python exception a CPython manager would raise. A response with id
//! 0 ([`CONNECTION_ID`]) answers no request: it is the server's reason for
//! closing the connection.

use indexmap::IndexMap;

pub use crate::codec::{decode, encode, encode_into, CodecError};
use cbor4ii::core::dec::Read as _;
use cbor4ii::core::{major, marker};

use crate::codec::{
    array_of, expect_major, peek, read_array_header, read_map, write_array_header, Reader, Wire,
    WriteError, Writer,
};
use crate::value::{ObjectId, Token, Value};

pub use crate::error::{ErrorKind, RemoteError};

/// The protocol version this build speaks best.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every protocol version this build can speak, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// The client's first message: which versions it can speak.
#[derive(Clone, Debug, PartialEq)]
pub struct Hello {
    /// Versions the client speaks; the server picks the highest it shares.
    pub versions: Vec<u32>,
    /// Who is connecting (`"multiprocessing-rs/0.1.0"`), for logs only.
    pub client: String,
    /// Whether the client would take a shared-memory channel (it runs on
    /// the server's machine, it believes). Sent only when `true`.
    pub channel: bool,
}

impl Hello {
    /// The hello this build sends.
    pub fn current(client: impl Into<String>) -> Self {
        Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            client: client.into(),
            channel: false,
        }
    }
}

/// Whether `frame`, the first message after the handshake, comes from a
/// CPython manager client rather than this protocol's [`Hello`]: CPython
/// pickles its requests, and a pickle of protocol 2 or later opens with
/// the `PROTO` opcode (`0x80`) and its version, which no CBOR hello does
/// (`0x80` is an empty CBOR array).
pub fn is_cpython_manager_message(frame: &[u8]) -> bool {
    matches!(frame, [0x80, 2..=5, ..])
}

/// The server's answer to [`Hello`].
#[derive(Clone, Debug, PartialEq)]
pub enum HelloReply {
    /// The conversation goes on in `version`.
    Welcome {
        /// The version both sides now speak.
        version: u32,
        /// Who is serving (`"mpserver/0.1.0"`), for logs only.
        server: String,
        /// A shared-memory channel, when the hello asked for one and the
        /// server could make it; the client then sends [`ChannelAnswer`].
        channel: Option<ChannelOffer>,
    },
    /// No shared version: the server closes after this.
    Refused {
        /// Why, in words a person can act on.
        message: String,
    },
}

/// Where a client finds the shared-memory channel the server made for it
/// (see `mp_sys::channel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelOffer {
    /// The server's process id.
    pub pid: u32,
    /// The server's descriptor of the region's `memfd`.
    pub fd: i32,
    /// The size of each ring, in bytes.
    pub ring: u32,
    /// Written in the region, to prove the client mapped the right one.
    pub nonce: u64,
}

/// The client's answer to a [`ChannelOffer`]: whether it mapped the
/// region and will send its requests through it from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelAnswer {
    /// `true`: the channel carries the frames; `false`: the socket does.
    pub attached: bool,
}

/// No protocol version is shared by the two peers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no shared protocol version: peer speaks {offered:?}, this build speaks {supported:?}; \
     upgrade the older side"
)]
pub struct VersionError {
    /// What the peer offered.
    pub offered: Vec<u32>,
    /// What this build speaks.
    pub supported: Vec<u32>,
}

/// Picks the highest version in both `offered` and `supported`.
pub fn negotiate(offered: &[u32], supported: &[u32]) -> Result<u32, VersionError> {
    offered
        .iter()
        .filter(|v| supported.contains(v))
        .max()
        .copied()
        .ok_or_else(|| VersionError {
            offered: offered.to_vec(),
            supported: supported.to_vec(),
        })
}

/// What a request is addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The server itself: `create`, `incref`, `decref`, `debug_info`, …
    Server,
    /// A shared object, by id.
    Object(ObjectId),
}

/// Keyword arguments, in the order they were given.
pub type Kwargs = IndexMap<String, Value>;

/// A method call.
///
/// # Format
///
/// A CBOR array, not a map, so that no field name is sent or matched on
/// the hot path: `[id, target, method, args, kwargs, thread]`, where
/// `target` is `null` for the server or the object id as an integer, and
/// `kwargs` a map from names to values.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Chosen by the client, unique among its calls in flight; the response
    /// carries it back.
    pub id: u64,
    /// The server or an object.
    pub target: Target,
    /// The method name, Python's (`__getitem__`, `put`, `create`, …).
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Kwargs,
    /// The calling thread on the client, as the client numbers them: with
    /// the connection it identifies the owner of an `RLock` or `Lock`.
    pub thread: u64,
}

/// The answer to the request with the same id.
///
/// A response with [`CONNECTION_ID`] answers no request: carrying an
/// error, it is the server's last word before it closes the connection
/// (see [`Response::connection_error`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What came of it.
    pub outcome: Outcome,
}

/// The id no request carries (clients number their requests from 1): a
/// [`Response`] with it speaks for the whole connection.
///
/// The server sends one, with an error, before it closes a connection
/// because of what the peer sent: a frame over its size limit, a bad
/// length, or a request whose id cannot be read. Clients fail every call
/// in flight with its message. A client that predates it finds no call
/// with id 0, drops the response, and sees the connection close, as it
/// did before there was one.
pub const CONNECTION_ID: u64 = 0;

impl Response {
    /// The server's last word on a connection it is about to close.
    pub fn connection_error(error: RemoteError) -> Response {
        Response {
            id: CONNECTION_ID,
            outcome: Outcome::Error(error),
        }
    }

    /// The error of a [`Response::connection_error`], if this is one.
    pub fn as_connection_error(&self) -> Option<&RemoteError> {
        match (&self.outcome, self.id) {
            (Outcome::Error(e), CONNECTION_ID) => Some(e),
            _ => None,
        }
    }
}

/// What came of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The method returned a value.
    Return(Value),
    /// The method made a new shared object; the caller now owns one
    /// reference to it.
    Proxy(ProxyInfo),
    /// The method raised.
    Error(RemoteError),
}

/// A new shared object handed to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyInfo {
    /// Where the object lives.
    pub token: Token,
    /// The methods its proxy may call.
    pub exposed: Vec<String>,
}

// The CBOR form of each message. Every message is an array; enums carry a
// small integer discriminant first. See the `# Format` of each type.

impl Wire for Hello {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        write_array_header(w, if self.channel { 3 } else { 2 })?;
        self.versions.write(w)?;
        self.client.write(w)?;
        if self.channel {
            true.write(w)?;
        }
        Ok(())
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        expect_major(r, major::ARRAY, "a hello (an array)")?;
        let len = cbor4ii::core::types::Array::len(r)?;
        if !matches!(len, Some(2 | 3)) {
            return Err(CodecError::malformed(format!(
                "expected a hello (an array of 2 or 3 items), found {}",
                array_of(len)
            )));
        }
        Ok(Hello {
            versions: Vec::read(r)?,
            client: String::read(r)?,
            channel: len == Some(3) && bool::read(r)?,
        })
    }
}

impl Wire for HelloReply {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        match self {
            HelloReply::Welcome {
                version,
                server,
                channel,
            } => {
                write_array_header(w, if channel.is_some() { 4 } else { 3 })?;
                0u32.write(w)?;
                version.write(w)?;
                server.write(w)?;
                if let Some(offer) = channel {
                    write_array_header(w, 4)?;
                    offer.pid.write(w)?;
                    i64::from(offer.fd).write(w)?;
                    offer.ring.write(w)?;
                    offer.nonce.write(w)?;
                }
                Ok(())
            }
            HelloReply::Refused { message } => {
                write_array_header(w, 2)?;
                1u32.write(w)?;
                message.write(w)
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        expect_major(r, major::ARRAY, "a hello reply (an array)")?;
        let len = cbor4ii::core::types::Array::len(r)?;
        match (len, u32::read(r)?) {
            (Some(n @ (3 | 4)), 0) => Ok(HelloReply::Welcome {
                version: u32::read(r)?,
                server: String::read(r)?,
                channel: if n == 4 {
                    read_array_header(r, 4, "a channel offer")?;
                    Some(ChannelOffer {
                        pid: u32::read(r)?,
                        fd: i32::try_from(i64::read(r)?)
                            .map_err(|_| CodecError::malformed("a descriptor out of range"))?,
                        ring: u32::read(r)?,
                        nonce: u64::read(r)?,
                    })
                } else {
                    None
                },
            }),
            (Some(2), 1) => Ok(HelloReply::Refused {
                message: String::read(r)?,
            }),
            (len, kind) => Err(CodecError::malformed(format!(
                "expected a hello reply, found one of kind {kind} with {}",
                array_of(len)
            ))),
        }
    }
}

impl Wire for ChannelAnswer {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        write_array_header(w, 1)?;
        self.attached.write(w)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        read_array_header(r, 1, "a channel answer")?;
        Ok(ChannelAnswer {
            attached: bool::read(r)?,
        })
    }
}

impl Wire for Request {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        write_array_header(w, 6)?;
        self.id.write(w)?;
        match self.target {
            Target::Server => None::<u64>.write(w)?,
            Target::Object(id) => id.0.write(w)?,
        }
        self.method.write(w)?;
        self.args.write(w)?;
        cbor4ii::core::types::Map::bounded(self.kwargs.len(), w)?;
        for (name, value) in &self.kwargs {
            name.write(w)?;
            value.write(w)?;
        }
        self.thread.write(w)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        read_array_header(r, 6, "a request")?;
        expect_major(r, major::UNSIGNED, "an integer request id")?;
        let id = u64::read(r)?;
        let target = match peek(r)? {
            marker::NULL | marker::UNDEFINED => {
                r.advance(1);
                Target::Server
            }
            _ => {
                expect_major(r, major::UNSIGNED, "an object id (an integer) or null")?;
                Target::Object(ObjectId(u64::read(r)?))
            }
        };
        expect_major(r, major::STRING, "a method name (a text string)")?;
        let method = String::read(r)?;
        expect_major(r, major::ARRAY, "an array of positional arguments")?;
        let args = Vec::read(r)?;
        expect_major(r, major::MAP, "a map of keyword arguments")?;
        let mut kwargs = Kwargs::new();
        read_map(r, |name: KeywordName, value: Value| {
            kwargs.insert(name.0, value);
            Ok(())
        })?;
        expect_major(r, major::UNSIGNED, "an integer thread number")?;
        Ok(Request {
            id,
            target,
            method,
            args,
            kwargs,
            thread: u64::read(r)?,
        })
    }
}

impl Request {
    /// The id of the request in `frame`, read from the frame's start (an
    /// array whose first item is an integer) even when the rest does not
    /// decode, so a malformed request can still be answered; `None` when
    /// not even that is there.
    pub fn id_of(frame: &[u8]) -> Option<u64> {
        let mut r = Reader::new(frame);
        match cbor4ii::core::types::Array::len(&mut r) {
            Ok(Some(1..) | None) => {}
            _ => return None,
        }
        expect_major(&mut r, major::UNSIGNED, "").ok()?;
        u64::read(&mut r).ok()
    }
}

/// A keyword argument's name: a text string, said so when it is not.
struct KeywordName(String);

impl Wire for KeywordName {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        self.0.write(w)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        expect_major(r, major::STRING, "a keyword argument name (a text string)")?;
        String::read(r).map(KeywordName)
    }
}

/// # Format
///
/// `[id, 0, value]` for a return, `[id, 1, token, [exposed…]]` for a new
/// proxy, `[id, 2, kind, message]` for an error (`kind` as Python's name).
impl Wire for Response {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        match &self.outcome {
            Outcome::Return(value) => {
                write_array_header(w, 3)?;
                self.id.write(w)?;
                0u32.write(w)?;
                value.write(w)
            }
            Outcome::Proxy(info) => {
                write_array_header(w, 4)?;
                self.id.write(w)?;
                1u32.write(w)?;
                info.token.write(w)?;
                info.exposed.write(w)
            }
            Outcome::Error(error) => {
                write_array_header(w, 4)?;
                self.id.write(w)?;
                2u32.write(w)?;
                write_error_fields(error, w)
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        expect_major(r, major::ARRAY, "a response (an array)")?;
        let len = cbor4ii::core::types::Array::len(r)?;
        expect_major(r, major::UNSIGNED, "an integer request id")?;
        let id = u64::read(r)?;
        let outcome = match (len, u32::read(r)?) {
            (Some(3), 0) => Outcome::Return(Value::read(r)?),
            (Some(4), 1) => Outcome::Proxy(ProxyInfo {
                token: Token::read(r)?,
                exposed: Vec::read(r)?,
            }),
            (Some(4), 2) => Outcome::Error(read_error_fields(r)?),
            (len, kind) => {
                return Err(CodecError::malformed(format!(
                    "expected a response, found one of kind {kind} with {}",
                    array_of(len)
                )))
            }
        };
        Ok(Response { id, outcome })
    }
}

/// A [`RemoteError`]'s two fields, in order.
fn write_error_fields(e: &RemoteError, w: &mut Writer) -> Result<(), WriteError> {
    e.kind.as_str().to_owned().write(w)?;
    e.message.write(w)
}

/// The inverse of [`write_error_fields`].
fn read_error_fields(r: &mut Reader<'_>) -> Result<RemoteError, CodecError> {
    Ok(RemoteError {
        kind: ErrorKind::from_name(&String::read(r)?),
        message: String::read(r)?,
    })
}

/// # Format
///
/// `[kind, message]`, `kind` as Python's name.
impl Wire for RemoteError {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        write_array_header(w, 2)?;
        write_error_fields(self, w)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        read_array_header(r, 2, "an error")?;
        read_error_fields(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpython_request_is_told_from_a_hello() {
        // `(None, 'dummy', (), {})` as CPython 3.11 pickles it.
        let dummy = [
            0x80, 0x04, 0x95, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x28, 0x4e, 0x8c, 0x05, b'd', b'u', b'm',
            b'm', b'y', 0x94, 0x29, 0x7d, 0x94, 0x74, 0x94, 0x2e,
        ];
        assert!(is_cpython_manager_message(&dummy));
        assert!(!is_cpython_manager_message(
            &encode(&Hello::current("t")).unwrap()
        ));
        assert!(!is_cpython_manager_message(&[0x80]));
    }

    #[test]
    fn negotiation_picks_the_highest_shared_version() {
        assert_eq!(negotiate(&[1, 2, 3], &[1, 2]), Ok(2));
        let err = negotiate(&[9], &[1]).unwrap_err();
        assert!(err.to_string().contains("no shared protocol version"));
    }

    #[test]
    fn unknown_error_kinds_survive() {
        let e = RemoteError::new(ErrorKind::from_name("OSError"), "boom");
        let back: RemoteError = decode(&encode(&e).unwrap()).unwrap();
        assert_eq!(back.kind, ErrorKind::Other("OSError".into()));
        assert_eq!(back.to_string(), "OSError: boom");
        assert_eq!(ErrorKind::from_name("KeyError"), ErrorKind::KeyError);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&Hello::current("t")).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Hello>(&bytes),
            Err(CodecError::Trailing(1))
        ));
    }

    #[test]
    fn a_request_id_is_read_from_a_request_that_does_not_decode() {
        let good = Request {
            id: 77,
            target: Target::Server,
            method: "ping".into(),
            args: vec![],
            kwargs: Kwargs::new(),
            thread: 1,
        };
        let bytes = encode(&good).unwrap();
        assert_eq!(Request::id_of(&bytes), Some(77));
        // Cut short after the id, or only the id there at all.
        assert_eq!(Request::id_of(&bytes[..3]), Some(77));
        assert_eq!(Request::id_of(&[0x81, 0x05]), Some(5));
        assert_eq!(Request::id_of(&[0x9f, 0x05, 0xff]), Some(5));
        // No id to read: not an array, an empty one, an id that is no
        // unsigned integer, or nothing after the array's start.
        for frame in [
            &b"GET /"[..],
            &[0x80],
            &[0x82, 0x61, b'x', 0x01],
            &[0x82, 0x20, 0x01],
            &[0x86],
            &[],
            &[0xff, 0x00],
        ] {
            assert_eq!(Request::id_of(frame), None, "{frame:?}");
        }
    }

    #[test]
    fn a_connection_error_is_a_response_to_no_request() {
        let error = RemoteError::new(ErrorKind::LimitExceeded, "too big");
        let r = Response::connection_error(error.clone());
        assert_eq!(r.id, CONNECTION_ID);
        let back: Response = decode(&encode(&r).unwrap()).unwrap();
        assert_eq!(back.as_connection_error(), Some(&error));
        // An answer to a request is none.
        let answer = Response {
            id: 1,
            outcome: Outcome::Error(error),
        };
        assert_eq!(answer.as_connection_error(), None);
    }

    #[test]
    fn a_hello_of_the_wrong_shape_says_so() {
        let e = decode::<Hello>(&[0x80]).unwrap_err().to_string();
        assert_eq!(
            e,
            "malformed message: expected a hello (an array of 2 or 3 items), found an array of 0 items"
        );
        let e = decode::<Hello>(b"\x05").unwrap_err().to_string();
        assert!(e.contains("expected a hello (an array), found"), "{e}");
    }

    #[test]
    fn a_request_round_trips() {
        let mut kwargs = Kwargs::new();
        kwargs.insert("timeout".into(), Value::Float(0.5));
        let request = Request {
            id: 42,
            target: Target::Object(ObjectId(0x10)),
            method: "get".into(),
            args: vec![Value::Bool(true)],
            kwargs,
            thread: 3,
        };
        let back: Request = decode(&encode(&request).unwrap()).unwrap();
        assert_eq!(back, request);
    }
}
