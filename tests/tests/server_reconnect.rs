//! Clients that reconnect, against the real `mpserver` killed and started
//! again on the same address: named proxies find their objects again,
//! session proxies say they are lost, calls in flight fail, a blocked
//! `get` on a named queue resumes, and the program is told.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mp_tests::mpserver::binary;
use multiprocessing::connection::Address;
use multiprocessing::managers::{
    ConnectOptions, ConnectionEvent, ConnectionState, DictProxy, ManagerClient, ManagerError,
    QueueProxy,
};
use multiprocessing::queues::QueueError;

const LONG: Option<Duration> = Some(Duration::from_secs(30));

/// An `mpserver` at a fixed address, which a test can kill and start again.
struct Server {
    port: u16,
    key: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    fn start() -> Server {
        // A free port, given back for the server to take.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let key = tempfile::tempdir().unwrap();
        std::fs::write(key.path().join("key"), "reconnect-test\n").unwrap();
        let mut server = Server {
            port,
            key,
            child: None,
        };
        server.restart();
        server
    }

    fn key_file(&self) -> &Path {
        self.key.path()
    }

    fn address(&self) -> Address {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    fn restart(&mut self) {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--authkey-file")
            .arg(self.key_file().join("key"))
            .args(["--shared", "jobs=Queue"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("serving at"), "{line:?}");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn client(&self, options: &ConnectOptions) -> ManagerClient {
        let key =
            multiprocessing::managers::read_authkey_file(self.key_file().join("key")).unwrap();
        ManagerClient::connect_with(&self.address(), &key, options).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn options() -> ConnectOptions {
    ConnectOptions {
        shared_memory: false,
        ..ConnectOptions::default()
    }
}

#[test]
fn named_proxies_come_back_and_session_proxies_say_they_are_lost() {
    let mut server = Server::start();
    let client = server.client(&options());
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
    let mut server = Server::start();
    let client = server.client(&options());
    let jobs: QueueProxy<String> = client.lookup("jobs").unwrap();
    let generation = client.generation();
    let waiter = thread::spawn(move || jobs.get());
    // Let the get reach the server and wait there.
    thread::sleep(Duration::from_millis(300));
    server.kill();
    server.restart();
    assert!(client.wait_reconnected(generation, LONG));
    let producer = server.client(&options());
    let queue: QueueProxy<String> = producer.lookup("jobs").unwrap();
    queue.put("job").unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), "job");
}

#[test]
fn with_reconnection_off_a_broken_client_stays_broken() {
    let mut server = Server::start();
    let client = server.client(&ConnectOptions {
        reconnect: None,
        ..options()
    });
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
