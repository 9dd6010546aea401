//! Log rewriting (compaction): the snapshot and the logs folded into a
//! new snapshot, so the files stay about the size of the live data.
//!
//! 1. **Rotate**: the current log is written out and fsynced, and a new
//!    `log.N` takes every later record.
//! 2. **Fold**: the old snapshot and the logs before `log.N` are replayed
//!    into a scratch table on this background thread — the state as of
//!    the rotation, whatever the server does meanwhile (as Redis's
//!    rewrite forks; here the cost is a second copy of the persisted data
//!    in memory while it runs).
//! 3. **Write** `snapshot.N.tmp`, fsync it, rename it to `snapshot.N`,
//!    fsync the directory: from here a restart reads `snapshot.N` and
//!    `log.N` on.
//! 4. **Remove** the old snapshot and logs.
//!
//! A crash at any step leaves a directory that starts: before step 3 the
//! old snapshot and every log are still there.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::files::{self, log_path, snapshot_path};
use super::record::{self, SNAPSHOT_MAGIC};
use super::replay::{Ending, Replayer, Target};
use super::Durability;
use crate::budget::Budget;
use crate::engine::Engine;
use crate::names::Names;
use crate::table::Table;

/// Runs one compaction; the new snapshot's size.
pub(crate) fn compact(d: &Durability, engine: &Engine) -> Result<u64, String> {
    let dir = &d.dir;
    // 1. Rotate.
    let (snapshot, logs, gen) = {
        let mut gens = crate::lock(&d.gens);
        let (old_gen, old_len) = d
            .rotate()
            .map_err(|e| format!("cannot start a new log: {e}"))?;
        gens.logs.push((old_gen, old_len));
        let logs: Vec<u64> = gens.logs.iter().map(|(g, _)| *g).collect();
        (gens.snapshot, logs, old_gen + 1)
    };
    // 2. Fold.
    let budget = engine.table.budget();
    let table = Table::with_budget(Budget::new(
        budget.max_memory() as u64,
        budget.max_value_bytes() as u64,
    ));
    let names = Names::default();
    let mut replayer = Replayer::new(Target {
        types: &engine.types,
        table: &table,
        names: &names,
        sink: None,
    });
    let mut files_read = Vec::new();
    if let Some(g) = snapshot {
        files_read.push((snapshot_path(dir, g), true));
    }
    files_read.extend(logs.iter().map(|g| (log_path(dir, *g), false)));
    for (path, is_snapshot) in &files_read {
        match replayer.file(path, *is_snapshot, d.max_record, d.max_decoded)? {
            Ending::Whole { .. } => {}
            Ending::Bad { at, reason } => {
                return Err(format!(
                    "{} is damaged at byte {at} ({reason}); the files are kept as they are",
                    path.display()
                ))
            }
        }
    }
    let stats = replayer.finish();
    if stats.failed > 0 {
        tracing::warn!(failed = stats.failed, reasons = ?stats.reasons, "records not applied while compacting");
    }
    // 3. Write.
    let tmp = dir.join(format!("snapshot.{gen:010}.tmp"));
    let size = write_snapshot(&table, &names, &tmp).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", tmp.display())
    })?;
    let target = snapshot_path(dir, gen);
    fs::rename(&tmp, &target).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
    files::sync_dir(dir).map_err(|e| format!("cannot fsync {}: {e}", dir.display()))?;
    drop(table);
    // 4. Remove.
    if let Some(g) = snapshot {
        let _ = fs::remove_file(snapshot_path(dir, g));
    }
    for g in &logs {
        let _ = fs::remove_file(log_path(dir, *g));
    }
    let mut gens = crate::lock(&d.gens);
    gens.snapshot = Some(gen);
    gens.snapshot_bytes = size;
    gens.logs.retain(|(g, _)| !logs.contains(g));
    Ok(size)
}

/// Writes every object of `table` and every name of `names` as a
/// snapshot at `path`, fsynced; its size.
pub(crate) fn write_snapshot(
    table: &Arc<Table>,
    names: &Names,
    path: &Path,
) -> std::io::Result<u64> {
    let mut file = File::create(path)?;
    file.write_all(SNAPSHOT_MAGIC)?;
    let mut size = SNAPSHOT_MAGIC.len() as u64;
    let mut out: Vec<u8> = Vec::with_capacity(2 << 20);
    let mut flush = |out: &mut Vec<u8>, file: &mut File, force: bool| -> std::io::Result<()> {
        if force || out.len() >= 1 << 20 {
            file.write_all(out)?;
            size += out.len() as u64;
            out.clear();
        }
        Ok(())
    };
    let encode_failed = |e: mp_proto::codec::CodecError| std::io::Error::other(e.to_string());
    let mut objects = Vec::new();
    for info in table.snapshot() {
        let Some((object, spec, _)) = table.lookup(info.id) else {
            continue;
        };
        let Some(hooks) = spec.durable else { continue };
        let Some(init) = (hooks.init)(&*object) else {
            continue;
        };
        let names_objects = init
            .positional
            .iter()
            .chain(init.keywords.values())
            .any(|v| !v.tokens().is_empty());
        objects.push((names_objects, info.id, object, spec, hooks, init));
    }
    // An object whose constructor names another (a condition's lock)
    // after those that name none.
    objects.sort_by_key(|o| o.0);
    for (_, id, _, spec, _, init) in &objects {
        record::define(
            &mut out,
            *id,
            &spec.typeid,
            &init.positional,
            &init.keywords,
        )
        .map_err(encode_failed)?;
        flush(&mut out, &mut file, false)?;
    }
    for (_, id, object, _, hooks, _) in &objects {
        let mut failed = None;
        (hooks.dump)(&**object, None, &mut |dump| {
            let result = record::fill(&mut out, *id, &dump.items)
                .and_then(|()| record::settle(&mut out, *id, &dump.state));
            if let Err(e) = result {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(encode_failed(e));
        }
        flush(&mut out, &mut file, false)?;
    }
    for (name, id) in names.list() {
        if table.lookup(id).is_some() {
            record::publish(&mut out, &name, id).map_err(encode_failed)?;
        }
    }
    record::end(&mut out).map_err(encode_failed)?;
    flush(&mut out, &mut file, true)?;
    file.sync_all()?;
    Ok(size)
}
