//! Durability, opt-in: named objects (and the objects reachable from
//! them) survive a restart and a `kill -9` — `mpserver serve --data-dir
//! DIR`, or [`Server::data_dir`](crate::Server::data_dir).
//!
//! # What persists
//!
//! The objects a name holds, and every object reachable from them
//! through the proxies their contents hold (a named dict of lists), with
//! the names themselves. Objects only sessions hold stay ephemeral: they
//! die with their sessions, and after a restart they are gone. What comes
//! back, by type ([`crate::persist`]):
//!
//! | type | comes back with |
//! | --- | --- |
//! | `Queue`, `JoinableQueue` | its items in order, `maxsize`, the unfinished-task count |
//! | `dict`, `list`, `Namespace` | their contents, in order |
//! | `Value`, `Array` | typecode and value or items |
//! | `Event` | its flag |
//! | `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore` | free, at the initial value (no owner) |
//! | `Condition` | its lock, free; no waiters |
//! | `Barrier` | fresh: its parties, nobody waiting, not broken |
//! | `Iterator`, embedders' types not registered with [`register_durable`](crate::Registry::register_durable) | nothing: a token to one names nothing after a restart |
//!
//! Waiting calls (a blocked `get`, a lock's waiters) do not persist: a
//! client whose connection died with the server calls again. Restored
//! objects keep their ids, so tokens clients hold stay valid.
//!
//! # How: a snapshot and an append-only log
//!
//! As Redis's AOF. An object becomes persisted when it is named, or when
//! a persisted object stores a proxy to it: it is written whole
//! (`Define`, `Fill`, `Settle` records), and from then on every change is
//! logged — each successful call of a method its declaration does not
//! mark `read_only` (a dict's `__setitem__`), or, for a queue, each
//! effect as it happens (an item handed to a waiting getter is logged
//! when it is handed over). Calls that change one object are logged in
//! the order they took effect (the engine holds each persisted object's
//! changing calls off one another around the log append). Names given
//! and removed, and persisted objects disposed of, are logged too. At
//! start the newest snapshot and the logs after it are replayed; see
//! [`record`] for the format and `compact.rs` for log rewriting.
//!
//! # The guarantees, beside Redis's AOF
//!
//! | `--appendfsync` | an answered change survives a crash of the server (`kill -9`, OOM) | … of the machine (power, kernel) | Redis `appendfsync` |
//! | --- | --- | --- | --- |
//! | `always` | yes: written and fsynced before the answer is sent | yes | the same: fsync before the reply |
//! | `everysec` (default) | yes: written before the answer is sent | all but about the last second | written before replies, fsync each second |
//! | `no` | yes: written before the answer is sent | what the OS had flushed (Linux: within ~30 s) | the same, OS flush |
//!
//! A change answered with an error (`OSError` when the log could not be
//! written) may or may not have been kept. While the log cannot be
//! written (disk full) every change to a persisted object is refused
//! with `OSError` and the log is retried each second (Redis refuses
//! writes likewise). A call that was not answered before a crash may or
//! may not have taken effect.
//!
//! # Recovery
//!
//! A log's records carry a length and a CRC-32. A truncated or damaged
//! tail (the crash cut a write short, or the disk lost bytes) is found,
//! everything before it is loaded, and the rest — that file's tail and
//! any later logs — is moved aside to `FILE.corrupt-<unix time>`, with a
//! warning saying what and where; the server starts. Under `always` the
//! only tail a crash can cut is one whose change was never answered.
//! Records that cannot be applied (a typeid no longer registered, a
//! store refused by a lower `--max-memory`) are skipped, counted and
//! logged. Everything read is bounded: a record is at most
//! `max_frame_bytes` + 1 MiB (a larger claimed length is corruption),
//! and decodes within `max_value_bytes` + 4 MiB; restored data is
//! charged to `max_memory` like any other.
//!
//! The directory is locked (`flock` on `DIR/lock`): a second server on
//! it exits at start with [`DurableError::InUse`].
//!
//! # Names declared at start
//!
//! A `--shared` declaration whose name was restored from the data
//! directory keeps the restored object (its contents are the point); it
//! is not made again. To change its type, unpublish it first.

pub(crate) mod compact;
pub(crate) mod files;
pub(crate) mod log;
pub mod record;
pub(crate) mod replay;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use mp_proto::{ErrorKind, ObjectId, RemoteError};

use crate::args::Args;
use crate::engine::Engine;
use crate::lock;
use crate::object::Reply;
use crate::persist::{DurableHooks, EffectJournal, EffectSink, Journaling};
use crate::table::Table;

use self::files::{log_path, snapshot_path, DirLock};
use self::log::{Current, Log};
use self::replay::{unpersisted, Ending, Replayer, Target};

/// When the log is fsynced (Redis's `appendfsync`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fsync {
    /// Before each answer to a change: nothing answered is ever lost.
    Always,
    /// Once a second, in the background: a machine crash loses at most
    /// about the last second (a server crash loses nothing answered).
    #[default]
    Everysec,
    /// When the operating system decides.
    No,
}

impl std::str::FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::Everysec),
            "no" => Ok(Fsync::No),
            other => Err(format!(
                "appendfsync is always, everysec or no, not {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        })
    }
}

/// The log is rewritten once it passes this many bytes (and twice the
/// last snapshot's size), by default.
pub const DEFAULT_REWRITE_MIN_BYTES: u64 = 16 << 20;

/// Where and how a server keeps its named objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableOptions {
    /// The data directory (made if missing).
    pub dir: PathBuf,
    /// When the log is fsynced.
    pub fsync: Fsync,
    /// The log is rewritten into a new snapshot once the logs since the
    /// last snapshot pass both this size and twice the snapshot's.
    pub rewrite_min_bytes: u64,
}

impl DurableOptions {
    /// `dir`, fsynced every second, rewritten past 16 MiB.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DurableOptions {
            dir: dir.into(),
            fsync: Fsync::default(),
            rewrite_min_bytes: DEFAULT_REWRITE_MIN_BYTES,
        }
    }

    /// With this fsync policy.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// With this rewrite threshold.
    pub fn rewrite_min_bytes(mut self, bytes: u64) -> Self {
        self.rewrite_min_bytes = bytes;
        self
    }
}

/// Why a data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// Another server holds the directory's lock.
    #[error("the data directory {} is in use by another server{}", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: Option<u32>,
    },
    /// A file could not be read or written.
    #[error("data directory: {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// This engine already has a data directory.
    #[error("this server already has a data directory")]
    AlreadyOpen,
}

/// What a start found in the data directory.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// The snapshot read, if any.
    pub snapshot: Option<PathBuf>,
    /// How many log files were read.
    pub logs: usize,
    /// Records applied.
    pub records: u64,
    /// Objects restored (alive after replay).
    pub objects: usize,
    /// Names restored.
    pub names: usize,
    /// Records that could not be applied.
    pub failed_records: u64,
    /// What went wrong, in words (damaged files, records not applied).
    pub problems: Vec<String>,
    /// Damaged parts moved aside.
    pub moved_aside: Vec<PathBuf>,
    /// How long the replay took.
    pub elapsed: Duration,
}

/// The snapshot and the logs after it (not the current one).
#[derive(Default)]
pub(crate) struct Gens {
    pub snapshot: Option<u64>,
    pub snapshot_bytes: u64,
    /// Older logs since the snapshot, with their sizes.
    pub logs: Vec<(u64, u64)>,
}

/// Calls on one object are serialized with its persistence steps by one
/// of these locks, picked by id.
const STRIPES: usize = 64;

/// A data directory in use by an engine.
pub struct Durability {
    pub(crate) dir: PathBuf,
    options: DurableOptions,
    pub(crate) log: Arc<Log>,
    _lock: DirLock,
    stripes: Vec<Mutex<()>>,
    define_lock: Mutex<()>,
    names_lock: Mutex<()>,
    pub(crate) gens: Mutex<Gens>,
    compacting: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(crate) max_record: usize,
    pub(crate) max_decoded: usize,
}

/// `OSError` for a change that may not have been kept.
fn not_kept(why: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(
        // Python's `OSError`: an I/O failure of the server's disk.
        ErrorKind::Other("OSError".to_owned()),
        format!("the change could not be written to the data directory: {why}"),
    )
}

impl Durability {
    fn stripe(&self, id: ObjectId) -> &Mutex<()> {
        &self.stripes[(id.0 as usize) % STRIPES]
    }

    /// Opens `options.dir` for `engine`: takes the lock, replays the
    /// snapshot and logs into the engine, starts a new log and the
    /// background fsync/rewrite thread.
    pub(crate) fn open(
        engine: &Arc<Engine>,
        options: &DurableOptions,
        max_frame_bytes: u64,
        max_value_bytes: u64,
    ) -> Result<(Arc<Durability>, RecoveryReport), DurableError> {
        let started = Instant::now();
        let dir = options.dir.clone();
        let dir_lock = files::lock_dir(&dir)?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DurableError::Io { path, source }
        };
        let layout = files::scan(&dir).map_err(io(&dir))?;
        let max_record = usize::try_from(max_frame_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(1 << 20);
        let max_decoded = usize::try_from(max_value_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(4 << 20);
        // Files a finished compaction no longer needs.
        if let Some(s) = layout.snapshot {
            for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let stale = [("snapshot.", true), ("log.", false)].iter().any(|(p, _)| {
                    name.strip_prefix(p)
                        .filter(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|d| d.parse::<u64>().ok())
                        .is_some_and(|g| g < s)
                });
                if stale {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let logs: Vec<u64> = layout
            .logs
            .iter()
            .copied()
            .filter(|g| layout.snapshot.map_or(true, |s| *g >= s))
            .collect();
        let gen = logs
            .last()
            .copied()
            .max(layout.snapshot)
            .unwrap_or(0)
            .saturating_add(1);
        let path = log_path(&dir, gen);
        let file = files::create_log(&dir, gen).map_err(io(&path))?;
        let log = Arc::new(Log::new(
            Current {
                file,
                gen,
                path,
                len: record::LOG_MAGIC.len() as u64,
            },
            options.fsync,
        ));
        let durability = Arc::new(Durability {
            dir: dir.clone(),
            options: options.clone(),
            log: Arc::clone(&log),
            _lock: dir_lock,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            define_lock: Mutex::new(()),
            names_lock: Mutex::new(()),
            gens: Mutex::new(Gens::default()),
            compacting: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            thread: Mutex::new(None),
            max_record,
            max_decoded,
        });

        // Replay.
        let mut report = RecoveryReport::default();
        let sink: Arc<dyn EffectSink> = log.clone();
        let mut replayer = Replayer::new(Target {
            types: &engine.types,
            table: &engine.table,
            names: &engine.names,
            sink: Some(sink),
        });
        let mut gens = Gens {
            snapshot: layout.snapshot,
            ..Gens::default()
        };
        if let Some(s) = layout.snapshot {
            let path = snapshot_path(&dir, s);
            gens.snapshot_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            report.snapshot = Some(path.clone());
            match replayer.file(&path, true, max_record, max_decoded) {
                Ok(Ending::Whole { snapshot_end: true }) => {}
                Ok(Ending::Whole { .. }) => report.problems.push(format!(
                    "{}: the snapshot has no end record",
                    path.display()
                )),
                Ok(Ending::Bad { at, reason }) => report.problems.push(format!(
                    "{}: damaged at byte {at} ({reason}); loaded what came before",
                    path.display()
                )),
                Err(e) => report.problems.push(format!("{}: {e}", path.display())),
            }
        }
        let mut damaged = false;
        for g in &logs {
            let path = log_path(&dir, *g);
            if damaged {
                // After a damaged record nothing can be applied safely:
                // later logs build on what was lost.
                match files::rename_aside(&path) {
                    Ok(aside) => report.moved_aside.push(aside),
                    Err(e) => report.problems.push(format!("{}: {e}", path.display())),
                }
                continue;
            }
            report.logs += 1;
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            match replayer.file(&path, false, max_record, max_decoded) {
                Ok(Ending::Whole { .. }) => gens.logs.push((*g, size)),
                Ok(Ending::Bad { at, reason }) => {
                    damaged = true;
                    report.problems.push(format!(
                        "{}: damaged at byte {at} of {size} ({reason}); loaded the records before it",
                        path.display()
                    ));
                    match files::move_tail_aside(&path, at) {
                        Ok(aside) => report.moved_aside.push(aside),
                        Err(e) => report.problems.push(format!(
                            "{}: could not move the damaged tail aside: {e}",
                            path.display()
                        )),
                    }
                    gens.logs.push((*g, at));
                }
                Err(e) => {
                    damaged = true;
                    report.problems.push(format!("{}: {e}", path.display()));
                    match files::rename_aside(&path) {
                        Ok(aside) => report.moved_aside.push(aside),
                        Err(e) => report.problems.push(format!("{}: {e}", path.display())),
                    }
                }
            }
        }
        *lock(&durability.gens) = gens;
        // From here changes are logged: what the replay leaves unheld is
        // disposed of, and that is written down too.
        log.resume();
        let durable_id = Arc::clone(&log);
        engine.table.set_dispose_hook(Box::new(move |id| {
            durable_id.append(|out| record::drop_object(out, id));
        }));
        let stats = replayer.finish();
        let _ = log.flush_and_sync();
        report.records = stats.records;
        report.failed_records = stats.failed;
        report.problems.extend(stats.reasons);
        report.objects = engine.table.len();
        report.names = engine.names.len();
        report.elapsed = started.elapsed();
        for p in &report.problems {
            tracing::warn!(dir = %dir.display(), "{p}");
        }
        for p in &report.moved_aside {
            tracing::warn!(path = %p.display(), "moved a damaged part of the data directory aside");
        }
        tracing::info!(
            dir = %dir.display(),
            appendfsync = %options.fsync,
            objects = report.objects,
            names = report.names,
            records = report.records,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "data directory loaded"
        );

        let background = Arc::clone(&durability);
        let weak = Arc::downgrade(engine);
        let handle = std::thread::Builder::new()
            .name("mpserver-durable".into())
            .spawn(move || background.run(weak))
            .map_err(io(&dir))?;
        *lock(&durability.thread) = Some(handle);
        Ok((durability, report))
    }

    /// The background thread: fsync (or write) once a second, and start
    /// a rewrite when the logs grew enough.
    fn run(self: Arc<Self>, engine: Weak<Engine>) {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let mut stopped = lock(&self.stop);
        loop {
            let (guard, _) = self
                .wake
                .wait_timeout(stopped, Duration::from_secs(1))
                .unwrap_or_else(|e| e.into_inner());
            stopped = guard;
            if *stopped {
                return;
            }
            drop(stopped);
            let _ = match self.options.fsync {
                Fsync::No => self.log.flush(),
                _ => self.log.flush_and_sync(),
            };
            let Some(engine) = engine.upgrade() else {
                return;
            };
            if self.should_rewrite() && !self.compacting.swap(true, Ordering::AcqRel) {
                let me = Arc::clone(&self);
                let runtime = runtime.clone();
                let spawned = std::thread::Builder::new()
                    .name("mpserver-rewrite".into())
                    .spawn(move || {
                        let _entered = runtime.as_ref().map(|r| r.enter());
                        let started = Instant::now();
                        match compact::compact(&me, &engine) {
                            Ok(size) => tracing::info!(
                                snapshot_bytes = size,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "rewrote the data directory's log into a snapshot"
                            ),
                            Err(e) => {
                                tracing::error!(error = %e, "log rewrite failed; retrying later")
                            }
                        }
                        me.compacting.store(false, Ordering::Release);
                    });
                if spawned.is_err() {
                    self.compacting.store(false, Ordering::Release);
                }
            }
            stopped = lock(&self.stop);
        }
    }

    /// Whether the logs since the snapshot passed the rewrite threshold.
    fn should_rewrite(&self) -> bool {
        let (_, current) = self.log.position();
        let gens = lock(&self.gens);
        let logs = gens.logs.iter().map(|(_, s)| *s).sum::<u64>() + current;
        logs > self
            .options
            .rewrite_min_bytes
            .max(gens.snapshot_bytes.saturating_mul(2))
    }

    /// Starts a new log file; the old one's generation and length.
    pub(crate) fn rotate(&self) -> std::io::Result<(u64, u64)> {
        let mut current = lock(&self.log.current);
        self.log.write_locked(&mut current)?;
        current.file.sync_data()?;
        let gen = current.gen + 1;
        let file = files::create_log(&self.dir, gen)?;
        let old = std::mem::replace(
            &mut *current,
            Current {
                file,
                gen,
                path: log_path(&self.dir, gen),
                len: record::LOG_MAGIC.len() as u64,
            },
        );
        Ok((old.gen, old.len))
    }

    /// Stops the background thread and writes out and fsyncs the log;
    /// later changes (a stopping server disposing of everything) are not
    /// logged.
    pub(crate) fn close(&self) {
        *lock(&self.stop) = true;
        self.wake.notify_all();
        if let Some(handle) = lock(&self.thread).take() {
            let _ = handle.join();
        }
        // A rewrite in progress finishes first: its files are consistent
        // either way, but a finished one is smaller.
        while self.compacting.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Err(e) = self.log.flush_and_sync() {
            tracing::error!(error = %e, "could not write the data directory's log at stop");
        }
        self.log.suspend();
    }

    /// Runs a changing call of an object of a durable type: serialized
    /// with the object's persistence, logged if the object is persisted,
    /// answered once the log has it (see [`Fsync`]).
    pub(crate) fn call(
        self: &Arc<Self>,
        table: &Arc<Table>,
        id: ObjectId,
        hooks: &DurableHooks,
        method: &str,
        args: Args,
        run: impl FnOnce(Args) -> Reply,
    ) -> Reply {
        if hooks.journaling == Journaling::Initial {
            return run(args);
        }
        let mut tries = 0;
        let (guard, persisted) = loop {
            let guard = lock(self.stripe(id));
            if !table.is_persisted(id) {
                break (guard, false);
            }
            if let Some(why) = self.log.failure() {
                return Reply::err(not_kept(why));
            }
            // A proxy stored into a persisted object makes its referent
            // persisted first, so the log never names an object it has
            // not defined.
            let missing = unpersisted(table, args.positional.iter().chain(args.keywords.values()));
            if missing.is_empty() || tries >= 3 {
                break (guard, true);
            }
            drop(guard);
            self.define(table, &missing);
            tries += 1;
        };
        if !persisted {
            return run(args);
        }
        let mut entry = Vec::new();
        if hooks.journaling == Journaling::Calls {
            if let Err(e) = record::call(&mut entry, id, method, &args.positional, &args.keywords) {
                return Reply::err(not_kept(e));
            }
        }
        match run(args) {
            Reply::Ready(Ok(ret)) => {
                if !entry.is_empty() {
                    self.log.append(|out| {
                        out.extend_from_slice(&entry);
                        Ok(())
                    });
                }
                drop(guard);
                Reply::Ready(self.committed(Ok(ret)))
            }
            Reply::Ready(Err(e)) => Reply::Ready(Err(e)),
            Reply::Pending(future) => {
                drop(guard);
                let me = Arc::clone(self);
                Reply::pending(async move {
                    let ret = future.await?;
                    if !entry.is_empty() {
                        me.log.append(|out| {
                            out.extend_from_slice(&entry);
                            Ok(())
                        });
                    }
                    me.committed(Ok(ret))
                })
            }
        }
    }

    /// `result`, once the log holds what was appended before it.
    fn committed<T>(&self, result: Result<T, RemoteError>) -> Result<T, RemoteError> {
        match self.log.commit() {
            Ok(()) => result,
            Err(e) => Err(not_kept(e)),
        }
    }

    /// Makes the objects `roots` and everything reachable from them
    /// persisted: each is defined, written whole, and logged from then
    /// on.
    pub(crate) fn define(&self, table: &Arc<Table>, roots: &[ObjectId]) {
        let _defining = lock(&self.define_lock);
        let mut declared = HashSet::new();
        let mut todo = Vec::new();
        for id in roots {
            self.declare(table, *id, &mut declared, &mut todo);
        }
        while let Some(id) = todo.pop() {
            let Some((object, spec, persisted)) = table.lookup(id) else {
                continue;
            };
            let Some(hooks) = spec.durable else { continue };
            if persisted {
                continue;
            }
            let _quiet = lock(self.stripe(id));
            let journal = (hooks.journaling == Journaling::Effects).then(|| EffectJournal {
                id,
                sink: Arc::clone(&self.log) as Arc<dyn EffectSink>,
            });
            (hooks.dump)(&*object, journal, &mut |dump| {
                if hooks.journaling != Journaling::Initial {
                    let named = dump
                        .items
                        .iter()
                        .chain(&dump.pending)
                        .chain(std::iter::once(&dump.state));
                    for t in unpersisted(table, named) {
                        self.declare(table, t, &mut declared, &mut todo);
                    }
                    self.log.append(|out| record::fill(out, id, &dump.items));
                }
                self.log.append(|out| record::settle(out, id, &dump.state));
                table.mark_persisted(id);
            });
        }
    }

    /// Writes the `Define` of `id` (after those of objects its
    /// constructor names) and queues it to be written whole.
    fn declare(
        &self,
        table: &Arc<Table>,
        id: ObjectId,
        declared: &mut HashSet<ObjectId>,
        todo: &mut Vec<ObjectId>,
    ) {
        if !declared.insert(id) {
            return;
        }
        let Some((object, spec, persisted)) = table.lookup(id) else {
            return;
        };
        let Some(hooks) = spec.durable else { return };
        if persisted {
            return;
        }
        let Some(init) = (hooks.init)(&*object) else {
            return;
        };
        for t in unpersisted(table, init.positional.iter().chain(init.keywords.values())) {
            self.declare(table, t, declared, todo);
        }
        self.log
            .append(|out| record::define(out, id, &spec.typeid, &init.positional, &init.keywords));
        todo.push(id);
    }

    /// Names object `id` (see [`crate::names::Names::publish`]), durably.
    pub(crate) fn publish(
        &self,
        engine: &Engine,
        name: &str,
        id: ObjectId,
        replace: bool,
    ) -> Result<(), RemoteError> {
        if let Some(why) = self.log.failure() {
            return Err(not_kept(why));
        }
        let durable = engine
            .table
            .lookup(id)
            .is_some_and(|(_, spec, _)| spec.is_durable());
        if durable {
            self.define(&engine.table, &[id]);
        }
        {
            let _names = lock(&self.names_lock);
            engine.names.publish(&engine.table, name, id, replace)?;
            if durable {
                self.log.append(|out| record::publish(out, name, id));
            } else {
                tracing::warn!(%name, %id, "a name was given to an object whose type does not persist; it will be gone after a restart");
                // A name that survived from before now names something
                // else: forget it in the log.
                self.log.append(|out| record::unpublish(out, name));
            }
        }
        self.committed(Ok(()))
    }

    /// Removes `name`, durably.
    pub(crate) fn unpublish(&self, engine: &Engine, name: &str) -> Result<ObjectId, RemoteError> {
        let id = {
            let _names = lock(&self.names_lock);
            let id = engine.names.unpublish(&engine.table, name)?;
            self.log.append(|out| record::unpublish(out, name));
            id
        };
        self.committed(Ok(id))
    }

    /// The options it was opened with.
    pub fn options(&self) -> &DurableOptions {
        &self.options
    }
}

#[cfg(test)]
mod tests;
