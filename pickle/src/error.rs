//! The errors of reading and writing pickles, each naming what went wrong
//! in Python's words (`pickle data was truncated`, `unhashable type:
//! 'list'`) or saying which bound or rule refused it.

use std::fmt;

use thiserror::Error;

use crate::value::Global;

/// A global refused by [`crate::policy`], naming it and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Refusal {
    /// A module (or name) refused outright: the standard library outside
    /// the allow-lists.
    #[error("global {0} is not allowed: this server runs no code")]
    Forbidden(Global),
    /// A global on no allow-list, called by `REDUCE`: it might be a
    /// function, and a Python client unpickling the value would call it.
    #[error(
        "global {0} cannot be called: this server runs no code; an object of a class \
         outside the allow-list is kept only when pickled without a call (NEWOBJ)"
    )]
    NotCallable(Global),
    /// A global on no allow-list used as a value by itself.
    #[error(
        "global {0} cannot be passed by itself: this server runs no code and keeps only \
         instances of such classes"
    )]
    NotAValue(Global),
    /// Not a plain `module.Name`: an attribute path, a dunder or a
    /// malformed name, which could reach past the module it names.
    #[error("global {} is not allowed: it is not a plain module and class name", Escaped(.0))]
    BadName(Global),
}

impl Refusal {
    /// The global refused.
    pub fn global(&self) -> &Global {
        match self {
            Refusal::Forbidden(g)
            | Refusal::NotCallable(g)
            | Refusal::NotAValue(g)
            | Refusal::BadName(g) => g,
        }
    }
}

/// A global's name with control characters escaped, for messages.
struct Escaped<'a>(&'a Global);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.0.module.escape_debug(),
            self.0.name.escape_debug()
        )
    }
}

/// Why a pickle could not be read. Python's `pickle.UnpicklingError` in
/// spirit; [`UnpicklingError::Unhashable`] is its `TypeError`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UnpicklingError {
    /// A global the policy refuses.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The input ended before `STOP` or inside an opcode's argument.
    #[error("pickle data was truncated")]
    Truncated,
    /// A length prefix points past the end of the input; nothing was
    /// allocated for it.
    #[error("{opcode} claims {len} bytes but only {remaining} remain in the pickle")]
    LengthPastEnd {
        /// The opcode's name.
        opcode: &'static str,
        /// The length it claims.
        len: u64,
        /// The bytes left in the input.
        remaining: usize,
    },
    /// The input is larger than [`crate::Limits::max_input_bytes`].
    #[error("pickle of {len} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge {
        /// The input's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Nesting deeper than [`crate::Limits::max_depth`].
    #[error("pickle nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A memo index at or past [`crate::Limits::max_memo_entries`].
    #[error("pickle memo index {index} exceeds the limit of {limit} entries")]
    MemoTooLarge {
        /// The index used.
        index: u64,
        /// The limit.
        limit: usize,
    },
    /// The value read (shared objects counted each time they are used)
    /// would exceed [`crate::Limits::max_value_bytes`].
    #[error(
        "unpickled value exceeds the limit of {limit} bytes (an object referenced many \
         times counts each time)"
    )]
    ValueTooLarge {
        /// The limit.
        limit: usize,
    },
    /// An int longer than [`crate::Limits::max_int_bytes`].
    #[error("int of {bytes} bytes exceeds the limit of {limit} bytes")]
    IntTooLarge {
        /// Its length in two's-complement bytes (estimated for text).
        bytes: u64,
        /// The limit.
        limit: usize,
    },
    /// A byte that is no pickle opcode.
    #[error("invalid load key, '\\x{0:02x}'")]
    UnknownOpcode(u8),
    /// An opcode this data-only reader does not implement.
    #[error("pickle opcode {opcode} is not supported: {why}")]
    Unsupported {
        /// The opcode's name.
        opcode: &'static str,
        /// Why not.
        why: &'static str,
    },
    /// A `PROTO` above 5.
    #[error("unsupported pickle protocol: {0}")]
    Protocol(u8),
    /// A memo read of an index never written.
    #[error("memo value not found at index {0}")]
    MemoMissing(u64),
    /// An unhashable value as a dict key or set item.
    #[error("unhashable type: '{0}'")]
    Unhashable(&'static str),
    /// An object that contains itself.
    #[error("pickle is recursive (an object contains itself), which is not supported")]
    Recursive,
    /// Anything else wrong with the stream or an object's arguments.
    #[error("{0}")]
    Malformed(String),
}

impl UnpicklingError {
    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        UnpicklingError::Malformed(msg.into())
    }
}

/// Why a value could not be written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PicklingError {
    /// A global the policy refuses (the writer applies the reader's rule,
    /// so nothing it writes runs code a reader would refuse).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Nesting deeper than [`crate::write::MAX_DEPTH`].
    #[error("value nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A str or bytes too long for the protocol's length fields.
    #[error("cannot serialize a {what} larger than 4 GiB with pickle protocol {protocol}")]
    TooLarge {
        /// `str` or `bytes`.
        what: &'static str,
        /// The protocol.
        protocol: u8,
    },
    /// An unhashable value as a dict key or set item: Python would fail
    /// to load it.
    #[error("unhashable type: '{0}'")]
    Unhashable(&'static str),
    /// A value in a form the reader would never produce, which Python
    /// would rebuild differently (an [`crate::Instance`] of a class that
    /// has a variant of its own).
    #[error("{0}")]
    NotCanonical(String),
}
