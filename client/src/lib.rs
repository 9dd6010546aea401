//! Python's `multiprocessing` for Rust.
//!
//! Module paths mirror Python's so a user finds things where they expect
//! them; the crate root re-exports the everyday names.
//!
//! A program that starts processes with the `spawn` or `forkserver` start
//! methods (the default is `forkserver`) calls [`init`] first in `main`.
//!
//! # Layout
//!
//! * [`connection`]: `Pipe`, `Connection`, `Listener`/`Client` and `wait`.
//! * [`process`]: [`Process`] and the process-wide functions
//!   ([`current_process`], [`active_children`], …).
//! * [`context`]: start methods and contexts ([`get_context`],
//!   [`set_start_method`], …).
//! * [`dummy`]: the same API on threads.
//! * [`log`]: [`log_to_stderr`] and [`get_logger`] on `tracing`.
//! * [`managers`]: clients of `mpserver` and of a local manager process.
//! * [`pool`]: [`Pool`] and [`ThreadPool`].
//! * [`queues`]: [`Queue`], [`JoinableQueue`], [`SimpleQueue`].
//! * [`reduction`]: file descriptors inside serialized values, for children
//!   and Unix-socket connections.
//! * [`synchronize`]: Lock, RLock, Semaphore, Condition, Event, Barrier.
//! * [`sharedctypes`]: Value, Array, RawValue, RawArray.
//! * [`shared_memory`]: SharedMemory and ShareableList by name.
//! * [`resource_tracker`]: unlinks named segments a crashed program left.
//! * `sys` (private): checked Linux calls (pidfds, polling, `SCM_RIGHTS`)
//!   that `process` and `connection` share.

pub mod connection;
pub mod context;
pub mod dummy;
pub mod log;
mod manager_error;
pub mod managers;
pub mod pool;
pub mod process;
mod process_name;
pub mod queues;
pub mod reduction;
pub mod resource_tracker;
pub mod shared_memory;
pub mod sharedctypes;
pub mod synchronize;
pub(crate) mod sys;

pub use connection::{Connection, Pipe};
pub use context::{
    default_context, get_all_start_methods, get_context, get_start_method, set_start_method,
    Context, StartMethod,
};
pub use log::get_logger;
#[cfg(feature = "log")]
pub use log::log_to_stderr;
pub use pool::{Pool, ThreadPool};
pub use process::{
    active_children, cpu_count, current_process, parent_process, AuthKey, Process, ProcessError,
    Run,
};
pub use queues::{JoinableQueue, Queue, SimpleQueue};
pub use sharedctypes::{Array, RawArray, RawValue, Value};
pub use synchronize::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

/// Makes this program usable as a child process: call it as the first line
/// of `main` (the counterpart of Python's `freeze_support()` and of the
/// `if __name__ == '__main__'` guard).
///
/// The `spawn` and `forkserver` start methods execute the program's own
/// file again with a special command line; in such a process `init()` runs
/// the child's target (or the forkserver) and exits, so the rest of `main`
/// never runs there. In the original program it returns at once, having
/// noted that re-execution is possible (which makes `forkserver` the
/// default start method).
///
/// Test binaries built by libtest cannot call it first; a test that needs
/// `spawn` or `forkserver` lives in a `harness = false` test target whose
/// own `main` calls `init()`.
pub fn init() {
    process::INIT_CALLED.store(true, std::sync::atomic::Ordering::SeqCst);
    process::dispatch_child();
}
