//! What `apply_async`, `map_async` and `imap` give back: [`AsyncResult`]
//! (Python's `AsyncResult`/`MapResult`) and [`IMapIterator`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::job::{Completion, IMapJob};
use super::{NoError, PoolError};

/// The result of `apply_async` (`V` = the task's value) or of
/// `map_async`/`starmap_async` (`V` = `Vec` of the values), ready once the
/// pool has finished the work (Python's `AsyncResult`). `E` is the error
/// type of the task's function ([`NoError`] for one that returns a plain
/// value).
///
/// [`get`](AsyncResult::get) takes the handle by value and moves the
/// result out, so `V` needs no `Clone`: the result is yours, once, as
/// with [`std::thread::JoinHandle::join`]. Python lets you call `get()`
/// again for the same object; in Rust keep the value `get` gave you. What
/// does not take the result borrows the handle: [`ready`],
/// [`successful`], [`wait`], [`wait_timeout`] (to poll, then `get`).
///
/// ```
/// use multiprocessing::pool::ThreadPool;
/// use std::time::Duration;
///
/// struct Report {
///     lines: Vec<String>, // no Clone needed
/// }
///
/// fn build(n: usize) -> Result<Report, String> {
///     Ok(Report { lines: (0..n).map(|i| format!("line {i}")).collect() })
/// }
///
/// let pool = ThreadPool::new(2)?;
/// let pending = pool.apply_async(build, (3,))?;
/// while !pending.wait_timeout(Duration::from_millis(10)) {
///     // Python's `get(timeout)` loop: do something else meanwhile.
/// }
/// assert_eq!(pending.successful(), Ok(true));
/// let report = pending.get()?;
/// assert_eq!(report.lines.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`ready`]: AsyncResult::ready
/// [`successful`]: AsyncResult::successful
/// [`wait`]: AsyncResult::wait
/// [`wait_timeout`]: AsyncResult::wait_timeout
pub struct AsyncResult<V, E = NoError> {
    done: Arc<Completion<V, E>>,
}

/// Awaiting an `AsyncResult` moves its result out once the pool has it,
/// without blocking the thread (feature `asyncio`), as awaiting tokio's
/// `JoinHandle` does; the pool wakes the task when the result comes.
///
/// Cancellation safe when polled by reference (`(&mut result).await`, or
/// `&mut result` in `tokio::select!`): the result is moved out only by
/// the poll that returns it. Polled again after that, it is
/// `PoolError::ValueError`.
#[cfg(feature = "asyncio")]
impl<V, E> std::future::Future for AsyncResult<V, E> {
    type Output = Result<V, PoolError<E>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.done.poll_take(cx)
    }
}

/// The result of `map_async`/`starmap_async` (Python's `MapResult`).
pub type MapResult<T, E = NoError> = AsyncResult<Vec<T>, E>;

/// A submission's handle on its result, or why the pool refused it.
pub(crate) type Submitted<V, E> = Result<AsyncResult<V, E>, PoolError<E>>;

/// An `imap` submission's iterator, or why the pool refused it.
pub(crate) type SubmittedIMap<T, E> = Result<IMapIterator<T, E>, PoolError<E>>;

impl<V, E> AsyncResult<V, E> {
    pub(crate) fn new(done: Arc<Completion<V, E>>) -> Self {
        AsyncResult { done }
    }

    /// Waits for the result and moves it out: the value, or the error of
    /// the (first) failed task, [`PoolError::Terminated`] if the pool was
    /// terminated first.
    pub fn get(self) -> Result<V, PoolError<E>> {
        self.done.take(None)
    }

    /// Waits at most `timeout`: [`PoolError::Timeout`] if the result is
    /// not ready by then (Python's `get(timeout)` raising `TimeoutError`).
    /// The handle is used up either way; to wait again after a timeout,
    /// poll with [`wait_timeout`](Self::wait_timeout) and then
    /// [`get`](Self::get).
    pub fn get_timeout(self, timeout: Duration) -> Result<V, PoolError<E>> {
        self.done.take(Some(timeout))
    }

    /// Waits until the result is ready.
    pub fn wait(&self) {
        self.done.wait(None);
    }

    /// Waits at most `timeout`; returns whether the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.done.wait(Some(timeout))
    }

    /// Waits for the result without blocking the thread and moves it
    /// out: the async twin of [`get`](AsyncResult::get) (feature
    /// `asyncio`), the same as awaiting the `AsyncResult` itself.
    ///
    /// # Cancel safety
    ///
    /// Not cancellation safe: the handle moves into the future, so
    /// dropping the future drops the result, as dropping the handle does.
    /// In `tokio::select!` or under `tokio::time::timeout`, await
    /// `&mut result` instead (the `AsyncResult` is a [`Future`](std::future::Future)): a
    /// dropped poll then leaves the result in the handle.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiprocessing::pool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2)?;
    /// let mut pending = pool.apply_async(|x: u32| x * 2, (21,))?;
    /// // Awaiting `&mut pending` under a timeout keeps the result if the
    /// // timeout wins.
    /// let value = tokio::time::timeout(Duration::from_secs(30), &mut pending).await??;
    /// assert_eq!(value, 42);
    /// let again = pool.apply_async(|x: u32| x + 1, (1,))?;
    /// assert_eq!(again.get_async().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "asyncio")]
    pub async fn get_async(self) -> Result<V, PoolError<E>> {
        self.await
    }

    /// Waits until the result is ready without blocking the thread: the
    /// async twin of [`wait`](AsyncResult::wait) (feature `asyncio`).
    /// Cancellation safe: waiting takes nothing.
    #[cfg(feature = "asyncio")]
    pub async fn wait_async(&self) {
        std::future::poll_fn(|cx| self.done.poll_ready(cx)).await
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
}

impl<V, E> fmt::Debug for AsyncResult<V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

/// The results of `imap` (in input order) or `imap_unordered` (as they
/// finish), one per input item (Python's `IMapIterator`); `E` is the error
/// type of the task's function.
///
/// Each item is the task's value or its error, so a failed task surfaces
/// at its own position and the iteration goes on past it.
///
/// ```
/// use multiprocessing::pool::{PoolError, ThreadPool};
///
/// let pool = ThreadPool::new(2)?;
/// let halves: Vec<_> = pool
///     .imap(|x: u32| if x % 2 == 0 { Ok(x / 2) } else { Err(x) }, 0..4)?
///     .collect();
/// assert_eq!(halves[0], Ok(0));
/// assert_eq!(halves[1], Err(PoolError::Task { index: 1, error: 1 }));
/// assert_eq!(halves[2], Ok(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IMapIterator<T, E = NoError> {
    job: Arc<IMapJob<T, E>>,
}

impl<T, E> IMapIterator<T, E> {
    pub(crate) fn new(job: Arc<IMapJob<T, E>>) -> Self {
        IMapIterator { job }
    }

    /// The next result, waiting at most `timeout` (Python's
    /// `next(timeout)`): `Some(Err(PoolError::Timeout))` when none came in
    /// time (the iterator does not advance; call again), `None` at the end.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<T, PoolError<E>>> {
        self.job.next(Some(timeout))
    }
}

impl<T, E> Iterator for IMapIterator<T, E> {
    type Item = Result<T, PoolError<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.job.next(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.job.remaining()
    }
}

impl<T, E> fmt::Debug for IMapIterator<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMapIterator")
            .field("remaining", &self.job.remaining().0)
            .finish()
    }
}
