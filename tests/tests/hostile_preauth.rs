//! Hostile peers before authentication, and the server's own files and
//! logs, against the real `mpserver` binary: a regular file at the Unix
//! socket path, a silent peer mid-handshake at SIGTERM, idle
//! unauthenticated sockets, garbage handshakes, a flooded metrics
//! endpoint, colour codes in a piped log, and a stock CPython manager
//! client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use mp_tests::mpserver::{binary, eventually, Options, ServerProcess};
use mp_tests::scrape::{metrics_address, scrape};

const PATIENCE: Duration = Duration::from_secs(30);

fn start(args: &[&str]) -> ServerProcess {
    ServerProcess::start_with(Options::args(args))
}

/// Whether the server closed `stream` without a word (EOF, or a reset).
fn closed_at_once(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("set a read timeout");
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

/// Lines of the server's log seen within a short wait, until `want`
/// matches one; whether it did.
#[test]
fn a_regular_file_at_the_unix_path_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, b"someone's data").unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, b"k").unwrap();
    let out = Command::new(binary())
        .arg("serve")
        .arg("--unix")
        .arg(&path)
        .arg("--authkey-file")
        .arg(&key)
        .stdin(Stdio::null())
        .output()
        .expect("run mpserver");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"someone's data");
}

#[test]
fn at_exit_only_the_servers_own_socket_is_removed() {
    let mut server = ServerProcess::start_with(Options {
        unix: true,
        ..Options::default()
    });
    let path = std::path::PathBuf::from(&server.address);
    // Someone replaces the socket file while the server runs.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not yours").unwrap();
    assert!(server.signal_and_wait(libc::SIGTERM).success());
    assert_eq!(std::fs::read(&path).unwrap(), b"not yours");
}

#[test]
fn sigterm_does_not_wait_for_a_silent_peer_in_its_handshake() {
    let mut server = start(&["--handshake-timeout", "600"]);
    let mut silent = TcpStream::connect(&server.address).unwrap();
    // Let the server take the connection into its handshake.
    let mut challenge = [0u8; 4];
    silent.read_exact(&mut challenge).unwrap();
    // Fails (after 30 s) if the stop waits out the 600 s handshake.
    assert!(server.signal_and_wait(libc::SIGTERM).success());
}

#[test]
fn idle_unauthenticated_sockets_do_not_take_connection_slots() {
    let server = start(&["--max-connections", "2"]);
    let idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(&server.address).unwrap())
        .collect();
    let client = server.client();
    client.ping().expect("an authenticated client gets a slot");
    drop(idle);
}

#[test]
fn handshakes_past_the_per_source_cap_are_closed_at_once() {
    let server = start(&["--max-handshakes-per-source", "3"]);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&server.address).unwrap())
        .collect();
    // Wait until the server has taken all three into their handshakes.
    for mut s in &held {
        let mut challenge = [0u8; 4];
        s.read_exact(&mut challenge).unwrap();
    }
    let mut extra = TcpStream::connect(&server.address).unwrap();
    assert!(closed_at_once(&mut extra));
    drop(held);
    // With the tickets given back, an authenticated client gets in.
    let ok = eventually(PATIENCE, || {
        multiprocessing::managers::ManagerClient::connect(&server.addr(), &server.key).is_ok()
    });
    assert!(ok);
}

#[test]
fn garbage_handshakes_count_against_the_source() {
    let server = start(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics_address(&server);
    let mut garbage = TcpStream::connect(&server.address).unwrap();
    let mut challenge = [0u8; 4];
    garbage.read_exact(&mut challenge).unwrap();
    // A frame of the right size holding nonsense instead of a digest.
    garbage
        .write_all(&[0, 0, 0, 4, b'j', b'u', b'n', b'k'])
        .unwrap();
    garbage.set_read_timeout(Some(PATIENCE)).unwrap();
    // The rest of the challenge, then the server closes.
    let _ = garbage.read_to_end(&mut Vec::new());
    // The next connection from this address is made to wait its turn.
    let client = server.client();
    client.ping().unwrap();
    assert!(scrape(&metrics).int("mpserver_auth_throttled_total") >= 1);
}

#[test]
fn metrics_are_served_while_idle_connections_crowd_the_endpoint() {
    let server = start(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics_address(&server);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&metrics).unwrap())
        .collect();
    let s = scrape(&metrics);
    assert!(s.text.contains("mpserver_connections_open"), "{}", s.text);
    drop(idle);
}

#[test]
fn a_piped_text_log_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, b"k").unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "text"])
        .arg("--authkey-file")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpserver");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("serving") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("serving"), "{seen}");
    assert!(
        !seen.contains('\x1b'),
        "colour codes in a piped log: {seen:?}"
    );
}

#[test]
fn a_json_log_is_one_object_per_line() {
    let server = start(&[]);
    let client = server.client();
    client.ping().unwrap();
    let line = server.log.recv_timeout(PATIENCE).unwrap();
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(!line.contains('\x1b'));
}

#[test]
fn a_cpython_manager_client_is_served_with_legacy_auth() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 not found: skipped");
        return;
    }
    let server = start(&["--legacy-auth"]);
    let (host, port) = server.address.rsplit_once(':').unwrap();
    let script = format!(
        "from multiprocessing.managers import BaseManager\n\
         m = BaseManager(address=({host:?}, {port}), authkey={key:?}.encode())\n\
         m.connect()\nprint('connected')\n",
        key = String::from_utf8_lossy(&server.key),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("connected"));
}
