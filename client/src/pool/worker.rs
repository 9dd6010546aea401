//! The worker process of a [`Pool`](super::Pool) (Python's
//! `multiprocessing.pool.worker`): runs the initializer, then takes task
//! records from the task queue, runs them and puts result records, until
//! it is told to stop or has done `maxtasksperchild` tasks.

use serde::{Deserialize, Serialize};

use super::func::install_quiet_panic_hook;
use super::record::{parse_task, result_record, EntryRef, InitEntry, TaskEntry, STOP};
use crate::queues::Queue;
use crate::sharedctypes::RawArray;

/// Words per worker in the pool's slot array: the job, first position and
/// size of the chunk the worker is running (size 0: none).
pub(crate) const SLOT_WORDS: usize = 3;

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
    /// Where each worker says which chunk it is running, so the parent
    /// can fail exactly that chunk if the worker dies.
    pub(crate) slots: RawArray<u64>,
    pub(crate) slot: usize,
    pub(crate) maxtasks: Option<u64>,
    pub(crate) initializer: Option<Initializer>,
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
            return 1;
        }
    }
    let base = args.slot * SLOT_WORDS;
    let mut completed = 0u64;
    while !matches!(args.maxtasks, Some(m) if completed >= m) {
        let rec = match args.tasks.get() {
            Ok(rec) => rec,
            Err(e) => {
                eprintln!("pool worker: cannot take a task: {e}");
                return 1;
            }
        };
        let Some((h, payload)) = parse_task(&rec) else {
            continue;
        };
        if h.job == STOP {
            break;
        }
        // The size goes last: it marks the slot busy. An index error
        // cannot happen (the parent sized the array for every slot).
        let _ = args.slots.set(base, h.job);
        let _ = args.slots.set(base + 1, h.start);
        let _ = args.slots.set(base + 2, u64::from(h.count));
        // SAFETY: the parent made this EntryRef from a TaskEntry, and this
        // worker runs the parent's executable (checked when it started).
        let f: TaskEntry = unsafe { h.entry.resolve() };
        let out = f(payload, h.entry.fingerprint);
        if let Err(e) = args.results.put(&result_record(&h, &out)) {
            eprintln!("pool worker: cannot send a result: {e}");
            return 1;
        }
        let _ = args.slots.set(base + 2, 0);
        completed += 1;
    }
    0
}
