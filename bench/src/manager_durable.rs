//! `mp-bench manager.durable`: what `--data-dir` costs and how it keeps
//! up (issue 17), in one run:
//!
//! * `set+get` on a named dict (one client, one call at a time): with a
//!   data directory under `everysec` and `always`, against the same
//!   server without one (goal: `everysec` ≥ 0.7×; `always` reported);
//! * the restart time of a server holding 1,000,000 queued items (the
//!   time from spawning it to its `serving at` line; goal ≤ 2 s);
//! * the data directory's size after a long overwrite loop against the
//!   live data (goal: ≤ 2× after the rewrite).
//!
//! The servers are the release `mpserver` binary (unpinned); the data
//! directories live in the system's temporary directory, so the
//! `always` figure is that disk's fsync.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mp_proto::message::Kwargs;
use mp_proto::{ObjectId, Value};
use multiprocessing::managers::{BaseProxy, Call, ManagerClient};

use crate::manager::{mpserver_binary, spawn_serving, ServerProc};
use crate::report::{self, Row};
use crate::wire::{median, rate};

/// Interleaved repeats per figure.
const REPEATS: usize = 5;

fn named(c: &ManagerClient, name: &str) -> ObjectId {
    c.lookup::<BaseProxy>(name).expect("lookup").token().id
}

fn set_get(c: &ManagerClient, d: ObjectId, i: &mut i64) {
    *i = (*i + 1) % 1000;
    c.call_method(
        d,
        "__setitem__",
        vec![Value::Int(*i), Value::Int(*i)],
        Kwargs::new(),
    )
    .expect("set");
    c.call_method(d, "__getitem__", vec![Value::Int(*i)], Kwargs::new())
        .expect("get");
}

fn server(dir: Option<&Path>, extra: &[&str]) -> ServerProc {
    let mut args: Vec<String> = vec!["--shared".into(), "d=dict".into()];
    if let Some(dir) = dir {
        args.extend(["--data-dir".into(), dir.display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    ServerProc::start_with(None, &args)
}

/// set+get pairs per second: none, everysec, always.
fn throughput() -> [f64; 3] {
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let servers = [
        server(None, &[]),
        server(Some(dirs[0].path()), &["--appendfsync", "everysec"]),
        server(Some(dirs[1].path()), &["--appendfsync", "always"]),
    ];
    let clients: Vec<(ManagerClient, ObjectId)> = servers
        .iter()
        .map(|s| {
            let c = s.client();
            let d = named(&c, "d");
            (c, d)
        })
        .collect();
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..REPEATS {
        for (k, (c, d)) in clients.iter().enumerate() {
            let mut i = 0;
            samples[k].push(rate(|| set_get(c, *d, &mut i)));
        }
    }
    samples.map(median)
}

/// Seconds from spawning `mpserver` on `dir` to its `serving at` line.
fn restart_seconds(dir: &Path) -> f64 {
    let key = std::env::temp_dir().join(format!("mp-bench-durable-{}.key", std::process::id()));
    std::fs::write(&key, b"bench-durable").expect("key");
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
    let started = Instant::now();
    let (mut child, _) = spawn_serving(
        Command::new(mpserver_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
            .arg("--authkey-file")
            .arg(&key)
            .arg("--data-dir")
            .arg(dir),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&key);
    elapsed
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Restart time with `items` queued items, and the directory's size.
fn restart_with_items(items: i64) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("dir");
    {
        let s = server(Some(dir.path()), &["--shared", "q=Queue"]);
        let c = s.client();
        let q = named(&c, "q");
        let mut next = 0;
        while next < items {
            let batch: Vec<Call> = (next..(next + 1000).min(items))
                .map(|i| Call::method(q, "put", vec![Value::Int(i)]))
                .collect();
            next += batch.len() as i64;
            for r in c.call_many(batch) {
                r.expect("put");
            }
        }
        let size: Value = match c
            .call_method(q, "qsize", vec![], Kwargs::new())
            .expect("qsize")
        {
            multiprocessing::managers::Return::Value(v) => v,
            _ => Value::None,
        };
        assert_eq!(size, Value::Int(items));
        drop(c);
        // SIGTERM: a graceful stop, as a deploy does.
        // SAFETY: kill on a child we own.
        unsafe {
            libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let seconds = median((0..3).map(|_| restart_seconds(dir.path())).collect());
    (seconds, dir_bytes(dir.path()))
}

/// The directory's size after `rounds` overwrites of `keys` keys of
/// `value_bytes` each (rewriting past 1 MiB), and the live data's size.
fn overwrite_loop(keys: i64, rounds: i64, value_bytes: usize) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("dir");
    let s = server(Some(dir.path()), &["--rewrite-min-bytes", "1048576"]);
    let c = s.client();
    let d = named(&c, "d");
    let value = "v".repeat(value_bytes);
    for round in 0..rounds {
        let batch: Vec<Call> = (0..keys)
            .map(|k| {
                Call::method(
                    d,
                    "__setitem__",
                    vec![Value::Int(k), Value::Str(format!("{round:08}{value}"))],
                )
            })
            .collect();
        for r in c.call_many(batch) {
            r.expect("set");
        }
    }
    // The background rewrite runs within a second or two of passing the
    // threshold; give it time to finish.
    std::thread::sleep(Duration::from_secs(3));
    let live = keys as u64 * (value_bytes as u64 + 8 + 9);
    (dir_bytes(dir.path()), live)
}

/// The suite.
pub fn run() {
    let [none, everysec, always] = throughput();
    let mut rows = vec![
        Row {
            name: "manager.durable.set+get.everysec".into(),
            ours: everysec,
            against: Some(("no data directory".into(), none)),
            unit: "pairs/s",
            higher_is_better: true,
        },
        Row {
            name: "manager.durable.set+get.always".into(),
            ours: always,
            against: Some(("no data directory".into(), none)),
            unit: "pairs/s",
            higher_is_better: true,
        },
    ];
    let (seconds, bytes) = restart_with_items(1_000_000);
    rows.push(Row {
        name: format!(
            "manager.durable.restart.1M-queued ({} MB on disk)",
            bytes / 1_000_000
        ),
        ours: seconds,
        against: Some(("goal".into(), 2.0)),
        unit: "s",
        higher_is_better: false,
    });
    let (on_disk, live) = overwrite_loop(1000, 200, 1000);
    rows.push(Row {
        name: "manager.durable.log-size.200k-overwrites".into(),
        ours: on_disk as f64 / live as f64,
        against: Some(("goal (× live data)".into(), 2.0)),
        unit: "× live",
        higher_is_better: false,
    });
    report::print("manager.durable: --data-dir against none", &rows);
}
