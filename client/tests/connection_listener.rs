//! `Listener` and `Client` over real TCP and Unix sockets, among
//! themselves and against the machine's CPython (3.11, so legacy mode).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;

use mp_proto::auth::{AuthOptions, AuthenticationError};
use multiprocessing::connection::{
    client_with, Address, Client, ConnectionError, Family, Listener,
};

#[test]
fn unix_listener_in_a_private_directory() {
    let mut listener = Listener::builder().authkey(b"key").bind().unwrap();
    let address = listener.address().clone();
    let Address::Unix(path) = &address else {
        panic!("{address:?}")
    };
    assert!(path.exists());
    let dir = path.parent().unwrap().to_owned();
    let client = thread::spawn({
        let address = address.clone();
        move || {
            let mut conn = Client(&address, Some(b"key")).unwrap();
            conn.send(&("ping", 1)).unwrap();
            conn.recv::<String>().unwrap()
        }
    });
    let mut conn = listener.accept().unwrap();
    assert_eq!(conn.recv::<(String, i32)>().unwrap(), ("ping".into(), 1));
    conn.send("pong").unwrap();
    assert_eq!(client.join().unwrap(), "pong");
    assert!(listener.last_accepted().is_some());
    drop(listener);
    assert!(!path.exists(), "the socket file is removed on close");
    assert!(!dir.exists(), "and so is the private directory");
}

#[test]
fn tcp_wrong_key_fails_both_sides_and_listener_survives() {
    let mut listener = Listener::builder()
        .address(Address::from(("127.0.0.1", 0)))
        .backlog(4)
        .authkey(b"right")
        .bind()
        .unwrap();
    let address = listener.address().clone();
    assert_eq!(address.family(), Family::Inet);
    let client = thread::spawn({
        let address = address.clone();
        move || {
            let wrong = Client(&address, Some(b"wrong")).map(|_| ());
            let mut good = Client(&address, Some(b"right")).unwrap();
            good.send_bytes(b"second").unwrap();
            wrong
        }
    });
    let err = listener.accept().unwrap_err();
    assert!(
        matches!(
            err,
            ConnectionError::Authentication(AuthenticationError::WrongDigest)
        ),
        "{err}"
    );
    let mut conn = listener.accept().unwrap();
    assert_eq!(conn.recv_bytes(None).unwrap(), b"second");
    let wrong = client.join().unwrap().unwrap_err();
    assert!(
        matches!(
            wrong,
            ConnectionError::Authentication(AuthenticationError::Rejected)
        ),
        "{wrong}"
    );
    let Some(Address::Tcp { host, .. }) = listener.last_accepted() else {
        panic!()
    };
    assert_eq!(host, "127.0.0.1");
}

#[test]
fn no_authkey_means_no_handshake() {
    let mut listener = Listener::builder().family(Family::Inet).bind().unwrap();
    let address = listener.address().clone();
    let client = thread::spawn(move || {
        let mut conn = Client(&address, None).unwrap();
        conn.send_bytes(b"#CHALLENGE# is just data here").unwrap();
    });
    let mut conn = listener.accept().unwrap();
    assert_eq!(
        conn.recv_bytes(None).unwrap(),
        b"#CHALLENGE# is just data here"
    );
    client.join().unwrap();
}

#[test]
fn closed_listener_refuses_accept_and_family_mismatch_is_an_error() {
    let mut listener = Listener::builder().bind().unwrap();
    listener.close();
    assert!(matches!(listener.accept(), Err(ConnectionError::Closed)));
    let err = Listener::builder()
        .family(Family::Unix)
        .address(Address::from(("127.0.0.1", 0)))
        .bind()
        .unwrap_err();
    assert!(matches!(err, ConnectionError::BadAddress { .. }), "{err}");
    let missing: Address = "/nonexistent-dir/x.sock".parse().unwrap();
    assert!(matches!(
        Client(&missing, None),
        Err(ConnectionError::Io(_))
    ));
}

/// A python3 child running `tests/py/peer.py`, killed if a test fails.
struct Python {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Python {
    fn run(args: &[&str]) -> Python {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the interop tests");
        let out = BufReader::new(child.stdout.take().unwrap());
        Python { child, out }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn talk_to_python(conn: &mut multiprocessing::Connection) {
    assert_eq!(conn.recv_bytes(None).unwrap(), b"hello from python");
    for n in [0usize, 10, 1 << 20] {
        let message: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        conn.send_bytes(&message).unwrap();
        let back = conn.recv_bytes(None).unwrap();
        assert_eq!(
            back,
            message.iter().rev().copied().collect::<Vec<_>>(),
            "{n}"
        );
    }
    conn.send_bytes(b"bye").unwrap();
}

#[test]
fn our_client_against_cpython_listener_tcp_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    let unix = dir.path().join("py.sock");
    for address in ["127.0.0.1:0", unix.to_str().unwrap()] {
        let mut python = Python::run(&["listen", address, "k3y"]);
        let bound: Address = python.line().parse().unwrap();
        let mut conn = client_with(&bound, Some(b"k3y"), &AuthOptions::legacy()).unwrap();
        talk_to_python(&mut conn);
        assert_eq!(python.line(), "DONE");
    }
}

#[test]
fn cpython_client_against_our_listener_tcp_and_unix() {
    for family in [Family::Inet, Family::Unix] {
        let mut listener = Listener::builder()
            .family(family)
            .authkey(b"k3y")
            .auth_options(AuthOptions::legacy())
            .bind()
            .unwrap();
        let address = listener.address().to_string();
        let mut python = Python::run(&["connect", &address, "k3y"]);
        let mut conn = listener.accept().unwrap();
        talk_to_python(&mut conn);
        assert_eq!(python.line(), "DONE");
    }
}

#[test]
fn wrong_keys_against_cpython_fail_on_both_sides() {
    let mut python = Python::run(&["listen", "127.0.0.1:0", "k3y"]);
    let bound: Address = python.line().parse().unwrap();
    let err = client_with(&bound, Some(b"nope"), &AuthOptions::legacy()).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectionError::Authentication(AuthenticationError::Rejected)
        ),
        "{err}"
    );
    assert_eq!(python.line(), "AUTH-FAILED AuthenticationError");

    let mut listener = Listener::builder()
        .family(Family::Inet)
        .authkey(b"k3y")
        .auth_options(AuthOptions::legacy())
        .bind()
        .unwrap();
    let mut python = Python::run(&["connect", &listener.address().to_string(), "nope"]);
    let err = listener.accept().unwrap_err();
    assert!(
        matches!(
            err,
            ConnectionError::Authentication(AuthenticationError::WrongDigest)
        ),
        "{err}"
    );
    assert_eq!(python.line(), "AUTH-FAILED AuthenticationError");
}
