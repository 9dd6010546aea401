//! Constructors for the errors shared objects raise, named after Python's
//! exceptions (`KeyError`, `IndexError`, …) with Python's messages.
//!
//! Every method of every object reports failure as a
//! [`RemoteError`] whose [`ErrorKind`] is the
//! exception a CPython manager would raise for the same call, so a client
//! (ours or, through a later codec, CPython's) re-raises the right thing.

use mp_proto::{ErrorKind, RemoteError, Value};

/// `KeyError(key)`: Python shows the key's `repr()`.
pub fn key_error(key: &Value) -> RemoteError {
    RemoteError::new(ErrorKind::KeyError, key.repr())
}

/// `KeyError` with a free-form message.
pub fn key_error_msg(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::KeyError, message)
}

/// `IndexError(message)`.
pub fn index_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::IndexError, message)
}

/// `ValueError(message)`.
pub fn value_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::ValueError, message)
}

/// `TypeError(message)`.
pub fn type_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::TypeError, message)
}

/// `AttributeError(message)`.
pub fn attribute_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::AttributeError, message)
}

/// `RuntimeError(message)`.
pub fn runtime_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::RuntimeError, message)
}

/// `OverflowError(message)`: a number too large for an array's typecode.
pub fn overflow_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::OverflowError, message)
}

/// `TypeError: unhashable type: 'list'`.
pub fn unhashable(value: &Value) -> RemoteError {
    type_error(format!("unhashable type: '{}'", value.type_name()))
}

/// `ShuttingDown`: the server stopped before the call could finish.
pub fn shutting_down() -> RemoteError {
    RemoteError::new(ErrorKind::ShuttingDown, "the server is shutting down")
}
