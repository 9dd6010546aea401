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
//! # Extension points
//!
//! Other modules add their constructors to [`Context`] with their own
//! `impl Context { … }` block in their own file (Rust allows inherent impls
//! anywhere in the crate), reading [`Context::start_method`] when the start
//! method matters to them, e.g. `impl Context { pub fn pipe(&self, duplex:
//! bool) -> … }` in `connection`.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::process::{Process, Target, TargetResult, INIT_CALLED};

/// How a child process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// Copy the parent with `fork(2)`; the child runs the target directly.
    /// Fast and runs any closure, but unsafe in a process with threads.
    Fork,
    /// Execute this program again (`/proc/self/exe`); the child gets the
    /// target and arguments over a socket. Needs [`crate::init`].
    Spawn,
    /// Ask a single-threaded server process, started once, to fork the
    /// child. Needs [`crate::init`].
    Forkserver,
}

impl StartMethod {
    /// Python's name: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }

    fn code(self) -> u8 {
        match self {
            StartMethod::Fork => 1,
            StartMethod::Spawn => 2,
            StartMethod::Forkserver => 3,
        }
    }

    fn from_code(code: u8) -> Option<StartMethod> {
        match code {
            1 => Some(StartMethod::Fork),
            2 => Some(StartMethod::Spawn),
            3 => Some(StartMethod::Forkserver),
            _ => None,
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the context functions (Python's `ValueError` and
/// `RuntimeError` from `get_context`/`set_start_method`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextError {
    /// The name is not a start method.
    #[error("cannot find context for {0:?}")]
    UnknownStartMethod(String),
    /// `set_start_method` after the start method was fixed, without
    /// `force`.
    #[error("context has already been set")]
    AlreadySet,
}

impl FromStr for StartMethod {
    type Err = ContextError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::Forkserver),
            other => Err(ContextError::UnknownStartMethod(other.to_owned())),
        }
    }
}

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
}

/// 0 = not fixed yet; otherwise a [`StartMethod::code`]. An atomic, not a
/// lock, so a forked child can never inherit it locked.
static ACTUAL: AtomicU8 = AtomicU8::new(0);

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

/// Sets the default start method (Python's `set_start_method`). Only once,
/// and only before the default was used, unless `force`.
pub fn set_start_method(method: StartMethod, force: bool) -> Result<(), ContextError> {
    let code = method.code();
    if force {
        ACTUAL.store(code, Ordering::SeqCst);
        return Ok(());
    }
    ACTUAL
        .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
        .map(|_| ())
        .map_err(|_| ContextError::AlreadySet)
}

/// The default start method, fixing it if it was not set (Python's
/// `get_start_method()`); see the [module docs](self) for the choice.
pub fn get_start_method() -> StartMethod {
    let preferred = natural_default();
    match ACTUAL.compare_exchange(0, preferred.code(), Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => preferred,
        Err(code) => StartMethod::from_code(code).unwrap_or(preferred),
    }
}

/// The start method if one was fixed (Python's
/// `get_start_method(allow_none=True)`).
pub fn get_start_method_if_set() -> Option<StartMethod> {
    StartMethod::from_code(ACTUAL.load(Ordering::SeqCst))
}

/// Every start method this platform supports, the default first (Python's
/// `get_all_start_methods()`).
pub fn get_all_start_methods() -> Vec<StartMethod> {
    let first = get_start_method_if_set().unwrap_or_else(natural_default);
    let mut all = vec![first];
    for m in [
        StartMethod::Forkserver,
        StartMethod::Spawn,
        StartMethod::Fork,
    ] {
        if m != first {
            all.push(m);
        }
    }
    all
}

fn natural_default() -> StartMethod {
    if INIT_CALLED.load(Ordering::SeqCst) {
        StartMethod::Forkserver
    } else {
        StartMethod::Fork
    }
}

/// The method a `Process` without a context starts with.
pub(crate) fn default_start_method() -> StartMethod {
    let method = get_start_method();
    if method == StartMethod::Fork {
        warn_if_threaded();
    }
    method
}

/// Sets the start method a child inherited from its parent.
pub(crate) fn force_start_method(method: StartMethod) {
    ACTUAL.store(method.code(), Ordering::SeqCst);
}

fn warn_if_threaded() {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads > 1 && !INIT_CALLED.load(Ordering::SeqCst) {
        tracing::debug!(
            target: "multiprocessing",
            "starting a process with fork in a process running {threads} threads; call \
             multiprocessing::init() in main to default to forkserver"
        );
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
