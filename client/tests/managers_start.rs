//! End to end: a manager server started in a child process by
//! `Manager()` / `BaseManager::start`, used from another child process.

use std::time::Duration;

use multiprocessing::connection::Address;
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::{
    BaseManager, BaseProxy, DictProxy, ListProxy, Manager, ManagerError, SyncManager,
};
use multiprocessing::queues::QueueError;
use multiprocessing::synchronize::{BarrierError, ConditionError, ReleaseError};

const KEY: &[u8] = b"start-test";

#[test]
fn manager_dict_and_list_shared_with_a_child_process() {
    let m = Manager::start("127.0.0.1:0", KEY).unwrap();
    let d = m.dict::<i64, String>().unwrap();
    let l = m.list_from::<i64>(0..10).unwrap();
    let address = m.address().to_string();
    let (dt, lt) = (d.base().token().clone(), l.base().token().clone());
    // The child opens its own connection rather than reuse the parent's
    // socket, and attaches to the two objects by token.
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), ManagerError> {
        let address: Address = address
            .parse()
            .map_err(|e| ManagerError::State(format!("{e}")))?;
        let sm = SyncManager::connect(&address, KEY)?;
        let d =
            DictProxy::<i64, String>::from_base(BaseProxy::from_token(sm.client().clone(), dt)?);
        let l = ListProxy::<i64>::from_base(BaseProxy::from_token(sm.client().clone(), lt)?);
        d.set(1, "1")?;
        d.set(2, "2")?;
        let items = l.get_value()?;
        for (i, v) in items.iter().enumerate() {
            l.set(i as i64, v * 10)?;
        }
        Ok(())
    });
    child.start().unwrap();
    assert!(child.join_timeout(Duration::from_secs(20)).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(0));
    assert_eq!(d.to_string(), "{1: '1', 2: '2'}");
    assert_eq!(
        l.get_value().unwrap(),
        (0..10).map(|i| i * 10).collect::<Vec<i64>>()
    );
}

#[test]
fn manager_function_and_shutdown() {
    let mut m = multiprocessing::managers::Manager().unwrap();
    let q = m.queue::<String>().unwrap();
    q.put("x").unwrap();
    assert_eq!(q.get().unwrap(), "x");
    // A forked child connects with the authkey it inherited.
    let address = m.address().clone();
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), ManagerError> {
        let key = multiprocessing::current_process().authkey();
        SyncManager::connect(&address, key.as_bytes())?
            .client()
            .ping()
    });
    child.start().unwrap();
    assert!(child.join_timeout(Duration::from_secs(20)).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(0));
    let pid = m.base().process().unwrap().pid().unwrap();
    assert!(pid.is_some());
    m.shutdown().unwrap();
    m.shutdown().unwrap(); // idempotent
    assert!(matches!(
        q.put("y"),
        Err(QueueError::Manager(ManagerError::ConnectionLost(_)))
    ));
}

#[test]
fn drop_shuts_the_server_down() {
    let address;
    {
        let mut b = BaseManager::sync("127.0.0.1:0", KEY);
        b.start().unwrap();
        address = b.address().unwrap().clone();
        SyncManager::connect(&address, KEY).unwrap();
    }
    // The child has been joined: nothing listens there any more.
    assert!(matches!(
        SyncManager::connect(&address, KEY),
        Err(ManagerError::Connect { .. })
    ));
}

#[test]
fn start_twice_and_bad_address_are_errors() {
    let mut b = BaseManager::sync("127.0.0.1:0", KEY);
    b.start().unwrap();
    assert!(matches!(b.start(), Err(ManagerError::State(_))));
    let mut bad = BaseManager::sync("256.0.0.1:0", KEY);
    assert!(matches!(bad.start(), Err(ManagerError::Start(_))));
    let mut nothing = BaseManager::sync("127.0.0.1:1", KEY);
    assert!(nothing.connect().is_err());
}

/// The reference's `MathsClass`, registered on a custom manager.
struct Maths;

mp_proto::shared_methods! {
    enum MathsMethod {
        Add = "add",
        Mul = "mul",
        Secret = "_secret",
    }
}

impl mp_server::SharedObject for Maths {
    fn methods() -> &'static [mp_proto::methods::MethodSpec] {
        MathsMethod::TABLE
    }

    fn call(
        &self,
        _ctx: &mp_server::CallContext<'_>,
        method: &str,
        args: mp_server::Args,
    ) -> mp_server::Reply {
        let ints: Vec<i64> = args.positional.iter().filter_map(|v| v.as_int()).collect();
        match (MathsMethod::from_name(method), ints.as_slice()) {
            (Some(MathsMethod::Add), [a, b]) => mp_server::Reply::ok(a + b),
            (Some(MathsMethod::Mul), [a, b]) => mp_server::Reply::ok(a * b),
            (Some(MathsMethod::Secret), []) => mp_server::Reply::ok(42),
            _ => mp_server::Reply::no_such_method("Maths", method),
        }
    }
}

#[test]
fn custom_manager_with_registered_typeid() {
    use mp_proto::{ErrorKind, Value};
    let mut manager = BaseManager::new("127.0.0.1:0", KEY);
    manager
        .registry()
        .unwrap()
        .register("Maths", |_, _| Ok(Maths));
    manager.start().unwrap();
    assert!(manager.registry().is_err());
    let maths = manager.create_auto("Maths", vec![]).unwrap();
    assert_eq!(maths.exposed(), ["add", "mul"]);
    let sum = maths.call_method("add", vec![4.into(), 3.into()]).unwrap();
    assert_eq!(sum.into_value().unwrap(), Value::Int(7));
    let product = maths.call_method("mul", vec![7.into(), 8.into()]).unwrap();
    assert_eq!(product.into_value().unwrap(), Value::Int(56));
    let hidden = maths.call_method("_secret", vec![]).unwrap_err();
    assert_eq!(hidden.remote().unwrap().kind, ErrorKind::AttributeError);
    assert!(format!("{maths:?}").starts_with("<AutoProxy typeid 'Maths' at "));
    // A typeid the server does not serve.
    assert!(manager.create_auto("dict", vec![]).is_err());
}

#[test]
fn auto_proxy_method_returning_a_proxy() {
    use mp_proto::{ErrorKind, Value};
    let m = Manager::start("127.0.0.1:0", KEY).unwrap();
    let d = m.create_auto("dict", vec![], Default::default()).unwrap();
    d.call_method("__setitem__", vec!["a".into(), 1.into()])
        .unwrap();
    d.call_method("__setitem__", vec!["b".into(), 2.into()])
        .unwrap();
    let it = d
        .call_method("__iter__", vec![])
        .unwrap()
        .into_proxy()
        .unwrap();
    assert_eq!(it.base().token().typeid, "Iterator");
    let mut keys = Vec::new();
    loop {
        match it.call_method("__next__", vec![]) {
            Ok(v) => keys.push(v.into_value().unwrap()),
            Err(e) => {
                assert_eq!(e.remote().unwrap().kind, ErrorKind::StopIteration);
                break;
            }
        }
    }
    assert_eq!(keys, vec![Value::from("a"), Value::from("b")]);
    drop(it);
    drop(d);
    assert!(m.wait_for_object_count(0, Duration::from_secs(20)).unwrap());
}

#[test]
fn a_child_exiting_without_dropping_its_proxies_leaks_nothing() {
    let m = Manager::start("127.0.0.1:0", KEY).unwrap();
    let address = m.address().clone();
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), ManagerError> {
        let sm = SyncManager::connect(&address, KEY)?;
        let d = sm.dict::<i64, i64>()?;
        let l = sm.list::<i64>()?;
        let lock = sm.lock()?;
        std::mem::forget(lock.acquire()?);
        std::mem::forget((d, l, lock));
        // Exit with the references (and the lock) still held.
        std::process::exit(3)
    });
    child.start().unwrap();
    assert!(child.join_timeout(Duration::from_secs(20)).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(3));
    assert!(m.wait_for_object_count(0, Duration::from_secs(20)).unwrap());
}

#[test]
fn nested_proxies_and_a_proxy_sent_through_a_pipe() {
    use multiprocessing::Pipe;
    let m = multiprocessing::managers::Manager().unwrap();
    // A list of dicts, as in the reference.
    let outer = m.list::<DictProxy<String, i64>>().unwrap();
    let inner = m.dict::<String, i64>().unwrap();
    outer.append(&inner).unwrap();
    outer.append(m.dict().unwrap()).unwrap();
    let again = outer.get(0).unwrap();
    again.set("a", 1).unwrap();
    assert_eq!(inner.get("a").unwrap(), Some(1));
    assert_eq!(outer.get_value().unwrap().len(), 2);
    // The second dict lives only inside the list.
    outer.get(1).unwrap().set("b", 2).unwrap();
    assert_eq!(outer.get(1).unwrap().get("b").unwrap(), Some(2));

    // A proxy sent to a forked child, which opens its own connection.
    let (mut rx, mut tx) = Pipe(false).unwrap();
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), String> {
        let d: DictProxy<String, i64> = rx.recv().map_err(|e| e.to_string())?;
        d.set("from child", 7).map_err(|e| e.to_string())
    });
    child.start().unwrap();
    tx.send(&inner).unwrap();
    assert!(child.join_timeout(Duration::from_secs(20)).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(0));
    assert_eq!(inner.get("from child").unwrap(), Some(7));

    drop((outer, inner, again));
    assert!(m.wait_for_object_count(0, Duration::from_secs(20)).unwrap());
}

#[test]
fn a_killed_server_fails_blocked_and_later_calls_with_connection_lost() {
    let m = Manager::start("127.0.0.1:0", KEY).unwrap();
    let q = m.queue::<i64>().unwrap();
    let lock = m.lock().unwrap();
    let blocked = {
        let q = q.clone();
        std::thread::spawn(move || q.get())
    };
    // The getter is queued on the server before the kill.
    while !q.base().referent_str().unwrap().contains("getters=1") {
        std::thread::sleep(Duration::from_millis(5));
    }
    m.base().process().unwrap().kill().unwrap();
    assert!(matches!(
        blocked.join().unwrap(),
        Err(QueueError::Manager(ManagerError::ConnectionLost(_)))
    ));
    assert!(matches!(
        lock.acquire(),
        Err(ManagerError::ConnectionLost(_))
    ));
    // A new connection to the dead address is refused.
    assert!(SyncManager::connect(m.address(), KEY).is_err());
}

/// What only a managed primitive meets, a lost connection, is the
/// `Manager` variant of the error its local flavour shares.
#[test]
fn a_lost_connection_is_the_manager_variant_of_each_shared_error() {
    let m = Manager::start("127.0.0.1:0", KEY).unwrap();
    let lock = m.lock().unwrap();
    let cond = m.condition().unwrap();
    let barrier = m.barrier(2).unwrap();
    let server = m.base().process().unwrap();
    server.kill().unwrap();
    assert!(server.join_timeout(Duration::from_secs(20)).unwrap());
    let lost = |e: &ManagerError| matches!(e, ManagerError::ConnectionLost(_));
    match lock.release() {
        Err(ReleaseError::Manager(e)) if lost(&e) => {}
        other => panic!("release: {other:?}"),
    }
    match cond.notify() {
        Err(ConditionError::Manager(e)) if lost(&e) => {}
        other => panic!("notify: {other:?}"),
    }
    match barrier.wait() {
        Err(BarrierError::Manager(e)) if lost(&e) => {}
        other => panic!("wait: {other:?}"),
    }
}

#[test]
fn get_value_on_every_proxy() {
    use mp_proto::ErrorKind;
    let m = Manager::start("127.0.0.1:0", KEY).unwrap();
    let ns = m.namespace().unwrap();
    ns.set("x", 1i64).unwrap();
    assert_eq!(ns.get_value().unwrap().to_string(), "{'x': 1}");
    let lock_copy = m.lock().unwrap().get_value().unwrap_err();
    assert_eq!(lock_copy.remote().unwrap().kind, ErrorKind::TypeError);
    for e in [
        m.queue::<i64>().unwrap().get_value().unwrap_err(),
        m.event().unwrap().get_value().unwrap_err(),
        m.condition().unwrap().get_value().unwrap_err(),
        m.barrier(2).unwrap().get_value().unwrap_err(),
        m.bounded_semaphore(1).unwrap().get_value().unwrap_err(),
    ] {
        assert_eq!(e.remote().unwrap().kind, ErrorKind::TypeError);
    }
    let jq: multiprocessing::managers::JoinableQueueProxy<i64> = m.joinable_queue().unwrap();
    jq.put(1).unwrap();
    jq.get().unwrap();
    jq.task_done().unwrap();
    jq.join().unwrap();
}
