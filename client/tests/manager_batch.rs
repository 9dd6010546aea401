//! End to end: pipelined calls (`ManagerClient::call_many`) against a real
//! server started in this process on 127.0.0.1:0.

use std::thread;

use mp_proto::{ErrorKind, Value};
use mp_server::{Listen, Registry};
use multiprocessing::connection::Address;
use multiprocessing::managers::{Call, ManagerClient, ManagerError, ManagerServer};

const KEY: &[u8] = b"batch-test";

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

fn value(r: Result<multiprocessing::managers::Return, ManagerError>) -> Value {
    r.unwrap().into_value().unwrap()
}

#[test]
fn many_calls_answer_in_order_across_chunks() {
    let c = ManagerClient::connect(&server(), KEY).unwrap();
    let d = c
        .create("dict", vec![], Default::default())
        .unwrap()
        .token
        .id;
    // 1,000 sets then 1,000 gets: several chunks each way.
    let sets = (0..1000i64).map(|i| Call::method(d, "__setitem__", vec![i.into(), (i * 2).into()]));
    for r in c.call_many(sets) {
        assert_eq!(value(r), Value::None);
    }
    let gets = (0..1000i64).map(|i| Call::method(d, "__getitem__", vec![i.into()]));
    let got: Vec<Value> = c.call_many(gets).into_iter().map(value).collect();
    let want: Vec<Value> = (0..1000i64).map(|i| Value::Int(i * 2)).collect();
    assert_eq!(got, want);
    assert_eq!(
        value(c.call_method(d, "__len__", vec![], Default::default())),
        Value::Int(1000)
    );
}

#[test]
fn a_failed_call_does_not_stop_the_others() {
    let c = ManagerClient::connect(&server(), KEY).unwrap();
    let d = c
        .create("dict", vec![], Default::default())
        .unwrap()
        .token
        .id;
    let results = c.call_many([
        Call::method(d, "__setitem__", vec!["a".into(), 1.into()]),
        Call::method(d, "__getitem__", vec!["missing".into()]),
        Call::method(d, "no_such_method", vec![]),
        Call::method(d, "__getitem__", vec!["a".into()]),
        Call::server("number_of_objects", vec![]),
    ]);
    let mut results = results.into_iter();
    assert_eq!(value(results.next().unwrap()), Value::None);
    let e = results.next().unwrap().unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::KeyError);
    let e = results.next().unwrap().unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::AttributeError);
    assert_eq!(value(results.next().unwrap()), Value::Int(1));
    assert_eq!(value(results.next().unwrap()), Value::Int(1));
    assert!(results.next().is_none());
}

#[test]
fn a_blocking_call_does_not_hold_up_the_calls_after_it() {
    let c = ManagerClient::connect(&server(), KEY).unwrap();
    let q = c
        .create("Queue", vec![], Default::default())
        .unwrap()
        .token
        .id;
    // The get comes first and waits for the put behind it.
    let results = c.call_many([
        Call::method(q, "get", vec![]),
        Call::method(q, "put", vec![7.into()]),
    ]);
    let got: Vec<Value> = results.into_iter().map(value).collect();
    assert_eq!(got, vec![Value::Int(7), Value::None]);
}

#[test]
fn threads_mixing_batches_and_single_calls_share_one_connection() {
    let c = ManagerClient::connect(&server(), KEY).unwrap();
    let d = c
        .create("dict", vec![], Default::default())
        .unwrap()
        .token
        .id;
    thread::scope(|s| {
        for t in 0..4i64 {
            let c = c.clone();
            s.spawn(move || {
                for round in 0..50i64 {
                    let key = Value::from(format!("t{t}"));
                    let batch = (0..20i64).map(|i| {
                        Call::method(
                            d,
                            "__setitem__",
                            vec![key.clone(), (round * 100 + i).into()],
                        )
                    });
                    for r in c.call_many(batch) {
                        assert_eq!(value(r), Value::None);
                    }
                    let got = c.call_method(d, "__getitem__", vec![key], Default::default());
                    assert_eq!(value(got), Value::Int(round * 100 + 19));
                }
            });
        }
    });
}

#[test]
fn a_lost_connection_fails_every_call_of_a_batch() {
    let c = ManagerClient::connect(&server(), KEY).unwrap();
    let other = ManagerClient::connect(c.address(), KEY).unwrap();
    other.shutdown().unwrap();
    // The server closes every connection as it stops; wait for ours.
    while c.ping().is_ok() {
        thread::yield_now();
    }
    let results = c.call_many((0..300).map(|_| Call::server("ping", vec![])));
    assert_eq!(results.len(), 300);
    for r in results {
        assert!(matches!(r, Err(ManagerError::ConnectionLost(_))), "{r:?}");
    }
    assert!(c.call_many(Vec::new()).is_empty());
}

#[test]
fn decref_many_releases_every_reference_and_reports_each() {
    let c = ManagerClient::connect(&server(), KEY).unwrap();
    let other = ManagerClient::connect(c.address(), KEY).unwrap();
    assert!(c.same_connection(&c.clone()));
    assert!(!c.same_connection(&other));
    let ids: Vec<_> = (0..300)
        .map(|_| {
            c.create("list", vec![], Default::default())
                .unwrap()
                .token
                .id
        })
        .collect();
    assert_eq!(c.number_of_objects().unwrap(), 300);
    for r in c.decref_many(&ids) {
        r.unwrap();
    }
    assert_eq!(c.number_of_objects().unwrap(), 0);
    // A second time there is nothing left to give back.
    let again = c.decref_many(&ids[..2]);
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|r| r.is_err()));
}

#[test]
fn dropped_proxies_are_all_released() {
    let m = multiprocessing::managers::SyncManager::connect(&server(), KEY).unwrap();
    for _ in 0..500 {
        drop(m.dict::<String, i64>().unwrap());
    }
    // The releaser thread gives them back in batches; wait for the last.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while m.client().number_of_objects().unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "proxies leaked");
        thread::sleep(std::time::Duration::from_millis(5));
    }
}
