//! Start methods and contexts (Python's `multiprocessing.context`).
//!
//! A [`Context`] fixes a start method and makes objects that use it:
//! `get_context(StartMethod::Spawn).process(f, args)`. The crate-level
//! functions ([`set_start_method`], [`get_start_method`], …) manage the
//! default context that a plain [`Process::new`] uses.
//!
//! # The default start method
//!
//! * In a program that calls [`crate::init`] (first thing in `main`), the
//!   default is **`forkserver`**, as in Python 3.14 on Linux. It is safe in
//!   programs that run threads — a tokio runtime, a thread pool — because
//!   children are forked from a single-threaded server, never from the
//!   threaded parent, and it starts a child in well under a millisecond.
//! * A program that does not call `init()` cannot be re-executed as a
//!   child, so its default is **`fork`**, the only method that works there.
//!   `fork` copies only the calling thread: a lock another thread held at
//!   that instant stays locked in the child forever. It is fine for
//!   single-threaded programs and tests; a debug-level warning is logged
//!   when it is used by default in a process that runs other threads.
//!
//! # Layering
//!
//! This module is a facade at the top of the local stack: every
//! constructor of [`Context`] is here, and nothing below uses it. The
//! start method itself and the process-wide default live in `process`
//! (which reads them when it starts a child) and are re-exported here; a
//! [`Pool`](crate::Pool) takes a context as the [`StartMethod`] it
//! converts into.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::process::start::method::{
    get_all_start_methods, get_start_method, get_start_method_if_set, set_start_method,
    ContextError, StartMethod,
};
use crate::process::{Process, Run, Target, TargetResult};

/// Objects for one start method (Python's `get_context(method)` result).
///
/// ```no_run
/// use multiprocessing::{get_context, StartMethod};
///
/// fn work(n: u64) -> Result<(), String> {
///     if n > 10 { Err(format!("{n} is too big")) } else { Ok(()) }
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     multiprocessing::init();
///     let ctx = get_context(StartMethod::Spawn);
///     let p = ctx.process(work, (42,));
///     p.start()?;
///     p.join()?;
///     assert_eq!(p.exitcode()?, Some(1));
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

impl Context {
    /// The start method of this context (Python's
    /// `ctx.get_start_method()`).
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// A [`Process`] that starts with this context's method; see
    /// [`Process::new`].
    pub fn process<F, Args>(&self, target: F, args: Args) -> Process
    where
        F: Target<Args>,
        Args: Serialize + DeserializeOwned + Send + 'static,
    {
        Process::new(target, args).with_method(self.method)
    }

    /// A [`Process`] that runs `worker.run()` with this context's method
    /// (Python's `class Worker(ctx.Process)`); see [`Process::from_run`].
    pub fn process_run<W>(&self, worker: W) -> Process
    where
        W: Run + Serialize + DeserializeOwned,
    {
        Process::from_run(worker).with_method(self.method)
    }

    /// A [`Process`] running any closure; only a `fork` context can start
    /// it. See [`Process::from_fn`].
    pub fn process_fn<C, R>(&self, target: C) -> Process
    where
        C: FnOnce() -> R + Send + 'static,
        R: TargetResult,
    {
        Process::from_fn(target).with_method(self.method)
    }
}

impl From<Context> for StartMethod {
    /// The context's start method: what a [`Pool`](crate::Pool) built
    /// with [`PoolBuilder::context`](crate::pool::PoolBuilder::context)
    /// starts its workers with.
    fn from(ctx: Context) -> StartMethod {
        ctx.method
    }
}

/// The other objects a context gives, as Python's `ctx.Pipe()`, `ctx.Lock()`,
/// … do. They live in shared memory or are descriptors, which every start
/// method hands to its children alike, so they do not depend on the method;
/// they are here so code written against a context finds them.
impl Context {
    /// A connected pair of [`Connection`](crate::Connection)s
    /// (Python's `ctx.Pipe(duplex)`).
    pub fn pipe(
        &self,
        duplex: bool,
    ) -> Result<(crate::Connection, crate::Connection), crate::connection::ConnectionError> {
        crate::Pipe(duplex)
    }

    /// A new [`Lock`](crate::Lock).
    pub fn lock(&self) -> Result<crate::Lock, crate::synchronize::SyncError> {
        crate::Lock::new()
    }

    /// A new [`RLock`](crate::RLock).
    pub fn rlock(&self) -> Result<crate::RLock, crate::synchronize::SyncError> {
        crate::RLock::new()
    }

    /// A new [`Semaphore`](crate::Semaphore) with `value` permits.
    pub fn semaphore(&self, value: u32) -> Result<crate::Semaphore, crate::synchronize::SyncError> {
        crate::Semaphore::new(value)
    }

    /// A new [`BoundedSemaphore`](crate::BoundedSemaphore) with `value`
    /// permits.
    pub fn bounded_semaphore(
        &self,
        value: u32,
    ) -> Result<crate::BoundedSemaphore, crate::synchronize::SyncError> {
        crate::BoundedSemaphore::new(value)
    }

    /// A new [`Condition`](crate::Condition) on its own `RLock`.
    pub fn condition(&self) -> Result<crate::Condition, crate::synchronize::SyncError> {
        crate::Condition::new()
    }

    /// A new [`Event`](crate::Event).
    pub fn event(&self) -> Result<crate::Event, crate::synchronize::SyncError> {
        crate::Event::new()
    }

    /// A new [`Barrier`](crate::Barrier) for `parties` processes or threads.
    pub fn barrier(&self, parties: u32) -> Result<crate::Barrier, crate::synchronize::SyncError> {
        crate::Barrier::new(parties)
    }

    /// A new [`Queue`](crate::Queue) of at most `maxsize` items (`0`: no
    /// limit). Queues work under every start method.
    pub fn queue<T>(&self, maxsize: usize) -> Result<crate::Queue<T>, crate::queues::QueueError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        crate::Queue::new(maxsize)
    }

    /// A new [`JoinableQueue`](crate::JoinableQueue) of at most `maxsize`
    /// items (`0`: no limit).
    pub fn joinable_queue<T>(
        &self,
        maxsize: usize,
    ) -> Result<crate::JoinableQueue<T>, crate::queues::QueueError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        crate::JoinableQueue::new(maxsize)
    }

    /// A new [`SimpleQueue`](crate::SimpleQueue).
    pub fn simple_queue<T>(&self) -> Result<crate::SimpleQueue<T>, crate::queues::QueueError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        crate::SimpleQueue::new()
    }

    /// A [`Pool`](crate::Pool) of `processes` workers started with this
    /// context's method (Python's `ctx.Pool(processes)`).
    pub fn pool(&self, processes: usize) -> Result<crate::Pool, crate::pool::PoolError> {
        crate::Pool::builder()
            .processes(processes)
            .context(*self)
            .build()
    }
}

/// The context for `method` (Python's `get_context(method)`).
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

/// The default context (Python's `get_context()`); fixes the default start
/// method as Python does.
pub fn default_context() -> Context {
    Context {
        method: get_start_method(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_gives_pipes_and_primitives() {
        let ctx = get_context(StartMethod::Fork);
        let (mut a, mut b) = ctx.pipe(true).unwrap();
        a.send(&7i64).unwrap();
        assert_eq!(b.recv::<i64>().unwrap(), 7);
        let lock = ctx.lock().unwrap();
        assert!(lock.acquire_nowait());
        assert!(!lock.acquire_nowait());
        lock.release().unwrap();
        let sem = ctx.bounded_semaphore(1).unwrap();
        assert!(sem.acquire_nowait());
        sem.release().unwrap();
        assert!(sem.release().is_err());
        let event = ctx.event().unwrap();
        event.set();
        assert!(event.is_set());
        assert_eq!(ctx.barrier(1).unwrap().wait().unwrap(), 0);
        assert!(ctx.rlock().is_ok() && ctx.condition().is_ok() && ctx.semaphore(2).is_ok());
    }

    #[test]
    fn names_round_trip() {
        for m in get_all_start_methods() {
            assert_eq!(m.as_str().parse::<StartMethod>(), Ok(m));
        }
        assert_eq!(
            "vfork".parse::<StartMethod>(),
            Err(ContextError::UnknownStartMethod("vfork".into()))
        );
        assert_eq!(get_all_start_methods().len(), 3);
        assert_eq!(
            get_context(StartMethod::Spawn).start_method(),
            StartMethod::Spawn
        );
    }
}
