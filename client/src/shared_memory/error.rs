//! Errors of named shared memory, named after Python's exceptions.

use thiserror::Error;

/// Creating, attaching or using a named block failed.
#[derive(Debug, Error)]
pub enum SharedMemoryError {
    /// A block with this name exists already (Python's `FileExistsError`).
    #[error("shared memory block {0:?} already exists")]
    FileExists(String),
    /// No block has this name (Python's `FileNotFoundError`).
    #[error("no shared memory block named {0:?}")]
    FileNotFound(String),
    /// A bad argument (Python's `ValueError`): zero size, a name with `/`,
    /// an item too big for its slot.
    #[error("{0}")]
    ValueError(String),
    /// An index outside a list (Python's `IndexError`).
    #[error("index {index} out of range for list of length {len}")]
    IndexError {
        /// The offending index.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A block whose contents are not what its reader expects (for
    /// example, not a `ShareableList`).
    #[error("corrupt shared memory contents: {0}")]
    Corrupt(String),
    /// Another operating system error.
    #[error("shared memory: {0}")]
    Os(#[from] std::io::Error),
}
