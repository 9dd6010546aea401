//! Queues shared by processes (Python's `multiprocessing.queues`):
//! [`Queue`], [`JoinableQueue`] and [`SimpleQueue`].
//!
//! # Design
//!
//! A queue is a ring buffer of length-prefixed records in a `memfd`
//! shared memory region, guarded by a robust
//! [`Lock`](crate::synchronize::Lock) and woken through futex sequence
//! words, the same machinery as [`crate::synchronize`]. Its serde form
//! carries the region's and the lock's descriptors, so it reaches children
//! under every start method. Items are serde values encoded with CBOR;
//! `Vec<u8>` items are copied as they are.
//!
//! Differences from CPython, all deliberate:
//!
//! * No feeder thread: `put` has written the item to shared memory when it
//!   returns. So `join_thread` and `cancel_join_thread` have nothing to do,
//!   and a child that puts a large item and exits never deadlocks a parent
//!   that joins it before getting.
//! * A process killed mid-`put` or mid-`get` does not corrupt the queue:
//!   an item becomes visible only once fully written, and the lock a dead
//!   process held is taken over by the next user (CPython's queue can be
//!   left with a half-written message or a held lock).
//! * Items larger than the ring (default [`DEFAULT_CAPACITY`], 8 MiB; set
//!   with `with_capacity`) are refused with [`QueueError::TooLarge`] rather
//!   than streamed.
//! * `qsize` is exact and works everywhere.
//!
//! # Layout
//!
//! * `ring`: the shared byte ring, its lock and wake-ups.
//! * `codec`: items to bytes and back.
//! * `queue`: the typed `Queue`, `JoinableQueue`, `SimpleQueue`.
//! * `error`: [`QueueError`].

mod codec;
mod error;
mod queue;
mod ring;

pub use error::QueueError;
pub use queue::{JoinableQueue, Queue, SimpleQueue, DEFAULT_CAPACITY};
