//! Python's `multiprocessing` for Rust.
//!
//! Module paths mirror Python's so a user finds things where they expect
//! them; the crate root re-exports the everyday names.
//!
//! # Layout
//!
//! * [`managers`]: clients of `mpserver` and of a local manager process.
//! * [`reduction`]: file descriptors inside serialized values, for children
//!   and Unix-socket connections.
//! * [`synchronize`]: Lock, RLock, Semaphore, Condition, Event, Barrier.
//! * [`sharedctypes`]: Value, Array, RawValue, RawArray.
//! * [`shared_memory`]: SharedMemory and ShareableList by name.
//! * [`resource_tracker`]: unlinks named segments a crashed program left.

pub mod managers;
pub mod reduction;
pub mod resource_tracker;
pub mod shared_memory;
pub mod sharedctypes;
pub mod synchronize;

pub use sharedctypes::{Array, RawArray, RawValue, Value};
pub use synchronize::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
