//! Pools of workers (Python's `multiprocessing.pool`): [`Pool`] runs
//! tasks in worker processes, [`ThreadPool`] in threads, with the same
//! API: `apply`/`apply_async`, `map`/`map_async`, `imap`,
//! `imap_unordered`, `starmap`/`starmap_async`, `close`, `terminate`,
//! `join`, and [`AsyncResult`]/[`IMapIterator`] for results.
//!
//! Python's keyword arguments become methods: `chunksize` is the
//! `*_chunked` variants (or an `Option` in the `*_async_with` ones),
//! `callback`/`error_callback` the `*_async_with` variants, and the pool's
//! own settings a [`PoolBuilder`].
//!
//! # Results and errors
//!
//! A task function returning `Result<R, E>` gives `R`, and its `Err(e)`
//! comes back as itself, [`PoolError::Task`]` { index, error: e }`, from
//! `apply`, `map`, `starmap`, the `*_async` results, the `imap`
//! iterators (at that item) and error callbacks, as Python re-raises the
//! task's exception; a panic is [`PoolError::Panic`]. A function
//! returning a plain value has the error type [`NoError`], the default
//! of [`PoolError`], [`AsyncResult`] and [`IMapIterator`].
//! [`AsyncResult::get`] moves the result out (no `Clone` needed).
//! `close`, `terminate` and `join` all return a `Result`.
//!
//! # Layout
//!
//! * `process_pool`: [`Pool`]; `builder`: [`PoolBuilder`]; `core`: its queues,
//!   threads and worker replacement; `worker`: the worker process;
//!   `record`: task and result records and finding a task's function.
//! * `thread_pool`: [`ThreadPool`]; `thread_worker`: its threads and
//!   [`ThreadPoolBuilder`].
//! * `api`: the call API both pools share (one macro).
//! * `func`: [`PoolFn`], [`TaskResult`], the chunksize rule.
//! * `job`: the parent's per-call bookkeeping; `async_result`:
//!   [`AsyncResult`], [`IMapIterator`].
//! * `error`: [`PoolError`], [`NoError`].

mod api;
mod async_result;
mod builder;
mod core;
mod error;
mod func;
mod job;
mod lazy;
mod process_pool;
mod record;
mod thread_pool;
mod thread_worker;
mod worker;

pub(crate) use job::wait_until;

pub use async_result::{AsyncResult, IMapIterator, MapResult};
pub use builder::PoolBuilder;
pub use error::{NoError, PoolError};
pub use func::{PoolFn, TaskResult};
pub use process_pool::{ApplyError, ApplyOutput, Pool};
pub use thread_pool::ThreadPool;
pub use thread_worker::ThreadPoolBuilder;

#[cfg(test)]
mod tests;
