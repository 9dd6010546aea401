//! Connections served by a dedicated reader thread (`--dedicated-readers`):
//! a client calling back to back is moved off the event loop, and
//! everything the event loop guarantees still holds there — a blocking
//! call hands the connection back and is answered, a killed client's
//! session ends (objects freed, its lock passed to a waiter), garbage
//! closes only that connection, and a graceful stop answers and exits.
//! These run with shared-memory channels off, so the thread serves the
//! socket itself (`server_channel` covers a thread serving a channel).

use std::time::Duration;

use mp_proto::message::{Kwargs, Outcome, Target};
use mp_proto::{ObjectId, Value};
use mp_tests::client_process::{lock_waiter, spawn_ready};
use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::raw::RawPeer;
use mp_tests::scrape::{metrics_address, scrape};
use multiprocessing::managers::ManagerClient;

const LIMIT: Duration = Duration::from_secs(60);

fn server() -> (ServerProcess, String) {
    let server = ServerProcess::start_with(Options {
        args: [
            "--metrics-listen",
            "127.0.0.1:0",
            "--shared-memory-channels",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    });
    let metrics = metrics_address(&server);
    (server, metrics)
}

fn dedicated(metrics: &str) -> u64 {
    scrape(metrics).int("mpserver_dedicated_readers")
}

/// Calls `d[k] = i` in bursts until the server serves this connection on
/// a thread of its own (a burst, then a look at the gauge: looking takes
/// longer than a call, so it must not come between every two).
fn until_dedicated(c: &ManagerClient, d: ObjectId, metrics: &str) {
    let mut i = 0i64;
    let got = eventually(LIMIT, || {
        for _ in 0..200 {
            c.call_method(d, "__setitem__", vec!["k".into(), i.into()], Kwargs::new())
                .unwrap();
            i += 1;
        }
        dedicated(metrics) == 1
    });
    assert!(got, "the connection was never given a dedicated reader");
}

#[test]
fn a_blocking_call_hands_the_connection_back_and_is_answered() {
    let (server, metrics) = server();
    let c = server.client();
    let d = c.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    until_dedicated(&c, d, &metrics);

    // The get waits; the connection goes back to the event loop, where
    // another client's put wakes it.
    let putter = {
        let c2 = server.client();
        let metrics = metrics.clone();
        std::thread::spawn(move || {
            assert!(eventually(LIMIT, || dedicated(&metrics) == 0));
            c2.call_method(q, "put", vec![42.into()], Kwargs::new())
                .unwrap();
        })
    };
    let got = c.call_method(q, "get", vec![], Kwargs::new()).unwrap();
    assert_eq!(got.into_value().unwrap(), Value::Int(42));
    putter.join().unwrap();

    // It can be dedicated again, and answers every call on the way.
    until_dedicated(&c, d, &metrics);
    let v = c
        .call_method(d, "__getitem__", vec!["k".into()], Kwargs::new())
        .unwrap();
    assert!(matches!(v.into_value().unwrap(), Value::Int(n) if n > 0));
    // Quiet, it goes back to the event loop.
    assert!(eventually(LIMIT, || dedicated(&metrics) == 0));
    c.ping().unwrap();
}

#[test]
fn a_killed_dedicated_client_frees_its_objects_and_its_lock() {
    let (server, metrics) = server();
    let c = server.client();
    let lock = c.create("Lock", vec![], Kwargs::new()).unwrap().token.id;
    let baseline = c.number_of_objects().unwrap();
    let hammer = ["hammer".to_string(), lock.0.to_string()];
    let mut child = spawn_ready(env!("CARGO_BIN_EXE_mp-server-client"), &server, &hammer);
    assert!(eventually(LIMIT, || dedicated(&metrics) == 1));
    assert_eq!(c.number_of_objects().unwrap(), baseline + 3);

    let waiter = lock_waiter(&server, lock);
    child.kill().unwrap();
    child.wait().unwrap();
    let got = waiter.join().unwrap().unwrap();
    assert_eq!(got.into_value().unwrap(), Value::Bool(true));
    assert!(eventually(LIMIT, || c.number_of_objects().unwrap() == baseline));
    assert!(eventually(LIMIT, || dedicated(&metrics) == 0));
}

#[test]
fn garbage_on_a_dedicated_connection_closes_only_that_one() {
    let (server, metrics) = server();
    let other = server.client();
    // The object belongs to the well-behaved client's session.
    let d = other
        .create("dict", vec![], Kwargs::new())
        .unwrap()
        .token
        .id;
    let mut peer = RawPeer::welcomed(&server.address, &server.key);
    let got = eventually(LIMIT, || {
        for i in 0..200i64 {
            let r = peer.call(Target::Object(d), "__setitem__", vec!["k".into(), i.into()]);
            assert!(matches!(r, Outcome::Return(_)), "{r:?}");
        }
        dedicated(&metrics) == 1
    });
    assert!(got, "the raw peer was never given a dedicated reader");
    // A frame that is not a request.
    peer.frame(b"\xff\xfe not cbor");
    peer.until_closed();
    assert!(eventually(LIMIT, || dedicated(&metrics) == 0));
    other.ping().unwrap();
    let v = other
        .call_method(d, "__getitem__", vec!["k".into()], Kwargs::new())
        .unwrap();
    assert_eq!(v.into_value().unwrap(), Value::Int(199));
}

#[test]
fn a_graceful_stop_reaches_a_dedicated_connection() {
    let (mut server, metrics) = server();
    let c = server.client();
    let d = c.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    until_dedicated(&c, d, &metrics);
    let caller = std::thread::spawn(move || {
        // Calls until the server goes; every answer before then is right.
        for i in 0i64.. {
            match c.call_method(d, "__setitem__", vec!["k".into(), i.into()], Kwargs::new()) {
                Ok(_) => {}
                Err(e) => return e,
            }
        }
        unreachable!()
    });
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let e = caller.join().unwrap();
    assert!(
        matches!(
            e,
            multiprocessing::managers::ManagerError::ConnectionLost(_)
        ) || e.remote().is_some(),
        "{e:?}"
    );
}
