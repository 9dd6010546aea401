//! The worker process of a [`Pool`](super::Pool) (Python's
//! `multiprocessing.pool.worker`): runs the initializer, then takes task
//! records from the task queue, runs them and puts result records, until
//! it is told to stop or has done `maxtasksperchild` tasks.
//!
//! # Batching and spinning
//!
//! Waking a sleeping process costs tens of microseconds on a loaded
//! machine, far more than a trivial task. So a worker that finds more
//! tasks waiting keeps its results in a batch (one queue record, at most
//! [`MAX_BATCH`] chunks) and sends the batch when the task queue runs
//! dry, when it is full, when a task took longer than [`SLOW_TASK`], or
//! when its oldest result has waited [`MAX_HOLD`]; and before sleeping on
//! an empty task queue it polls it for [`SPIN`]. A result can thus wait
//! behind at most one following task while tasks stream in.
//!
//! The batch lives in the worker's own part of a shared buffer, and the
//! chunk it is running is named in its slot of a shared array: if the
//! worker dies, the parent delivers the finished results from the buffer
//! and fails only the running chunk (see `core`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::func::install_quiet_panic_hook;
use super::record::{parse_task, result_record, EntryRef, InitEntry, TaskEntry, TaskHeader, STOP};
use crate::queues::{Block, Queue, QueueError};
use crate::sharedctypes::RawArray;

/// Most chunks in one batch of results.
const MAX_BATCH: usize = 64;
/// Words per worker in the pool's slot array: the job, first position and
/// size of the chunk it is running (size 0: none), then 1 once its
/// initializer has run.
pub(crate) const SLOT_WORDS: usize = 4;
/// The exit code of a worker whose initializer failed.
pub(crate) const INIT_FAILED: i32 = 3;
/// Bytes per worker in the pool's batch buffer: the number of bytes used
/// (a little-endian u64), then length-prefixed result records.
pub(crate) const BUF_BYTES: usize = 8 + 64 * 1024;
/// A task slower than this sends its result (and the batch) at once.
const SLOW_TASK: Duration = Duration::from_micros(200);
/// The oldest result in a batch waits at most this long for the batch to
/// fill (checked between tasks).
const MAX_HOLD: Duration = Duration::from_millis(1);
/// How long an idle worker polls the task queue before sleeping.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// A pool's initializer as a worker receives it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Initializer {
    pub(crate) entry: EntryRef,
    #[serde(with = "serde_bytes")]
    pub(crate) args: Vec<u8>,
}

/// What a worker process is started with.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) tasks: Queue<Vec<u8>>,
    pub(crate) results: Queue<Vec<u8>>,
    /// Where each worker names the chunk it runs, so the parent can fail
    /// exactly that one if the worker dies.
    pub(crate) slots: RawArray<u64>,
    /// Where each worker keeps its unsent results, so the parent can
    /// deliver them if the worker dies.
    pub(crate) buffers: RawArray<u8>,
    pub(crate) slot: usize,
    pub(crate) maxtasks: Option<u64>,
    pub(crate) initializer: Option<Initializer>,
}

/// Polls `queue` for up to `spin`, yielding the CPU between looks;
/// `None` if nothing came. `claim` sees a record before it leaves the
/// queue (see [`Queue::get_claiming`]).
pub(crate) fn spin_get(
    queue: &Queue<Vec<u8>>,
    spin: Duration,
    mut claim: impl FnMut(&[u8]),
) -> Option<Vec<u8>> {
    let start = Instant::now();
    loop {
        if !queue.empty() {
            if let Ok(rec) = queue.get_claiming(Block::No, &mut claim) {
                return Some(rec);
            }
        }
        if start.elapsed() >= spin {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Names the chunk about to run in the worker's slot (its first word at
/// `slot`); the size goes last (it marks the slot busy). Index errors
/// cannot happen here and in [`Batch`]: the parent sized both arrays for
/// every worker.
fn name_running_chunk(args: &WorkerArgs, slot: usize, h: &TaskHeader) {
    let _ = args.slots.set(slot, h.job);
    let _ = args.slots.set(slot + 1, h.start);
    let _ = args.slots.set(slot + 2, u64::from(h.count));
}

/// The unsent results of one worker, in its part of the shared buffer.
struct Batch<'a> {
    args: &'a WorkerArgs,
    slot: usize,
    buf: usize,
    used: usize,
    chunks: usize,
    oldest: Option<Instant>,
}

impl Batch<'_> {
    fn idle(&self) {
        let _ = self.args.slots.set(self.slot + 2, 0);
    }

    fn set_used(&mut self, used: usize) {
        self.used = used;
        let _ = self
            .args
            .buffers
            .write(self.buf, &(used as u64).to_le_bytes());
    }

    /// Adds a result record; the used count is stored after the bytes, so
    /// the parent never reads a torn record.
    fn push(&mut self, record: &[u8]) -> Result<(), QueueError> {
        let need = 4 + record.len();
        if need > BUF_BYTES - 8 {
            // Too big for the buffer: on its own, straight to the queue.
            self.flush()?;
            let mut alone = Vec::with_capacity(need);
            alone.extend_from_slice(&(record.len() as u32).to_le_bytes());
            alone.extend_from_slice(record);
            return self.args.results.put(&alone);
        }
        if self.used + need > BUF_BYTES - 8 {
            self.flush()?;
        }
        let at = self.buf + 8 + self.used;
        let _ = self
            .args
            .buffers
            .write(at, &(record.len() as u32).to_le_bytes());
        let _ = self.args.buffers.write(at + 4, record);
        self.set_used(self.used + need);
        self.chunks += 1;
        self.oldest.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn due(&self) -> bool {
        self.chunks >= MAX_BATCH || self.oldest.is_some_and(|t| t.elapsed() >= MAX_HOLD)
    }

    fn flush(&mut self) -> Result<(), QueueError> {
        if self.used == 0 {
            return Ok(());
        }
        let mut bytes = vec![0u8; self.used];
        let _ = self.args.buffers.read(self.buf + 8, &mut bytes);
        self.args.results.put(&bytes)?;
        self.set_used(0);
        self.chunks = 0;
        self.oldest = None;
        Ok(())
    }
}

/// The worker's main loop; its exit code is 0 when it stopped as asked or
/// after `maxtasksperchild` tasks.
pub(crate) fn worker_main(args: WorkerArgs) -> i32 {
    install_quiet_panic_hook();
    if let Some(init) = &args.initializer {
        // SAFETY: the parent made this EntryRef from an InitEntry, and this
        // worker runs the parent's executable (checked when it started).
        let f: InitEntry = unsafe { init.entry.resolve() };
        if let Err(e) = f(&init.args, init.entry.fingerprint) {
            eprintln!("pool worker: the initializer failed: {e}");
            return INIT_FAILED;
        }
    }
    let _ = args.slots.set(args.slot * SLOT_WORDS + 3, 1);
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pool worker: {e}");
            1
        }
    }
}

fn run(args: &WorkerArgs) -> Result<(), QueueError> {
    let mut batch = Batch {
        args,
        slot: args.slot * SLOT_WORDS,
        buf: args.slot * BUF_BYTES,
        used: 0,
        chunks: 0,
        oldest: None,
    };
    let mut completed = 0u64;
    // A task is named in this worker's slot while it is still in the
    // queue, so a kill at any instant either leaves it queued for another
    // worker or lets the parent fail it (`WorkerLost`): never lost.
    let claim = |rec: &[u8]| {
        if let Some((h, _)) = parse_task(rec) {
            if h.job != STOP {
                name_running_chunk(args, args.slot * SLOT_WORDS, &h);
            }
        }
    };
    while !matches!(args.maxtasks, Some(m) if completed >= m) {
        let rec = match args.tasks.get_claiming(Block::No, claim) {
            Ok(rec) => rec,
            Err(QueueError::Empty) => {
                // Results go out before this worker may sleep.
                batch.flush()?;
                match spin_get(&args.tasks, SPIN, claim) {
                    Some(rec) => rec,
                    None => args.tasks.get_claiming(Block::after(None), claim)?,
                }
            }
            Err(e) => return Err(e),
        };
        let Some((h, payload)) = parse_task(&rec) else {
            continue;
        };
        if h.job == STOP {
            break;
        }
        let started = Instant::now();
        // SAFETY: the parent made this EntryRef from a TaskEntry, and this
        // worker runs the parent's executable (checked when it started).
        let f: TaskEntry = unsafe { h.entry.resolve() };
        let out = f(payload, h.entry.fingerprint);
        batch.push(&result_record(&h, &out))?;
        batch.idle();
        completed += 1;
        if started.elapsed() >= SLOW_TASK || batch.due() {
            batch.flush()?;
        }
    }
    batch.flush()
}

/// Splits a batch of result records.
pub(crate) fn split_batch(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&rest[..4]);
        let len = u32::from_le_bytes(len) as usize;
        let rec = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(rec)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_back_into_records() {
        let mut bytes = Vec::new();
        for rec in [&b"abc"[..], b"", b"de"] {
            bytes.extend_from_slice(&(rec.len() as u32).to_le_bytes());
            bytes.extend_from_slice(rec);
        }
        let recs: Vec<&[u8]> = split_batch(&bytes).collect();
        assert_eq!(recs, vec![&b"abc"[..], b"", b"de"]);
        // A truncated tail is dropped, never read past.
        assert_eq!(split_batch(&bytes[..bytes.len() - 1]).count(), 2);
    }
}
