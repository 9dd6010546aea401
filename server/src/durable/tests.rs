//! The data directory driven through an [`Engine`], without sockets.

use std::sync::Arc;

use mp_proto::message::{Outcome, Request, Target};
use mp_proto::{Token, Value};

use super::*;
use crate::registry::Registry;
use crate::session::Session;
use crate::Limits;

struct Server {
    engine: Arc<Engine>,
    session: Arc<Session>,
}

impl Server {
    fn open(dir: &Path, fsync: Fsync) -> (Server, RecoveryReport) {
        let engine = Engine::new(Registry::sync_manager());
        let report = engine
            .open_data_dir(&DurableOptions::new(dir).fsync(fsync), &Limits::default())
            .unwrap();
        let session = engine.open_session("test");
        (Server { engine, session }, report)
    }

    fn call(&self, target: Target, method: &str, args: Vec<Value>) -> Outcome {
        let request = Request {
            id: 1,
            target,
            method: method.into(),
            args,
            kwargs: Default::default(),
            thread: 1,
        };
        match self.engine.call(&self.session, request) {
            Reply::Ready(o) => o,
            Reply::Pending(_) => panic!("{method} blocked"),
        }
    }

    fn ok(&self, token: &Token, method: &str, args: Vec<Value>) -> Value {
        match self.call(Target::Object(token.id), method, args) {
            Outcome::Return(v) => v,
            other => panic!("{method}: {other:?}"),
        }
    }

    fn create(&self, typeid: &str, args: Vec<Value>) -> Token {
        self.engine
            .create(&self.session, typeid, Args::positional(args))
            .unwrap()
            .token
    }

    fn lookup(&self, name: &str) -> Token {
        self.engine.lookup(&self.session, name).unwrap().token
    }

    /// Stops as a server does: log closed, then everything disposed of.
    fn stop(self) {
        self.engine.end_session(&self.session);
        self.engine.close_data_dir();
        self.engine.table().clear();
    }

    /// Dies as `kill -9` would leave the files: nothing more written.
    fn crash(self) {
        if let Some(d) = self.engine.data_dir() {
            d.log.suspend();
            *lock(&d.stop) = true;
            d.wake.notify_all();
            if let Some(h) = lock(&d.thread).take() {
                let _ = h.join();
            }
        }
    }
}

#[test]
fn named_objects_and_what_they_hold_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Server::open(dir.path(), Fsync::Always);
    let d = s.create("dict", vec![]);
    s.engine.publish("d", d.id, false).unwrap();
    s.ok(&d, "__setitem__", vec!["a".into(), 1.into()]);
    // A list made by a session, then stored: it persists with the dict.
    let l = s.create("list", vec![]);
    s.ok(&l, "append", vec![1.into()]);
    s.ok(
        &d,
        "__setitem__",
        vec!["l".into(), Value::Proxy(Box::new(l.clone()))],
    );
    s.ok(&l, "append", vec![2.into()]);
    let q = s.create("Queue", vec![]);
    s.engine.publish("q", q.id, false).unwrap();
    for i in 0..5 {
        s.ok(&q, "put", vec![i.into()]);
    }
    assert_eq!(s.ok(&q, "get", vec![]), Value::Int(0));
    s.ok(&q, "task_done", vec![]);
    let ev = s.create("Event", vec![]);
    s.engine.publish("ev", ev.id, false).unwrap();
    s.ok(&ev, "set", vec![]);
    let lock_ = s.create("Lock", vec![]);
    s.engine.publish("lock", lock_.id, false).unwrap();
    assert_eq!(s.ok(&lock_, "acquire", vec![]), Value::Bool(true));
    // A session's own object does not persist.
    let ephemeral = s.create("dict", vec![]);
    s.ok(&ephemeral, "__setitem__", vec!["x".into(), 1.into()]);
    s.stop();

    let (s, report) = Server::open(dir.path(), Fsync::Always);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.names, 4);
    let d2 = s.lookup("d");
    assert_eq!(d2.id, d.id, "ids are kept");
    assert_eq!(s.ok(&d2, "__getitem__", vec!["a".into()]), Value::Int(1));
    let Value::Proxy(l2) = s.ok(&d2, "__getitem__", vec!["l".into()]) else {
        panic!("the list's token")
    };
    assert_eq!(
        s.ok(&l2, "copy", vec![]),
        Value::List(vec![1.into(), 2.into()])
    );
    let q2 = s.lookup("q");
    assert_eq!(s.ok(&q2, "qsize", vec![]), Value::Int(4));
    assert_eq!(s.ok(&q2, "get", vec![]), Value::Int(1));
    // Five put, one done: four unfinished.
    for _ in 0..4 {
        s.ok(&q2, "task_done", vec![]);
    }
    assert!(matches!(
        s.call(Target::Object(q2.id), "task_done", vec![]),
        Outcome::Error(e) if e.kind == ErrorKind::ValueError
    ));
    assert_eq!(s.ok(&s.lookup("ev"), "is_set", vec![]), Value::Bool(true));
    // The lock comes back free.
    let l3 = s.lookup("lock");
    assert_eq!(s.ok(&l3, "locked", vec![]), Value::Bool(false));
    assert!(s.engine.table().get(ephemeral.id).is_none());
    s.stop();
}

#[test]
fn a_second_engine_on_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Server::open(dir.path(), Fsync::Everysec);
    let other = Engine::new(Registry::sync_manager());
    let e = other
        .open_data_dir(&DurableOptions::new(dir.path()), &Limits::default())
        .unwrap_err();
    assert!(matches!(e, DurableError::InUse { pid: Some(p), .. } if p == std::process::id()));
    assert!(e.to_string().contains("in use by another server"), "{e}");
    s.stop();
}

#[test]
fn a_crash_keeps_every_answered_change_and_a_damaged_tail_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Server::open(dir.path(), Fsync::Always);
    let d = s.create("dict", vec![]);
    s.engine.publish("d", d.id, false).unwrap();
    for i in 0..100 {
        s.ok(&d, "__setitem__", vec![i.into(), i.into()]);
    }
    s.crash();
    // Garbage after the last record, as a write cut short would leave.
    let layout = files::scan(dir.path()).unwrap();
    let last = log_path(dir.path(), *layout.logs.last().unwrap());
    let mut bytes = std::fs::read(&last).unwrap();
    let good = bytes.len();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 0x85]);
    std::fs::write(&last, &bytes).unwrap();

    let (s, report) = Server::open(dir.path(), Fsync::Always);
    assert_eq!(report.moved_aside.len(), 1, "{report:?}");
    assert!(
        report.problems[0].contains("damaged"),
        "{:?}",
        report.problems
    );
    assert_eq!(std::fs::metadata(&last).unwrap().len() as usize, good);
    let d = s.lookup("d");
    assert_eq!(s.ok(&d, "__len__", vec![]), Value::Int(100));
    s.stop();
    // The next start finds nothing wrong.
    let (s, report) = Server::open(dir.path(), Fsync::Always);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    s.stop();
}

#[test]
fn compaction_folds_the_logs_into_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Server::open(dir.path(), Fsync::No);
    let d = s.create("dict", vec![]);
    s.engine.publish("d", d.id, false).unwrap();
    let c = s.create("Condition", vec![]);
    let lk = s.create("Lock", vec![]);
    let c2 = s.create("Condition", vec![Value::Proxy(Box::new(lk.clone()))]);
    s.ok(
        &d,
        "__setitem__",
        vec!["c".into(), Value::Proxy(Box::new(c))],
    );
    s.ok(
        &d,
        "__setitem__",
        vec!["c2".into(), Value::Proxy(Box::new(c2))],
    );
    for round in 0..50 {
        for k in 0..100 {
            s.ok(&d, "__setitem__", vec![k.into(), round.into()]);
        }
    }
    let durability = Arc::clone(s.engine.data_dir().unwrap());
    let before: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    compact::compact(&durability, &s.engine).unwrap();
    s.ok(&d, "__setitem__", vec!["after".into(), 1.into()]);
    let after: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(after * 5 < before, "{before} -> {after}");
    drop(durability);
    s.stop();
    let (s, report) = Server::open(dir.path(), Fsync::No);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let d = s.lookup("d");
    assert_eq!(s.ok(&d, "__len__", vec![]), Value::Int(103));
    assert_eq!(s.ok(&d, "__getitem__", vec![7.into()]), Value::Int(49));
    assert_eq!(s.ok(&d, "__getitem__", vec!["after".into()]), Value::Int(1));
    let Value::Proxy(c2) = s.ok(&d, "__getitem__", vec!["c2".into()]) else {
        panic!()
    };
    assert_eq!(s.ok(&c2, "acquire", vec![]), Value::Bool(true));
    s.stop();
}
