//! Durability against the real `mpserver`: `--data-dir` restarts under
//! each `--appendfsync` policy, `kill -9` in the middle of a write loop,
//! a truncated and a corrupted log, two servers on one directory, nested
//! objects reachable from a name, and a log kept bounded by rewriting.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mp_proto::message::{Kwargs, ProxyInfo};
use mp_proto::{ObjectId, Token, Value};
use mp_tests::mpserver::{eventually, Options, ServerProcess};
use multiprocessing::managers::{BaseProxy, ManagerClient, Return};

/// A server on `dir` with `extra` flags, declaring `d=dict` and `q=Queue`.
fn start(dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--data-dir".to_string(),
        dir.display().to_string(),
        "--shared".into(),
        "d=dict".into(),
        "--shared".into(),
        "q=Queue".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    ServerProcess::start_with(Options {
        args,
        ..Options::default()
    })
}

fn token(client: &ManagerClient, name: &str) -> Token {
    client.lookup::<BaseProxy>(name).unwrap().token().clone()
}

fn call(client: &ManagerClient, id: ObjectId, method: &str, args: Vec<Value>) -> Value {
    match client
        .call_method(id, method, args, Kwargs::new())
        .unwrap_or_else(|e| panic!("{method}: {e}"))
    {
        Return::Value(v) => v,
        Return::Proxy(p) => Value::Proxy(Box::new(p.token)),
    }
}

fn create(client: &ManagerClient, typeid: &str, args: Vec<Value>) -> ProxyInfo {
    client.create(typeid, args, Kwargs::new()).unwrap()
}

fn proxy(info: &ProxyInfo) -> Value {
    Value::Proxy(Box::new(info.token.clone()))
}

/// Every file in the data directory and its size.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path(), e.metadata().unwrap().len())
        })
        .collect();
    out.sort();
    out
}

fn last_log(dir: &Path) -> PathBuf {
    files(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("log.") && !n.contains("corrupt"))
        })
        .rfind(|p| std::fs::metadata(p).unwrap().len() > 8)
        .expect("a log with records")
}

#[test]
fn named_objects_survive_a_restart_under_each_fsync_policy() {
    for policy in ["always", "everysec", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = start(dir.path(), &["--appendfsync", policy]);
        {
            let c = server.client();
            let d = token(&c, "d");
            let q = token(&c, "q");
            for i in 0..50 {
                call(
                    &c,
                    d.id,
                    "__setitem__",
                    vec![i.into(), format!("v{i}").into()],
                );
                call(&c, q.id, "put", vec![i.into()]);
            }
            call(&c, d.id, "__delitem__", vec![0.into()]);
            assert_eq!(call(&c, q.id, "get", vec![]), Value::Int(0));
        }
        // A graceful stop, then the same directory.
        assert!(server.signal_and_wait(libc::SIGTERM).success());
        let server = start(dir.path(), &["--appendfsync", policy]);
        let c = server.client();
        let d = token(&c, "d");
        let q = token(&c, "q");
        assert_eq!(
            call(&c, d.id, "__len__", vec![]),
            Value::Int(49),
            "{policy}"
        );
        assert_eq!(
            call(&c, d.id, "__getitem__", vec![7.into()]),
            Value::from("v7"),
            "{policy}"
        );
        assert_eq!(call(&c, q.id, "qsize", vec![]), Value::Int(49), "{policy}");
        assert_eq!(call(&c, q.id, "get", vec![]), Value::Int(1), "{policy}");
    }
}

/// Writes `d[i] = i` in a loop from another thread until the server
/// dies; kills it with SIGKILL midway; the keys whose writes were
/// answered.
fn kill_during_a_write_loop(dir: &Path, policy: &str) -> (i64, ServerProcess) {
    let mut server = start(dir, &["--appendfsync", policy]);
    let acked = Arc::new(AtomicI64::new(-1));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let c = server.client();
        let d = token(&c, "d");
        let acked = Arc::clone(&acked);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let ok =
                    c.call_method(d.id, "__setitem__", vec![i.into(), i.into()], Kwargs::new());
                if ok.is_err() {
                    break;
                }
                acked.store(i, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    assert!(
        eventually(Duration::from_secs(60), || acked.load(Ordering::SeqCst)
            >= 500),
        "the writer made no progress"
    );
    server.signal_and_wait(libc::SIGKILL);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    (acked.load(Ordering::SeqCst), server)
}

#[test]
fn kill_9_under_always_loses_no_answered_write() {
    let dir = tempfile::tempdir().unwrap();
    let (last, _dead) = kill_during_a_write_loop(dir.path(), "always");
    let server = start(dir.path(), &["--appendfsync", "always"]);
    let c = server.client();
    let d = token(&c, "d");
    for i in 0..=last {
        assert_eq!(
            call(&c, d.id, "get", vec![i.into()]),
            Value::Int(i),
            "answered write {i} of 0..={last} was lost"
        );
    }
}

#[test]
fn kill_9_under_everysec_counts_what_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (last, _dead) = kill_during_a_write_loop(dir.path(), "everysec");
    let server = start(dir.path(), &[]);
    let c = server.client();
    let d = token(&c, "d");
    let lost = (0..=last)
        .filter(|i| call(&c, d.id, "get", vec![(*i).into()]) != Value::Int(*i))
        .count();
    // A server crash (not a machine crash) loses nothing answered even
    // under everysec: each change is written before its answer.
    println!(
        "everysec, kill -9 after {} answered writes: {lost} lost",
        last + 1
    );
    assert_eq!(lost, 0, "answered writes lost to a server crash");
}

#[test]
fn a_truncated_log_loads_its_valid_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &["--appendfsync", "always"]);
    {
        let c = server.client();
        let d = token(&c, "d");
        for i in 0..100 {
            call(&c, d.id, "__setitem__", vec![i.into(), i.into()]);
        }
    }
    server.signal_and_wait(libc::SIGKILL);
    // The last write cut short, as a crash mid-write leaves it.
    let log = last_log(dir.path());
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let server = start(dir.path(), &[]);
    let c = server.client();
    let d = token(&c, "d");
    assert_eq!(call(&c, d.id, "__len__", vec![]), Value::Int(99));
    let mut said = false;
    assert!(eventually(Duration::from_secs(10), || {
        said |= server
            .log_lines()
            .iter()
            .any(|l| l.contains("damaged") && l.contains("ends inside"));
        said
    }));
    let aside = files(dir.path())
        .into_iter()
        .filter(|(p, _)| p.display().to_string().contains(".corrupt-"))
        .count();
    assert_eq!(
        aside,
        1,
        "the cut record is moved aside: {:?}",
        files(dir.path())
    );
}

#[test]
fn a_corrupted_log_loads_what_came_before_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    {
        let c = server.client();
        let d = token(&c, "d");
        for i in 0..100 {
            call(
                &c,
                d.id,
                "__setitem__",
                vec![i.into(), "x".repeat(40).into()],
            );
        }
    }
    assert!(server.signal_and_wait(libc::SIGTERM).success());
    // A byte flipped in the middle of the log (a disk's bit rot).
    let log = last_log(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&log, &bytes).unwrap();
    let server = start(dir.path(), &[]);
    let c = server.client();
    let d = token(&c, "d");
    let Value::Int(n) = call(&c, d.id, "__len__", vec![]) else {
        panic!("len")
    };
    assert!(
        n > 20 && n < 100,
        "about half the writes are before the damage: {n}"
    );
    for i in 0..n {
        assert_eq!(
            call(&c, d.id, "__getitem__", vec![i.into()]),
            Value::from("x".repeat(40))
        );
    }
    let mut said = false;
    assert!(eventually(Duration::from_secs(10), || {
        said |= server
            .log_lines()
            .iter()
            .any(|l| l.contains("damaged") && l.contains("checksum"));
        said
    }));
    assert!(files(dir.path())
        .iter()
        .any(|(p, _)| p.display().to_string().contains(".corrupt-")));
}

#[test]
fn a_second_server_on_the_data_directory_exits_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), &[]);
    let (status, stderr) = ServerProcess::start_failing(Options::args(&[
        "--data-dir",
        &dir.path().display().to_string(),
    ]));
    assert!(!status.success());
    assert!(
        stderr.contains("is in use by another server")
            && stderr.contains(&format!("pid {}", first.pid())),
        "{stderr}"
    );
    // The first still serves.
    let c = first.client();
    let d = token(&c, "d");
    call(&c, d.id, "__setitem__", vec![1.into(), 1.into()]);
}

#[test]
fn objects_reachable_from_a_name_come_back_and_unreachable_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    let (list_id, gone_id) = {
        let c = server.client();
        let d = token(&c, "d");
        // d["l"] is a list holding a Namespace and a Value; d["gone"] a
        // dict removed again before the restart.
        let l = create(&c, "list", vec![]);
        let ns = create(&c, "Namespace", vec![]);
        call(&c, ns.token.id, "__setattr__", vec!["x".into(), 5.into()]);
        let v = create(&c, "Value", vec!["i".into(), 1.into()]);
        call(&c, l.token.id, "append", vec![proxy(&ns)]);
        call(&c, d.id, "__setitem__", vec!["l".into(), proxy(&l)]);
        // Changes after it became reachable are kept too.
        call(&c, l.token.id, "append", vec![proxy(&v)]);
        call(&c, v.token.id, "set", vec![42.into()]);
        call(
            &c,
            ns.token.id,
            "__setattr__",
            vec!["y".into(), "why".into()],
        );
        let gone = create(&c, "dict", vec![]);
        call(&c, d.id, "__setitem__", vec!["gone".into(), proxy(&gone)]);
        call(&c, d.id, "__delitem__", vec!["gone".into()]);
        (l.token.id, gone.token.id)
    };
    assert!(server.signal_and_wait(libc::SIGKILL).code().is_none());
    let server = start(dir.path(), &[]);
    let c = server.client();
    let d = token(&c, "d");
    let Value::Proxy(l) = call(&c, d.id, "__getitem__", vec!["l".into()]) else {
        panic!("d['l'] is a proxy")
    };
    assert_eq!(l.id, list_id, "a restored object keeps its id");
    let Value::List(items) = call(&c, l.id, "copy", vec![]) else {
        panic!()
    };
    let [Value::Proxy(ns), Value::Proxy(v)] = &items[..] else {
        panic!("{items:?}")
    };
    assert_eq!(
        call(&c, ns.id, "__getattribute__", vec!["x".into()]),
        Value::Int(5)
    );
    assert_eq!(
        call(&c, ns.id, "__getattribute__", vec!["y".into()]),
        Value::from("why")
    );
    assert_eq!(call(&c, v.id, "get", vec![]), Value::Int(42));
    assert!(c
        .call_method(gone_id, "__len__", vec![], Kwargs::new())
        .is_err());
}

#[test]
fn rewriting_keeps_the_log_bounded_through_a_long_overwrite_loop() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--rewrite-min-bytes", "65536"]);
    let c = server.client();
    let d = token(&c, "d");
    let value = "v".repeat(100);
    // About 5 MB of log for about 2 KB of live data.
    for i in 0..40_000 {
        call(
            &c,
            d.id,
            "__setitem__",
            vec![(i % 16).into(), format!("{i}{value}").into()],
        );
    }
    let total = || files(dir.path()).iter().map(|(_, s)| s).sum::<u64>();
    assert!(
        eventually(Duration::from_secs(60), || total() < 4 * 65536),
        "the directory stays at {} bytes: {:?}",
        total(),
        files(dir.path())
    );
    println!(
        "after 40,000 overwrites of 16 keys: {} bytes on disk",
        total()
    );
    drop(c);
    drop(server);
    let server = start(dir.path(), &[]);
    let c = server.client();
    let d = token(&c, "d");
    assert_eq!(
        call(&c, d.id, "__getitem__", vec![15.into()]),
        Value::from(format!("39999{value}"))
    );
}
