//! Replay: records read back into a table and its names — the live
//! engine's at start, a scratch one when compacting.
//!
//! Every object a `Define` makes gets one reference owned by the replay's
//! own session; a `Drop` gives it back early, and [`Replayer::finish`]
//! gives back the rest, so what no name (or persisted container) holds
//! after the last record is disposed of, as it was in the server that
//! wrote the log. A record that cannot be applied (an unknown typeid, a
//! call refused under tighter limits) is counted and reported, and replay
//! goes on.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use mp_proto::{ObjectId, Value};

use super::files;
use super::record::{Next, Reader, Record, HEADER};
use crate::args::Args;
use crate::names::Names;
use crate::object::{CallContext, Reply, SessionId};
use crate::persist::{EffectJournal, EffectSink};
use crate::registry::TypeSpec;
use crate::session::Session;
use crate::table::Table;

/// Where records are replayed.
pub(crate) struct Target<'a> {
    pub types: &'a IndexMap<String, Arc<TypeSpec>>,
    pub table: &'a Arc<Table>,
    pub names: &'a Names,
    /// Where restored objects of an effects type record their changes
    /// (`None` for a scratch replay).
    pub sink: Option<Arc<dyn EffectSink>>,
}

/// How a replay went.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub records: u64,
    pub defined: u64,
    /// Records that could not be applied, and the first few reasons.
    pub failed: u64,
    pub reasons: Vec<String>,
}

/// How reading one file ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Every record was read.
    Whole { snapshot_end: bool },
    /// The valid prefix ends at `at`.
    Bad { at: u64, reason: String },
}

/// Applies records in order.
pub(crate) struct Replayer<'a> {
    target: Target<'a>,
    session: Session,
    pub stats: Stats,
}

const MAX_REASONS: usize = 8;

impl<'a> Replayer<'a> {
    pub fn new(target: Target<'a>) -> Self {
        Replayer {
            target,
            session: Session::new(SessionId(0), "(data directory)"),
            stats: Stats::default(),
        }
    }

    fn ctx(&self, id: Option<ObjectId>) -> CallContext<'_> {
        CallContext {
            table: self.target.table,
            session: &self.session,
            thread: 0,
            object: id,
        }
    }

    fn failed(&mut self, what: String) {
        self.stats.failed += 1;
        if self.stats.reasons.len() < MAX_REASONS {
            self.stats.reasons.push(what);
        }
    }

    /// Reads every record of `path` (a snapshot if `snapshot`) and
    /// applies it.
    pub fn file(
        &mut self,
        path: &Path,
        snapshot: bool,
        max_record: usize,
        max_decoded: usize,
    ) -> Result<Ending, String> {
        let Some(file) = files::open_checked(path, snapshot)? else {
            return Ok(Ending::Whole {
                snapshot_end: false,
            });
        };
        self.read(file, max_record, max_decoded)
    }

    fn read(
        &mut self,
        file: File,
        max_record: usize,
        max_decoded: usize,
    ) -> Result<Ending, String> {
        let mut reader = Reader::new(
            BufReader::with_capacity(1 << 20, file),
            HEADER as u64,
            max_record,
            max_decoded,
        );
        let mut ended = false;
        loop {
            match reader.next_record().map_err(|e| e.to_string())? {
                Next::Record(Record::End, _) => ended = true,
                Next::Record(record, _) => {
                    if ended {
                        return Ok(Ending::Bad {
                            at: reader.offset(),
                            reason: "records after a snapshot's end".into(),
                        });
                    }
                    self.apply(record);
                }
                Next::End => {
                    return Ok(Ending::Whole {
                        snapshot_end: ended,
                    })
                }
                Next::Bad { at, reason } => return Ok(Ending::Bad { at, reason }),
            }
        }
    }

    /// Applies one record.
    pub fn apply(&mut self, record: Record) {
        self.stats.records += 1;
        let table = self.target.table;
        let live = |id: ObjectId| table.lookup(id);
        match record {
            Record::Define {
                id,
                typeid,
                args,
                kwargs,
            } => {
                let Some(spec) = self.target.types.get(&typeid).cloned() else {
                    return self
                        .failed(format!("object {id}: typeid '{typeid}' is not registered"));
                };
                let (Some(constructor), true) = (spec.constructor.as_ref(), spec.is_durable())
                else {
                    return self.failed(format!("object {id}: typeid '{typeid}' does not persist"));
                };
                let made = constructor(&self.ctx(None), Args::new(args, kwargs));
                match made.and_then(|object| table.insert_with_id(id, object, spec)) {
                    Ok(()) => {
                        self.session.add_ref(id);
                        self.stats.defined += 1;
                    }
                    Err(e) => self.failed(format!("object {id} ({typeid}): {e}")),
                }
            }
            Record::Fill { id, items } => {
                let Some((object, spec, _)) = live(id) else {
                    return;
                };
                if let Some(hooks) = spec.durable {
                    if let Err(e) = (hooks.fill)(&*object, &self.ctx(Some(id)), items) {
                        self.failed(format!("object {id} ({}): contents: {e}", spec.typeid));
                    }
                }
            }
            Record::Settle { id, state } => {
                let Some((object, spec, _)) = live(id) else {
                    return;
                };
                let Some(hooks) = spec.durable else { return };
                if let Err(e) = (hooks.settle)(&*object, &self.ctx(Some(id)), state) {
                    self.failed(format!("object {id} ({}): state: {e}", spec.typeid));
                }
                if let Some(sink) = &self.target.sink {
                    (hooks.attach)(
                        &*object,
                        EffectJournal {
                            id,
                            sink: Arc::clone(sink),
                        },
                    );
                }
                table.mark_persisted(id);
            }
            Record::Call {
                id,
                method,
                args,
                kwargs,
            } => {
                let Some((object, spec, _)) = live(id) else {
                    return;
                };
                let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    object.call(&self.ctx(Some(id)), &method, Args::new(args, kwargs))
                }));
                match reply {
                    Ok(Reply::Ready(Ok(_))) => {}
                    Ok(Reply::Ready(Err(e))) => {
                        self.failed(format!("object {id} ({}): {method}(): {e}", spec.typeid))
                    }
                    // A logged call never waited when it ran; one that
                    // would wait now is not waited for.
                    Ok(Reply::Pending(_)) => self.failed(format!(
                        "object {id} ({}): {method}() would wait",
                        spec.typeid
                    )),
                    Err(_) => self.failed(format!(
                        "object {id} ({}): {method}() panicked",
                        spec.typeid
                    )),
                }
            }
            Record::Effect { id, tag, value } => {
                let Some((object, spec, _)) = live(id) else {
                    return;
                };
                let Some(hooks) = spec.durable else { return };
                if let Err(e) = (hooks.apply)(&*object, &self.ctx(Some(id)), tag, value) {
                    self.failed(format!("object {id} ({}): effect {tag}: {e}", spec.typeid));
                }
            }
            Record::Drop { id } => {
                if self.session.take_ref(id) {
                    let _ = table.decref(id);
                }
            }
            Record::Publish { name, id } => {
                if let Err(e) = self.target.names.publish(table, &name, id, true) {
                    self.failed(format!("name '{name}': {e}"));
                }
            }
            Record::Unpublish { name } => {
                let _ = self.target.names.unpublish(table, &name);
            }
            Record::End => {}
        }
    }

    /// Gives back the replay's own references: what nothing else holds
    /// is disposed of.
    pub fn finish(self) -> Stats {
        let (_, refs) = self.session.drain();
        for (id, n) in refs {
            let _ = self.target.table.decref_n(id, n);
        }
        self.stats
    }
}

/// The values' tokens that name live objects of `table` not yet
/// persisted, of a type that persists.
pub(crate) fn unpersisted<'v>(
    table: &Table,
    values: impl IntoIterator<Item = &'v Value>,
) -> Vec<ObjectId> {
    let mut out = Vec::new();
    for v in values {
        for t in v.tokens() {
            if let Some((_, spec, persisted)) = table.lookup(t.id) {
                if !persisted
                    && spec.typeid == t.typeid
                    && spec.is_durable()
                    && !out.contains(&t.id)
                {
                    out.push(t.id);
                }
            }
        }
    }
    out
}
