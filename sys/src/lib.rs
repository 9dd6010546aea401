//! The operating-system building blocks `mpserver` (`mp-server`) and the
//! `multiprocessing` SDK share, below both and below nothing else of ours.
//!
//! Python's `multiprocessing` leans on the C runtime and `_multiprocessing`
//! for the same layer (semaphores, `mmap`, `select`). Here it is one small
//! crate with every `unsafe` of the shared layer argued in one place:
//!
//! * [`futex`]: sleeping on a 32-bit word in memory shared between
//!   processes, and waking its sleepers.
//! * [`mapping`]: sealed `memfd`s and `MAP_SHARED` mappings of them.
//! * [`channel`]: the shared-memory channel, two byte rings a manager
//!   client on the server's machine talks through instead of its socket.
//! * [`spin`]: the poll-before-sleep policy of a thread waiting for its
//!   peer (a socket or a channel).
//! * [`lock`](mod@lock): locking a std mutex whatever its last holder did.
//!
//! It depends on `libc` and `thiserror` only: no async runtime, no
//! protocol, no notion of a manager.

pub mod channel;
pub mod futex;
pub mod lock;
pub mod mapping;
pub mod spin;

pub use lock::lock;
