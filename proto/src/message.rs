//! The CBOR messages exchanged after the handshake.
//!
//! # Conversation
//!
//! ```text
//! client                                  server
//!   | -- Hello { versions, client } -------> |
//!   | <------ HelloReply::Welcome { version } |   (or Refused, then close)
//!   | -- Request { id: 1, .. } ------------> |
//!   | -- Request { id: 2, .. } ------------> |   many in flight at once
//!   | <------------ Response { id: 2, .. } -- |   answers in any order
//!   | <------------ Response { id: 1, .. } -- |
//! ```
//!
//! Every message is one frame ([`crate::frame`]) holding one CBOR item.
//! A request names its target (the server itself, or a shared object by
//! id), a method and Python-style positional and keyword arguments; the
//! response carries the request's id and an [`Outcome`]: a value, a new
//! shared object (a proxy), or an error whose [`ErrorKind`] is named after
//! the Python exception a CPython manager would raise.

use std::fmt;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::value::{ObjectId, Token, Value};

/// The protocol version this build speaks best.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every protocol version this build can speak, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// The client's first message: which versions it can speak.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Versions the client speaks; the server picks the highest it shares.
    pub versions: Vec<u32>,
    /// Who is connecting (`"multiprocessing-rs/0.1.0"`), for logs only.
    pub client: String,
}

impl Hello {
    /// The hello this build sends.
    pub fn current(client: impl Into<String>) -> Self {
        Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            client: client.into(),
        }
    }
}

/// The server's answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The conversation goes on in `version`.
    Welcome {
        /// The version both sides now speak.
        version: u32,
        /// Who is serving (`"mpserver/0.1.0"`), for logs only.
        server: String,
    },
    /// No shared version: the server closes after this.
    Refused {
        /// Why, in words a person can act on.
        message: String,
    },
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let target = match self.target {
            Target::Server => None,
            Target::Object(id) => Some(id.0),
        };
        (
            self.id,
            target,
            &self.method,
            &self.args,
            &self.kwargs,
            self.thread,
        )
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (id, target, method, args, kwargs, thread): (
            u64,
            Option<u64>,
            String,
            Vec<Value>,
            Kwargs,
            u64,
        ) = Deserialize::deserialize(deserializer)?;
        Ok(Request {
            id,
            target: target.map_or(Target::Server, |id| Target::Object(ObjectId(id))),
            method,
            args,
            kwargs,
            thread,
        })
    }
}

/// The answer to the request with the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What came of it.
    pub outcome: Outcome,
}

/// What came of a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyInfo {
    /// Where the object lives.
    pub token: Token,
    /// The methods its proxy may call.
    pub exposed: Vec<String>,
}

/// An exception raised on the other side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct RemoteError {
    /// Which exception.
    pub kind: ErrorKind,
    /// Its message, as Python would show it (`'missing'` for a `KeyError`).
    pub message: String,
}

impl RemoteError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RemoteError {
            kind,
            message: message.into(),
        }
    }
}

macro_rules! error_kinds {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The kind of a [`RemoteError`], named after the Python exception.
        ///
        /// On the wire it is the name as text; a name this build does not
        /// know arrives as [`ErrorKind::Other`] rather than failing the
        /// response.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $name,)*
            /// Any other exception name.
            Other(String),
        }

        impl ErrorKind {
            /// The Python name (`"KeyError"`).
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorKind::$name => stringify!($name),)*
                    ErrorKind::Other(name) => name,
                }
            }

            /// The kind with Python name `name`.
            pub fn from_name(name: &str) -> Self {
                match name {
                    $(stringify!($name) => ErrorKind::$name,)*
                    other => ErrorKind::Other(other.to_owned()),
                }
            }
        }
    };
}

error_kinds! {
    /// A missing dict key, object id or registry entry.
    KeyError,
    /// A list index out of range.
    IndexError,
    /// A right type with a wrong value (`list.remove(x)` without `x`, an
    /// over-released `BoundedSemaphore`, `task_done` called too often).
    ValueError,
    /// A wrong type (an unhashable key, a wrong argument type or count).
    TypeError,
    /// A method or attribute that does not exist or is not exposed.
    AttributeError,
    /// An operation invalid in the current state (releasing an unowned
    /// lock).
    RuntimeError,
    /// `queue.Empty`: nothing to get before the timeout.
    Empty,
    /// `queue.Full`: no room to put before the timeout.
    Full,
    /// `threading.BrokenBarrierError`.
    BrokenBarrierError,
    /// A wait timed out where Python raises rather than returns `False`.
    TimeoutError,
    /// An iterator proxy is exhausted.
    StopIteration,
    /// Division by zero in an embedder's object.
    ZeroDivisionError,
    /// The peer sent something this side cannot parse or does not allow.
    ProtocolError,
    /// A server limit (connections, calls in flight, frame size) was hit.
    LimitExceeded,
    /// The server is shutting down.
    ShuttingDown,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(ErrorKind::from_name(&name))
    }
}

/// A message that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid CBOR item of the expected shape.
    #[error("malformed message: {0}")]
    Decode(String),
    /// Bytes were left after the message.
    #[error("malformed message: {0} trailing bytes after the item")]
    Trailing(usize),
    /// The value could not be written (a serializer error in user data).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Encodes a message as one CBOR item.
pub fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Appends a message as one CBOR item to `out` (reusing its buffer).
pub fn encode_into<T: Serialize + ?Sized>(
    message: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    ciborium::into_writer(message, out).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes one CBOR item that must fill `bytes` exactly.
///
/// Nesting is bounded (ciborium's recursion limit) and no length read from
/// the input is trusted for preallocation, so a frame's size bounds what
/// decoding it can cost.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut reader = bytes;
    let value =
        ciborium::from_reader(&mut reader).map_err(|e| CodecError::Decode(e.to_string()))?;
    if reader.is_empty() {
        Ok(value)
    } else {
        Err(CodecError::Trailing(reader.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
