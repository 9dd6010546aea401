//! End to end: SyncManager's typed proxies against a real server started
//! in this process on 127.0.0.1:0.

use std::thread;
use std::time::Duration;

use mp_proto::ErrorKind;
use mp_server::{Listen, Registry};
use multiprocessing::connection::Address;
use multiprocessing::managers::{ManagerError, ManagerServer, SyncManager};
use multiprocessing::queues::QueueError;
use multiprocessing::synchronize::{BarrierError, ConditionError, ReleaseError};

const KEY: &[u8] = b"managers-test";
const LONG: Duration = Duration::from_secs(20);

/// Starts a SyncManager server on a thread of its own; returns its address.
fn server() -> Address {
    let server = ManagerServer::bind(
        Registry::sync_manager(),
        KEY,
        &Listen::Tcp("127.0.0.1:0".into()),
    )
    .unwrap();
    let address = server.address().parse().unwrap();
    thread::spawn(move || server.serve_forever());
    address
}

fn manager() -> SyncManager {
    SyncManager::connect(&server(), KEY).unwrap()
}

fn kind(e: &ManagerError) -> ErrorKind {
    e.remote().expect("a remote error").kind.clone()
}

#[test]
fn dict_proxy() {
    let m = manager();
    let d = m.dict::<String, i64>().unwrap();
    d.set("a", 1).unwrap();
    d.set("b", 2).unwrap();
    assert_eq!(d.get("a").unwrap(), Some(1));
    assert_eq!(d.get("zz").unwrap(), None);
    assert_eq!(kind(&d.get_item("zz").unwrap_err()), ErrorKind::KeyError);
    assert!(d.contains_key("b").unwrap());
    assert_eq!(d.len().unwrap(), 2);
    assert_eq!(d.keys().unwrap(), vec!["a".to_string(), "b".into()]);
    assert_eq!(d.values().unwrap(), vec![1, 2]);
    assert_eq!(
        d.get_value().unwrap(),
        vec![("a".to_string(), 1), ("b".into(), 2)]
    );
    assert_eq!(d.items().unwrap(), d.get_value().unwrap());
    assert_eq!(d.remove("a").unwrap(), Some(1));
    assert_eq!(d.remove("a").unwrap(), None);
    assert_eq!(d.setdefault("c", 7).unwrap(), 7);
    assert_eq!(d.setdefault("c", 8).unwrap(), 7);
    assert_eq!(d.to_string(), "{'b': 2, 'c': 7}");
    let dbg = format!("{d:?}");
    assert!(dbg.starts_with("<DictProxy typeid 'dict' at "), "{dbg}");
    d.clear().unwrap();
    assert!(d.is_empty().unwrap());
    // A value of the wrong type is a conversion error, not a panic.
    let raw = m.dict::<String, String>().unwrap();
    raw.set("k", "text").unwrap();
    let typed = multiprocessing::managers::DictProxy::<String, i64>::from_base(raw.base().clone());
    assert!(matches!(typed.get("k"), Err(ManagerError::Conversion(_))));
    // A key stored with `None` is there: removing it gives `Some(None)`.
    let optional = m.dict::<String, Option<i64>>().unwrap();
    optional.set("k", None).unwrap();
    assert_eq!(optional.remove("k").unwrap(), Some(None));
    assert_eq!(optional.remove("k").unwrap(), None);
}

#[test]
fn list_proxy() {
    let m = manager();
    let l = m.list_from::<i64>(&[1, 2, 3]).unwrap();
    l.append(4).unwrap();
    l.extend([5, 6]).unwrap();
    assert_eq!(l.len().unwrap(), 6);
    assert_eq!(l.get(0).unwrap(), 1);
    assert_eq!(l.get(-1).unwrap(), 6);
    assert_eq!(kind(&l.get(99).unwrap_err()), ErrorKind::IndexError);
    l.set(0, 10).unwrap();
    l.insert(1, 11).unwrap();
    assert_eq!(l.pop(-1).unwrap(), 6);
    l.remove(2).unwrap();
    assert_eq!(kind(&l.remove(2).unwrap_err()), ErrorKind::ValueError);
    assert_eq!(l.index(3).unwrap(), 2);
    assert_eq!(l.count(3).unwrap(), 1);
    assert!(l.contains(4).unwrap());
    assert_eq!(l.get_value().unwrap(), vec![10, 11, 3, 4, 5]);
    assert_eq!(l.to_string(), "[10, 11, 3, 4, 5]");
    l.clear().unwrap();
    assert!(l.is_empty().unwrap());
}

#[test]
fn queue_proxy_between_threads() {
    let m = manager();
    let q = m.queue::<String>().unwrap();
    assert!(matches!(q.get_nowait(), Err(QueueError::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(10)),
        Err(QueueError::Empty)
    ));
    let q2 = q.clone();
    let producer = thread::spawn(move || {
        for i in 0..100 {
            q2.put(format!("item {i}")).unwrap();
        }
    });
    for i in 0..100 {
        assert_eq!(q.get_timeout(LONG).unwrap(), format!("item {i}"));
    }
    producer.join().unwrap();
    assert!(q.empty().unwrap());

    let b = m.queue_bounded::<i64>(1).unwrap();
    b.put_nowait(1).unwrap();
    assert!(b.full().unwrap());
    assert!(matches!(b.put_nowait(2), Err(QueueError::Full)));
    assert!(matches!(
        b.put_timeout(2, Duration::from_millis(10)),
        Err(QueueError::Full)
    ));
    assert_eq!(b.qsize().unwrap(), 1);
    assert_eq!(b.get().unwrap(), 1);

    let j = m.joinable_queue::<i64>().unwrap();
    j.put(1).unwrap();
    let j2 = j.clone();
    let worker = thread::spawn(move || {
        let v = j2.get_timeout(LONG).unwrap();
        j2.task_done().unwrap();
        v
    });
    j.join().unwrap();
    assert_eq!(worker.join().unwrap(), 1);
    assert!(matches!(j.task_done(), Err(QueueError::TaskDone)));
}

/// One error vocabulary for a queue's two flavours: the same calls on a
/// local `Queue` and on a manager's `QueueProxy` fail with the same
/// variants, so code that matches on them works with either.
#[test]
fn local_and_managed_queues_fail_with_the_same_variants() {
    let m = manager();
    let managed = m.queue_bounded::<i64>(1).unwrap();
    let local = multiprocessing::Queue::<i64>::new(1).unwrap();
    let short = Duration::from_millis(10);
    let empties: [(&str, Result<i64, QueueError>); 4] = [
        ("local get_nowait", local.get_nowait()),
        ("managed get_nowait", managed.get_nowait()),
        ("local get_timeout", local.get_timeout(short)),
        ("managed get_timeout", managed.get_timeout(short)),
    ];
    for (what, got) in empties {
        assert!(matches!(got, Err(QueueError::Empty)), "{what}: {got:?}");
    }
    local.put(&1).unwrap();
    managed.put(1).unwrap();
    let fulls: [(&str, Result<(), QueueError>); 4] = [
        ("local put_nowait", local.put_nowait(&2)),
        ("managed put_nowait", managed.put_nowait(2)),
        ("local put_timeout", local.put_timeout(&2, short)),
        ("managed put_timeout", managed.put_timeout(2, short)),
    ];
    for (what, got) in fulls {
        let err = got.expect_err(what);
        assert!(err.is_full(), "{what}: {err:?}");
    }
    let local_joinable = multiprocessing::JoinableQueue::<i64>::new(0).unwrap();
    let managed_joinable = m.joinable_queue::<i64>().unwrap();
    assert!(matches!(
        local_joinable.task_done(),
        Err(QueueError::TaskDone)
    ));
    assert!(matches!(
        managed_joinable.task_done(),
        Err(QueueError::TaskDone)
    ));
    // What only a managed queue meets stays a typed ManagerError.
    let other = managed.get_value().map(drop).unwrap_err();
    assert!(matches!(
        QueueError::from(other),
        QueueError::Manager(ManagerError::Remote(_))
    ));
}

/// One error vocabulary for a primitive's two flavours: the same misuse of
/// a local `Lock`, `RLock`, `BoundedSemaphore`, `Condition` or `Barrier`
/// and of its manager's proxy fails with the same variant.
#[test]
fn local_and_managed_primitives_fail_with_the_same_variants() {
    use multiprocessing::{Barrier, BoundedSemaphore, Condition, Lock, RLock};
    let m = manager();
    let short = Duration::from_millis(10);

    // Releasing a lock nobody holds.
    let (local, managed) = (Lock::new().unwrap(), m.lock().unwrap());
    let releases: [(&str, Result<(), ReleaseError>); 2] = [
        ("local Lock", local.release()),
        ("managed Lock", managed.release()),
    ];
    for (what, got) in releases {
        assert!(
            matches!(got, Err(ReleaseError::NotLocked)),
            "{what}: {got:?}"
        );
    }
    // A guard whose lock was released behind its back.
    let guard = managed.acquire().unwrap();
    managed.release().unwrap();
    let got = guard.release();
    assert!(
        matches!(got, Err(ReleaseError::NotLocked)),
        "guard: {got:?}"
    );

    // Releasing an RLock from a thread that does not hold it (a managed
    // Lock, whose server records its holder, says the same).
    let (local, managed) = (RLock::new().unwrap(), m.rlock().unwrap());
    let managed_lock = m.lock().unwrap();
    local.acquire();
    let held = managed.acquire().unwrap();
    let held_lock = managed_lock.acquire().unwrap();
    let (l, r, k) = (local.clone(), managed.clone(), managed_lock.clone());
    let releases = thread::spawn(move || {
        [
            ("local RLock", l.release()),
            ("managed RLock", r.release()),
            ("managed Lock", k.release()),
        ]
    })
    .join()
    .unwrap();
    for (what, got) in releases {
        assert!(
            matches!(got, Err(ReleaseError::NotOwner)),
            "{what}: {got:?}"
        );
    }
    drop((held, held_lock));
    local.release().unwrap();

    // Releasing a bounded semaphore past its initial value.
    let local = BoundedSemaphore::new(1).unwrap();
    let managed = m.bounded_semaphore(1).unwrap();
    let releases: [(&str, Result<(), ReleaseError>); 2] = [
        ("local BoundedSemaphore", local.release()),
        ("managed BoundedSemaphore", managed.release()),
    ];
    for (what, got) in releases {
        assert!(
            matches!(got, Err(ReleaseError::TooManyReleases)),
            "{what}: {got:?}"
        );
    }

    // Waiting on or notifying a condition without its lock.
    let (local, managed) = (Condition::new().unwrap(), m.condition().unwrap());
    let waits: [(&str, Result<bool, ConditionError>); 2] = [
        ("local wait_timeout", local.wait_timeout(short)),
        ("managed wait_timeout", managed.wait_timeout(short)),
    ];
    for (what, got) in waits {
        assert!(
            matches!(got, Err(ConditionError::NotOwned)),
            "{what}: {got:?}"
        );
    }
    let notifies: [(&str, Result<(), ConditionError>); 2] = [
        ("local notify", local.notify()),
        ("managed notify", managed.notify()),
    ];
    for (what, got) in notifies {
        let err = got.expect_err(what);
        assert!(err.is_not_owned(), "{what}: {err:?}");
    }

    // A barrier broken by a party's timeout, then by abort.
    let (local, managed) = (Barrier::new(2).unwrap(), m.barrier(2).unwrap());
    let waits: [(&str, Result<usize, BarrierError>); 2] = [
        (
            "local wait_timeout",
            local.wait_timeout(short).map(|i| i as usize),
        ),
        ("managed wait_timeout", managed.wait_timeout(short)),
    ];
    for (what, got) in waits {
        assert!(matches!(got, Err(BarrierError::Broken)), "{what}: {got:?}");
    }
    local.reset();
    managed.reset().unwrap();
    local.abort();
    managed.abort().unwrap();
    let waits: [(&str, Result<usize, BarrierError>); 2] = [
        ("local wait", local.wait().map(|i| i as usize)),
        ("managed wait", managed.wait()),
    ];
    for (what, got) in waits {
        let err = got.expect_err(what);
        assert!(err.is_broken(), "{what}: {err:?}");
    }

    // An exception with no local counterpart stays a typed ManagerError:
    // an Event has no `release`.
    let event = m.event().unwrap();
    let not_a_lock = multiprocessing::managers::LockProxy::from_base(event.base().clone());
    assert!(matches!(
        not_a_lock.release(),
        Err(ReleaseError::Manager(ManagerError::Remote(_)))
    ));
}

#[test]
fn lock_proxy_excludes_other_threads() {
    let m = manager();
    let lock = m.lock().unwrap();
    let guard = lock.acquire().unwrap();
    assert!(lock.locked().unwrap());
    let other = lock.clone();
    let (timed_out, timed_out_rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        assert!(other.try_acquire().unwrap().is_none());
        assert!(other
            .acquire_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none());
        timed_out.send(()).unwrap();
        // Blocks until the main thread releases.
        let g = other.acquire().unwrap();
        g.release().unwrap();
    });
    // Wait for the other thread to queue on the lock, then release.
    timed_out_rx.recv().unwrap();
    while !t.is_finished() && lock.base().referent_str().unwrap().contains("waiters=0") {
        thread::sleep(Duration::from_millis(1));
    }
    drop(guard);
    t.join().unwrap();
    assert!(!lock.locked().unwrap());
    let g = lock.acquire_timeout(LONG).unwrap().expect("free lock");
    drop(g);
    assert!(lock.try_acquire().unwrap().is_some());
    assert!(matches!(lock.release(), Err(ReleaseError::NotLocked)));
}

#[test]
fn rlock_and_semaphores() {
    let m = manager();
    let r = m.rlock().unwrap();
    let a = r.acquire().unwrap();
    let b = r.try_acquire().unwrap().expect("reentrant");
    drop(b);
    drop(a);
    let r2 = r.clone();
    thread::spawn(move || assert!(r2.try_acquire().unwrap().is_some()))
        .join()
        .unwrap();

    let s = m.semaphore(2).unwrap();
    let g1 = s.acquire().unwrap();
    let g2 = s.acquire().unwrap();
    assert!(s.try_acquire().unwrap().is_none());
    drop(g1);
    drop(g2);
    let bs = m.bounded_semaphore(1).unwrap();
    assert!(matches!(bs.release(), Err(ReleaseError::TooManyReleases)));
}

#[test]
fn event_proxy() {
    let m = manager();
    let e = m.event().unwrap();
    assert!(!e.is_set().unwrap());
    assert!(!e.wait_timeout(Duration::from_millis(10)).unwrap());
    let e2 = e.clone();
    let t = thread::spawn(move || e2.wait_timeout(LONG).unwrap());
    e.set().unwrap();
    assert!(t.join().unwrap());
    e.wait().unwrap();
    e.clear().unwrap();
    assert!(!e.is_set().unwrap());
}

#[test]
fn value_and_namespace() {
    let m = manager();
    let v = m.value::<i64>("i", 5).unwrap();
    assert_eq!(v.get().unwrap(), 5);
    v.set(6).unwrap();
    assert_eq!(v.get_value().unwrap(), 6);

    let ns = m.namespace().unwrap();
    ns.set("x", 10i64).unwrap();
    ns.set("y", "hello").unwrap();
    ns.set("_private", 1i64).unwrap();
    assert_eq!(ns.get::<i64>("x").unwrap(), 10);
    assert_eq!(ns.get::<String>("y").unwrap(), "hello");
    assert_eq!(ns.get::<i64>("_private").unwrap(), 1);
    // The private name never reached the server.
    let copy = ns.clone();
    assert_eq!(
        kind(&copy.get::<i64>("_private").unwrap_err()),
        ErrorKind::AttributeError
    );
    assert!(!ns.to_string().contains("_private"));
    assert!(ns.to_string().contains("x=10"), "{ns}");
    ns.del("x").unwrap();
    assert_eq!(
        kind(&ns.get::<i64>("x").unwrap_err()),
        ErrorKind::AttributeError
    );
}

#[test]
fn clone_and_drop_count_references() {
    let m = manager();
    let d = m.dict::<i64, i64>().unwrap();
    let l = m.list::<i64>().unwrap();
    let c = d.clone();
    assert_eq!(m.client().number_of_objects().unwrap(), 2);
    drop(d);
    // The clone keeps the dict alive.
    c.set(1, 1).unwrap();
    drop(c);
    drop(l);
    assert!(m.wait_for_object_count(0, LONG).unwrap());
}

#[test]
fn calls_fail_with_connection_lost_after_server_shutdown() {
    let m = manager();
    let d = m.dict::<i64, i64>().unwrap();
    m.client().shutdown().unwrap();
    let mut result = d.set(1, 1);
    // The shutdown answer may come back before the socket closes.
    for _ in 0..2000 {
        if result.is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(5));
        result = d.set(1, 1);
    }
    assert!(
        matches!(
            result,
            Err(ManagerError::ConnectionLost(_)) | Err(ManagerError::Remote(_))
        ),
        "{result:?}"
    );
}

#[test]
fn condition_wait_for_and_notify() {
    let m = manager();
    let cond = m.condition().unwrap();
    let ready = m.value::<i64>("i", 0).unwrap();
    let (c2, r2) = (cond.clone(), ready.clone());
    let waiter = thread::spawn(move || {
        let _g = c2.acquire().unwrap();
        c2.wait_for(|| r2.get().unwrap() == 3, Some(LONG)).unwrap()
    });
    for i in 1..=3 {
        let _g = cond.acquire().unwrap();
        ready.set(i).unwrap();
        cond.notify_all().unwrap();
    }
    assert!(waiter.join().unwrap());
    // A predicate that never holds times out and reports false.
    let _g = cond.acquire().unwrap();
    assert!(!cond
        .wait_for(|| false, Some(Duration::from_millis(20)))
        .unwrap());
    assert!(!cond.wait_timeout(Duration::from_millis(5)).unwrap());
    drop(_g);
    // Waiting without the lock is Python's RuntimeError.
    assert!(matches!(cond.wait(), Err(ConditionError::NotOwned)));
    assert!(matches!(cond.notify(), Err(ConditionError::NotOwned)));

    let lock = m.lock().unwrap();
    let shared = m.condition_with_lock(&lock).unwrap();
    let g = shared.acquire().unwrap();
    assert!(lock.locked().unwrap());
    drop(g);
    assert!(!lock.locked().unwrap());
}

#[test]
fn barrier_proxy() {
    let m = manager();
    let b = m.barrier(3).unwrap();
    assert_eq!(b.parties().unwrap(), 3);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            thread::spawn(move || b.wait_timeout(LONG).unwrap())
        })
        .collect();
    let mine = b.wait_timeout(LONG).unwrap();
    let mut all: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    all.push(mine);
    all.sort();
    assert_eq!(all, vec![0, 1, 2]);
    assert_eq!(b.n_waiting().unwrap(), 0);
    b.abort().unwrap();
    assert!(b.broken().unwrap());
    assert!(matches!(b.wait(), Err(BarrierError::Broken)));
    b.reset().unwrap();
    assert!(!b.broken().unwrap());
}

#[test]
fn array_proxy() {
    let m = manager();
    let a = m.array::<i64>("i", [1, 2, 3]).unwrap();
    assert_eq!(a.len().unwrap(), 3);
    a.set(0, 10).unwrap();
    assert_eq!(a.get(-1).unwrap(), 3);
    assert_eq!(a.get_value().unwrap(), vec![10, 2, 3]);
    assert!(a.set(1, 1i64 << 40).is_err());
    assert!(a.get(3).is_err());
    let d = m.array::<f64>("d", [0.5]).unwrap();
    assert_eq!(d.get(0).unwrap(), 0.5);
}

/// A forked child that drops its copy of the parent's connection (a proxy
/// captured by a closure, say) leaves the connection to the parent, over
/// a socket and over a shared-memory channel alike.
#[test]
fn a_forked_child_dropping_its_copy_leaves_the_parents_connection() {
    use multiprocessing::managers::{ConnectOptions, ManagerClient};
    let address = server();
    for shared_memory in [false, true] {
        let options = ConnectOptions {
            shared_memory,
            ..ConnectOptions::default()
        };
        let c = ManagerClient::connect_with(&address, KEY, &options).unwrap();
        assert_eq!(c.uses_shared_memory(), shared_memory);
        let d = c
            .create("dict", vec![], Default::default())
            .unwrap()
            .token
            .id;
        // SAFETY: the child only drops the client and leaves by _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(c);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: reaps the child just forked; status is a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let len = c
            .call_method(d, "__len__", vec![], Default::default())
            .and_then(|r| r.into_value());
        assert_eq!(
            len.unwrap(),
            mp_proto::Value::Int(0),
            "shared_memory: {shared_memory}"
        );
    }
}

/// Mixed-type contents through the SDK's own dynamic value, no second
/// dependency: what Python's `manager.dict()` holds.
#[test]
fn a_dict_of_py_objects_holds_mixed_types() {
    use multiprocessing::managers::PyObject;
    let m = manager();
    let d = m.dict::<PyObject, PyObject>().unwrap();
    d.set(PyObject::from("answer"), PyObject::from(42)).unwrap();
    let mixed = PyObject::List(vec![
        PyObject::None,
        PyObject::from(2.5),
        PyObject::from("x"),
    ]);
    d.set(PyObject::from(1), &mixed).unwrap();
    assert_eq!(
        d.get(PyObject::from("answer")).unwrap(),
        Some(PyObject::from(42))
    );
    assert_eq!(d.get(PyObject::from(1)).unwrap(), Some(mixed));
    assert_eq!(d.get(PyObject::from("missing")).unwrap(), None);
}
