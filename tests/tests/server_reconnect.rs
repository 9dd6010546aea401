//! Clients that reconnect, against the real `mpserver` killed and started
//! again on the same address: named proxies find their objects again,
//! session proxies say they are lost, calls in flight fail, a blocked
//! `get` on a named queue resumes, and the program is told.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mp_tests::mpserver::Restartable;
use multiprocessing::managers::{
    ConnectOptions, ConnectionEvent, ConnectionState, DictProxy, ManagerClient, ManagerError,
    QueueProxy,
};
use multiprocessing::queues::QueueError;

const LONG: Option<Duration> = Some(Duration::from_secs(30));

/// A client of `server` with `options`.
fn connect(server: &Restartable, options: &ConnectOptions) -> ManagerClient {
    ManagerClient::connect_with(&server.address(), &server.key, options).unwrap()
}

fn options() -> ConnectOptions {
    ConnectOptions {
        shared_memory: false,
        ..ConnectOptions::default()
    }
}

#[test]
fn named_proxies_come_back_and_session_proxies_say_they_are_lost() {
    let mut server = Restartable::start(&["jobs=Queue"]);
    let client = connect(&server, &options());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    client.on_connection_event(move |e| seen.lock().unwrap().push(e.clone()));
    let jobs: QueueProxy<String> = client.lookup("jobs").unwrap();
    let info = client.create("dict", vec![], Default::default()).unwrap();
    let session_dict: DictProxy<String, i64> = multiprocessing::managers::ProxyType::from_parts(
        multiprocessing::managers::BaseProxy::from_owned(client.clone(), info.clone()),
        info.exposed,
    );
    jobs.put("before").unwrap();
    let generation = client.generation();

    server.kill();
    // The call that meets the break fails; it is not retried.
    assert!(matches!(
        jobs.put("lost"),
        Err(QueueError::Manager(ManagerError::ConnectionLost(_)))
    ));
    server.restart();
    assert!(client.wait_reconnected(generation, LONG), "reconnected");
    assert_eq!(client.connection_state(), ConnectionState::Connected);

    // The named queue is the restarted server's (empty: no --data-dir).
    jobs.put("after").unwrap();
    assert_eq!(jobs.get().unwrap(), "after");
    let clone = jobs.clone();
    assert_eq!(clone.qsize().unwrap(), 0);
    match session_dict.len() {
        Err(ManagerError::ObjectLost { typeid, .. }) => assert_eq!(typeid, "dict"),
        other => panic!("expected ObjectLost, got {other:?}"),
    }
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(events.first(), Some(ConnectionEvent::Lost { .. })),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ConnectionEvent::Reconnected { .. })),
        "{events:?}"
    );
    drop((session_dict, jobs, clone));
    client.ping().unwrap();
    // Only the name's own reference is left: the proxies gave theirs back
    // on the new connection, and did not decref old ids on it.
    let objects = client.debug_info().unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].refcount, 1, "{objects:?}");
}

#[test]
fn a_blocked_get_on_a_named_queue_resumes() {
    let mut server = Restartable::start(&["jobs=Queue"]);
    let client = connect(&server, &options());
    let jobs: QueueProxy<String> = client.lookup("jobs").unwrap();
    let generation = client.generation();
    let waiter = thread::spawn(move || jobs.get());
    // Let the get reach the server and wait there.
    thread::sleep(Duration::from_millis(300));
    server.kill();
    server.restart();
    assert!(client.wait_reconnected(generation, LONG));
    let producer = connect(&server, &options());
    let queue: QueueProxy<String> = producer.lookup("jobs").unwrap();
    queue.put("job").unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), "job");
}

#[test]
fn with_reconnection_off_a_broken_client_stays_broken() {
    let mut server = Restartable::start(&["jobs=Queue"]);
    let client = connect(
        &server,
        &ConnectOptions {
            reconnect: None,
            ..options()
        },
    );
    let jobs: QueueProxy<String> = client.lookup("jobs").unwrap();
    server.kill();
    server.restart();
    assert!(jobs.put("x").is_err());
    assert_eq!(client.connection_state(), ConnectionState::Closed);
    assert!(!client.wait_reconnected(client.generation(), Some(Duration::from_millis(200))));
    assert!(matches!(
        client.ping(),
        Err(ManagerError::ConnectionLost(_))
    ));
}
