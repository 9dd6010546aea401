//! The threads of a [`ThreadPool`]: their shared state, the worker loop,
//! and [`ThreadPoolBuilder`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::core::{CLOSE, RUN, TERMINATE};
use super::func::run_task;
use super::job::Job;
use super::{PoolError, ThreadPool};
use mp_sys::lock;

/// One chunk's work.
pub(crate) type Task = Box<dyn FnOnce() + Send>;
/// A thread initializer.
type Init = Arc<dyn Fn() + Send + Sync>;

/// What the pool's handle and its threads share.
pub(crate) struct Shared {
    pub(crate) state: AtomicU8,
    pub(crate) queue: Mutex<VecDeque<Task>>,
    pub(crate) queue_cv: Condvar,
    pub(crate) jobs: Mutex<HashMap<u64, Arc<dyn Job>>>,
    pub(crate) jobs_cv: Condvar,
    pub(crate) next_job: AtomicUsize,
    pub(crate) maxtasks: Option<u64>,
    pub(crate) initializer: Option<Init>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) counter: AtomicUsize,
    /// The process that made the pool (a forked copy has no threads).
    pub(crate) owner: u32,
    /// The number of threads.
    pub(crate) processes: usize,
    /// Threads in a row whose initializer failed, and whether any thread
    /// ever got past it.
    pub(crate) init_failures: AtomicUsize,
    pub(crate) initialized: AtomicBool,
    /// Why the pool gave up, if it did.
    pub(crate) broken: Mutex<Option<PoolError>>,
}

/// Settings of a [`ThreadPool`].
pub struct ThreadPoolBuilder {
    pub(crate) processes: Option<usize>,
    pub(crate) maxtasks: Option<u64>,
    pub(crate) initializer: Option<Init>,
}

impl ThreadPoolBuilder {
    /// The number of threads (default: [`cpu_count`](crate::cpu_count)).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Each thread exits after this many tasks and is replaced.
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.maxtasks = Some(n);
        self
    }

    /// Each thread calls `f` when it starts; a panicking initializer
    /// makes the thread exit and be replaced, and after three rounds of
    /// threads all failing it (none past it) calls fail with
    /// [`PoolError::Broken`].
    pub fn initializer(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.initializer = Some(Arc::new(f));
        self
    }

    /// Starts the threads.
    pub fn build(self) -> Result<ThreadPool, PoolError> {
        let processes = match self.processes {
            Some(n) => n,
            None => crate::cpu_count().unwrap_or(1),
        };
        if processes == 0 {
            return Err(PoolError::ValueError(
                "Number of processes must be at least 1".into(),
            ));
        }
        if self.maxtasks == Some(0) {
            return Err(PoolError::ValueError(
                "maxtasksperchild must be a positive int or None".into(),
            ));
        }
        let shared = Arc::new(Shared {
            state: AtomicU8::new(RUN),
            queue: Mutex::new(VecDeque::new()),
            queue_cv: Condvar::new(),
            jobs: Mutex::new(HashMap::new()),
            jobs_cv: Condvar::new(),
            next_job: AtomicUsize::new(0),
            maxtasks: self.maxtasks,
            initializer: self.initializer,
            threads: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
            owner: std::process::id(),
            processes,
            init_failures: AtomicUsize::new(0),
            initialized: AtomicBool::new(false),
            broken: Mutex::new(None),
        });
        let pool = ThreadPool::started(shared, processes);
        for _ in 0..processes {
            if let Err(e) = spawn_thread(&pool.shared) {
                pool.stop();
                return Err(e);
            }
        }
        Ok(pool)
    }
}

pub(crate) fn spawn_thread(shared: &Arc<Shared>) -> Result<(), PoolError> {
    let n = shared.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let s = shared.clone();
    let h = std::thread::Builder::new()
        .name(format!("Thread-{n}"))
        .spawn(move || worker(s))
        .map_err(|e| PoolError::Start(format!("cannot start a pool thread: {e}")))?;
    lock(&shared.threads).push(h);
    Ok(())
}

/// Fails every job, and every later call, when the initializer keeps
/// failing and no thread ever got past it (CPython retries forever).
fn give_up(shared: &Shared, failures: usize) {
    let error = PoolError::Broken(format!(
        "the initializer failed in {failures} threads in a row"
    ));
    let jobs: Vec<Arc<dyn Job>> = {
        let mut jobs = lock(&shared.jobs);
        *lock(&shared.broken) = Some(error.clone());
        let all = jobs.drain().map(|(_, j)| j).collect();
        shared.jobs_cv.notify_all();
        all
    };
    lock(&shared.queue).clear();
    for job in jobs {
        job.abort(&error);
    }
}

fn worker(shared: Arc<Shared>) {
    if let Some(init) = &shared.initializer {
        if run_task(|| init()).is_err() {
            let failures = shared.init_failures.fetch_add(1, Ordering::SeqCst) + 1;
            if failures >= 3 * shared.processes && !shared.initialized.load(Ordering::SeqCst) {
                give_up(&shared, failures);
            } else if shared.state.load(Ordering::SeqCst) == RUN {
                // Python's pool replaces a worker whose initializer failed.
                let _ = spawn_thread(&shared);
            }
            return;
        }
        shared.init_failures.store(0, Ordering::SeqCst);
        shared.initialized.store(true, Ordering::SeqCst);
    }
    let mut done = 0u64;
    loop {
        if matches!(shared.maxtasks, Some(m) if done >= m) {
            if shared.state.load(Ordering::SeqCst) != TERMINATE {
                let _ = spawn_thread(&shared);
            }
            return;
        }
        let task = {
            let mut q = lock(&shared.queue);
            loop {
                if shared.state.load(Ordering::SeqCst) == TERMINATE {
                    return;
                }
                if let Some(t) = q.pop_front() {
                    break t;
                }
                if shared.state.load(Ordering::SeqCst) == CLOSE && lock(&shared.jobs).is_empty() {
                    return;
                }
                q = shared
                    .queue_cv
                    .wait_timeout(q, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        };
        task();
        done += 1;
    }
}
