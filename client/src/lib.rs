//! Python's `multiprocessing` for Rust.
//!
//! Module paths mirror Python's so a user finds things where they expect
//! them; the crate root re-exports the everyday names.
//!
//! # Layout
//!
//! * [`connection`]: `Pipe`, `Connection`, `Listener`/`Client` and `wait`.
//! * [`managers`]: clients of `mpserver` and of a local manager process.
//! * [`reduction`]: file descriptors inside serialized values, for children
//!   and Unix-socket connections.

pub mod connection;
pub mod managers;
pub mod reduction;

pub use connection::{Connection, Pipe};
