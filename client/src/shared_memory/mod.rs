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

mod block;
mod error;
pub(crate) mod region;
mod shareable_list;

pub use block::SharedMemory;
pub use error::SharedMemoryError;
pub use shareable_list::{Item, ShareableList};
