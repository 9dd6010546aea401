//! `mpserver serve --metrics-listen`: the real binary, real calls, a
//! wrong key, errors, a stalled handshake and a refused peer, then a plain
//! HTTP GET of /metrics whose numbers must match what was done.

use std::net::TcpStream;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::{ErrorKind, Value};
use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::scrape::{metrics_address, scrape};
use multiprocessing::managers::{ManagerClient, ManagerError};

#[test]
fn metrics_count_what_clients_did() {
    let server = ServerProcess::start_with(Options {
        args: [
            "--metrics-listen",
            "127.0.0.1:0",
            "--max-connections",
            "2",
            "--handshake-timeout",
            "1",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    });
    let metrics = metrics_address(&server);
    let before = scrape(&metrics);
    assert_eq!(before.int("mpserver_connections_total"), 0);
    assert_eq!(before.int("mpserver_sessions"), 0);
    assert_eq!(before.int("mpserver_objects{typeid=\"dict\"}"), 0);
    assert_eq!(before.int("mpserver_call_duration_seconds_count"), 0);

    let c = server.client();
    let d = c.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    for i in 0..3i64 {
        c.call_method(d, "__setitem__", vec![i.into(), i.into()], Kwargs::new())
            .unwrap();
    }
    for i in 0..2i64 {
        c.call_method(d, "__getitem__", vec![i.into()], Kwargs::new())
            .unwrap();
    }
    let remote = |r: Result<_, ManagerError>| r.unwrap_err().remote().unwrap().kind.clone();
    let missing = c.call_method(d, "__getitem__", vec!["nope".into()], Kwargs::new());
    assert_eq!(remote(missing), ErrorKind::KeyError);
    let unexposed = c.call_method(d, "frobnicate", vec![], Kwargs::new());
    assert_eq!(remote(unexposed), ErrorKind::AttributeError);
    let empty = c.call_method(q, "get_nowait", vec![], Kwargs::new());
    assert_eq!(remote(empty), ErrorKind::Empty);

    // A wrong key is refused and counted.
    assert!(matches!(
        ManagerClient::connect(&server.addr(), b"not the key"),
        Err(ManagerError::Authentication(_))
    ));
    assert!(eventually(Duration::from_secs(30), || scrape(&metrics)
        .int("mpserver_auth_failures_total")
        == 1));
    // The next peer from the same address waits before its challenge,
    // and is let in (it holds the key).
    let c2 = server.client();
    c2.ping().unwrap();
    // A third peer is over --max-connections 2.
    assert!(matches!(
        ManagerClient::connect(&server.addr(), &server.key),
        Err(ManagerError::Refused(_))
    ));
    // A peer that never answers its challenge is cut at the timeout.
    let silent = TcpStream::connect(&server.address).unwrap();

    assert!(eventually(Duration::from_secs(30), || {
        let s = scrape(&metrics);
        s.int("mpserver_handshake_failures_total{reason=\"timeout\"}") == 1
            && s.int("mpserver_connections_open") == 2
    }));
    drop(silent);
    let s = scrape(&metrics);
    let calls = |typeid: &str, method: &str| {
        s.int(&format!(
            "mpserver_calls_total{{typeid=\"{typeid}\",method=\"{method}\"}}"
        ))
    };
    assert_eq!(calls("dict", "__setitem__"), 3);
    assert_eq!(calls("dict", "__getitem__"), 3);
    assert_eq!(calls("dict", "(other)"), 1);
    assert_eq!(calls("Queue", "get_nowait"), 1);
    assert_eq!(calls("list", "append"), 0);
    assert_eq!(s.int("mpserver_server_calls_total{method=\"create\"}"), 2);
    assert_eq!(s.int("mpserver_server_calls_total{method=\"ping\"}"), 1);
    assert_eq!(s.int("mpserver_errors_total{kind=\"KeyError\"}"), 1);
    assert_eq!(s.int("mpserver_errors_total{kind=\"AttributeError\"}"), 1);
    assert_eq!(s.int("mpserver_errors_total{kind=\"Empty\"}"), 1);
    assert_eq!(s.int("mpserver_errors_total{kind=\"TypeError\"}"), 0);
    assert_eq!(s.int("mpserver_objects{typeid=\"dict\"}"), 1);
    assert_eq!(s.int("mpserver_objects{typeid=\"Queue\"}"), 1);
    assert_eq!(s.int("mpserver_objects{typeid=\"list\"}"), 0);
    // c, the wrong key, c2, the refused peer, the silent one.
    assert_eq!(s.int("mpserver_connections_total"), 5);
    assert_eq!(s.int("mpserver_connections_refused_total"), 1);
    assert_eq!(s.int("mpserver_sessions"), 2);
    assert_eq!(s.int("mpserver_sessions_started_total"), 2);
    assert_eq!(s.int("mpserver_auth_failures_total"), 1);
    assert!(s.int("mpserver_auth_throttled_total") >= 1);
    // Every request so far was answered, and each was timed once.
    let requests = s.int("mpserver_requests_total");
    assert_eq!(requests, 11);
    assert_eq!(
        s.int("mpserver_call_duration_seconds_count"),
        requests,
        "{}",
        s.text
    );
    assert_eq!(
        s.int("mpserver_call_duration_seconds_bucket{le=\"+Inf\"}"),
        requests
    );
    assert!(s.get("mpserver_call_duration_seconds_sum") > 0.0);
    let received = s.int("mpserver_received_bytes_total");
    let sent = s.int("mpserver_sent_bytes_total");
    assert!(received > 0 && sent > 0);

    // One more call moves the counters by exactly one call's worth.
    c.call_method(d, "__len__", vec![], Kwargs::new()).unwrap();
    let after = scrape(&metrics);
    assert_eq!(after.int("mpserver_requests_total"), requests + 1);
    assert_eq!(
        after.int("mpserver_calls_total{typeid=\"dict\",method=\"__len__\"}"),
        1
    );
    assert!(after.int("mpserver_received_bytes_total") > received);
    assert!(after.int("mpserver_sent_bytes_total") > sent);
    assert_eq!(
        c.call_method(d, "__len__", vec![], Kwargs::new())
            .unwrap()
            .into_value()
            .unwrap(),
        Value::Int(3)
    );
}

#[test]
fn failed_tls_handshakes_are_counted() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let server = ServerProcess::start_with(Options {
        args: vec![
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            "--handshake-timeout".into(),
            "1".into(),
            "--tls-cert".into(),
            cert_file.display().to_string(),
            "--tls-key".into(),
            key_file.display().to_string(),
        ],
        ..Options::default()
    });
    let metrics = metrics_address(&server);
    // Bytes that are no ClientHello, and a peer that says nothing.
    let mut http = TcpStream::connect(&server.address).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    http.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let _ = http.read_to_end(&mut Vec::new());
    let mut silent = TcpStream::connect(&server.address).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = silent.read_to_end(&mut Vec::new());
    // The server drops a socket just before it counts its failure.
    assert!(eventually(Duration::from_secs(30), || {
        let s = scrape(&metrics);
        s.int("mpserver_handshake_failures_total{reason=\"tls\"}") == 1
            && s.int("mpserver_handshake_failures_total{reason=\"timeout\"}") == 1
    }));
    let s = scrape(&metrics);
    assert_eq!(s.int("mpserver_connections_total"), 2);
    assert_eq!(s.int("mpserver_connections_open"), 0);
    assert_eq!(s.int("mpserver_auth_failures_total"), 0);
}
