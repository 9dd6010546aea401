//! What `apply_async`, `map_async` and `imap` give back: [`AsyncResult`]
//! (Python's `AsyncResult`/`MapResult`) and [`IMapIterator`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::job::{Completion, IMapJob};
use super::PoolError;

/// The result of `apply_async` (`V` = the task's value) or of
/// `map_async`/`starmap_async` (`V` = `Vec` of the values), ready once the
/// pool has finished the work (Python's `AsyncResult`).
///
/// Clones share the result.
pub struct AsyncResult<V> {
    done: Arc<Completion<V>>,
}

/// The result of `map_async`/`starmap_async` (Python's `MapResult`).
pub type MapResult<T> = AsyncResult<Vec<T>>;

impl<V> Clone for AsyncResult<V> {
    fn clone(&self) -> Self {
        AsyncResult {
            done: self.done.clone(),
        }
    }
}

impl<V> AsyncResult<V> {
    pub(crate) fn new(done: Arc<Completion<V>>) -> Self {
        AsyncResult { done }
    }

    /// Waits for the result: the value, or the error of the (first) failed
    /// task, [`PoolError::Terminated`] if the pool was terminated first.
    pub fn get(&self) -> Result<V, PoolError>
    where
        V: Clone,
    {
        self.done.get_cloned(None)
    }

    /// Waits at most `timeout`: [`PoolError::Timeout`] if the result is
    /// not ready by then (Python's `get(timeout)` raising `TimeoutError`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<V, PoolError>
    where
        V: Clone,
    {
        self.done.get_cloned(Some(timeout))
    }

    /// The result if it is ready now, [`PoolError::Timeout`] otherwise
    /// (the crate's `_nowait` form of `get`).
    pub fn get_nowait(&self) -> Result<V, PoolError>
    where
        V: Clone,
    {
        self.done.get_cloned(Some(Duration::ZERO))
    }

    /// Waits until the result is ready.
    pub fn wait(&self) {
        self.done.wait(None);
    }

    /// Waits at most `timeout`; returns whether the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.done.wait(Some(timeout))
    }

    /// Whether the call has completed.
    pub fn ready(&self) -> bool {
        self.done.ready()
    }

    /// Whether the call completed without error; [`PoolError::NotReady`]
    /// before it completed (Python's `ValueError`).
    pub fn successful(&self) -> Result<bool, PoolError> {
        self.done.successful().ok_or(PoolError::NotReady)
    }

    /// Waits and moves the value out, for the pool's own blocking calls
    /// that hold the only handle.
    pub(crate) fn take(&self) -> Result<V, PoolError> {
        self.done.take()
    }
}

impl<V> fmt::Debug for AsyncResult<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

/// The results of `imap` (in input order) or `imap_unordered` (as they
/// finish), one per input item (Python's `IMapIterator`).
///
/// Each item is the task's value or its error, so a failed task surfaces
/// at its own position and the iteration goes on past it.
pub struct IMapIterator<T> {
    job: Arc<IMapJob<T>>,
}

impl<T> IMapIterator<T> {
    pub(crate) fn new(job: Arc<IMapJob<T>>) -> Self {
        IMapIterator { job }
    }

    /// The next result, waiting at most `timeout` (Python's
    /// `next(timeout)`): `Some(Err(PoolError::Timeout))` when none came in
    /// time (the iterator does not advance; call again), `None` at the end.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<T, PoolError>> {
        self.job.next(Some(timeout))
    }
}

impl<T> Iterator for IMapIterator<T> {
    type Item = Result<T, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.job.next(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.job.remaining()
    }
}

impl<T> fmt::Debug for IMapIterator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMapIterator")
            .field("remaining", &self.job.remaining().0)
            .finish()
    }
}
