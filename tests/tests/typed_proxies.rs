//! The typed proxies' methods against the real `mpserver` binary, each
//! checked against what CPython answers for the same operation (the
//! expected values and messages are CPython 3.11's), and the chunked
//! iterators' round trips counted by the server.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mp_proto::ErrorKind;
use mp_tests::mpserver::{Options, ServerProcess};
use multiprocessing::managers::{
    DictProxy, IntoSlice, ListProxy, ManagerError, PyObject, Slice, SyncManager,
};

fn start() -> (ServerProcess, SyncManager) {
    start_with(Options::default())
}

fn start_with(options: Options) -> (ServerProcess, SyncManager) {
    let server = ServerProcess::start_with(options);
    let manager = SyncManager::connect(&server.addr(), &server.key).expect("connect");
    (server, manager)
}

/// The server's exception: its kind and message.
fn raised<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> (ErrorKind, String) {
    match r {
        Err(ManagerError::Remote(e)) => (e.kind, e.message),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// Requests the server has answered so far.
fn requests(m: &SyncManager) -> u64 {
    m.client().status().expect("status").requests_total
}

fn ten(m: &SyncManager) -> ListProxy<i64> {
    m.list_from::<i64>(0..10).expect("list")
}

#[test]
fn list_slices_read_as_python_reads_them() {
    let (_s, m) = start();
    let l = ten(&m);
    let cases: Vec<(Slice, Vec<i64>)> = vec![
        ((2..5).into_slice(), vec![2, 3, 4]),
        ((..).with_step(-1), (0..10).rev().collect()),
        ((..).with_step(-3), vec![9, 6, 3, 0]),
        ((-3..).into_slice(), vec![7, 8, 9]),
        ((..-7).with_step(-2), vec![9, 7, 5]),
        // A range running down is a Slice (clippy rejects `8..2`).
        (Slice::new(Some(8), Some(2), Some(-2)), vec![8, 6, 4]),
        (Slice::new(Some(5), Some(2), None), vec![]),
        ((-100..100).into_slice(), (0..10).collect()),
        ((1..9).with_step(3), vec![1, 4, 7]),
        ((..=-2).into_slice(), (0..9).collect()),
        (Slice::new(Some(1), None, Some(4)), vec![1, 5, 9]),
    ];
    for (slice, want) in cases {
        assert_eq!(l.get_slice(slice).unwrap(), want, "{slice:?}");
    }
    assert_eq!(
        raised(l.get_slice((..).with_step(0))),
        (ErrorKind::ValueError, "slice step cannot be zero".into())
    );
    // Reading changed nothing.
    assert_eq!(l.get_value().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn list_slices_assign_and_delete_as_python_does() {
    let (_s, m) = start();
    let l = ten(&m);
    // A plain slice may change the length.
    l.set_slice(2..5, [20]).unwrap();
    assert_eq!(l.get_value().unwrap(), [0, 1, 20, 5, 6, 7, 8, 9]);

    let l = ten(&m);
    // An extended slice needs as many items as it covers: ValueError,
    // and the list is unchanged.
    assert_eq!(
        raised(l.set_slice((..).with_step(2), [1])),
        (
            ErrorKind::ValueError,
            "attempt to assign sequence of size 1 to extended slice of size 5".into()
        )
    );
    assert_eq!(l.get_value().unwrap(), (0..10).collect::<Vec<_>>());
    l.set_slice((..).with_step(-2), vec![0; 5]).unwrap();
    assert_eq!(l.get_value().unwrap(), [0, 0, 2, 0, 4, 0, 6, 0, 8, 0]);

    let l = ten(&m);
    l.del_slice((..).with_step(3)).unwrap();
    assert_eq!(l.get_value().unwrap(), [1, 2, 4, 5, 7, 8]);
    l.del_slice(-2..).unwrap();
    assert_eq!(l.get_value().unwrap(), [1, 2, 4, 5]);
    l.del_slice((1..8).with_step(-1)).unwrap(); // empty: a no-op
    assert_eq!(l.get_value().unwrap(), [1, 2, 4, 5]);
    l.del(-1).unwrap();
    l.del(0).unwrap();
    assert_eq!(l.get_value().unwrap(), [2, 4]);
    assert_eq!(
        raised(l.del(5)),
        (
            ErrorKind::IndexError,
            "list assignment index out of range".into()
        )
    );
}

#[test]
fn list_methods_answer_as_python_does() {
    let (_s, m) = start();
    let l = m.list_from::<i64>([1, 2, 3]).unwrap();
    l.extend([1, 2, 3]).unwrap();
    assert_eq!(l.index_in(1, 1..).unwrap(), 3); // [1,2,3,1,2,3].index(1, 1)
    assert_eq!(l.index_in(3, -2..).unwrap(), 5);
    assert_eq!(l.index_in(2, ..=1).unwrap(), 1);
    assert_eq!(
        raised(l.index_in(1, 1..3)),
        (ErrorKind::ValueError, "1 is not in list".into())
    );
    assert_eq!(l.count(3).unwrap(), 2);
    assert!(l.contains(2).unwrap());

    let l = m.list_from::<i64>([1, 2, 3]).unwrap();
    l.insert(-1, 9).unwrap(); // before the last, as Python inserts
    l.insert(100, 7).unwrap(); // clamped: appended
    assert_eq!(l.get_value().unwrap(), [1, 2, 9, 3, 7]);
    assert_eq!(l.reversed().unwrap(), [7, 3, 9, 2, 1]);
    assert_eq!(l.copy().unwrap(), [1, 2, 9, 3, 7]);
    l.sort().unwrap();
    assert_eq!(l.get_value().unwrap(), [1, 2, 3, 7, 9]);

    // `+` and `*` are new plain lists; the shared one is unchanged.
    let l = m.list_from::<i64>([1, 2]).unwrap();
    assert_eq!(l.concat([3]).unwrap(), [1, 2, 3]);
    assert_eq!(l.repeat(3).unwrap(), [1, 2, 1, 2, 1, 2]);
    assert_eq!(l.repeat(-1).unwrap(), Vec::<i64>::new());
    assert_eq!(l.get_value().unwrap(), [1, 2]);
    // `+=` and `*=` change it in place and give back the same proxy.
    let same = l.iadd([3]).unwrap().imul(2).unwrap();
    assert!(std::ptr::eq(same, &l));
    assert_eq!(l.get_value().unwrap(), [1, 2, 3, 1, 2, 3]);
    l.imul(0).unwrap();
    assert!(l.is_empty().unwrap());

    // Python's sort is stable, reverse too: equal items keep their order.
    let mixed = m
        .list_from::<PyObject>([
            PyObject::Int(1),
            PyObject::Float(1.0),
            PyObject::Bool(true),
            PyObject::Int(0),
        ])
        .unwrap();
    mixed.sort_reverse().unwrap();
    assert_eq!(
        mixed.get_value().unwrap(),
        [
            PyObject::Int(1),
            PyObject::Float(1.0),
            PyObject::Bool(true),
            PyObject::Int(0)
        ]
    );
    mixed.append("a").unwrap();
    let (kind, message) = raised(mixed.sort());
    assert_eq!(kind, ErrorKind::TypeError);
    assert!(
        message.starts_with("'<' not supported between instances of '"),
        "{message}"
    );
}

#[test]
fn dict_methods_answer_as_python_does() {
    let (_s, m) = start();
    let d = m.dict::<String, i64>().unwrap();
    d.set("a", 1).unwrap();
    d.update([("b", 2), ("c", 3)]).unwrap();
    d.update(HashMap::from([("d".to_string(), 4)])).unwrap();
    d.update(&BTreeMap::from([("e".to_string(), 5)])).unwrap();
    d.update(vec![("a".to_string(), 10)]).unwrap(); // overwrite keeps the position
    assert_eq!(d.keys().unwrap(), ["a", "b", "c", "d", "e"]);
    assert_eq!(d.get("a").unwrap(), Some(10));
    assert_eq!(d.get_or("zz", -1).unwrap(), -1);
    assert!(d.contains_key("e").unwrap());
    let missing = String::from("zz");
    assert!(!d.contains_key(&missing).unwrap());
    assert_eq!(d.get_or(&missing, 0).unwrap(), 0);
    assert_eq!(d.reversed().unwrap(), ["e", "d", "c", "b", "a"]);

    assert_eq!(d.pop("e").unwrap(), 5);
    assert_eq!(d.pop_or("e", 0).unwrap(), 0);
    assert_eq!(raised(d.pop("e")), (ErrorKind::KeyError, "'e'".into()));
    assert_eq!(d.setdefault("f", 6).unwrap(), 6);
    assert_eq!(d.setdefault("f", 7).unwrap(), 6);
    // popitem takes the last inserted.
    assert_eq!(d.popitem().unwrap(), ("f".to_string(), 6));
    d.del("d").unwrap();
    assert_eq!(raised(d.del("d")), (ErrorKind::KeyError, "'d'".into()));

    // `|` is a new plain dict: ours, then theirs; the shared one is
    // unchanged. `|=` changes it and gives back the same proxy.
    let merged = d.union([("a", 100), ("z", 26)]).unwrap();
    assert_eq!(
        merged,
        [
            ("a".to_string(), 100),
            ("b".into(), 2),
            ("c".into(), 3),
            ("z".into(), 26)
        ]
    );
    assert_eq!(d.get_item("a").unwrap(), 10);
    let same = d.ior([("y", 25)]).unwrap();
    assert!(std::ptr::eq(same, &d));
    assert_eq!(d.copy().unwrap(), d.items().unwrap());
    assert_eq!(d.len().unwrap(), 4);

    d.clear().unwrap();
    assert_eq!(
        raised(d.popitem()),
        (
            ErrorKind::KeyError,
            "'popitem(): dictionary is empty'".into()
        )
    );

    // dict(mapping)
    let from = m
        .dict_from::<String, i64>([("x", 1), ("y", 2), ("x", 3)])
        .unwrap();
    assert_eq!(
        from.items().unwrap(),
        [("x".to_string(), 3), ("y".into(), 2)]
    );
}

#[test]
fn a_dict_of_python_objects_takes_plain_rust_values() {
    let (_s, m) = start();
    let d = m.dict::<PyObject, PyObject>().unwrap();
    d.set("a", 1).unwrap();
    d.set(2, "two").unwrap();
    d.set(2.5, true).unwrap();
    // A tuple stays a tuple on the way in: a hashable key.
    let key = PyObject::Tuple(vec![1.into(), "x".into()]);
    d.set(&key, PyObject::None).unwrap();
    assert!(d.contains_key(&key).unwrap());
    assert_eq!(d.get("a").unwrap(), Some(PyObject::Int(1)));
    // 1, 1.0 and True are one key, as in Python.
    d.set(1, "int").unwrap();
    d.set(1.0, "float").unwrap();
    assert_eq!(d.get_item(true).unwrap(), PyObject::from("float"));
    assert_eq!(
        d.to_string(),
        "{'a': 1, 2: 'two', 2.5: True, (1, 'x'): None, 1: 'float'}"
    );
    assert!(matches!(
        d.union([(PyObject::List(vec![]), 1)]),
        Err(ManagerError::Conversion(_))
    ));
}

#[test]
fn a_list_iterates_in_chunks_one_round_trip_each() {
    let (_s, m) = start();
    let n = 10_000i64;
    let l = m.list_from::<i64>(0..n).unwrap();
    let before = requests(&m);
    let got: Vec<i64> = l.iter_chunked(1024).collect::<Result<_, _>>().unwrap();
    let used = requests(&m) - before;
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    // ceil(10_000 / 1024) = 10 slices (the last one short ends it), and
    // the status call that reads the counter.
    assert!((10..=12).contains(&used), "{used} requests");

    // By bytes: 1024 items first, then the rest at once (10,000 small
    // integers are far below 1 MiB).
    let before = requests(&m);
    let got: Vec<i64> = l.iter().collect::<Result<_, _>>().unwrap();
    let used = requests(&m) - before;
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert!((2..=4).contains(&used), "{used} requests");

    let before = requests(&m);
    let got: Vec<i64> = l.iter_chunked(3000).collect::<Result<_, _>>().unwrap();
    let used = requests(&m) - before;
    assert_eq!(got.len(), 10_000);
    assert!((4..=6).contains(&used), "{used} requests");

    // One per item is what chunks save: a chunk of one.
    let small = m.list_from::<i64>(0..20).unwrap();
    let before = requests(&m);
    let got: Vec<i64> = small.iter_chunked(1).collect::<Result<_, _>>().unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert!(requests(&m) - before >= 20);

    let empty = m.list::<i64>().unwrap();
    assert_eq!((&empty).into_iter().count(), 0);
}

#[test]
fn a_dict_iterates_a_snapshot_in_chunks() {
    let (_s, m) = start();
    let n = 10_000i64;
    let d = m
        .dict_from::<i64, String>((0..n).map(|i| (i, i.to_string())))
        .unwrap();
    let objects = m.client().number_of_objects().unwrap();
    let before = requests(&m);
    let got: Vec<(i64, String)> = d.iter_chunked(1024).collect::<Result<_, _>>().unwrap();
    let used = requests(&m) - before;
    assert_eq!(got.len(), n as usize);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (k, v))| *k == i as i64 && *v == k.to_string()));
    // The snapshot, ten chunks of 1024 (the last says nothing is left),
    // the snapshot's release and the status call.
    assert!((11..=13).contains(&used), "{used} requests");
    // By bytes: the snapshot, 1024 pairs, then about 8,000 pairs (1 MiB
    // at some 130 bytes each) at a time, the release.
    let before = requests(&m);
    let got: Vec<(i64, String)> = d.iter().collect::<Result<_, _>>().unwrap();
    let used = requests(&m) - before;
    assert_eq!(got.len(), n as usize);
    assert!((4..=7).contains(&used), "{used} requests");
    // The snapshot is gone once the iteration ends.
    assert!(m
        .wait_for_object_count(objects, Duration::from_secs(10))
        .unwrap());

    // Changes made while iterating are not seen: every pair, once.
    let d = m
        .dict_from::<String, i64>([("a", 1), ("b", 2), ("c", 3)])
        .unwrap();
    let mut seen = Vec::new();
    for pair in d.iter_chunked(2) {
        let (k, v) = pair.unwrap();
        d.del(&k).unwrap();
        d.set(format!("{k}{k}"), v * 10).unwrap();
        seen.push((k, v));
    }
    assert_eq!(
        seen,
        [("a".to_string(), 1), ("b".into(), 2), ("c".into(), 3)]
    );
    assert_eq!(d.keys().unwrap(), ["aa", "bb", "cc"]);

    // Dropped half way: the snapshot is released.
    let mut it = d.iter_chunked(1);
    assert!(it.next().unwrap().is_ok());
    drop(it);
    assert!(m
        .wait_for_object_count(objects + 1, Duration::from_secs(10))
        .unwrap());

    let empty = m.dict::<String, i64>().unwrap();
    assert_eq!((&empty).into_iter().count(), 0);
}

#[test]
fn a_list_iterator_walks_by_position_as_pythons_does() {
    let (_s, m) = start();
    // An item appended before the end is reached is seen.
    let l = m.list_from::<i64>(0..6).unwrap();
    let mut got = Vec::new();
    for x in l.iter_chunked(4) {
        let x = x.unwrap();
        if x == 0 {
            l.append(100).unwrap();
        }
        got.push(x);
    }
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 100]);
    // An item deleted before the position reached shifts the rest from
    // the chunk after next: the next one was read ahead, as the list was
    // (CPython's list iterator would skip 4 here).
    let l = m.list_from::<i64>(0..12).unwrap();
    let mut got = Vec::new();
    for x in l.iter_chunked(4) {
        let x = x.unwrap();
        if x == 0 {
            l.del(0).unwrap();
        }
        got.push(x);
    }
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11]);
}

#[test]
fn chunks_stay_within_the_per_operation_limit() {
    // 64 KiB per operation, items of about 4 KB: a chunk of 1024 would
    // be about 256 KiB. The list iterator halves its slices until they
    // fit, and reads a list no one operation could copy.
    let (_s, m) = start_with(Options::args(&["--max-value-bytes", "65536"]));
    let items: Vec<String> = (0..64)
        .map(|i| format!("{i:04}{}", "x".repeat(4000)))
        .collect();
    let l = m.list::<String>().unwrap();
    for item in &items {
        l.append(item).unwrap();
    }
    assert_eq!(raised(l.get_value()).0, ErrorKind::MemoryError);
    let got: Vec<String> = l.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, items);

    // A dict's snapshot is one operation: one too large to copy at once
    // is the MemoryError its items() is, and the iteration ends there.
    let d = m.dict::<i64, String>().unwrap();
    for (i, item) in items.iter().enumerate() {
        d.set(i as i64, item).unwrap();
    }
    assert_eq!(raised(d.items()).0, ErrorKind::MemoryError);
    let mut it = d.iter();
    assert_eq!(raised(it.next().unwrap()).0, ErrorKind::MemoryError);
    assert!(it.next().is_none());
    // One that fits is read in chunks that each fit.
    let d = m.dict::<i64, String>().unwrap();
    for (i, item) in items.iter().take(8).enumerate() {
        d.set(i as i64, item).unwrap();
    }
    let got: Vec<(i64, String)> = d.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), 8);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (k, v))| *k == i as i64 && *v == items[i]));
}

#[test]
fn arrays_slice_and_iterate() {
    let (_s, m) = start();
    let a = m.array::<i64>("i", [1, 2, 3, 4]).unwrap();
    a.set(0, 10).unwrap();
    a.set_slice(1..3, [20, 30]).unwrap();
    assert_eq!(a.get_slice(..).unwrap(), [10, 20, 30, 4]);
    assert_eq!(a.get_slice((..).with_step(-2)).unwrap(), [4, 20]);
    assert_eq!(
        raised(a.set_slice((..).with_step(2), [1])),
        (
            ErrorKind::ValueError,
            "attempt to assign sequence of size 1 to extended slice of size 2".into()
        )
    );
    assert_eq!(raised(a.set(0, 1i64 << 40)).0, ErrorKind::OverflowError);
    assert_eq!(
        a.iter_chunked(3).collect::<Result<Vec<_>, _>>().unwrap(),
        [10, 20, 30, 4]
    );
}

#[test]
fn namespaces_values_and_queues_take_values_or_borrows() {
    let (_s, m) = start();
    let ns = m.namespace().unwrap();
    ns.set("x", 10).unwrap();
    ns.set("s", "hello").unwrap();
    ns.set("v", vec![1, 2]).unwrap();
    assert!(ns.has("x").unwrap());
    assert!(!ns.has("nope").unwrap());
    ns.del("s").unwrap();
    assert_eq!(
        raised(ns.get::<String>("s")),
        (
            ErrorKind::AttributeError,
            "'Namespace' object has no attribute 's'".into()
        )
    );
    let attrs = ns.get_value_as::<BTreeMap<String, PyObject>>().unwrap();
    assert_eq!(
        attrs,
        BTreeMap::from([
            ("x".to_string(), PyObject::Int(10)),
            ("v".into(), PyObject::List(vec![1.into(), 2.into()])),
        ])
    );

    let v = m.value::<String>("u", "a").unwrap();
    v.set("b").unwrap();
    v.set(String::from("c")).unwrap();
    assert_eq!(v.get().unwrap(), "c");

    let q = m.queue::<String>().unwrap();
    q.put("hello").unwrap();
    q.put_nowait(String::from("world")).unwrap();
    let bang = String::from("!");
    q.put_timeout(&bang, Duration::from_secs(1)).unwrap();
    assert_eq!(
        [q.get().unwrap(), q.get().unwrap(), q.get().unwrap()],
        ["hello", "world", bang.as_str()]
    );

    let nested: ListProxy<DictProxy<String, i64>> = m.list().unwrap();
    let inner = m.dict::<String, i64>().unwrap();
    nested.append(&inner).unwrap();
    nested.get(0).unwrap().set("k", 1).unwrap();
    assert_eq!(inner.get("k").unwrap(), Some(1));
}

#[test]
fn a_condition_around_an_rlock_releases_every_level_while_it_waits() {
    let (_s, m) = start();
    let rlock = m.rlock().unwrap();
    let cond = m.condition_with_rlock(&rlock).unwrap();
    let outer = rlock.acquire().unwrap();
    let inner = cond.acquire().unwrap(); // the same RLock, depth 2
    let notifier = {
        let (rlock, cond) = (rlock.clone(), cond.clone());
        std::thread::spawn(move || {
            // Only possible while the waiter has released both levels.
            let g = rlock
                .acquire_timeout(Duration::from_secs(30))
                .unwrap()
                .expect("the waiter released the RLock");
            cond.notify().unwrap();
            g.release().unwrap();
        })
    };
    assert!(cond.wait_timeout(Duration::from_secs(30)).unwrap());
    notifier.join().unwrap();
    // Both levels are back: two releases, and a third is refused.
    inner.release().unwrap();
    outer.release().unwrap();
    assert!(rlock.release().is_err());
}

#[test]
fn a_barrier_with_a_timeout_breaks_when_it_passes() {
    let (_s, m) = start();
    let b = m
        .barrier_with_timeout(2, Duration::from_millis(100))
        .unwrap();
    assert_eq!(b.parties().unwrap(), 2);
    assert!(b.wait().unwrap_err().is_broken());
    assert!(b.broken().unwrap());
    b.reset().unwrap();
    // Two parties in time pass it, each with its own arrival index.
    let b = m.barrier_with_timeout(2, Duration::from_secs(30)).unwrap();
    let other = {
        let b = b.clone();
        std::thread::spawn(move || b.wait().unwrap())
    };
    let mine = b.wait().unwrap();
    let theirs = other.join().unwrap();
    assert_eq!(mine + theirs, 1);
}
