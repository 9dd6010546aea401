//! Interop with the machine's CPython (3.11: legacy handshake) at the bytes
//! level: CPython's `Listener` against our client side, our listener side
//! against CPython's `Client`, and the 3.12+ `{sha256}` handshake against a
//! Python peer that computes it with `hmac`.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use mp_proto::auth::{self, AuthOptions, AuthenticationError};
use mp_proto::frame;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A python3 child, killed if the test fails halfway.
struct Python {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Python {
    fn run(script: &str, args: &[&str]) -> Python {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/py")
            .join(script);
        let mut child = Command::new("python3")
            .arg(path)
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

    fn finish(mut self) -> String {
        let line = self.line();
        assert!(self.child.wait().unwrap().success());
        line
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(python: &mut Python) -> TcpStream {
    let port: u16 = python.line().parse().unwrap();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn exchange_with_cpython_listener(stream: &mut TcpStream) {
    for n in [0, 10, 1 << 20] {
        let message = pattern(n);
        frame::write_frame(stream, &message).unwrap();
        let back = frame::read_frame(stream, 2 << 20).unwrap().unwrap();
        assert_eq!(
            back,
            message.iter().rev().copied().collect::<Vec<_>>(),
            "{n} bytes"
        );
    }
    let theirs = frame::read_frame(stream, 2 << 20).unwrap().unwrap();
    assert_eq!(
        theirs,
        (0..=255u8).cycle().take(1 << 20).collect::<Vec<_>>()
    );
}

#[test]
fn our_client_against_cpython_listener() {
    let mut python = Python::run("listener.py", &["legacy", "s3cret"]);
    let mut stream = connect(&mut python);
    auth::client_handshake(&mut stream, b"s3cret", &AuthOptions::legacy()).unwrap();
    exchange_with_cpython_listener(&mut stream);
    assert_eq!(python.finish(), "DONE");
}

#[test]
fn our_client_with_wrong_key_fails_on_both_sides() {
    let mut python = Python::run("listener.py", &["legacy", "s3cret"]);
    let mut stream = connect(&mut python);
    let err = auth::client_handshake(&mut stream, b"guess", &AuthOptions::legacy()).unwrap_err();
    assert!(matches!(err, AuthenticationError::Rejected), "{err:?}");
    assert!(python
        .finish()
        .starts_with("AUTH-FAILED AuthenticationError"));
}

#[test]
fn our_client_refuses_a_legacy_listener_unless_asked() {
    let mut python = Python::run("listener.py", &["legacy", "s3cret"]);
    let mut stream = connect(&mut python);
    let err = auth::client_handshake(&mut stream, b"s3cret", &AuthOptions::default()).unwrap_err();
    assert!(
        matches!(err, AuthenticationError::LegacyDisabled),
        "{err:?}"
    );
    drop(stream);
    assert!(python.finish().starts_with("AUTH-FAILED EOFError"));
}

fn serve_cpython_client(key: &[u8], client_key: &str) -> (Result<(), AuthenticationError>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let python = Python::run("client.py", &[&port, client_key]);
    let (mut stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let result = auth::server_handshake(&mut stream, key, &AuthOptions::legacy());
    if result.is_ok() {
        for n in [0, 10, 1 << 20] {
            let message = frame::read_frame(&mut stream, 2 << 20).unwrap().unwrap();
            assert_eq!(message, pattern(n));
            let reversed: Vec<u8> = message.into_iter().rev().collect();
            frame::write_frame(&mut stream, &reversed).unwrap();
        }
    }
    drop(stream);
    (result, python.finish())
}

#[test]
fn cpython_client_against_our_listener() {
    let (result, python) = serve_cpython_client(b"s3cret", "s3cret");
    result.unwrap();
    assert_eq!(python, "DONE");
}

#[test]
fn cpython_client_with_wrong_key_fails_on_both_sides() {
    let (result, python) = serve_cpython_client(b"s3cret", "guess");
    assert!(
        matches!(result, Err(AuthenticationError::WrongDigest)),
        "{result:?}"
    );
    assert!(
        python.starts_with("AUTH-FAILED AuthenticationError"),
        "{python}"
    );
}

#[test]
fn modern_sha256_handshake_against_python_hmac() {
    let mut python = Python::run("listener.py", &["modern", "s3cret"]);
    let mut stream = connect(&mut python);
    // Not legacy: only the {sha256} form is accepted either way.
    auth::client_handshake(&mut stream, b"s3cret", &AuthOptions::default()).unwrap();
    exchange_with_cpython_listener(&mut stream);
    assert_eq!(python.finish(), "DONE");
}

#[test]
fn modern_sha256_handshake_with_wrong_key() {
    let mut python = Python::run("listener.py", &["modern", "s3cret"]);
    let mut stream = connect(&mut python);
    let err = auth::client_handshake(&mut stream, b"guess", &AuthOptions::default()).unwrap_err();
    assert!(matches!(err, AuthenticationError::Rejected), "{err:?}");
    assert!(python
        .finish()
        .starts_with("AUTH-FAILED AuthenticationError"));
}

#[test]
fn sha256_response_equals_pythons_hmac() {
    let payload = auth::new_challenge().unwrap();
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("python3")
        .args([
            "-c",
            "import hmac,sys; p=bytes.fromhex(sys.argv[1]); \
             print((b'{sha256}'+hmac.new(b'k\\x00ey', p, 'sha256').digest()).hex())",
            &hex,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let python = String::from_utf8(out.stdout).unwrap();
    let message = [auth::CHALLENGE, &payload].concat();
    let ours = auth::create_response(b"k\x00ey", &message, &AuthOptions::default()).unwrap();
    let ours_hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ours_hex, python.trim());
}
