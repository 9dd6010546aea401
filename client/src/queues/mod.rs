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
//! * An item larger than the ring (default [`DEFAULT_CAPACITY`], 8 MiB; set
//!   with `with_capacity`) is written to a named shared memory segment of
//!   its own whose name travels through the ring; the consumer copies it
//!   out and unlinks it. The segment is registered with the resource
//!   tracker until its name is in the queue, so a producer killed before
//!   that leaks nothing; one killed in the instant between publishing and
//!   unregistering has its tracker unlink the segment, and the consumer
//!   gets [`QueueError::SideSegment`] for that item. A consumer killed
//!   between taking the name and unlinking leaves the segment behind.
//! * `qsize` is exact and works everywhere.
//!
//! With feature `asyncio`, `get_async`/`put_async` (and
//! `JoinableQueue::join_async`) await the same ring without blocking a
//! thread (see [`crate::synchronize`], "Async waits"); blocking and async
//! users of one queue, in any processes, wake each other. All are
//! cancellation safe: a dropped `get_async` has taken no item, a dropped
//! `put_async` has put none.
//!
//! # Layout
//!
//! * `ring`: the shared byte ring, its lock and wake-ups.
//! * `codec`: items to bytes and back.
//! * `queue`: the typed `Queue`, `JoinableQueue`, `SimpleQueue`;
//!   `queue_async.rs` and `ring_async.rs` their async methods.
//! * `error`: [`QueueError`].

mod codec;
pub(crate) mod error;
mod queue;
mod ring;

pub use error::QueueError;
pub use queue::{JoinableQueue, Queue, SimpleQueue, DEFAULT_CAPACITY};
pub(crate) use ring::Block;
