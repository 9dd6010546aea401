//! The machinery behind a [`Pool`](super::Pool): its shared state, the
//! job cache, and the three threads Python's pool also runs — the task
//! feeder, the result handler and the worker handler.
//!
//! * Tasks go into a shared-memory [`Queue`] of raw records (one per
//!   chunk), results come back through another. A submitting thread puts
//!   its records itself while the queue has room and the feeder is idle
//!   (no thread hand-off on the fast path); otherwise the rest go to the
//!   feeder thread, in order, so `*_async` never blocks.
//! * The result handler decodes result records into their jobs; callbacks
//!   run on it, as in Python.
//! * The worker handler waits on the workers' pidfds. A worker that exits
//!   (`maxtasksperchild`, or killed) is reaped and replaced. Results it
//!   had finished but not sent (workers batch them, see `worker`) are
//!   taken from its part of a shared buffer and delivered; the tasks of
//!   the chunk it was running (its slot in a shared array names it) fail
//!   with [`PoolError::WorkerLost`] instead of hanging. A worker names a
//!   chunk in its slot while the chunk's record is still in the task
//!   queue, under the queue's lock, so a kill at any instant either leaves
//!   the record queued for another worker or lets it fail here: no chunk
//!   is ever lost. (A kill between the two leaves both: the chunk fails,
//!   and the result of its second run is ignored.)

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use mp_sys::lock;
use std::thread::JoinHandle;
use std::time::Duration;

use super::record::{parse_result, stop_record, RawSink, STOP};
use super::worker::{
    spin_get, split_batch, worker_main, Initializer, WorkerArgs, BUF_BYTES, INIT_FAILED,
    SLOT_WORDS, SPIN,
};
use super::PoolError;
use crate::process::{Process, Sentinel, StartMethod};
use crate::queues::{Queue, QueueError};
use crate::sharedctypes::RawArray;

pub(crate) const RUN: u8 = 0;
pub(crate) const CLOSE: u8 = 1;
pub(crate) const TERMINATE: u8 = 2;

/// How often the handler threads look at the pool's state when nothing
/// wakes them.
const TICK: Duration = Duration::from_millis(100);

/// One chunk's record, or why it could not be encoded.
pub(crate) struct Chunk {
    pub(crate) job: u64,
    pub(crate) start: u64,
    pub(crate) count: u32,
    pub(crate) record: Result<Vec<u8>, String>,
}

/// The chunks of one submission, made lazily (encoding happens on the
/// feeder when the submitter hands over).
pub(crate) type Chunks = Box<dyn Iterator<Item = Chunk> + Send>;

struct Worker {
    process: Process,
    sentinel: Sentinel,
    pid: u32,
}

struct Jobs {
    map: HashMap<u64, Arc<dyn RawSink>>,
    next: u64,
}

pub(crate) struct Core {
    pub(crate) method: StartMethod,
    pub(crate) processes: usize,
    maxtasks: Option<u64>,
    initializer: Option<Initializer>,
    tasks: Queue<Vec<u8>>,
    results: Queue<Vec<u8>>,
    slots: RawArray<u64>,
    buffers: RawArray<u8>,
    jobs: Mutex<Jobs>,
    jobs_empty: Condvar,
    pub(crate) state: AtomicU8,
    /// Set by `join` once every job is done: workers that exit now are
    /// not replaced.
    stopping: AtomicBool,
    workers: Mutex<Vec<Option<Worker>>>,
    /// Serializes submissions; holds the feeder's channel.
    feeder: Mutex<Option<mpsc::Sender<Chunks>>>,
    /// Submissions the feeder has not finished putting.
    feeding: AtomicUsize,
    /// Writing a byte wakes the worker handler.
    wake_tx: OwnedFd,
    wake_rx: OwnedFd,
    worker_counter: AtomicUsize,
    /// Workers in a row whose initializer failed.
    init_failures: AtomicUsize,
    /// Why the pool gave up, if it did.
    broken: Mutex<Option<PoolError>>,
    /// The process that made the pool: only it may stop it (a forked
    /// child holding a copy must not kill the parent's workers).
    pub(crate) owner: u32,
}

/// The pool's threads, joined by `join`/`terminate`.
pub(crate) struct Threads {
    handles: Vec<JoinHandle<()>>,
}

impl Core {
    pub(crate) fn start(
        method: StartMethod,
        processes: usize,
        maxtasks: Option<u64>,
        initializer: Option<Initializer>,
    ) -> Result<(Arc<Core>, Threads), PoolError> {
        if processes == 0 {
            return Err(PoolError::ValueError(
                "Number of processes must be at least 1".into(),
            ));
        }
        if maxtasks == Some(0) {
            return Err(PoolError::ValueError(
                "maxtasksperchild must be a positive int or None".into(),
            ));
        }
        let q = |e: QueueError| PoolError::Queue(e.to_string());
        let (wake_rx, wake_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| PoolError::Start(format!("cannot make the wake-up pipe: {e}")))?;
        let (tx, rx) = mpsc::channel::<Chunks>();
        let core = Arc::new(Core {
            method,
            processes,
            maxtasks,
            initializer,
            tasks: Queue::new(0).map_err(q)?,
            results: Queue::new(0).map_err(q)?,
            slots: RawArray::new(processes * SLOT_WORDS)
                .map_err(|e| PoolError::Start(e.to_string()))?,
            buffers: RawArray::new(processes * BUF_BYTES)
                .map_err(|e| PoolError::Start(e.to_string()))?,
            jobs: Mutex::new(Jobs {
                map: HashMap::new(),
                next: 0,
            }),
            jobs_empty: Condvar::new(),
            state: AtomicU8::new(RUN),
            stopping: AtomicBool::new(false),
            workers: Mutex::new((0..processes).map(|_| None).collect()),
            feeder: Mutex::new(Some(tx)),
            feeding: AtomicUsize::new(0),
            wake_tx,
            wake_rx,
            worker_counter: AtomicUsize::new(0),
            init_failures: AtomicUsize::new(0),
            broken: Mutex::new(None),
            owner: std::process::id(),
        });
        {
            let mut workers = lock(&core.workers);
            for slot in 0..processes {
                match core.spawn_worker(slot) {
                    Ok(w) => workers[slot] = Some(w),
                    Err(e) => {
                        drop(workers);
                        core.kill_workers();
                        return Err(e);
                    }
                }
            }
        }
        let mut handles = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| PoolError::Start(format!("cannot start the {name} thread: {e}")))
        };
        let c = core.clone();
        handles.push(spawn("pool-feeder", Box::new(move || c.feed(rx)))?);
        let c = core.clone();
        handles.push(spawn("pool-results", Box::new(move || c.handle_results()))?);
        let c = core.clone();
        handles.push(spawn("pool-workers", Box::new(move || c.handle_workers()))?);
        Ok((core, Threads { handles }))
    }

    fn spawn_worker(&self, slot: usize) -> Result<Worker, PoolError> {
        let args = WorkerArgs {
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            slots: self.slots.clone(),
            buffers: self.buffers.clone(),
            slot,
            maxtasks: self.maxtasks,
            initializer: self.initializer.clone(),
        };
        let n = self.worker_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let kind = match self.method {
            StartMethod::Fork => "Fork",
            StartMethod::Spawn => "Spawn",
            StartMethod::Forkserver => "ForkServer",
        };
        let process = Process::new(worker_main, (args,))
            .with_method(self.method)
            .with_name(format!("{kind}PoolWorker-{n}"))
            .with_daemon(true);
        let start = |e: crate::ProcessError| PoolError::Start(e.to_string());
        process.start().map_err(start)?;
        let sentinel = process.sentinel().map_err(start)?;
        let pid = process.pid().map_err(start)?.unwrap_or(0);
        Ok(Worker {
            process,
            sentinel,
            pid,
        })
    }

    /// The pids of the live workers.
    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        lock(&self.workers)
            .iter()
            .flatten()
            .map(|w| w.pid)
            .collect()
    }

    /// Registers a job; its id.
    pub(crate) fn register(&self, sink: Arc<dyn RawSink>) -> Result<u64, PoolError> {
        // Checked under the cache's lock, which `terminate` takes after
        // changing the state: a job is either refused or aborted by it.
        let mut jobs = lock(&self.jobs);
        if let Some(e) = lock(&self.broken).clone() {
            return Err(e);
        }
        if self.state.load(Ordering::SeqCst) != RUN {
            return Err(PoolError::NotRunning);
        }
        let id = jobs.next;
        jobs.next += 1;
        jobs.map.insert(id, sink);
        Ok(id)
    }

    /// Queues a job's chunks, in order after every earlier submission.
    pub(crate) fn submit(&self, mut chunks: Chunks) {
        let feeder = lock(&self.feeder);
        let Some(tx) = feeder.as_ref() else {
            return;
        };
        if self.feeding.load(Ordering::SeqCst) == 0 {
            // Put directly while there is room: no hand-off to a thread.
            loop {
                let Some(chunk) = chunks.next() else {
                    return;
                };
                let Some(rec) = self.encoded(&chunk) else {
                    continue;
                };
                match self.tasks.put_nowait(rec) {
                    Ok(()) => {}
                    Err(QueueError::Full) => {
                        chunks = Box::new(std::iter::once(chunk).chain(chunks));
                        break;
                    }
                    Err(e) => self.fail_chunk(&chunk, &e.to_string()),
                }
            }
        }
        self.hand_to_feeder(tx, chunks);
    }

    /// Queues a job's chunks on the feeder thread only: for a lazy input,
    /// which the submitting thread must not wait on.
    pub(crate) fn submit_in_background(&self, chunks: Chunks) {
        let feeder = lock(&self.feeder);
        if let Some(tx) = feeder.as_ref() {
            self.hand_to_feeder(tx, chunks);
        }
    }

    fn hand_to_feeder(&self, tx: &mpsc::Sender<Chunks>, chunks: Chunks) {
        self.feeding.fetch_add(1, Ordering::SeqCst);
        if tx.send(chunks).is_err() {
            self.feeding.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A chunk's record, or `None` after failing the chunk whose
    /// arguments could not be encoded.
    fn encoded<'c>(&self, chunk: &'c Chunk) -> Option<&'c Vec<u8>> {
        match &chunk.record {
            Ok(rec) => Some(rec),
            Err(message) => {
                self.fail_chunk(chunk, message);
                None
            }
        }
    }

    fn fail_chunk(&self, chunk: &Chunk, message: &str) {
        let sink = lock(&self.jobs).map.get(&chunk.job).cloned();
        if let Some(sink) = sink {
            let e = PoolError::Transfer {
                index: chunk.start as usize,
                message: message.to_string(),
            };
            if sink.fail(chunk.start, chunk.count, &e) {
                self.finish_job(chunk.job);
            }
        }
    }

    pub(crate) fn finish_job(&self, job: u64) {
        let mut jobs = lock(&self.jobs);
        jobs.map.remove(&job);
        if jobs.map.is_empty() {
            self.jobs_empty.notify_all();
        }
    }

    /// The feeder thread: puts handed-over chunks, waiting for room.
    fn feed(&self, rx: mpsc::Receiver<Chunks>) {
        while let Ok(chunks) = rx.recv() {
            for chunk in chunks {
                if self.state.load(Ordering::SeqCst) == TERMINATE {
                    break;
                }
                let Some(rec) = self.encoded(&chunk) else {
                    continue;
                };
                loop {
                    match self.tasks.put_timeout(rec, TICK) {
                        Ok(()) => break,
                        Err(QueueError::Full) if self.state.load(Ordering::SeqCst) != TERMINATE => {
                        }
                        Err(QueueError::Full) => break,
                        Err(e) => {
                            self.fail_chunk(&chunk, &e.to_string());
                            break;
                        }
                    }
                }
            }
            self.feeding.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The result handler thread: takes batches of result records and
    /// hands each to its job; polls a little before sleeping, as workers
    /// do, since results tend to come in runs.
    fn handle_results(&self) {
        loop {
            let batch = match spin_get(&self.results, SPIN, |_| {}) {
                Some(batch) => batch,
                None => match self.results.get_timeout(TICK) {
                    Ok(batch) => batch,
                    Err(QueueError::Empty) => {
                        if self.state.load(Ordering::SeqCst) == TERMINATE {
                            return;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(target: "multiprocessing", "pool result queue: {e}");
                        std::thread::sleep(TICK);
                        continue;
                    }
                },
            };
            if parse_result(&batch).is_some_and(|r| r.job == STOP) {
                return;
            }
            self.deliver_batch(&batch);
        }
    }

    fn deliver_batch(&self, batch: &[u8]) {
        for rec in split_batch(batch) {
            let Some(r) = parse_result(rec) else {
                continue;
            };
            let sink = lock(&self.jobs).map.get(&r.job).cloned();
            if let Some(sink) = sink {
                if sink.deliver_raw(r.start, r.count, r.body) {
                    self.finish_job(r.job);
                }
            }
        }
    }

    /// The worker handler thread: reaps and replaces workers.
    fn handle_workers(&self) {
        loop {
            let state = self.state.load(Ordering::SeqCst);
            if state == TERMINATE {
                return;
            }
            let mut any_alive = false;
            {
                let mut workers = lock(&self.workers);
                for slot in 0..workers.len() {
                    let Some(w) = &workers[slot] else {
                        continue;
                    };
                    let code = match w.process.exitcode() {
                        Ok(None) => {
                            any_alive = true;
                            continue;
                        }
                        Ok(Some(code)) => code,
                        Err(_) => -1,
                    };
                    let pid = w.pid;
                    let _ = w.process.join();
                    workers[slot] = None;
                    self.fail_held_chunk(slot, pid, code);
                    let initialized = self.slots.get(slot * SLOT_WORDS + 3).unwrap_or(0) == 1;
                    let _ = self.slots.set(slot * SLOT_WORDS + 3, 0);
                    if code == INIT_FAILED && !initialized {
                        self.init_failures.fetch_add(1, Ordering::SeqCst);
                    } else {
                        self.init_failures.store(0, Ordering::SeqCst);
                    }
                    if self.should_replace() {
                        match self.spawn_worker(slot) {
                            Ok(w) => {
                                workers[slot] = Some(w);
                                any_alive = true;
                            }
                            Err(e) => {
                                tracing::error!(target: "multiprocessing", "pool: {e}");
                            }
                        }
                    }
                }
                self.check_broken(&workers);
            }
            if self.stopping.load(Ordering::SeqCst) && !any_alive {
                return;
            }
            self.wait_for_exits();
        }
    }

    /// Gives up, failing every job, when no task can ever run: the
    /// initializer failed in three rounds of new workers with none of the
    /// live ones past it, or no worker could be started at all.
    fn check_broken(&self, workers: &[Option<Worker>]) {
        if !self.should_replace() {
            return;
        }
        let live = workers.iter().flatten().count();
        let initialized = (0..workers.len())
            .filter(|&s| workers[s].is_some())
            .any(|s| self.slots.get(s * SLOT_WORDS + 3).unwrap_or(0) == 1);
        let failures = self.init_failures.load(Ordering::SeqCst);
        let reason = if live == 0 {
            "no worker process could be started".to_string()
        } else if failures >= 3 * self.processes && !initialized {
            format!("the initializer failed in {failures} workers in a row (their stderr says why)")
        } else {
            return;
        };
        tracing::error!(target: "multiprocessing", "pool: {reason}; failing its tasks");
        let error = PoolError::Broken(reason);
        *lock(&self.broken) = Some(error.clone());
        let jobs: Vec<Arc<dyn RawSink>> = {
            let mut jobs = lock(&self.jobs);
            let all = jobs.map.drain().map(|(_, s)| s).collect();
            self.jobs_empty.notify_all();
            all
        };
        for job in jobs {
            job.abort(&error);
        }
    }

    fn should_replace(&self) -> bool {
        if lock(&self.broken).is_some() {
            return false;
        }
        match self.state.load(Ordering::SeqCst) {
            RUN => true,
            CLOSE => !self.stopping.load(Ordering::SeqCst),
            _ => false,
        }
    }

    /// Settles what a dead worker held: delivers the results it had not
    /// sent yet (from its part of the shared buffer), then fails the chunk
    /// it was running, if any. A result delivered twice (the worker died
    /// after sending but before clearing) is ignored by the job.
    fn fail_held_chunk(&self, slot: usize, pid: u32, exitcode: i32) {
        let buf = slot * BUF_BYTES;
        let mut used = [0u8; 8];
        let _ = self.buffers.read(buf, &mut used);
        let used = (u64::from_le_bytes(used) as usize).min(BUF_BYTES - 8);
        if used > 0 {
            let mut bytes = vec![0u8; used];
            let _ = self.buffers.read(buf + 8, &mut bytes);
            let _ = self.buffers.write(buf, &0u64.to_le_bytes());
            self.deliver_batch(&bytes);
        }
        let base = slot * SLOT_WORDS;
        let count = self.slots.get(base + 2).unwrap_or(0) as u32;
        if count == 0 {
            return;
        }
        let job = self.slots.get(base).unwrap_or(u64::MAX);
        let start = self.slots.get(base + 1).unwrap_or(0);
        let _ = self.slots.set(base + 2, 0);
        tracing::warn!(
            target: "multiprocessing",
            "pool worker pid {pid} died with exit code {exitcode} while running a task; replacing it"
        );
        let sink = lock(&self.jobs).map.get(&job).cloned();
        if let Some(sink) = sink {
            let e = PoolError::WorkerLost {
                index: start as usize,
                pid,
                exitcode,
            };
            if sink.fail(start, count, &e) {
                self.finish_job(job);
            }
        }
    }

    /// Sleeps until a worker exits, the pool is woken, or a tick passes.
    fn wait_for_exits(&self) {
        let workers = lock(&self.workers);
        let mut fds: Vec<libc::pollfd> = workers
            .iter()
            .flatten()
            .map(|w| libc::pollfd {
                fd: w.sentinel.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(libc::pollfd {
            fd: self.wake_rx.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // The descriptors stay open while we poll: the sentinels belong to
        // workers that only this thread removes.
        drop(workers);
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                TICK.as_millis() as i32,
            )
        };
        if fds.last().is_some_and(|f| f.revents != 0) {
            let mut buf = [0u8; 64];
            // SAFETY: reading into a stack buffer of that size; the pipe is
            // ours. A short or failed read only means nothing to drain.
            unsafe { libc::read(self.wake_rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        }
    }

    fn wake_worker_handler(&self) {
        // SAFETY: writing one byte from a stack buffer to our own pipe. If
        // the pipe is full the handler is already due to wake.
        unsafe { libc::write(self.wake_tx.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }

    pub(crate) fn close(&self) {
        let _ = self
            .state
            .compare_exchange(RUN, CLOSE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Stops at once: pending jobs fail with [`PoolError::Terminated`],
    /// workers are killed.
    pub(crate) fn terminate(&self) {
        self.state.store(TERMINATE, Ordering::SeqCst);
        let jobs: Vec<Arc<dyn RawSink>> = {
            let mut jobs = lock(&self.jobs);
            let all = jobs.map.drain().map(|(_, s)| s).collect();
            self.jobs_empty.notify_all();
            all
        };
        for job in jobs {
            job.abort(&PoolError::Terminated { index: 0 });
        }
        self.kill_workers();
        self.wake_worker_handler();
        // Wakes the result handler at once rather than at its next tick.
        let _ = self.results.put_nowait(&stop_record());
        lock(&self.feeder).take();
    }

    fn kill_workers(&self) {
        let workers: Vec<Worker> = lock(&self.workers)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in &workers {
            let _ = w.process.terminate();
        }
        for w in &workers {
            if !matches!(w.process.join_timeout(Duration::from_secs(1)), Ok(true)) {
                let _ = w.process.kill();
                let _ = w.process.join();
            }
        }
    }

    /// After `close`: waits for every job, then stops the workers and the
    /// threads.
    pub(crate) fn join_closed(&self) {
        {
            let mut jobs = lock(&self.jobs);
            while !jobs.map.is_empty() && self.state.load(Ordering::SeqCst) == CLOSE {
                jobs = self
                    .jobs_empty
                    .wait(jobs)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        if self.state.load(Ordering::SeqCst) != CLOSE {
            return;
        }
        self.stopping.store(true, Ordering::SeqCst);
        let live = lock(&self.workers).iter().flatten().count();
        for _ in 0..live {
            if self.tasks.put(&stop_record()).is_err() {
                break;
            }
        }
        self.wake_worker_handler();
        lock(&self.feeder).take();
    }

    /// Stops the result handler (the worker handler has stopped).
    fn stop_result_handler(&self) {
        let _ = self.results.put(&stop_record());
    }
}

impl Threads {
    /// Joins the threads: the worker handler first (it ends once every
    /// worker has exited), then the result handler, then the feeder.
    pub(crate) fn join(&mut self, core: &Core) {
        // A callback may stop the pool from the result thread itself:
        // that thread is not joined (it ends once the callback returns).
        let join = |h: JoinHandle<()>| {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        };
        let mut handles = std::mem::take(&mut self.handles);
        if let Some(workers) = handles.pop() {
            join(workers);
        }
        if core.state.load(Ordering::SeqCst) != TERMINATE {
            core.stop_result_handler();
        }
        for h in handles.into_iter().rev() {
            join(h);
        }
    }
}
