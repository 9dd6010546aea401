//! Every SyncManager type's semantics, through the low-level client
//! against the real `mpserver` binary.

use mp_proto::message::Kwargs;
use mp_proto::{ErrorKind, ObjectId, Value};
use mp_tests::mpserver::ServerProcess;
use multiprocessing::managers::{ManagerClient, ManagerError, Slice};

struct T {
    _server: ServerProcess,
    c: ManagerClient,
}

fn setup() -> T {
    let server = ServerProcess::start();
    let c = server.client();
    T { _server: server, c }
}

impl T {
    fn make(&self, typeid: &str, args: Vec<Value>) -> ObjectId {
        self.c.create(typeid, args, Kwargs::new()).unwrap().token.id
    }
    fn call(&self, id: ObjectId, m: &str, args: Vec<Value>) -> Value {
        self.c
            .call_method(id, m, args, Kwargs::new())
            .unwrap_or_else(|e| panic!("{m}: {e}"))
            .into_value()
            .unwrap()
    }
    fn kw(
        &self,
        id: ObjectId,
        m: &str,
        args: Vec<Value>,
        kw: &[(&str, Value)],
    ) -> Result<Value, ManagerError> {
        let kwargs: Kwargs = kw.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        self.c
            .call_method(id, m, args, kwargs)
            .and_then(|r| r.into_value())
    }
    fn err(&self, id: ObjectId, m: &str, args: Vec<Value>) -> mp_proto::RemoteError {
        match self.c.call_method(id, m, args, Kwargs::new()) {
            Err(ManagerError::Remote(e)) => e,
            other => panic!("{m}: expected a remote error, got {other:?}"),
        }
    }
}

fn list(items: Vec<Value>) -> Value {
    Value::List(items)
}

#[test]
fn dict() {
    let t = setup();
    let d = t.make("dict", vec![]);
    t.call(d, "__setitem__", vec!["b".into(), 1.into()]);
    t.call(d, "__setitem__", vec!["a".into(), 2.into()]);
    assert_eq!(
        t.call(d, "keys", vec![]),
        list(vec!["b".into(), "a".into()])
    );
    assert_eq!(t.call(d, "__getitem__", vec!["a".into()]), Value::Int(2));
    let e = t.err(d, "__getitem__", vec!["nope".into()]);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::KeyError, "'nope'")
    );
    assert_eq!(
        t.err(d, "__setitem__", vec![list(vec![]), 1.into()]).kind,
        ErrorKind::TypeError
    );
    assert_eq!(t.call(d, "get", vec!["zz".into(), 5.into()]), Value::Int(5));
    assert_eq!(
        t.call(d, "setdefault", vec!["c".into(), 3.into()]),
        Value::Int(3)
    );
    assert_eq!(t.call(d, "pop", vec!["c".into()]), Value::Int(3));
    assert_eq!(
        t.call(d, "popitem", vec![]),
        Value::Tuple(vec!["a".into(), 2.into()])
    );
    t.kw(d, "update", vec![], &[("x", 9.into())]).unwrap();
    assert_eq!(t.call(d, "__len__", vec![]), Value::Int(2));
    assert_eq!(
        t.call(d, "__contains__", vec!["x".into()]),
        Value::Bool(true)
    );
    assert_eq!(
        t.call(d, "items", vec![]),
        list(vec![
            Value::Tuple(vec!["b".into(), 1.into()]),
            Value::Tuple(vec!["x".into(), 9.into()])
        ])
    );
    assert_eq!(
        t.call(d, "__repr__", vec![]),
        Value::from("{'b': 1, 'x': 9}")
    );
    // __iter__ returns a new Iterator object.
    let it =
        t.c.call_method(d, "__iter__", vec![], Kwargs::new())
            .unwrap()
            .into_proxy()
            .unwrap();
    assert_eq!(it.token.typeid, "Iterator");
    assert_eq!(t.call(it.token.id, "__next__", vec![]), Value::from("b"));
    assert_eq!(t.call(it.token.id, "__next__", vec![]), Value::from("x"));
    assert_eq!(
        t.err(it.token.id, "__next__", vec![]).kind,
        ErrorKind::StopIteration
    );
    t.c.decref(it.token.id).unwrap();
    t.call(d, "clear", vec![]);
    assert_eq!(
        t.call(d, "copy", vec![]),
        Value::from(mp_proto::value::Map::new())
    );
}

#[test]
fn list_type() {
    let t = setup();
    let l = t.make("list", vec![list(vec![3.into(), 1.into(), 2.into()])]);
    t.call(l, "append", vec![0.into()]);
    t.call(l, "sort", vec![]);
    assert_eq!(t.call(l, "__repr__", vec![]), Value::from("[0, 1, 2, 3]"));
    assert_eq!(t.call(l, "__getitem__", vec![(-1).into()]), Value::Int(3));
    let s = Slice::new(Some(1), None, Some(2)).to_value();
    assert_eq!(
        t.call(l, "__getitem__", vec![s.clone()]),
        list(vec![1.into(), 3.into()])
    );
    t.call(l, "__delitem__", vec![s]);
    assert_eq!(t.call(l, "__repr__", vec![]), Value::from("[0, 2]"));
    let e = t.err(l, "__getitem__", vec![5.into()]);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::IndexError, "list index out of range")
    );
    let e = t.err(l, "remove", vec![7.into()]);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::ValueError, "list.remove(x): x not in list")
    );
    t.call(l, "__iadd__", vec![list(vec![5.into()])]);
    t.call(l, "__imul__", vec![2.into()]);
    assert_eq!(t.call(l, "count", vec![5.into()]), Value::Int(2));
    assert_eq!(t.call(l, "index", vec![2.into()]), Value::Int(1));
    t.call(l, "insert", vec![0.into(), "first".into()]);
    t.call(l, "reverse", vec![]);
    assert_eq!(t.call(l, "pop", vec![]), Value::from("first"));
    t.kw(l, "sort", vec![], &[("reverse", true.into())])
        .unwrap();
    assert_eq!(
        t.call(l, "__repr__", vec![]),
        Value::from("[5, 5, 2, 2, 0, 0]")
    );
    assert_eq!(t.call(l, "__len__", vec![]), Value::Int(6));
    assert_eq!(t.call(l, "__contains__", vec![2.into()]), Value::Bool(true));
    t.call(l, "__setitem__", vec![0.into(), "z".into()]);
    assert_eq!(t.call(l, "__getitem__", vec![0.into()]), Value::from("z"));
    t.call(l, "clear", vec![]);
    assert_eq!(t.err(l, "pop", vec![]).message, "pop from empty list");
}

#[test]
fn queue_and_joinable_queue() {
    let t = setup();
    let q = t.make("Queue", vec![2.into()]);
    t.call(q, "put", vec![1.into()]);
    t.call(q, "put_nowait", vec![2.into()]);
    assert_eq!(t.call(q, "full", vec![]), Value::Bool(true));
    assert_eq!(t.err(q, "put_nowait", vec![3.into()]).kind, ErrorKind::Full);
    let full = t
        .kw(q, "put", vec![3.into()], &[("timeout", 0.05.into())])
        .unwrap_err();
    assert_eq!(full.remote().unwrap().kind, ErrorKind::Full);
    assert_eq!(t.call(q, "qsize", vec![]), Value::Int(2));
    assert_eq!(t.call(q, "get", vec![]), Value::Int(1));
    assert_eq!(t.call(q, "get_nowait", vec![]), Value::Int(2));
    assert_eq!(t.err(q, "get_nowait", vec![]).kind, ErrorKind::Empty);
    let empty = t
        .kw(q, "get", vec![], &[("timeout", 0.05.into())])
        .unwrap_err();
    assert_eq!(empty.remote().unwrap().kind, ErrorKind::Empty);
    assert_eq!(t.call(q, "empty", vec![]), Value::Bool(true));

    // A blocked get on one thread is served by a put from another client.
    let c2 = t._server.client();
    let getter = {
        let c = t.c.clone();
        std::thread::spawn(move || c.call_method(q, "get", vec![], Kwargs::new()).unwrap())
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    c2.call_method(q, "put", vec!["late".into()], Kwargs::new())
        .unwrap();
    assert_eq!(
        getter.join().unwrap().into_value().unwrap(),
        Value::from("late")
    );

    let j = t.make("JoinableQueue", vec![]);
    t.call(j, "put", vec![1.into()]);
    let joiner = {
        let c = c2.clone();
        std::thread::spawn(move || c.call_method(j, "join", vec![], Kwargs::new()).unwrap())
    };
    t.call(j, "get", vec![]);
    t.call(j, "task_done", vec![]);
    joiner.join().unwrap();
    let e = t.err(j, "task_done", vec![]);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::ValueError, "task_done() called too many times")
    );
}

#[test]
fn locks_and_semaphores() {
    let t = setup();
    let other = t._server.client();
    for typeid in ["Lock", "RLock"] {
        let l = t.make(typeid, vec![]);
        assert_eq!(t.call(l, "acquire", vec![]), Value::Bool(true));
        // Another connection cannot take it, waiting or not.
        let r = other
            .call_method(l, "acquire", vec![false.into()], Kwargs::new())
            .unwrap();
        assert_eq!(r.into_value().unwrap(), Value::Bool(false));
        let r = other.call_method(l, "acquire", vec![true.into(), 0.05.into()], Kwargs::new());
        assert_eq!(r.unwrap().into_value().unwrap(), Value::Bool(false));
        // A negative timeout means zero.
        let r = other.call_method(l, "acquire", vec![true.into(), (-1).into()], Kwargs::new());
        assert_eq!(r.unwrap().into_value().unwrap(), Value::Bool(false));
        // Nor release it: the owner is the acquiring client thread.
        let e = other
            .call_method(l, "release", vec![], Kwargs::new())
            .unwrap_err();
        assert_eq!(
            e.remote().unwrap().message,
            "cannot release un-acquired lock"
        );
        t.call(l, "release", vec![]);
        let e = t.err(l, "release", vec![]);
        assert_eq!(e.kind, ErrorKind::RuntimeError);
    }
    let r = t.make("RLock", vec![]);
    t.call(r, "acquire", vec![]);
    t.call(r, "acquire", vec![]);
    let e = other
        .call_method(r, "release", vec![], Kwargs::new())
        .unwrap_err();
    assert_eq!(
        e.remote().unwrap().message,
        "cannot release un-acquired lock"
    );
    // A thread of the same client is another owner too.
    let c = t.c.clone();
    let e = std::thread::spawn(move || c.call_method(r, "release", vec![], Kwargs::new()))
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::RuntimeError);
    t.call(r, "release", vec![]);
    t.call(r, "release", vec![]);

    let s = t.make("Semaphore", vec![2.into()]);
    t.call(s, "acquire", vec![]);
    t.call(s, "acquire", vec![]);
    assert_eq!(t.call(s, "acquire", vec![false.into()]), Value::Bool(false));
    t.call(s, "release", vec![]);
    t.call(s, "release", vec![]);
    t.call(s, "release", vec![]); // a plain Semaphore may go above its start
    let b = t.make("BoundedSemaphore", vec![1.into()]);
    t.call(b, "acquire", vec![]);
    t.call(b, "release", vec![]);
    let e = t.err(b, "release", vec![]);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::ValueError, "Semaphore released too many times")
    );
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let t = setup();
    let l = t.make("Lock", vec![]);
    let q = t.make("Queue", vec![]);
    t.call(l, "acquire", vec![]);
    let mut handles = Vec::new();
    for i in 0..5i64 {
        let c = t._server.client();
        handles.push(std::thread::spawn(move || {
            c.call_method(l, "acquire", vec![], Kwargs::new()).unwrap();
            c.call_method(q, "put", vec![i.into()], Kwargs::new())
                .unwrap();
            c.call_method(l, "release", vec![], Kwargs::new()).unwrap();
        }));
        // Each waiter is queued before the next one arrives.
        let queued = format!("<Lock object, locked, waiters={}>", i + 1);
        assert!(mp_tests::mpserver::eventually(
            std::time::Duration::from_secs(30),
            || t.call(l, "__repr__", vec![]) == Value::from(queued.as_str())
        ));
    }
    t.call(l, "release", vec![]);
    for h in handles {
        h.join().unwrap();
    }
    let order: Vec<Value> = (0..5).map(|_| t.call(q, "get", vec![])).collect();
    assert_eq!(order, (0..5i64).map(Value::Int).collect::<Vec<_>>());
}

#[test]
fn condition_event_barrier() {
    let t = setup();
    let c = t.make("Condition", vec![]);
    assert_eq!(
        t.err(c, "wait", vec![]).message,
        "cannot wait on un-acquired lock"
    );
    assert_eq!(t.err(c, "notify", vec![]).kind, ErrorKind::RuntimeError);
    let waiter = {
        let cl = t.c.clone();
        std::thread::spawn(move || {
            cl.call_method(c, "acquire", vec![], Kwargs::new()).unwrap();
            let r = cl
                .call_method(c, "wait", vec![10.into()], Kwargs::new())
                .unwrap();
            cl.call_method(c, "release", vec![], Kwargs::new()).unwrap();
            r
        })
    };
    // Once it waits, the waiting thread has released the lock.
    assert!(mp_tests::mpserver::eventually(
        std::time::Duration::from_secs(10),
        || { t.call(c, "__repr__", vec![]).to_string().ends_with(", 1)>") }
    ));
    let other = t._server.client();
    let got = other.call_method(c, "acquire", vec![true.into(), 10.into()], Kwargs::new());
    assert_eq!(got.unwrap().into_value().unwrap(), Value::Bool(true));
    other
        .call_method(c, "notify", vec![], Kwargs::new())
        .unwrap();
    other
        .call_method(c, "release", vec![], Kwargs::new())
        .unwrap();
    assert_eq!(
        waiter.join().unwrap().into_value().unwrap(),
        Value::Bool(true)
    );
    t.call(c, "acquire", vec![]);
    assert_eq!(t.call(c, "wait", vec![0.05.into()]), Value::Bool(false));
    t.call(c, "release", vec![]);

    // Condition over a shared Lock.
    let lock = t.c.create("Lock", vec![], Kwargs::new()).unwrap();
    let c2 = t.make("Condition", vec![lock.token.clone().into()]);
    t.call(c2, "acquire", vec![]);
    assert_eq!(
        t.call(lock.token.id, "acquire", vec![false.into()]),
        Value::Bool(false)
    );
    t.call(c2, "notify_all", vec![]);
    t.call(c2, "release", vec![]);

    let e = t.make("Event", vec![]);
    assert_eq!(t.call(e, "wait", vec![0.05.into()]), Value::Bool(false));
    let w = {
        let cl = t.c.clone();
        std::thread::spawn(move || cl.call_method(e, "wait", vec![], Kwargs::new()).unwrap())
    };
    other.call_method(e, "set", vec![], Kwargs::new()).unwrap();
    assert_eq!(w.join().unwrap().into_value().unwrap(), Value::Bool(true));
    assert_eq!(t.call(e, "is_set", vec![]), Value::Bool(true));
    t.call(e, "clear", vec![]);
    assert_eq!(t.call(e, "is_set", vec![]), Value::Bool(false));

    let b = t.make("Barrier", vec![3.into()]);
    let parties: Vec<_> = (0..3)
        .map(|_| {
            let cl = t._server.client();
            std::thread::spawn(move || {
                cl.call_method(b, "wait", vec![], Kwargs::new())
                    .unwrap()
                    .into_value()
                    .unwrap()
            })
        })
        .collect();
    let mut idx: Vec<i64> = parties
        .into_iter()
        .map(|h| h.join().unwrap().as_int().unwrap())
        .collect();
    idx.sort();
    assert_eq!(idx, vec![0, 1, 2]);
    assert_eq!(
        t.call(b, "__getattribute__", vec!["parties".into()]),
        Value::Int(3)
    );
    let e = t
        .kw(b, "wait", vec![], &[("timeout", 0.05.into())])
        .unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::BrokenBarrierError);
    assert_eq!(
        t.call(b, "__getattribute__", vec!["broken".into()]),
        Value::Bool(true)
    );
    t.call(b, "reset", vec![]);
    assert_eq!(
        t.call(b, "__getattribute__", vec!["n_waiting".into()]),
        Value::Int(0)
    );
    t.call(b, "abort", vec![]);
    assert_eq!(t.err(b, "wait", vec![]).kind, ErrorKind::BrokenBarrierError);
}

#[test]
fn namespace_value_array() {
    let t = setup();
    let kwargs: Kwargs = [("x".to_string(), Value::Int(10))].into_iter().collect();
    let ns = t.c.create("Namespace", vec![], kwargs).unwrap().token.id;
    t.call(ns, "__setattr__", vec!["y".into(), "hello".into()]);
    assert_eq!(
        t.call(ns, "__repr__", vec![]),
        Value::from("Namespace(x=10, y='hello')")
    );
    assert_eq!(
        t.call(ns, "__getattribute__", vec!["x".into()]),
        Value::Int(10)
    );
    t.call(ns, "__delattr__", vec!["x".into()]);
    assert_eq!(
        t.err(ns, "__getattribute__", vec!["x".into()]).kind,
        ErrorKind::AttributeError
    );

    let v = t.make("Value", vec!["i".into(), 5.into()]);
    t.call(v, "set", vec![6.into()]);
    assert_eq!(t.call(v, "get", vec![]), Value::Int(6));
    assert_eq!(t.call(v, "__str__", vec![]), Value::from("Value('i', 6)"));

    let a = t.make("Array", vec!["d".into(), list(vec![1.into(), 2.5.into()])]);
    assert_eq!(t.call(a, "__len__", vec![]), Value::Int(2));
    t.call(a, "__setitem__", vec![0.into(), 4.into()]);
    assert_eq!(t.call(a, "__getitem__", vec![0.into()]), Value::Float(4.0));
    assert_eq!(
        t.err(a, "__setitem__", vec![0.into(), "x".into()]).kind,
        ErrorKind::TypeError
    );
    let b = t.make("Array", vec!["B".into(), list(vec![1.into()])]);
    assert_eq!(
        t.err(b, "__setitem__", vec![0.into(), 256.into()]).kind,
        ErrorKind::OverflowError
    );
}

#[test]
fn bad_requests_get_typed_errors() {
    let t = setup();
    let e = t.c.create("nosuchtype", vec![], Kwargs::new()).unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::KeyError);
    let e = t.c.create("Iterator", vec![], Kwargs::new()).unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::TypeError);
    let d = t.make("dict", vec![]);
    let e = t.err(d, "nosuchmethod", vec![]);
    assert_eq!(e.kind, ErrorKind::AttributeError);
    assert!(e.message.contains("not in exposed"), "{}", e.message);
    assert_eq!(
        t.err(ObjectId(12345), "get", vec![]).kind,
        ErrorKind::KeyError
    );
    assert_eq!(t.err(d, "get", vec![]).kind, ErrorKind::TypeError);
    let q = t.make("Queue", vec![]);
    assert_eq!(
        t.err(q, "get", vec![true.into(), "soon".into()]).kind,
        ErrorKind::TypeError
    );
    let e =
        t.c.call(
            mp_proto::message::Target::Server,
            "frobnicate",
            vec![],
            Kwargs::new(),
        )
        .unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::AttributeError);
    let e = t.c.decref(ObjectId(12345)).unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::KeyError);
    t.c.ping().unwrap();
}

#[test]
fn references_are_counted_truthfully() {
    let t = setup();
    assert_eq!(t.c.number_of_objects().unwrap(), 0);
    let outer = t.make("list", vec![]);
    let inner = t.c.create("dict", vec![], Kwargs::new()).unwrap();
    // Stored in the list, the dict's token holds a reference.
    t.call(outer, "append", vec![inner.token.clone().into()]);
    let refs = |id: ObjectId| {
        t.c.debug_info()
            .unwrap()
            .into_iter()
            .find(|o| o.id == id)
            .map(|o| o.refcount)
    };
    assert_eq!(refs(inner.token.id), Some(2));
    t.c.decref(inner.token.id).unwrap();
    assert_eq!(refs(inner.token.id), Some(1));
    assert_eq!(t.c.number_of_objects().unwrap(), 2);
    // Reading it back gives this connection a reference of its own.
    let got = t.call(outer, "__getitem__", vec![0.into()]);
    assert!(matches!(got, Value::Proxy(ref tok) if tok.id == inner.token.id));
    assert_eq!(refs(inner.token.id), Some(2));
    t.c.decref(inner.token.id).unwrap();
    // Removing it from the list, then dropping the list, frees both.
    t.call(outer, "clear", vec![]);
    assert_eq!(refs(inner.token.id), None);
    t.c.decref(outer).unwrap();
    assert_eq!(t.c.number_of_objects().unwrap(), 0);
    let status = t.c.status().unwrap();
    assert_eq!(status.number_of_objects, 0);
    assert_eq!(status.connections, 1);

    // A dict holding a list holding a dict: the last decref frees all three.
    let a = t.make("dict", vec![]);
    let b = t.c.create("list", vec![], Kwargs::new()).unwrap();
    let c = t.c.create("dict", vec![], Kwargs::new()).unwrap();
    t.call(b.token.id, "append", vec![c.token.clone().into()]);
    t.call(a, "__setitem__", vec!["k".into(), b.token.clone().into()]);
    t.c.decref(b.token.id).unwrap();
    t.c.decref(c.token.id).unwrap();
    let by_type = t.c.status().unwrap().objects_by_typeid;
    assert_eq!(by_type.get("dict"), Some(&2));
    assert_eq!(by_type.get("list"), Some(&1));
    t.c.decref(a).unwrap();
    assert_eq!(t.c.number_of_objects().unwrap(), 0);
}
