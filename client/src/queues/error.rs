//! Errors of the queues, named after the exceptions Python's
//! `multiprocessing.queues` raises (`queue.Full`, `queue.Empty`,
//! `ValueError`).
//!
//! One vocabulary for both flavours, as crossbeam-channel's one set of
//! errors serves all its channel flavours: a local [`Queue`](crate::Queue)
//! and a manager's [`QueueProxy`](crate::managers::QueueProxy) both report
//! an empty queue as [`QueueError::Empty`], a full one as
//! [`QueueError::Full`] and a surplus `task_done` as
//! [`QueueError::TaskDone`]; what only a managed queue can meet (a lost
//! connection, another exception raised on the server) is
//! [`QueueError::Manager`]. A timeout is `Empty` or `Full`, as in Python.
//! The server's exceptions are translated where they arrive, in
//! `managers::proxies::errors`; this module names a [`ManagerError`] only
//! as an opaque payload.

use thiserror::Error;

use crate::manager_error::ManagerError;
use crate::shared_memory::SharedMemoryError;
use crate::synchronize::SyncError;

/// Python's message for a surplus `task_done`, which a manager's server
/// raises as a `ValueError`.
pub(crate) const TASK_DONE: &str = "task_done() called too many times";

/// Why a queue operation failed.
#[derive(Debug, Error)]
pub enum QueueError {
    /// `put_nowait`/`put_timeout` on a queue holding `maxsize` items, or
    /// without room in its ring buffer (Python's `queue.Full`).
    #[error("queue is full")]
    Full,
    /// `get_nowait`/`get_timeout` on an empty queue (Python's
    /// `queue.Empty`).
    #[error("queue is empty")]
    Empty,
    /// The queue was closed in this process (Python's `ValueError: Queue
    /// is closed`).
    #[error("queue is closed")]
    Closed,
    /// A record does not fit in the ring buffer even when it is empty
    /// (items that large travel in a side segment, so only a ring below
    /// the minimum size could cause it).
    #[error("record of {len} bytes does not fit in the queue's ring of {capacity} bytes")]
    TooLarge {
        /// Encoded size of the item plus its 4-byte length prefix.
        len: usize,
        /// Capacity of the ring in bytes.
        capacity: usize,
    },
    /// The item could not be encoded with CBOR.
    #[error("cannot encode item: {0}")]
    Encode(String),
    /// The bytes taken from the queue do not decode to the expected type
    /// (the producer put another type); the item is consumed.
    #[error("cannot decode item: {0}")]
    Decode(String),
    /// `task_done` called more times than items were put (Python's
    /// `ValueError: task_done() called too many times`).
    #[error("{TASK_DONE}")]
    TaskDone,
    /// The shared state is inconsistent (memory written by something that
    /// is not this crate).
    #[error("queue shared state is corrupt: {0}")]
    Corrupt(&'static str),
    /// An argument is out of range (Python's `ValueError`).
    #[error("{0}")]
    ValueError(String),
    /// The side segment of an item larger than the ring could not be
    /// created or read.
    #[error("side segment for a large item: {0}")]
    SideSegment(#[from] SharedMemoryError),
    /// The shared memory or its lock could not be set up.
    #[error(transparent)]
    Setup(#[from] SyncError),
    /// A managed queue's call failed otherwise: the connection, the
    /// conversion of an item, or another exception raised on the server.
    #[error(transparent)]
    Manager(ManagerError),
}

impl QueueError {
    /// Whether the queue had no item (in time): Python's `queue.Empty`.
    pub fn is_empty(&self) -> bool {
        matches!(self, QueueError::Empty)
    }

    /// Whether the queue had no room (in time): Python's `queue.Full`.
    pub fn is_full(&self) -> bool {
        matches!(self, QueueError::Full)
    }
}
