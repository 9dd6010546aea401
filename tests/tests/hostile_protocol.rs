//! Hostile peers at the connection layer, against the real `mpserver`: a
//! malformed request is answered with its error and the connection goes
//! on; one whose id cannot be read, or an oversized or bad frame, gets an
//! error frame addressed to no request before the close; an int beyond
//! 64 bits is `OverflowError`; a peer that pipelines requests for a large
//! value and never reads holds the server to its output cap; and the SDK
//! client, its connection closed by the server, fails every call in
//! flight with the server's words instead of hanging.

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use mp_proto::codec::{decode, INT_TOO_LARGE};
use mp_proto::message::{Kwargs, Outcome, Response, Target, CONNECTION_ID};
use mp_proto::{ErrorKind, ObjectId, RemoteError, Value};
use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::process_memory::{address_space, alive, limit_address_space, peak_rss};
use mp_tests::raw::{request, RawPeer};
use mp_tests::scrape::{scrape, start_with_metrics};
use mp_tests::steady::Steady;
use multiprocessing::managers::{ConnectOptions, ManagerClient, ManagerError};

const LIMIT: Duration = Duration::from_secs(60);

fn start(extra: &[&str]) -> (ServerProcess, String) {
    start_with_metrics(Options::args(extra))
}

/// Reads one response.
fn response(peer: &mut RawPeer) -> Response {
    let frame = peer.read().expect("a response, not the end");
    decode(&frame).expect("a response that decodes")
}

/// The error of `outcome`, failing on anything else.
fn error(outcome: Outcome) -> RemoteError {
    match outcome {
        Outcome::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Fails if `text` reads like Rust's debug output rather than words.
fn in_words(text: &str) {
    for debug in ["Mismatch", "name:", "Some(", "found: ", "Eof {"] {
        assert!(!text.contains(debug), "debug text in {text:?}");
    }
}

/// A request frame whose id is `id` and the rest `rest` (raw CBOR items
/// after the id, inside a 6-item array).
fn raw_request(id: u8, rest: &[u8]) -> Vec<u8> {
    assert!(id < 24);
    let mut frame = vec![0x86, id];
    frame.extend_from_slice(rest);
    frame
}

fn ping(peer: &mut RawPeer) {
    assert_eq!(
        peer.call(Target::Server, "ping", vec![]),
        Outcome::Return(Value::None)
    );
}

fn create(peer: &mut RawPeer, typeid: &str) -> ObjectId {
    match peer.call(Target::Server, "create", vec![typeid.into()]) {
        Outcome::Proxy(info) => info.token.id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_malformed_request_is_answered_and_the_connection_goes_on() {
    let (server, metrics) = start(&[]);
    let steady = Steady::start(&server);
    let mut p = RawPeer::welcomed(&server.address, &server.key);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "a text string where the object id belongs",
            raw_request(
                21,
                &[0x61, b'x', 0x64, b'p', b'i', b'n', b'g', 0x80, 0xa0, 0x01],
            ),
            "expected an object id (an integer) or null, found a text string",
        ),
        (
            "a number where the method name belongs",
            raw_request(22, &[0xf6, 0x05, 0x80, 0xa0, 0x01]),
            "expected a method name (a text string), found a non-negative integer",
        ),
        (
            "a map where the arguments belong",
            raw_request(23, &[0xf6, 0x64, b'p', b'i', b'n', b'g', 0xa0, 0xa0, 0x01]),
            "expected an array of positional arguments, found a map",
        ),
        (
            "an array too short to be a request",
            vec![0x83, 0x07, 0x02, 0x03],
            "expected a request (an array of 6 items), found an array of 3 items",
        ),
        (
            "a valid request with bytes after it",
            [request(8, Target::Server, "ping", vec![]), vec![0x00]].concat(),
            "1 byte after its end",
        ),
    ];
    for (what, frame, expected) in cases {
        let id = u64::from(frame[1] & 0x1f);
        // Pipelined between two good requests: all three are answered, in
        // order, on the one connection.
        p.frame(&request(100, Target::Server, "ping", vec![]));
        p.frame(&frame);
        p.frame(&request(101, Target::Server, "ping", vec![]));
        assert_eq!(response(&mut p).id, 100, "{what}");
        let bad = response(&mut p);
        assert_eq!(bad.id, id, "{what}");
        let e = error(bad.outcome);
        assert_eq!(e.kind, ErrorKind::ProtocolError, "{what}");
        assert!(e.message.starts_with("malformed request: "), "{what}: {e}");
        assert!(e.message.contains(expected), "{what}: {e}");
        in_words(&e.message);
        assert_eq!(response(&mut p).id, 101, "{what}");
        ping(&mut p);
        steady.served();
    }
    // An unhashable key is Python's TypeError, named as Python names it.
    let d = create(&mut p, "dict");
    let mut frame = raw_request(9, &[]);
    frame.push(0x1b);
    frame.extend(d.0.to_be_bytes());
    // "__setitem__", [{[1]: 2}, 3], {}, 1
    frame.extend([0x6b]);
    frame.extend(b"__setitem__");
    frame.extend([0x82, 0xa1, 0x81, 0x01, 0x02, 0x03, 0xa0, 0x01]);
    p.frame(&frame);
    let e = error(response(&mut p).outcome);
    assert_eq!(e.kind, ErrorKind::TypeError);
    assert_eq!(e.message, "unhashable type: 'list'");
    assert_eq!(
        p.call(Target::Object(d), "__len__", vec![]),
        Outcome::Return(Value::Int(0))
    );
    let s = scrape(&metrics);
    assert_eq!(s.int("mpserver_errors_total{kind=\"ProtocolError\"}"), 5);
    assert_eq!(s.int("mpserver_errors_total{kind=\"TypeError\"}"), 1);
    assert_eq!(s.int("mpserver_sessions"), 2);
    assert!(steady.finish() > 0);
}

/// `n` as a plain CBOR integer (major type 0 or 1, 8-byte form).
fn cbor_int(negative: bool, magnitude: u64) -> Vec<u8> {
    let mut out = vec![if negative { 0x3b } else { 0x1b }];
    out.extend(magnitude.to_be_bytes());
    out
}

#[test]
fn an_int_beyond_64_bits_is_an_overflow_error_for_that_request_only() {
    let (server, metrics) = start(&[]);
    let mut p = RawPeer::welcomed(&server.address, &server.key);
    let l = create(&mut p, "list");
    // list.append(x) for x = 2^63, 2^64-1, -2^63-1, and as bignums 2^64
    // and -2^80.
    let too_large: [Vec<u8>; 5] = [
        cbor_int(false, 1 << 63),
        cbor_int(false, u64::MAX),
        cbor_int(true, 1 << 63),
        vec![0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0xc3, 0x4a, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    for (i, x) in too_large.iter().enumerate() {
        let mut frame = raw_request(10 + i as u8, &[0x1b]);
        frame.extend(l.0.to_be_bytes());
        frame.extend([0x66]);
        frame.extend(b"append");
        frame.push(0x81);
        frame.extend(x);
        frame.extend([0xa0, 0x01]);
        p.frame(&frame);
        let r = response(&mut p);
        assert_eq!(r.id, 10 + i as u64);
        let e = error(r.outcome);
        assert_eq!(e.kind, ErrorKind::OverflowError, "{x:02x?}");
        assert_eq!(e.message, INT_TOO_LARGE);
    }
    // Nothing was appended, the connection serves on, and the edges of
    // 64 bits (and a bignum that fits) are ints.
    assert_eq!(
        p.call(Target::Object(l), "__len__", vec![]),
        Outcome::Return(Value::Int(0))
    );
    for v in [i64::MAX, i64::MIN] {
        let r = p.call(Target::Object(l), "append", vec![Value::Int(v)]);
        assert_eq!(r, Outcome::Return(Value::None));
    }
    let mut frame = raw_request(20, &[0x1b]);
    frame.extend(l.0.to_be_bytes());
    frame.extend([0x66]);
    frame.extend(b"append");
    frame.extend([0x81, 0xc2, 0x42, 0x01, 0x00, 0xa0, 0x01]);
    p.frame(&frame);
    assert_eq!(response(&mut p).outcome, Outcome::Return(Value::None));
    assert_eq!(
        p.call(Target::Object(l), "__getitem__", vec![Value::Int(2)]),
        Outcome::Return(Value::Int(256))
    );
    assert_eq!(
        scrape(&metrics).int("mpserver_errors_total{kind=\"OverflowError\"}"),
        5
    );
}

/// Reads what the server sends until it closes: the error frame
/// addressed to no request, then the end.
fn error_frame_then_close(peer: &mut RawPeer) -> RemoteError {
    let r = response(peer);
    let e = r
        .as_connection_error()
        .unwrap_or_else(|| panic!("not a connection error: {r:?}"))
        .clone();
    assert_eq!(r.id, CONNECTION_ID);
    assert_eq!(peer.until_closed(), b"", "more after the error frame");
    in_words(&e.message);
    e
}

#[test]
fn what_cannot_be_answered_gets_an_error_frame_then_the_close() {
    let (server, metrics) = start(&["--max-frame-bytes", "65536"]);
    let steady = Steady::start(&server);
    let welcomed = || {
        let mut p = RawPeer::welcomed(&server.address, &server.key);
        // An answered call before: its answer still comes first.
        p.frame(&request(1, Target::Server, "ping", vec![]));
        p
    };
    let cases: [(&str, Vec<u8>, ErrorKind, &str); 6] = [
        (
            "a header over the limit",
            (1i32 << 30).to_be_bytes().to_vec(),
            ErrorKind::LimitExceeded,
            "a request of 1073741824 bytes is over the server's frame limit of 65536 bytes",
        ),
        (
            "a long header claiming 2^62 bytes",
            [
                (-1i32).to_be_bytes().as_slice(),
                &(1u64 << 62).to_be_bytes(),
            ]
            .concat(),
            ErrorKind::LimitExceeded,
            "over the server's frame limit of 65536 bytes",
        ),
        (
            "a negative length",
            (-7i32).to_be_bytes().to_vec(),
            ErrorKind::ProtocolError,
            "bad message length: header holds -7",
        ),
        (
            "bytes that are no CBOR request",
            [&14i32.to_be_bytes()[..], b"GET / HTTP/1.1"].concat(),
            ErrorKind::ProtocolError,
            "expected a request (an array of 6 items), found a byte string",
        ),
        (
            "a stray break",
            [&2i32.to_be_bytes()[..], &[0xff, 0x00]].concat(),
            ErrorKind::ProtocolError,
            "found a break",
        ),
        (
            "a text string where the id belongs",
            [&4i32.to_be_bytes()[..], &[0x86, 0x61, b'x', 0x01]].concat(),
            ErrorKind::ProtocolError,
            "expected an integer request id, found a text string",
        ),
    ];
    for (what, bytes, kind, expected) in cases {
        let mut p = welcomed();
        p.bytes(&bytes);
        assert_eq!(response(&mut p).id, 1, "{what}");
        let e = error_frame_then_close(&mut p);
        assert_eq!(e.kind, kind, "{what}: {e}");
        assert!(e.message.contains(expected), "{what}: {e}");
        assert!(
            e.message.ends_with("the connection is closed"),
            "{what}: {e}"
        );
        steady.served();
    }
    // The log says the same, in the same words.
    let logged: Vec<String> = std::iter::from_fn(|| server.log.recv_timeout(LIMIT).ok())
        .filter(|l| l.contains("closing a connection"))
        .take(6)
        .collect();
    assert_eq!(logged.len(), 6);
    assert!(
        logged[0].contains("over the server's frame limit"),
        "{}",
        logged[0]
    );
    for line in &logged {
        in_words(line);
    }
    assert!(eventually(LIMIT, || scrape(&metrics)
        .int("mpserver_sessions")
        == 1));
    let s = scrape(&metrics);
    assert_eq!(s.int("mpserver_errors_total{kind=\"LimitExceeded\"}"), 2);
    assert_eq!(s.int("mpserver_errors_total{kind=\"ProtocolError\"}"), 4);
    assert!(steady.finish() > 0);
}

#[test]
fn a_dedicated_connection_answers_bad_requests_and_sends_its_error_frame_too() {
    let (server, metrics) = start(&["--shared-memory-channels", "0"]);
    let mut p = RawPeer::welcomed(&server.address, &server.key);
    let d = create(&mut p, "dict");
    let got = eventually(LIMIT, || {
        for i in 0..200i64 {
            let r = p.call(Target::Object(d), "__setitem__", vec!["k".into(), i.into()]);
            assert!(matches!(r, Outcome::Return(_)), "{r:?}");
        }
        scrape(&metrics).int("mpserver_dedicated_readers") == 1
    });
    assert!(got, "the raw peer was never given a dedicated reader");
    // Answered, and served on.
    p.frame(&[0x83, 0x07, 0x02, 0x03]);
    let r = response(&mut p);
    assert_eq!(r.id, 7);
    assert_eq!(error(r.outcome).kind, ErrorKind::ProtocolError);
    ping(&mut p);
    // Without an id: the error frame, then the close.
    p.frame(b"\xff\xfe not cbor");
    let e = error_frame_then_close(&mut p);
    assert_eq!(e.kind, ErrorKind::ProtocolError);
    assert!(eventually(LIMIT, || scrape(&metrics)
        .int("mpserver_dedicated_readers")
        == 0));
}

/// Makes the SDK client's calls wait on a queue, then has its connection
/// send a request over the server's frame limit: every call in flight,
/// the oversized one and any made later fail with `ConnectionLost`
/// carrying the server's words.
fn every_call_in_flight_gets_the_servers_words(shared_memory: bool) {
    let (server, _metrics) = start(&["--max-frame-bytes", "4096"]);
    let options = ConnectOptions {
        shared_memory,
        ..ConnectOptions::default()
    };
    let c = ManagerClient::connect_with(&server.addr(), &server.key, &options).unwrap();
    assert_eq!(c.uses_shared_memory(), shared_memory);
    let watcher = server.client();
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    let before = watcher.status().unwrap().requests_total;
    const WAITERS: u64 = 3;
    let (tx, rx) = mpsc::channel();
    for _ in 0..WAITERS {
        let (c, tx) = (c.clone(), tx.clone());
        std::thread::spawn(move || {
            let _ = tx.send(c.call_method(q, "get", vec![], Kwargs::new()));
        });
    }
    // Each status call counts itself: wait until the gets have arrived.
    let mut polls = 0;
    assert!(eventually(LIMIT, || {
        polls += 1;
        watcher.status().unwrap().requests_total - before >= WAITERS + polls
    }));
    let big = c.call_method(q, "put", vec![Value::Str("x".repeat(5000))], Kwargs::new());
    let mut failures = vec![big.map(drop)];
    for _ in 0..WAITERS {
        let waited = rx.recv_timeout(LIMIT).expect("a call in flight hung");
        failures.push(waited.map(drop));
    }
    failures.push(c.ping());
    for failure in failures {
        match failure {
            Err(ManagerError::ConnectionLost(why)) => {
                assert!(why.starts_with("LimitExceeded: a request of "), "{why}");
                assert!(
                    why.contains("over the server's frame limit of 4096 bytes"),
                    "{why}"
                );
            }
            Err(other) => panic!("expected ConnectionLost, got {other}"),
            Ok(_) => panic!("a call succeeded on a closed connection"),
        }
    }
    assert!(c.is_closed());
    watcher.ping().unwrap();
}

#[test]
fn the_sdk_fails_every_call_in_flight_with_the_servers_words() {
    every_call_in_flight_gets_the_servers_words(false);
}

#[test]
fn the_sdk_fails_every_call_in_flight_with_the_servers_words_over_a_channel() {
    every_call_in_flight_gets_the_servers_words(true);
}

/// Writes `frames` on a thread (the server stops reading them once its
/// output is full, so this may block until the connection ends).
fn pipeline(stream: &TcpStream, frames: Vec<u8>) {
    let mut stream = stream.try_clone().unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    std::thread::spawn(move || {
        let _ = stream.write_all(&frames);
    });
}

#[test]
fn pipelined_reads_of_a_large_value_never_read_cost_the_output_cap() {
    const CAP: u64 = 4 << 20;
    const VALUE: u64 = 16 << 20;
    const ATTACKERS: u64 = 3;
    const GETS: u64 = 2000;
    let (mut server, metrics) = start(&[
        "--max-output-bytes",
        &CAP.to_string(),
        "--shared-memory-channels",
        "0",
    ]);
    let good = server.client();
    let d = good.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    let big = Value::Str("v".repeat(VALUE as usize));
    good.call_method(
        d,
        "__setitem__",
        vec!["big".into(), big.clone()],
        Kwargs::new(),
    )
    .unwrap();
    let get_big = |c: &ManagerClient| {
        let got = c
            .call_method(d, "__getitem__", vec!["big".into()], Kwargs::new())
            .unwrap()
            .into_value()
            .unwrap();
        assert!(got == big, "the large value came back wrong");
    };
    // One read of the value: its cost (a copy, then its encoding) is in
    // the baseline.
    get_big(&good);
    let baseline = peak_rss(server.pid());
    limit_address_space(server.pid(), address_space(server.pid()) + (1 << 30));

    let frames: Vec<u8> = (1..=GETS)
        .flat_map(|id| {
            let payload = request(id, Target::Object(d), "__getitem__", vec!["big".into()]);
            [(payload.len() as i32).to_be_bytes().to_vec(), payload].concat()
        })
        .collect();
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        let mut peer = RawPeer::welcomed(&server.address, &server.key);
        if i == 0 {
            // One served by a dedicated thread when its flood begins.
            let got = eventually(LIMIT, || {
                for n in 0..200i64 {
                    let r = peer.call(Target::Object(d), "__setitem__", vec!["n".into(), n.into()]);
                    assert!(matches!(r, Outcome::Return(_)), "{r:?}");
                }
                scrape(&metrics).int("mpserver_dedicated_readers") == 1
            });
            assert!(got, "the first attacker was never given a dedicated reader");
        }
        pipeline(&peer.stream, frames.clone());
        attackers.push(peer);
    }
    // Each attacker has been answered (bytes wait in its socket, unread):
    // without a cap the server would by now have encoded an answer for
    // every request it had read.
    for peer in &attackers {
        let mut first = [0u8; 4];
        let answered = eventually(LIMIT, || {
            assert!(
                alive(server.pid()),
                "the server died: it tried to hold more than its capped address space"
            );
            peer.stream.peek(&mut first).unwrap_or(0) == 4
        });
        assert!(answered, "an attacker was never answered");
    }
    // The others are served meanwhile, large answers included.
    let other = server.client();
    for _ in 0..3 {
        other.ping().unwrap();
        get_big(&other);
        get_big(&good);
    }
    // Unread answers cost at most the cap plus one answer per attacker
    // (with the answer's copy while it is encoded): nothing like an
    // answer per request.
    let per_attacker = CAP + 2 * (VALUE + 1024);
    let bound = baseline + ATTACKERS * per_attacker + (32 << 20);
    let peak = peak_rss(server.pid());
    eprintln!(
        "peak RSS {} MiB, bound {} MiB, baseline {} MiB",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound {} MiB (baseline {} MiB)",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
    let answered =
        scrape(&metrics).int("mpserver_calls_total{typeid=\"dict\",method=\"__getitem__\"}");
    eprintln!("{answered} gets answered");
    assert!(
        answered < 1 + 6 + ATTACKERS * 4,
        "{answered} gets answered: the attackers were not held back"
    );
    // A stop is heard while those connections wait for their peers to
    // read: the server exits (their answers are cut at the drain
    // timeout).
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status}");
    drop(attackers);
}
