//! Errors of named shared memory, named after Python's exceptions.
//!
//! A block made by a
//! [`SharedMemoryManager`](crate::managers::shared_memory_manager::SharedMemoryManager)
//! fails with the same type: what only the managed flavour meets (the
//! manager's connection, its refusal) is [`SharedMemoryError::Manager`].

use thiserror::Error;

use crate::manager_error::ManagerError;

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
    /// A block made through a manager could not be tracked by it: the
    /// connection failed or the server refused (the block was unlinked
    /// again, as CPython's `SharedMemoryManager` does).
    #[error(transparent)]
    Manager(#[from] ManagerError),
}
