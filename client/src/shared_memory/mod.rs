//! Shared memory by name (Python's `multiprocessing.shared_memory`).
//!
//! A [`SharedMemory`] block is a POSIX shared memory object
//! (`shm_open`, visible as `/dev/shm/<name>`): any process that knows the
//! name can attach, whatever started it. The creating process registers
//! the name with the [`resource_tracker`](crate::resource_tracker), which
//! unlinks it (with a warning) if every process of the program exits
//! without calling [`SharedMemory::unlink`]. [`ShareableList`] stores a
//! fixed-length list of small values in one block, in CPython's layout, so
//! a CPython process can attach to it by name too.
//!
//! Blocks that a manager server tracks and unlinks when it shuts down —
//! even if the process that made them died — come from
//! [`SharedMemoryManager`](crate::managers::shared_memory_manager::SharedMemoryManager)
//! (Python's `multiprocessing.managers.SharedMemoryManager`).

pub(crate) mod block;
mod error;
pub(crate) mod region;
mod shareable_list;

pub use block::SharedMemory;
pub use error::SharedMemoryError;
pub use shareable_list::{Item, ShareableList};
