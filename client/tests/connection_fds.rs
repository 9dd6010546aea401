//! File descriptors inside values sent over a Unix-socket `Connection`
//! (`SCM_RIGHTS`, Python's `reduction.send_handle` and `DupFd`): a
//! connection sent through a connection, to this process and to a process
//! that could not have inherited it; descriptors of a message read as bytes
//! are closed; pipes refuse; nothing leaks.
//!
//! Everything runs in one test function so no other test thread is alive
//! when this binary forks.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use multiprocessing::connection::{Address, Client, Connection, ConnectionError, Listener};
use multiprocessing::reduction::SharedFd;
use multiprocessing::Pipe;

const LIMIT: Option<Duration> = Some(Duration::from_secs(30));

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A connection sent to ourselves arrives as a working duplicate.
fn connection_through_a_connection() {
    let (mut a, mut b) = Pipe(true).unwrap();
    let (x, mut y) = Pipe(true).unwrap();
    a.send(&("label", x)).unwrap();
    // The sender's copy went with the tuple; ours arrives with the message.
    let (label, mut x): (String, Connection) = b.recv().unwrap();
    assert_eq!(label, "label");
    x.send(&5u32).unwrap();
    assert_eq!(y.recv::<u32>().unwrap(), 5);
    drop(x);
    assert!(matches!(y.recv::<u32>(), Err(ConnectionError::Eof)));
}

/// Messages with and without descriptors, some read as bytes, keep each
/// message's descriptors with it.
fn descriptors_stay_with_their_message() {
    let before = open_fds();
    let (mut a, mut b) = Pipe(true).unwrap();
    let mut peers = Vec::new();
    for round in 0..20u32 {
        let (x, y) = Pipe(true).unwrap();
        peers.push(y);
        a.send(&(round, vec![x])).unwrap();
        a.send(&round).unwrap();
    }
    // A message carrying two descriptors, read as raw bytes: they close.
    let (p, _q) = Pipe(true).unwrap();
    let (r, _s) = Pipe(true).unwrap();
    a.send(&(p, r)).unwrap();
    a.send(&"after").unwrap();
    for (round, peer) in peers.iter_mut().enumerate() {
        let (n, mut ends): (u32, Vec<Connection>) = b.recv().unwrap();
        assert_eq!(n as usize, round);
        ends[0].send(&n).unwrap();
        assert_eq!(peer.recv::<u32>().unwrap(), n);
        assert_eq!(b.recv::<u32>().unwrap(), n);
    }
    assert!(!b.recv_bytes(None).unwrap().is_empty());
    assert_eq!(b.recv::<String>().unwrap(), "after");
    drop((a, b, peers));
    assert_eq!(open_fds(), before + 2, "only _q and _s stay open");
}

/// Over a pipe the value is refused with a typed error, and the connection
/// still works.
fn a_pipe_refuses_descriptors() {
    let (mut r, mut w) = Pipe(false).unwrap();
    let (x, _y) = Pipe(true).unwrap();
    let err = w.send(&x).unwrap_err();
    assert!(matches!(err, ConnectionError::Encode(_)), "{err}");
    w.send(&1u8).unwrap();
    assert_eq!(r.recv::<u8>().unwrap(), 1);
}

/// A message whose descriptors the receiver does not want is a decode
/// error, not a panic, and the stream stays in step.
fn a_forged_index_is_an_error() {
    let (mut a, mut b) = Pipe(true).unwrap();
    let (x, _y) = UnixStream::pair().unwrap();
    // Receiving a descriptor as a string is a type mismatch; the
    // descriptor is closed with the message.
    a.send(&SharedFd::new(OwnedFd::from(x))).unwrap();
    assert!(matches!(
        b.recv::<String>(),
        Err(ConnectionError::Decode(_))
    ));
    a.send(&7u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 7);
}

/// A process that connected after the pipe was made receives one end over
/// a Unix socket and answers through it: the descriptor really travelled.
fn to_another_process() {
    let dir = std::env::temp_dir().join(format!("mp-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let address = Address::Unix(path.clone());
    let mut listener = Listener::bind(address.clone(), Some(b"key")).unwrap();
    // SAFETY: this binary runs a single test, so no other thread holds a
    // lock the child could need; the child leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let body = || -> Result<(), ConnectionError> {
            let mut conn = Client(&address, Some(b"key"))?;
            let mut end: Connection = conn.recv()?;
            end.send(&"from the child")?;
            Ok(())
        };
        let code = i32::from(body().is_err());
        // SAFETY: ends the child without unwinding into the harness.
        unsafe { libc::_exit(code) };
    }
    let mut conn = listener.accept().unwrap();
    // Made after the fork: the child can only have it through `send`.
    let (x, mut y) = Pipe(true).unwrap();
    conn.send(&x).unwrap();
    drop(x);
    assert!(y.poll(LIMIT).unwrap());
    assert_eq!(y.recv::<String>().unwrap(), "from the child");
    let mut status = 0;
    // SAFETY: reaps our own child into a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    drop(listener);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn descriptors_in_values() {
    connection_through_a_connection();
    descriptors_stay_with_their_message();
    a_pipe_refuses_descriptors();
    a_forged_index_is_an_error();
    to_another_process();
}
