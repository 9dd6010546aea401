//! Sessions end cleanly however the client goes: references dropped,
//! locks released to the next waiter, waits cancelled.

use std::process::Stdio;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::Value;
use mp_tests::client_process::{lock_waiter, spawn, spawn_ready};
use mp_tests::mpserver::{eventually, ServerProcess};

const CLIENT: &str = env!("CARGO_BIN_EXE_mp-server-client");

#[test]
fn a_killed_client_frees_its_objects_and_its_lock() {
    let server = ServerProcess::start();
    let c = server.client();
    let lock = c.create("Lock", vec![], Kwargs::new()).unwrap().token.id;
    let baseline = c.number_of_objects().unwrap();

    let hold = ["hold".to_string(), lock.0.to_string()];
    let mut child = spawn_ready(CLIENT, &server, &hold);
    // The child made 7 objects and holds the lock.
    assert_eq!(c.number_of_objects().unwrap(), baseline + 7);
    let r = c
        .call_method(lock, "acquire", vec![false.into()], Kwargs::new())
        .unwrap();
    assert_eq!(r.into_value().unwrap(), Value::Bool(false));

    // Another client waits for the lock with no timeout...
    let waiter = lock_waiter(&server, lock);
    assert!(eventually(Duration::from_secs(30), || {
        let repr = c
            .call_method(lock, "__repr__", vec![], Kwargs::new())
            .unwrap();
        repr.into_value().unwrap().to_string().contains("waiters=1")
    }));
    // ...and gets it when the holder is killed.
    child.kill().unwrap();
    child.wait().unwrap();
    let got = waiter.join().unwrap().unwrap();
    assert_eq!(got.into_value().unwrap(), Value::Bool(true));
    assert!(eventually(Duration::from_secs(10), || c
        .number_of_objects()
        .unwrap()
        == baseline));
}

#[test]
fn a_closed_connection_releases_its_semaphore_units() {
    let server = ServerProcess::start();
    let c = server.client();
    let sem = c
        .create("BoundedSemaphore", vec![2.into()], Kwargs::new())
        .unwrap()
        .token
        .id;
    let take = |cl: &multiprocessing::managers::ManagerClient| {
        cl.call_method(sem, "acquire", vec![false.into()], Kwargs::new())
            .unwrap()
            .into_value()
            .unwrap()
    };
    {
        let gone = server.client();
        assert_eq!(take(&gone), Value::Bool(true));
        assert_eq!(take(&gone), Value::Bool(true));
        assert_eq!(take(&c), Value::Bool(false));
    }
    // Both units come back once the connection is gone.
    assert!(eventually(Duration::from_secs(10), || c
        .status()
        .unwrap()
        .connections
        == 1));
    assert_eq!(take(&c), Value::Bool(true));
    assert_eq!(take(&c), Value::Bool(true));
}

#[test]
fn a_killed_waiter_does_not_swallow_an_item() {
    let server = ServerProcess::start();
    let c = server.client();
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    // A consumer process blocks in get, and is killed while waiting.
    let consume = ["consume".to_string(), q.0.to_string()];
    let mut child = spawn(CLIENT, &server, &consume, Stdio::null());
    // Wait until its get is queued on the server.
    assert!(eventually(Duration::from_secs(30), || {
        let repr = c.call_method(q, "__repr__", vec![], Kwargs::new()).unwrap();
        repr.into_value().unwrap().to_string().contains("getters=1")
    }));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(eventually(Duration::from_secs(10), || c
        .status()
        .unwrap()
        .connections
        == 1));
    c.call_method(q, "put", vec!["kept".into()], Kwargs::new())
        .unwrap();
    let got = c
        .call_method(q, "get_nowait", vec![], Kwargs::new())
        .unwrap();
    assert_eq!(got.into_value().unwrap(), Value::from("kept"));
}
