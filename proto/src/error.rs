//! The errors one side reports to the other: [`RemoteError`], an
//! exception raised on the other side, and [`ErrorKind`], the Python
//! exception it is named after (one list, [`ErrorKind::NAMES`]).
//!
//! Python's manager sends the exception object itself (`#ERROR`); here it
//! is its name and message, which each side turns into its own language's
//! error. Below the codec and the messages, which both name it; its wire
//! form is in [`message`](crate::message).

use std::fmt;

/// An exception raised on the other side.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
            /// The Python name of every kind this build knows, in
            /// declaration order (metric labels come from here).
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

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
    /// A number too large for where it goes (an array's typecode, an
    /// integer beyond 64 bits, a count that overflows).
    OverflowError,
    /// The operation would make the server hold more memory than its
    /// limits allow; nothing was changed.
    MemoryError,
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
