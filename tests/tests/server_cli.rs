//! The `mpserver` binary as an operator sees it: the ready line, keys,
//! admin verbs, signals, Unix sockets, limits, and hostile peers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use mp_proto::frame::{read_frame, write_frame};
use mp_proto::message::Kwargs;
use mp_proto::ErrorKind;
use mp_tests::mpserver::{binary, eventually, Options, ServerProcess};
use multiprocessing::managers::{ManagerClient, ManagerError};

/// How many `get`s wait on queue `q` (from its repr).
fn getters(c: &ManagerClient, q: mp_proto::ObjectId) -> usize {
    let repr = c
        .call_method(q, "__repr__", vec![], Kwargs::new())
        .unwrap()
        .into_value()
        .unwrap();
    let repr = repr.to_string();
    repr.split("getters=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn admin(server: &ServerProcess, verb: &str, json: bool) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.args([verb, "--address", &server.address, "--authkey-file"])
        .arg(server.key_path());
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

#[test]
fn admin_verbs_speak_the_protocol() {
    let server = ServerProcess::start();
    let (host, port) = server.address.rsplit_once(':').unwrap();
    assert_eq!(host, "127.0.0.1");
    assert_ne!(port, "0", "port 0 must print the real port");
    let c = server.client();
    c.create("dict", vec![], Kwargs::new()).unwrap();
    c.create("dict", vec![], Kwargs::new()).unwrap();
    c.create("Lock", vec![], Kwargs::new()).unwrap();

    let out = admin(&server, "ping", false);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pong"));

    let out = admin(&server, "status", true);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["objects_by_typeid"]["dict"], 2);
    assert_eq!(status["objects_by_typeid"]["Lock"], 1);
    assert_eq!(status["connections"], 2);
    assert!(status["uptime_secs"].as_f64().unwrap() >= 0.0);
    let text = String::from_utf8(admin(&server, "status", false).stdout).unwrap();
    assert!(text.contains("uptime") && text.contains("dict"), "{text}");

    let out = admin(&server, "objects", true);
    let objects: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = objects.as_array().unwrap();
    assert_eq!(objects.len(), 3);
    assert!(objects.iter().all(|o| o["refcount"] == 1));
    let text = String::from_utf8(admin(&server, "objects", false).stdout).unwrap();
    assert!(
        text.contains("REFCOUNT") && text.contains("(3 objects)"),
        "{text}"
    );

    // A wrong key is refused.
    let bad = Command::new(binary())
        .args([
            "ping",
            "--address",
            &server.address,
            "--authkey-env",
            "PATH",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let mut server = server;
    let out = admin(&server, "shutdown", false);
    assert!(out.status.success());
    assert!(server.wait(Duration::from_secs(30)).success());
}

#[test]
fn a_generated_key_is_private_and_never_logged() {
    let mut child = Command::new(binary())
        .args(["serve", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().strip_prefix("serving at ").unwrap().to_owned();
    assert!(
        address.starts_with("127.0.0.1:"),
        "the default is loopback: {address}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM must exit 0, got {status:?}");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let path = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["fields"]["path"].as_str().map(str::to_owned))
        .expect("the key file's path is logged");
    // Removed on exit; while it lived it was checked by the next test.
    assert!(!std::path::Path::new(&path).exists());
    assert!(log.contains("authkey"));
    assert!(
        !log.contains("serving at"),
        "the ready line goes to stdout only"
    );
}

#[test]
fn generated_key_file_mode_and_use() {
    let mut child = Command::new(binary())
        .args(["serve", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().strip_prefix("serving at ").unwrap().to_owned();
    // Keep draining the log so the server never writes into a closed pipe.
    let (tx, log) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut path = None;
    let mut seen = Vec::new();
    while let Ok(l) = log.recv_timeout(Duration::from_secs(30)) {
        seen.push(l.clone());
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) {
            if let Some(p) = v["fields"]["path"].as_str() {
                path = Some(p.to_owned());
                break;
            }
        }
    }
    let path = path.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(&path).unwrap();
    let key = key.trim_end();
    assert_eq!(key.len(), 64);
    let c = ManagerClient::connect(&address.parse().unwrap(), key.as_bytes());
    let c = c.unwrap_or_else(|e| {
        std::thread::sleep(Duration::from_millis(200));
        seen.extend(log.try_iter());
        panic!("{e}; server log: {seen:#?}")
    });
    c.ping().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(path);
}

#[test]
fn the_sdk_reads_a_key_file_as_the_server_does() {
    let server = ServerProcess::start();
    let key = std::fs::read(server.key_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let echoed = dir.path().join("key");
    std::fs::write(&echoed, [key.as_slice(), b"\n"].concat()).unwrap();

    // Read naively, the newline stays, and the error names it.
    let naive = std::fs::read(&echoed).unwrap();
    match ManagerClient::connect(&server.addr(), &naive) {
        Err(ManagerError::Authentication(e)) => {
            assert!(e.to_string().contains("ends in a newline"), "{e}")
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
    // Read by the rule, it is the server's key.
    let key = multiprocessing::managers::read_authkey_file(&echoed).unwrap();
    ManagerClient::connect(&server.addr(), &key).unwrap();
}

#[test]
fn sigterm_answers_waiting_calls_and_exits_zero() {
    let mut server = ServerProcess::start_with(Options {
        unix: true,
        ..Options::default()
    });
    assert!(server.address.ends_with("mpserver.sock"));
    let c = server.client();
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    let waiting = {
        let c = c.clone();
        std::thread::spawn(move || c.call_method(q, "get", vec![], Kwargs::new()))
    };
    assert!(eventually(Duration::from_secs(30), || {
        getters(&c, q) == 1
    }));
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    match waiting.join().unwrap() {
        Err(ManagerError::Remote(e)) => assert_eq!(e.kind, ErrorKind::ShuttingDown),
        other => panic!("expected ShuttingDown, got {other:?}"),
    }
    assert!(
        !std::path::Path::new(&server.address).exists(),
        "socket file removed"
    );
}

#[test]
fn the_connection_limit_refuses_with_a_reason() {
    let server = ServerProcess::start_with(Options {
        args: vec!["--max-connections".into(), "2".into()],
        ..Options::default()
    });
    let a = server.client();
    let _b = server.client();
    match ManagerClient::connect(&server.addr(), &server.key) {
        Err(ManagerError::Refused(why)) => assert!(why.contains("too many connections"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    a.ping().unwrap();
}

/// Connects and completes the handshake and hello by hand.
fn raw(server: &ServerProcess) -> TcpStream {
    mp_tests::raw::RawPeer::welcomed(&server.address, &server.key).stream
}

#[test]
fn hostile_peers_are_cut_off_alone() {
    let server = ServerProcess::start_with(Options {
        args: vec![
            "--max-frame-bytes".into(),
            "65536".into(),
            "--handshake-timeout".into(),
            "1".into(),
        ],
        ..Options::default()
    });
    let good = server.client();
    let d = good.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    let mut n = 0i64;
    let mut check = || {
        n += 1;
        good.call_method(d, "__setitem__", vec!["k".into(), n.into()], Kwargs::new())
            .unwrap();
        let v = good
            .call_method(d, "__getitem__", vec!["k".into()], Kwargs::new())
            .unwrap();
        assert_eq!(v.into_value().unwrap(), n.into());
    };

    // A peer that connects and says nothing holds up nobody.
    let mut silent = TcpStream::connect(&server.address).unwrap();
    check();

    // Random frames after a valid handshake: each such connection is closed
    // (or answered), the server never falls over.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut s = raw(&server);
        let len = (next() % 64) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 3 == 0 && !junk.is_empty() {
            // Often start like a CBOR array so decoding goes deeper.
            junk[0] = 0x86;
        }
        write_frame(&mut s, &junk).unwrap();
        let _ = read_frame(&mut s, 1 << 20);
        if round % 20 == 0 {
            check();
        }
    }

    // An oversized frame header closes that connection before any body,
    // after an error frame saying why.
    let said = |s: &mut TcpStream| {
        let frame = read_frame(s, 1 << 20).unwrap().expect("an error frame");
        let r: mp_proto::message::Response = mp_proto::codec::decode(&frame).unwrap();
        r.as_connection_error()
            .expect("a connection error")
            .kind
            .clone()
    };
    let mut s = raw(&server);
    s.write_all(&(1i32 << 30).to_be_bytes()).unwrap();
    assert_eq!(said(&mut s), ErrorKind::LimitExceeded);
    let mut buf = [0u8; 1];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    // So does a negative length.
    let mut s = raw(&server);
    s.write_all(&(-7i32).to_be_bytes()).unwrap();
    assert_eq!(said(&mut s), ErrorKind::ProtocolError);
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    // A bad key never gets in.
    assert!(matches!(
        ManagerClient::connect(&server.addr(), b"wrong"),
        Err(ManagerError::Authentication(_))
    ));
    check();
    let status = good.status().unwrap();
    assert_eq!(status.number_of_objects, 1);
    // The silent peer got a challenge, then was dropped at the handshake
    // timeout (the read ends at end of file, not at this 30 s guard).
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    silent.read_to_end(&mut got).unwrap();
    assert!(got.windows(11).any(|w| w == b"#CHALLENGE#"));
}

#[test]
fn a_closed_log_pipe_does_not_stop_the_server() {
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), b"pipe-key").unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--log-level", "debug", "--authkey-file"])
        .arg(key.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Whoever read the log is gone before the server logs anything.
    drop(child.stderr.take());
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().strip_prefix("serving at ").unwrap().to_owned();
    for _ in 0..3 {
        let c = ManagerClient::connect(&address.parse().unwrap(), b"pipe-key").unwrap();
        c.ping().unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_in_flight_limit_answers_limit_exceeded() {
    let server = ServerProcess::start_with(Options {
        args: vec!["--max-in-flight".into(), "2".into()],
        ..Options::default()
    });
    let c = server.client();
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    // Two gets wait on this connection; a third is refused at once, and
    // calls that do not wait still go through.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.call_method(q, "get", vec![], Kwargs::new()))
        })
        .collect();
    assert!(eventually(Duration::from_secs(30), || getters(&c, q) == 2));
    let e = c.call_method(q, "get", vec![], Kwargs::new()).unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::LimitExceeded);
    c.call_method(q, "put", vec![1.into()], Kwargs::new())
        .unwrap();
    c.call_method(q, "put", vec![2.into()], Kwargs::new())
        .unwrap();
    for w in waiting {
        w.join().unwrap().unwrap();
    }
}

#[test]
fn many_threads_share_one_connection() {
    let server = ServerProcess::start();
    let c = server.client();
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    let d = c.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    // Eight threads block in get on the one connection while eight others
    // keep making quick calls on it; then every getter gets one item.
    let getters: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                c.call_method(q, "get", vec![], Kwargs::new())
                    .unwrap()
                    .into_value()
                    .unwrap()
            })
        })
        .collect();
    let workers: Vec<_> = (0..8i64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..200i64 {
                    let key = mp_proto::Value::Tuple(vec![t.into(), i.into()]);
                    c.call_method(d, "__setitem__", vec![key.clone(), i.into()], Kwargs::new())
                        .unwrap();
                    let v = c
                        .call_method(d, "__getitem__", vec![key], Kwargs::new())
                        .unwrap();
                    assert_eq!(v.into_value().unwrap(), i.into());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    for i in 0..8i64 {
        c.call_method(q, "put", vec![i.into()], Kwargs::new())
            .unwrap();
    }
    let mut got: Vec<i64> = getters
        .into_iter()
        .map(|g| g.join().unwrap().as_int().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert_eq!(
        c.call_method(d, "__len__", vec![], Kwargs::new())
            .unwrap()
            .into_value()
            .unwrap(),
        1600.into()
    );
}
