//! Errors of the shared ctypes, named after Python's exceptions.

use thiserror::Error;

/// An element index outside the array (Python's `IndexError`).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("index {index} out of range for array of length {len}")]
pub struct IndexError {
    /// The offending index (the last one of a range).
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

/// Creating, receiving or assigning a shared ctype failed.
#[derive(Debug, Error)]
pub enum SharedCtypesError {
    /// The operating system refused the shared memory.
    #[error("cannot set up shared memory: {0}")]
    Os(#[from] std::io::Error),
    /// The lock could not be created.
    #[error(transparent)]
    Sync(#[from] crate::synchronize::SyncError),
    /// An index or range outside the array.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The requested size overflows the address space.
    #[error("shared array too large")]
    TooLarge,
    /// A received handle's element type or size does not match.
    #[error("shared object does not match the expected type or size")]
    Mismatch,
    /// Bytes longer than a char array (Python's `ValueError: byte string
    /// too long`).
    #[error("byte string too long ({len} bytes for {capacity})")]
    TooLong {
        /// Bytes offered.
        len: usize,
        /// Bytes the array holds.
        capacity: usize,
    },
    /// An unknown typecode or a value of the wrong kind for it (Python's
    /// `TypeError`).
    #[error("{0}")]
    TypeError(String),
}
