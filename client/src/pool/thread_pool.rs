//! [`ThreadPool`]: the [`Pool`](super::Pool) API on threads (Python's
//! `multiprocessing.pool.ThreadPool`, which is also
//! `multiprocessing.dummy.Pool`).
//!
//! Threads share the caller's memory, so functions may be any
//! `Fn + Send + Sync` closure and values need no serde. `terminate` cannot
//! stop a running task (nor can Python's): it fails every task not yet
//! finished with [`PoolError::Terminated`] and lets the threads exit after
//! their current task.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::async_result::{AsyncResult, IMapIterator, MapResult, Submitted, SubmittedIMap};
use super::core::{CLOSE, RUN, TERMINATE};
use super::func::{check_chunksize, chunksize_or_default, run_task, Failure, PoolFn, TaskResult};
use super::job::{ApplyJob, Callback, Completion, ErrorCallback, IMapJob, Job, MapJob, Sink};
use super::lazy::LazyInput;
use super::process_pool::{ApplyError, ApplyOutput};
use super::thread_worker::{Shared, Task, ThreadPoolBuilder};
use super::PoolError;
use mp_sys::lock;

/// A pool of worker threads with [`Pool`](super::Pool)'s API (Python's
/// `ThreadPool`).
///
/// ```
/// use multiprocessing::pool::{PoolError, ThreadPool};
///
/// let offset = 10;
/// let pool = ThreadPool::new(4)?;
/// let r = pool.map(move |x: i32| x + offset, 0..4)?;
/// assert_eq!(r, vec![10, 11, 12, 13]);
///
/// // A function's own error comes back typed, at its position.
/// let parsed = pool.map(|s: &str| s.parse::<u8>(), ["1", "x"]);
/// assert!(matches!(parsed, Err(PoolError::Task { index: 1, .. })));
/// pool.close()?;
/// pool.join()?;
/// # Ok::<(), PoolError>(())
/// ```
///
/// The thread pool's errors need no serde: any `E` that is `Send` works.
pub struct ThreadPool {
    pub(crate) shared: Arc<Shared>,
    processes: usize,
}

impl ThreadPool {
    pub(crate) fn started(shared: Arc<Shared>, processes: usize) -> ThreadPool {
        ThreadPool { shared, processes }
    }

    /// A pool of `processes` threads.
    pub fn new(processes: usize) -> Result<ThreadPool, PoolError> {
        ThreadPool::builder().processes(processes).build()
    }

    /// A builder for the other settings.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            processes: None,
            maxtasks: None,
            initializer: None,
        }
    }

    /// The number of threads.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// Registers a job and queues one task per chunk; each task runs
    /// `call` on its items and delivers the outcomes.
    fn submit<A, T, E, S, C>(
        &self,
        sink: Arc<S>,
        items: Vec<A>,
        chunksize: usize,
        call: Arc<C>,
    ) -> Result<(), PoolError>
    where
        A: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        S: Sink<T, E> + 'static,
        C: Fn(A) -> Result<T, Failure<E>> + Send + Sync + 'static,
    {
        let s = &self.shared;
        if items.is_empty() {
            return match s.state.load(Ordering::SeqCst) {
                RUN => Ok(()),
                _ => Err(PoolError::NotRunning),
            };
        }
        let id = self.register(sink.clone())?;
        let mut q = lock(&s.queue);
        let mut items = items.into_iter();
        let mut start = 0usize;
        loop {
            let chunk: Vec<A> = items.by_ref().take(chunksize).collect();
            if chunk.is_empty() {
                break;
            }
            let first = start;
            start += chunk.len();
            q.push_back(chunk_task(s, id, &sink, &call, first, chunk));
        }
        drop(q);
        s.queue_cv.notify_all();
        Ok(())
    }

    /// Puts `job` in the cache under a new id.
    fn register(&self, job: Arc<dyn Job>) -> Result<u64, PoolError> {
        let s = &self.shared;
        let id = s.next_job.fetch_add(1, Ordering::Relaxed) as u64;
        // Checked under the cache's lock, which `terminate` takes after
        // changing the state: a job is either refused or aborted by it.
        let mut jobs = lock(&s.jobs);
        if let Some(e) = lock(&s.broken).clone() {
            return Err(e);
        }
        if s.state.load(Ordering::SeqCst) != RUN {
            return Err(PoolError::NotRunning);
        }
        jobs.insert(id, job);
        Ok(id)
    }

    fn apply_inner<F, Args>(
        &self,
        f: F,
        args: Args,
        callback: Option<Callback<ApplyOutput<F, Args>>>,
        error_callback: Option<ErrorCallback<ApplyError<F, Args>>>,
    ) -> Submitted<ApplyOutput<F, Args>, ApplyError<F, Args>>
    where
        F: PoolFn<Args>,
        Args: Send + 'static,
        ApplyOutput<F, Args>: Send + 'static,
        ApplyError<F, Args>: Send + 'static,
    {
        let done = Arc::new(Completion::new(callback, error_callback));
        let job = Arc::new(ApplyJob { done: done.clone() });
        let call = Arc::new(move |a: Args| run_task(|| f.call(a)));
        self.submit(job, vec![args], 1, call)
            .map_err(PoolError::widen)?;
        Ok(AsyncResult::new(done))
    }

    fn map_inner<F, A, R>(
        &self,
        f: F,
        items: Vec<A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<R::Ok>>>,
        error_callback: Option<ErrorCallback<R::Err>>,
    ) -> Submitted<Vec<R::Ok>, R::Err>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: TaskResult + 'static,
        R::Ok: Send + 'static,
        R::Err: Send + 'static,
    {
        let call = Arc::new(move |a: A| run_task(|| f(a)));
        self.submit_map(items, chunksize, callback, error_callback, call)
    }

    /// A `map`/`starmap` job: `call` on each of `items`.
    fn submit_map<A, T, E, C>(
        &self,
        items: Vec<A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<T>>>,
        error_callback: Option<ErrorCallback<E>>,
        call: Arc<C>,
    ) -> Result<MapResult<T, E>, PoolError<E>>
    where
        A: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        C: Fn(A) -> Result<T, Failure<E>> + Send + Sync + 'static,
    {
        let chunksize = chunksize_or_default(items.len(), chunksize, self.processes)
            .map_err(PoolError::widen)?;
        let job = Arc::new(MapJob::new(items.len(), callback, error_callback));
        let done = job.done.clone();
        self.submit(job, items, chunksize, call)
            .map_err(PoolError::widen)?;
        Ok(AsyncResult::new(done))
    }

    fn starmap_inner<F, Args>(
        &self,
        f: F,
        items: Vec<Args>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<ApplyOutput<F, Args>>>>,
        error_callback: Option<ErrorCallback<ApplyError<F, Args>>>,
    ) -> Submitted<Vec<ApplyOutput<F, Args>>, ApplyError<F, Args>>
    where
        F: PoolFn<Args>,
        Args: Send + 'static,
        ApplyOutput<F, Args>: Send + 'static,
        ApplyError<F, Args>: Send + 'static,
    {
        let call = Arc::new(move |a: Args| run_task(|| f.call(a)));
        self.submit_map(items, chunksize, callback, error_callback, call)
    }

    fn imap_inner<F, A, R>(
        &self,
        f: F,
        items: Box<dyn Iterator<Item = A> + Send>,
        chunksize: usize,
        ordered: bool,
    ) -> SubmittedIMap<R::Ok, R::Err>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: TaskResult + 'static,
        R::Ok: Send + 'static,
        R::Err: Send + 'static,
    {
        let job = Arc::new(IMapJob::new(ordered));
        let id = self.register(job.clone()).map_err(PoolError::widen)?;
        let shared = Arc::clone(&self.shared);
        let input = LazyInput::new(items, job.clone(), move || finish_job(&shared, id));
        let feed = Arc::new(Feed {
            shared: Arc::clone(&self.shared),
            id,
            job: job.clone(),
            call: Arc::new(move |a| run_task(|| f(a))),
            input: Mutex::new((input, 0)),
            chunksize,
        });
        let s = &self.shared;
        lock(&s.queue).push_back(Feed::task(feed));
        s.queue_cv.notify_all();
        Ok(IMapIterator::new(job))
    }

    /// Fails with [`PoolError::NotOwner`] in a forked child: the threads
    /// are the parent's, and were not copied.
    fn check_owner(&self) -> Result<(), PoolError> {
        if self.shared.owner != std::process::id() {
            return Err(PoolError::NotOwner {
                owner: self.shared.owner,
            });
        }
        Ok(())
    }

    /// No more tasks may be submitted (Python's `close`); it fails only
    /// as [`Pool::close`](super::Pool::close) does, in a forked child.
    pub fn close(&self) -> Result<(), PoolError> {
        self.check_owner()?;
        let _ = self
            .shared
            .state
            .compare_exchange(RUN, CLOSE, Ordering::SeqCst, Ordering::SeqCst);
        self.shared.queue_cv.notify_all();
        Ok(())
    }

    /// Fails every task not finished with [`PoolError::Terminated`]; the
    /// threads exit after their current task (Python's `terminate`).
    pub fn terminate(&self) -> Result<(), PoolError> {
        self.check_owner()?;
        self.stop();
        Ok(())
    }

    /// `terminate` without the owner check, for the pool's own use.
    pub(crate) fn stop(&self) {
        let s = &self.shared;
        s.state.store(TERMINATE, Ordering::SeqCst);
        lock(&s.queue).clear();
        s.queue_cv.notify_all();
        let jobs: Vec<Arc<dyn Job>> = lock(&s.jobs).drain().map(|(_, j)| j).collect();
        s.jobs_cv.notify_all();
        for j in jobs {
            j.abort(&PoolError::Terminated { index: 0 });
        }
    }

    /// Waits for the threads to exit; only after `close` (queued work
    /// finishes first) or `terminate` (Python's `join`).
    pub fn join(&self) -> Result<(), PoolError> {
        self.check_owner()?;
        let s = &self.shared;
        if s.state.load(Ordering::SeqCst) == RUN {
            return Err(PoolError::StillRunning);
        }
        {
            let mut jobs = lock(&s.jobs);
            while !jobs.is_empty() && s.state.load(Ordering::SeqCst) == CLOSE {
                jobs = s.jobs_cv.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
        }
        s.queue_cv.notify_all();
        // Threads replacing themselves push new handles while we join.
        loop {
            let Some(h) = lock(&s.threads).pop() else {
                return Ok(());
            };
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if self.shared.owner != std::process::id() {
            // A copy in a forked child: its threads were not copied.
            return;
        }
        self.stop();
        let _ = self.join();
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<multiprocessing.pool.ThreadPool pool_size={}>",
            self.processes
        )
    }
}

/// The task running `call` on one chunk of job `id`, items `first..`,
/// delivering each outcome to `sink`.
fn chunk_task<A, T, E, S, C>(
    shared: &Arc<Shared>,
    id: u64,
    sink: &Arc<S>,
    call: &Arc<C>,
    first: usize,
    chunk: Vec<A>,
) -> Task
where
    A: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    S: Sink<T, E> + 'static,
    C: Fn(A) -> Result<T, Failure<E>> + Send + Sync + 'static,
{
    let (sink, call, shared) = (sink.clone(), call.clone(), shared.clone());
    Box::new(move || {
        for (i, a) in chunk.into_iter().enumerate() {
            let index = first + i;
            let out = call(a).map_err(|failure| failure.at(index));
            if sink.deliver(index, out) {
                finish_job(&shared, id);
            }
        }
    })
}

/// Drops a done job from the cache.
fn finish_job(shared: &Shared, id: u64) {
    let mut jobs = lock(&shared.jobs);
    jobs.remove(&id);
    if jobs.is_empty() {
        shared.jobs_cv.notify_all();
        // Idle threads of a closed pool may exit now.
        shared.queue_cv.notify_all();
    }
}

/// A lazy `imap` input, fed by the pool's own threads: the task in the
/// queue takes one chunk, queues itself again behind whatever is waiting
/// (so the input is taken only as threads get free, and later
/// submissions are not held up behind an endless one), then runs the
/// chunk.
struct Feed<A, T, E, C> {
    shared: Arc<Shared>,
    id: u64,
    job: Arc<IMapJob<T, E>>,
    call: Arc<C>,
    /// The input and the position of its next item.
    input: Mutex<(LazyInput<A, T, E>, usize)>,
    chunksize: usize,
}

impl<A, T, E, C> Feed<A, T, E, C>
where
    A: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    C: Fn(A) -> Result<T, Failure<E>> + Send + Sync + 'static,
{
    fn task(feed: Arc<Self>) -> Task {
        Box::new(move || {
            let (chunk, first) = {
                let mut g = lock(&feed.input);
                let (input, next) = &mut *g;
                let chunk: Vec<A> = input.by_ref().take(feed.chunksize).collect();
                let first = *next;
                *next += chunk.len();
                (chunk, first)
            };
            if chunk.is_empty() {
                return;
            }
            let s = &feed.shared;
            // A closed pool still finishes its inputs, as Python's does.
            if s.state.load(Ordering::SeqCst) != TERMINATE {
                lock(&s.queue).push_back(Feed::task(Arc::clone(&feed)));
                s.queue_cv.notify_one();
            }
            chunk_task(s, feed.id, &feed.job, &feed.call, first, chunk)();
        })
    }
}

super::api::pool_api!(ThreadPool, [], [Send + 'static]);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    #[test]
    fn imap_on_threads_takes_its_input_lazily_and_holds_nothing_up() {
        let pool = ThreadPool::new(2).unwrap();
        let mut endless = pool.imap_chunked(|x: u64| x * 2, 0u64.., 4).unwrap();
        for i in 0..100u64 {
            assert_eq!(endless.next(), Some(Ok(i * 2)));
        }
        // A later submission runs beside the endless input.
        let later = pool.apply_async(|x: u32| x + 1, (41,)).unwrap();
        assert_eq!(
            later.get_timeout(std::time::Duration::from_secs(60)),
            Ok(42)
        );
        drop(endless);
        pool.terminate().unwrap();

        let pool = ThreadPool::new(3).unwrap();
        let got: Vec<_> = pool
            .imap(
                |x: u32| x + 1,
                (0..10u32).inspect(|&x| assert!(x != 7, "seven")),
            )
            .unwrap()
            .collect();
        assert_eq!(got.len(), 8);
        assert!(got[..7]
            .iter()
            .enumerate()
            .all(|(i, r)| *r == Ok(i as u32 + 1)));
        assert!(
            matches!(&got[7], Err(PoolError::InputPanic { index: 7, message }) if message == "seven"),
            "{:?}",
            got[7]
        );
        let empty: Vec<_> = pool.imap_unordered(|x: u32| x, vec![]).unwrap().collect();
        assert!(empty.is_empty());
        pool.close().unwrap();
        pool.join().unwrap();
    }

    #[test]
    fn the_whole_api_on_threads() {
        let pool = ThreadPool::new(3).unwrap();
        let k = 3;
        assert_eq!(
            pool.map(move |x: u32| x * k, 0..5).unwrap(),
            vec![0, 3, 6, 9, 12]
        );
        assert_eq!(pool.apply(|a: u32, b: u32| a + b, (2, 5)).unwrap(), 7);
        assert_eq!(
            pool.starmap(|a: u32, b: u32| a * b, vec![(2, 3), (4, 5)])
                .unwrap(),
            vec![6, 20]
        );
        let fails = |x: u32| {
            if x == 5 {
                Err(format!("bad {x}"))
            } else {
                Ok(x)
            }
        };
        let got: Vec<_> = pool.imap(fails, 0..8).unwrap().collect();
        assert_eq!(
            got[5],
            Err(PoolError::Task {
                index: 5,
                error: "bad 5".to_string()
            })
        );
        assert_eq!(got[7], Ok(7));
        let mut un: Vec<u32> = pool
            .imap_unordered_chunked(|x: u32| x, 0..20, 3)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        un.sort_unstable();
        assert_eq!(un, (0..20).collect::<Vec<_>>());
        match pool.map_chunked(
            |x: u32| -> u32 {
                assert!(x != 2, "no two");
                x
            },
            0..4,
            1,
        ) {
            Err(PoolError::Panic {
                index: 2, message, ..
            }) => assert_eq!(message, "no two"),
            other => panic!("{other:?}"),
        }
        let r = pool
            .apply_async(|| std::thread::sleep(Duration::from_millis(300)), ())
            .unwrap();
        assert!(!r.wait_timeout(Duration::from_millis(1)));
        assert_eq!(r.successful(), Err(PoolError::NotReady));
        assert_eq!(r.get(), Ok(()));
        let r = pool
            .apply_async(|| std::thread::sleep(Duration::from_millis(300)), ())
            .unwrap();
        assert_eq!(
            r.get_timeout(Duration::from_millis(1)),
            Err(PoolError::Timeout)
        );
        assert_eq!(pool.join(), Err(PoolError::StillRunning));
        pool.close().unwrap();
        pool.join().unwrap();
        assert_eq!(pool.map(|x: u32| x, [1]), Err(PoolError::NotRunning));
    }

    #[test]
    fn initializer_maxtasks_and_terminate() {
        static INITS: AtomicU32 = AtomicU32::new(0);
        let pool = ThreadPool::builder()
            .processes(2)
            .maxtasksperchild(2)
            .initializer(|| {
                INITS.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        pool.map_chunked(|x: u32| x, 0..10, 1).unwrap();
        // 10 tasks, 2 per thread: at least 5 threads were started.
        assert!(INITS.load(Ordering::SeqCst) >= 5);
        let slow = pool
            .map_async(
                |_: u32| std::thread::sleep(Duration::from_millis(50)),
                0..100,
            )
            .unwrap();
        pool.terminate().unwrap();
        assert!(matches!(slow.get(), Err(PoolError::Terminated { .. })));
        pool.join().unwrap();
    }

    #[test]
    fn a_failing_initializer_breaks_the_pool_instead_of_hanging() {
        let pool = ThreadPool::builder()
            .processes(2)
            .initializer(|| panic!("no"))
            .build()
            .unwrap();
        // The pool may give up before or after the call is queued.
        let got = pool.map_async(|x: u32| x, 0..4).and_then(|r| r.get());
        assert!(matches!(got, Err(PoolError::Broken(_))), "{got:?}");
        assert!(matches!(pool.apply(|| 1u8, ()), Err(PoolError::Broken(_))));
        pool.close().unwrap();
        pool.join().unwrap();
    }
}
