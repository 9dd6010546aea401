//! [`Pool`]: a pool of worker processes (Python's
//! `multiprocessing.pool.Pool`).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::async_result::{AsyncResult, IMapIterator, MapResult, Submitted, SubmittedIMap};
use super::builder::{assert_zero_sized, PoolBuilder};
use super::core::{Chunk, Chunks, Core, Threads, CLOSE, RUN, TERMINATE};
use super::func::{check_chunksize, chunksize_or_default, PoolFn, TaskResult};
use super::job::{ApplyJob, Callback, Completion, ErrorCallback, IMapJob, MapJob};
use super::lazy::LazyInput;
use super::record::{
    map_entry, star_entry, task_record, Decoding, EntryRef, TaskEntry, TaskHeader,
};
use super::PoolError;
use crate::process::StartMethod;
use mp_sys::lock;

/// What `apply(f, args)` gives for a function `F` called with `Args`.
pub type ApplyOutput<F, Args> = <<F as PoolFn<Args>>::Output as TaskResult>::Ok;

/// The error type of a function `F` called with `Args`: the `E` of its
/// `Result<T, E>`, [`NoError`](super::NoError) for a plain value.
pub type ApplyError<F, Args> = <<F as PoolFn<Args>>::Output as TaskResult>::Err;

/// A pool of worker processes that run tasks (Python's
/// `multiprocessing.Pool`).
///
/// ```no_run
/// use multiprocessing::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     multiprocessing::init(); // first: workers are re-executed children
///     let pool = Pool::new(4)?;
///     assert_eq!(pool.map(square, 0..10u64)?, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
///     let r = pool.apply_async(square, (7u64,))?;
///     assert_eq!(r.get()?, 49);
///     Ok(())
/// }
/// ```
///
/// # Functions and values
///
/// Workers are separate processes started with the pool's start method,
/// so the functions follow [`Process::new`](crate::Process::new)'s rule:
/// a `fn` item or a closure that captures nothing (checked at compile
/// time; this capturing closure is refused):
///
/// ```compile_fail,E0080
/// let pool = multiprocessing::Pool::new(1).unwrap();
/// let k = 2u64;
/// let _ = pool.map(move |x: u64| x * k, 0..4u64);
/// ```
///
/// Use a [`ThreadPool`](super::ThreadPool) for those. Arguments and
/// results are serde values (CBOR); file
/// descriptors cannot travel in them. A function returning
/// `Result<T, E>` gives `T`, and `Err(e)` fails the task with that `e`,
/// which travels back from the worker too, so `E` is a serde type as well
/// (see [`TaskResult`]).
///
/// # Failures
///
/// A task that returns `Err(e)` fails with [`PoolError::Task`] carrying
/// `e`, one that panics with [`PoolError::Panic`] carrying the message,
/// at its own position, and the pool goes on. A worker that dies (killed,
/// out of memory) is replaced, and the tasks of the chunk it was running
/// fail with [`PoolError::WorkerLost`] instead of hanging.
///
/// ```no_run
/// use multiprocessing::pool::PoolError;
/// use multiprocessing::Pool;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum ParseError {
///     Empty,
///     NotANumber(String),
/// }
///
/// fn parse(s: String) -> Result<u64, ParseError> {
///     if s.is_empty() {
///         return Err(ParseError::Empty);
///     }
///     s.parse().map_err(|_| ParseError::NotANumber(s))
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     multiprocessing::init();
///     let pool = Pool::new(2)?;
///     let words = vec!["1".to_string(), "x".to_string(), "3".to_string()];
///     match pool.map(parse, words) {
///         Err(PoolError::Task { index: 1, error: ParseError::NotANumber(w) }) => assert_eq!(w, "x"),
///         other => panic!("{other:?}"),
///     }
///     pool.close()?;
///     pool.join()?;
///     Ok(())
/// }
/// ```
///
/// Dropping the pool terminates it (Python's pool does on garbage
/// collection); call [`close`](Pool::close) then [`join`](Pool::join) to
/// let queued work finish first. A pool belongs to the process that made
/// it: a copy dropped in a forked child leaves the parent's pool alone,
/// and `close`, `terminate` and `join` there fail with
/// [`PoolError::NotOwner`].
pub struct Pool {
    core: Arc<Core>,
    threads: Mutex<Threads>,
}

/// Splits `items` into chunks of `chunksize` records for job `job`, as
/// they are taken.
fn chunks<A, I>(job: u64, entry: EntryRef, items: I, chunksize: usize) -> Chunks
where
    A: Serialize + Send + 'static,
    I: IntoIterator<Item = A>,
    I::IntoIter: Send + 'static,
{
    let mut items = items.into_iter();
    let mut start = 0u64;
    Box::new(std::iter::from_fn(move || {
        let chunk: Vec<A> = items.by_ref().take(chunksize).collect();
        if chunk.is_empty() {
            return None;
        }
        let count = chunk.len() as u32;
        let h = TaskHeader {
            job,
            start,
            count,
            entry,
        };
        let c = Chunk {
            job,
            start,
            count,
            record: task_record(&h, &chunk),
        };
        start += u64::from(count);
        Some(c)
    }))
}

impl Pool {
    /// The handle on a started pool.
    pub(crate) fn started(core: Arc<Core>, threads: Threads) -> Pool {
        Pool {
            core,
            threads: Mutex::new(threads),
        }
    }

    /// A pool of `processes` workers started with the default start
    /// method (Python's `Pool(processes)`).
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        Pool::builder().processes(processes).build()
    }

    /// A builder for the other settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            maxtasksperchild: None,
            method: None,
            initializer: None,
        }
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        self.core.processes
    }

    /// The start method of the workers.
    pub fn start_method(&self) -> StartMethod {
        self.core.method
    }

    /// The pids of the live workers (Python keeps them in `pool._pool`).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.core.worker_pids()
    }

    fn submit<A>(
        &self,
        entry: EntryRef,
        items: Vec<A>,
        chunksize: usize,
        sink: Arc<dyn super::record::RawSink>,
    ) -> Result<(), PoolError>
    where
        A: Serialize + Send + 'static,
    {
        if items.is_empty() {
            // Nothing will ever complete the job's entry in the cache.
            return match self.core.state.load(Ordering::SeqCst) {
                RUN => Ok(()),
                _ => Err(PoolError::NotRunning),
            };
        }
        let job = self.core.register(sink)?;
        self.core.submit(chunks(job, entry, items, chunksize));
        Ok(())
    }

    fn map_entry<F, A, R>(&self) -> Result<EntryRef, PoolError>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: DeserializeOwned,
        R: TaskResult,
        R::Ok: Serialize,
        R::Err: Serialize,
    {
        const { assert_zero_sized::<F>() };
        let entry: TaskEntry = map_entry::<F, A, R>;
        EntryRef::new::<F, (A,)>(entry as usize, self.core.method)
    }

    fn star_entry<F, Args>(&self) -> Result<EntryRef, PoolError>
    where
        F: PoolFn<Args> + Copy,
        Args: DeserializeOwned,
        ApplyOutput<F, Args>: Serialize,
        ApplyError<F, Args>: Serialize,
    {
        const { assert_zero_sized::<F>() };
        let entry: TaskEntry = star_entry::<F, Args>;
        EntryRef::new::<F, Args>(entry as usize, self.core.method)
    }

    fn apply_inner<F, Args>(
        &self,
        _f: F,
        args: Args,
        callback: Option<Callback<ApplyOutput<F, Args>>>,
        error_callback: Option<ErrorCallback<ApplyError<F, Args>>>,
    ) -> Submitted<ApplyOutput<F, Args>, ApplyError<F, Args>>
    where
        F: PoolFn<Args> + Copy,
        Args: Serialize + DeserializeOwned + Send + 'static,
        ApplyOutput<F, Args>: Serialize + DeserializeOwned + Send + 'static,
        ApplyError<F, Args>: Serialize + DeserializeOwned + Send + 'static,
    {
        let entry = self.star_entry::<F, Args>().map_err(PoolError::widen)?;
        let done = Arc::new(Completion::new(callback, error_callback));
        let sink = Arc::new(Decoding::new(ApplyJob { done: done.clone() }));
        self.submit(entry, vec![args], 1, sink)
            .map_err(PoolError::widen)?;
        Ok(AsyncResult::new(done))
    }

    fn map_inner<F, A, R>(
        &self,
        _f: F,
        items: Vec<A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<R::Ok>>>,
        error_callback: Option<ErrorCallback<R::Err>>,
    ) -> Submitted<Vec<R::Ok>, R::Err>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: TaskResult + 'static,
        R::Ok: Serialize + DeserializeOwned + Send + 'static,
        R::Err: Serialize + DeserializeOwned + Send + 'static,
    {
        let entry = self.map_entry::<F, A, R>().map_err(PoolError::widen)?;
        self.submit_map(entry, items, chunksize, callback, error_callback)
    }

    /// A `map`/`starmap` job over `items` for the task entry `entry`.
    fn submit_map<A, T, E>(
        &self,
        entry: EntryRef,
        items: Vec<A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<T>>>,
        error_callback: Option<ErrorCallback<E>>,
    ) -> Result<MapResult<T, E>, PoolError<E>>
    where
        A: Serialize + Send + 'static,
        T: DeserializeOwned + Send + 'static,
        E: DeserializeOwned + Send + 'static,
    {
        let chunksize = chunksize_or_default(items.len(), chunksize, self.core.processes)
            .map_err(PoolError::widen)?;
        let job = MapJob::new(items.len(), callback, error_callback);
        let done = job.done.clone();
        self.submit(entry, items, chunksize, Arc::new(Decoding::new(job)))
            .map_err(PoolError::widen)?;
        Ok(AsyncResult::new(done))
    }

    fn starmap_inner<F, Args>(
        &self,
        _f: F,
        items: Vec<Args>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<ApplyOutput<F, Args>>>>,
        error_callback: Option<ErrorCallback<ApplyError<F, Args>>>,
    ) -> Submitted<Vec<ApplyOutput<F, Args>>, ApplyError<F, Args>>
    where
        F: PoolFn<Args> + Copy,
        Args: Serialize + DeserializeOwned + Send + 'static,
        ApplyOutput<F, Args>: Serialize + DeserializeOwned + Send + 'static,
        ApplyError<F, Args>: Serialize + DeserializeOwned + Send + 'static,
    {
        let entry = self.star_entry::<F, Args>().map_err(PoolError::widen)?;
        self.submit_map(entry, items, chunksize, callback, error_callback)
    }

    fn imap_inner<F, A, R>(
        &self,
        _f: F,
        items: Box<dyn Iterator<Item = A> + Send>,
        chunksize: usize,
        ordered: bool,
    ) -> SubmittedIMap<R::Ok, R::Err>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: TaskResult + 'static,
        R::Ok: Serialize + DeserializeOwned + Send + 'static,
        R::Err: Serialize + DeserializeOwned + Send + 'static,
    {
        let entry = self.map_entry::<F, A, R>().map_err(PoolError::widen)?;
        let job = Arc::new(IMapJob::new(ordered));
        let id = self
            .core
            .register(Arc::new(Decoding::new(job.clone())))
            .map_err(PoolError::widen)?;
        let core = Arc::clone(&self.core);
        let input = LazyInput::new(items, job.clone(), move || core.finish_job(id));
        // The feeder thread takes the input, as Python's task handler does:
        // `imap` returns at once however slow the input is.
        self.core
            .submit_in_background(chunks(id, entry, input, chunksize));
        Ok(IMapIterator::new(job))
    }

    /// Fails with [`PoolError::NotOwner`] in a process that did not make
    /// the pool (a forked child's copy).
    fn check_owner(&self) -> Result<(), PoolError> {
        if self.core.owner != std::process::id() {
            return Err(PoolError::NotOwner {
                owner: self.core.owner,
            });
        }
        Ok(())
    }

    /// No more tasks may be submitted; workers exit once the queued work is
    /// done (Python's `close`). Closing a closed or terminated pool does
    /// nothing, as in Python.
    ///
    /// It returns a `Result`, as [`join`](Pool::join) and
    /// [`terminate`](Pool::terminate) do, for the one way all three fail:
    /// [`PoolError::NotOwner`] in a forked child holding a copy of the
    /// pool, whose workers it cannot reach.
    pub fn close(&self) -> Result<(), PoolError> {
        self.check_owner()?;
        self.core.close();
        Ok(())
    }

    /// Stops the workers at once (Python's `terminate`): tasks not finished
    /// fail with [`PoolError::Terminated`] rather than hanging.
    pub fn terminate(&self) -> Result<(), PoolError> {
        self.check_owner()?;
        self.core.terminate();
        lock(&self.threads).join(&self.core);
        Ok(())
    }

    /// Waits for the workers to exit; only after [`close`](Pool::close)
    /// (then queued work finishes first) or [`terminate`](Pool::terminate)
    /// (Python's `join`): [`PoolError::StillRunning`] before.
    pub fn join(&self) -> Result<(), PoolError> {
        self.check_owner()?;
        match self.core.state.load(Ordering::SeqCst) {
            RUN => Err(PoolError::StillRunning),
            CLOSE => {
                self.core.join_closed();
                lock(&self.threads).join(&self.core);
                Ok(())
            }
            _ => {
                lock(&self.threads).join(&self.core);
                Ok(())
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.core.owner != std::process::id() {
            // A copy in a forked child: the workers and threads are the
            // parent's.
            return;
        }
        if self.core.state.load(Ordering::SeqCst) != TERMINATE {
            self.core.terminate();
        }
        lock(&self.threads).join(&self.core);
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.core.state.load(Ordering::SeqCst) {
            RUN => "RUN",
            CLOSE => "CLOSE",
            _ => "TERMINATE",
        };
        write!(
            f,
            "<multiprocessing.pool.Pool state={state} pool_size={}>",
            self.core.processes
        )
    }
}

super::api::pool_api!(Pool, [+ Copy], [Serialize + DeserializeOwned + Send + 'static]);
