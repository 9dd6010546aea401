//! Bad input: wrong keys, stalled and truncated handshakes, bad frames,
//! and requests no client should send. Each gets its error (or an error
//! frame and its connection closed), is counted in the metrics, and a
//! well-behaved client on the same server is served throughout.
//!
//! Oversized and negative length headers and random frames are also
//! covered, at greater volume, by `server_cli.rs`
//! (`hostile_peers_are_cut_off_alone`).

use mp_proto::auth::{create_response, AuthOptions, CHALLENGE, FAILURE};
use mp_proto::codec::decode;
use mp_proto::message::{Outcome, Response, Target};
use mp_proto::{ErrorKind, ObjectId, Value};
use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::raw::RawPeer;
use mp_tests::scrape::{scrape, start_with_metrics};
use mp_tests::steady::Steady;
use std::time::Duration;

fn start(extra: &[&str]) -> (ServerProcess, String) {
    start_with_metrics(Options::args(extra))
}

#[test]
fn wrong_keys_are_refused_counted_slowed_and_learn_nothing() {
    const ATTEMPTS: u64 = 4;
    let (server, metrics) = start(&[]);
    let steady = Steady::start(&server);
    for _ in 0..ATTEMPTS {
        let mut peer = RawPeer::connect(&server.address);
        let challenge = peer.read().expect("a challenge");
        assert!(challenge.starts_with(CHALLENGE));
        let answer = create_response(b"wrong key", &challenge, &AuthOptions::default()).unwrap();
        peer.frame(&answer);
        // The verdict, then the end: no challenge of the server's own to
        // answer, no hello, nothing about the server.
        assert_eq!(peer.read().as_deref(), Some(FAILURE));
        assert_eq!(peer.until_closed(), b"");
        steady.served();
    }
    let s = scrape(&metrics);
    assert_eq!(s.int("mpserver_auth_failures_total"), ATTEMPTS);
    // Every attempt after the first waited before its challenge.
    assert_eq!(s.int("mpserver_auth_throttled_total"), ATTEMPTS - 1);
    assert_eq!(s.int("mpserver_sessions_started_total"), 1);
    // A peer with the key, from the same address, still gets in (after
    // its wait), and clears the address's count.
    let c = server.client();
    c.ping().unwrap();
    let _ = RawPeer::welcomed(&server.address, &server.key);
    let s = scrape(&metrics);
    assert_eq!(s.int("mpserver_auth_throttled_total"), ATTEMPTS);
    assert!(steady.finish() > 0);
}

#[test]
fn stalled_and_truncated_handshakes_are_cut_at_the_timeout() {
    let (server, metrics) = start(&["--handshake-timeout", "1"]);
    let steady = Steady::start(&server);
    // Reads its challenge and never answers.
    let mut mute = RawPeer::connect(&server.address);
    assert!(mute.read().unwrap().starts_with(CHALLENGE));
    // Starts its answer and stops half way.
    let mut halting = RawPeer::connect(&server.address);
    halting.read().unwrap();
    halting.bytes(&40i32.to_be_bytes());
    halting.bytes(b"{sha256}");
    // Authenticates, then never says hello.
    let mut shy = RawPeer::connect(&server.address);
    mp_proto::auth::client_handshake(&mut shy.stream, &server.key, &AuthOptions::default())
        .unwrap();
    // Starts a hello and stops half way.
    let mut stutter = RawPeer::connect(&server.address);
    mp_proto::auth::client_handshake(&mut stutter.stream, &server.key, &AuthOptions::default())
        .unwrap();
    stutter.bytes(&100i32.to_be_bytes());
    stutter.bytes(&[0x82]);
    steady.served();
    for peer in [&mut mute, &mut halting, &mut shy, &mut stutter] {
        assert_eq!(peer.until_closed(), b"");
    }
    // A truncated answer followed by a close ends the handshake at once.
    let mut quitter = RawPeer::connect(&server.address);
    quitter.read().unwrap();
    quitter.bytes(&40i32.to_be_bytes());
    quitter.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(quitter.until_closed(), b"");
    // So does a close after authenticating, before the hello...
    let mut leaver = RawPeer::connect(&server.address);
    mp_proto::auth::client_handshake(&mut leaver.stream, &server.key, &AuthOptions::default())
        .unwrap();
    leaver.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(leaver.until_closed(), b"");
    // ...and a frame that is no hello.
    let mut babbler = RawPeer::connect(&server.address);
    mp_proto::auth::client_handshake(&mut babbler.stream, &server.key, &AuthOptions::default())
        .unwrap();
    babbler.frame(b"hello?");
    assert_eq!(babbler.until_closed(), b"");
    assert!(eventually(Duration::from_secs(30), || {
        let s = scrape(&metrics);
        s.int("mpserver_connections_open") == 1
            && s.int("mpserver_handshake_failures_total{reason=\"closed\"}") == 2
            && s.int("mpserver_handshake_failures_total{reason=\"protocol\"}") == 1
    }));
    let s = scrape(&metrics);
    assert_eq!(
        s.int("mpserver_handshake_failures_total{reason=\"timeout\"}"),
        4
    );
    assert_eq!(s.int("mpserver_auth_failures_total"), 0);
    assert_eq!(s.int("mpserver_sessions"), 1);
    steady.served();
    assert!(steady.finish() > 0);
}

/// A CBOR array nested `depth` deep: a decoder that recurses without a
/// limit overflows its stack on it.
fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![0x81; depth];
    v.push(0x00);
    v
}

#[test]
fn bad_frames_close_only_their_connection() {
    let (server, metrics) = start(&["--max-frame-bytes", "65536"]);
    let steady = Steady::start(&server);
    let protocol_errors = || scrape(&metrics).int("mpserver_errors_total{kind=\"ProtocolError\"}");
    let mut cut = 0;
    let mut expect_cut = |payload: &dyn Fn(&mut RawPeer)| {
        let mut peer = RawPeer::welcomed(&server.address, &server.key);
        payload(&mut peer);
        // An error frame addressed to no request says why, then the end.
        let said = peer.read().expect("an error frame before the close");
        let said: Response = decode(&said).unwrap();
        assert!(said.as_connection_error().is_some(), "{said:?}");
        assert_eq!(peer.until_closed(), b"");
        cut += 1;
        steady.served();
    };
    // A length header far over the limit, and a negative one.
    expect_cut(&|p| p.bytes(&(1i32 << 30).to_be_bytes()));
    expect_cut(&|p| p.bytes(&(-7i32).to_be_bytes()));
    // The long form (-1 then 8 bytes) claiming 2^62 bytes.
    expect_cut(&|p| {
        p.bytes(&(-1i32).to_be_bytes());
        p.bytes(&(1u64 << 62).to_be_bytes());
    });
    // Random bytes that are no request.
    expect_cut(&|p| p.frame(&[0xff, 0x00, 0x13, 0x37, 0xde, 0xad]));
    expect_cut(&|p| p.frame(b"GET / HTTP/1.1\r\n\r\n"));
    // A deeply nested CBOR value (a valid one of the wrong shape whose id
    // can be read is answered instead: `hostile_protocol.rs`).
    expect_cut(&|p| p.frame(&nested(60_000)));
    // The two oversized headers count as `LimitExceeded`.
    assert_eq!(protocol_errors(), cut - 2);

    // A frame cut short by a closing peer ends its session.
    let mut short = RawPeer::welcomed(&server.address, &server.key);
    short.bytes(&100i32.to_be_bytes());
    short.bytes(&[0x86, 0x01]);
    short.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(short.until_closed(), b"");
    // A frame cut short by a peer that stalls holds up nobody else.
    let mut stalled = RawPeer::welcomed(&server.address, &server.key);
    stalled.bytes(&100i32.to_be_bytes());
    stalled.bytes(&[0x86, 0x01]);
    steady.served();
    drop(stalled);
    assert!(eventually(Duration::from_secs(30), || scrape(&metrics)
        .int("mpserver_sessions")
        == 1));
    assert_eq!(protocol_errors(), cut - 2);
    assert!(steady.finish() > 0);
}

fn error_kind(outcome: Outcome) -> ErrorKind {
    match outcome {
        Outcome::Error(e) => e.kind,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn bad_requests_get_their_errors_and_keep_the_connection() {
    let (server, metrics) = start(&[]);
    let steady = Steady::start(&server);
    let mut p = RawPeer::welcomed(&server.address, &server.key);
    let ping = |p: &mut RawPeer| {
        assert_eq!(
            p.call(Target::Server, "ping", vec![]),
            Outcome::Return(Value::None)
        );
    };
    let expect = |p: &mut RawPeer, target, method: &str, args, kind: ErrorKind| {
        assert_eq!(error_kind(p.call(target, method, args)), kind, "{method}");
        ping(p);
    };
    expect(
        &mut p,
        Target::Server,
        "create",
        vec!["NoSuchType".into()],
        ErrorKind::KeyError,
    );
    expect(
        &mut p,
        Target::Server,
        "create",
        vec![],
        ErrorKind::TypeError,
    );
    expect(
        &mut p,
        Target::Server,
        "create",
        vec![42.into()],
        ErrorKind::TypeError,
    );
    expect(
        &mut p,
        Target::Server,
        "frobnicate",
        vec![],
        ErrorKind::AttributeError,
    );
    expect(
        &mut p,
        Target::Server,
        "incref",
        vec!["x".into()],
        ErrorKind::TypeError,
    );
    let d = match p.call(Target::Server, "create", vec!["dict".into()]) {
        Outcome::Proxy(info) => info.token.id,
        other => panic!("{other:?}"),
    };
    let obj = Target::Object(d);
    expect(
        &mut p,
        obj,
        "no_such_method",
        vec![],
        ErrorKind::AttributeError,
    );
    expect(&mut p, obj, "__getitem__", vec![], ErrorKind::TypeError);
    expect(
        &mut p,
        obj,
        "__setitem__",
        vec![Value::List(vec![]), 1.into()],
        ErrorKind::TypeError,
    );
    expect(
        &mut p,
        obj,
        "__getitem__",
        vec!["missing".into()],
        ErrorKind::KeyError,
    );
    expect(
        &mut p,
        obj,
        "x".repeat(100_000).as_str(),
        vec![],
        ErrorKind::AttributeError,
    );
    let q = match p.call(Target::Server, "create", vec!["Queue".into()]) {
        Outcome::Proxy(info) => info.token.id,
        other => panic!("{other:?}"),
    };
    expect(
        &mut p,
        Target::Object(q),
        "get",
        vec![true.into(), "soon".into()],
        ErrorKind::TypeError,
    );
    // Freed objects: the dict's only reference is dropped, then every
    // call on it, and a second decref, is a KeyError.
    assert_eq!(
        p.call(Target::Server, "decref", vec![Value::Int(d.0 as i64)]),
        Outcome::Return(Value::None)
    );
    expect(&mut p, obj, "__len__", vec![], ErrorKind::KeyError);
    expect(&mut p, obj, "__repr__", vec![], ErrorKind::KeyError);
    expect(
        &mut p,
        Target::Server,
        "decref",
        vec![Value::Int(d.0 as i64)],
        ErrorKind::KeyError,
    );
    expect(
        &mut p,
        Target::Object(ObjectId(1 << 51)),
        "get",
        vec![],
        ErrorKind::KeyError,
    );
    steady.served();
    let s = scrape(&metrics);
    assert_eq!(s.int("mpserver_errors_total{kind=\"KeyError\"}"), 6);
    assert_eq!(s.int("mpserver_errors_total{kind=\"TypeError\"}"), 6);
    assert_eq!(s.int("mpserver_errors_total{kind=\"AttributeError\"}"), 3);
    assert_eq!(s.int("mpserver_errors_total{kind=\"ProtocolError\"}"), 0);
    assert_eq!(
        s.int("mpserver_calls_total{typeid=\"dict\",method=\"(other)\"}"),
        2
    );
    assert_eq!(s.int("mpserver_objects{typeid=\"dict\"}"), 1);
    assert!(steady.finish() > 0);
}
