//! The crate's API backed by threads instead of processes (Python's
//! `multiprocessing.dummy`): code written against `multiprocessing` runs
//! on threads by importing from here instead.
//!
//! * [`Process`] runs a closure on a thread (Python's `DummyProcess`);
//!   [`current_process`] and [`active_children`] see those threads.
//! * [`Queue`]/[`JoinableQueue`] are in-process queues (Python's
//!   `queue.Queue`); [`Pipe`] is a pair of them (Python's
//!   `multiprocessing.dummy.connection`).
//! * [`Pool`] is [`ThreadPool`](crate::pool::ThreadPool).
//! * The locks and events are the crate's own
//!   ([`Lock`], [`Event`], …): they work
//!   between threads as well as between processes.
//! * [`Value`] and [`Array`] hold plain values behind a mutex (Python's
//!   dummy `Value` is a plain object, its `Array` an `array.array`).
//! * [`Manager()`] makes thread-shared objects with the constructors,
//!   type names and methods of [`crate::managers`]' proxies
//!   ([`managers`]), and [`Namespace`] is Python's plain namespace.
//!
//! Nothing needs serde here: values are moved between threads (a
//! [`Namespace`] keeps its attributes in serde's data model, to convert
//! them as a managed namespace does).
//!
//! # Layout
//!
//! * `process`: [`Process`], [`current_process`], [`active_children`].
//! * `queue`: [`Queue`], [`JoinableQueue`].
//! * `connection`: [`Pipe`], [`Connection`].
//! * `value`: [`Value`], [`Array`].
//! * [`managers`]: [`Manager()`], [`Namespace`] and the objects a
//!   manager makes.

mod connection;
pub mod managers;
mod process;
mod queue;
mod value;

pub use crate::pool::ThreadPool as Pool;
pub use crate::process::cpu_count;
pub use crate::synchronize::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
pub use connection::{Connection, Pipe};
pub use managers::{Manager, Namespace};
pub use process::{active_children, current_process, Process};
pub use queue::{JoinableQueue, Queue};
pub use value::{Array, Value};
