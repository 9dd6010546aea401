//! Connections across real processes made with raw `fork` (the `process`
//! module's `Process` lands separately): the reference's `wait` example,
//! a process sentinel (pidfd) in `wait`, and a `Connection` handed to a
//! child through its serde form (`SharedFd`).
//!
//! Everything runs in one test function so no other test thread is alive
//! when this binary forks.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use multiprocessing::connection::{wait, Connection, ConnectionError, Waitable};
use multiprocessing::reduction::{FdSink, FdSource};
use multiprocessing::Pipe;

const LIMIT: Option<Duration> = Some(Duration::from_secs(30));

/// Forks; the child runs `body` and exits 0, or 1 if it returned an error.
fn fork(body: impl FnOnce() -> Result<(), ConnectionError>) -> libc::pid_t {
    // SAFETY: the test binary runs this single test, so no other thread
    // holds a lock the child could need; the child leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = i32::from(body().is_err());
        // SAFETY: ends the child without unwinding into the test harness.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: reaps our own child into a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    libc::WEXITSTATUS(status)
}

/// The reference's example: four processes each send ten messages through
/// their own one-way pipe; the parent reads with `wait` until all hit EOF.
fn reference_wait_example() {
    let mut readers = Vec::new();
    let mut pids = Vec::new();
    for child in 0..4u32 {
        let (r, mut w) = Pipe(false).unwrap();
        pids.push(fork(move || {
            for i in 0..10u32 {
                w.send(&(i, format!("Process-{child}")))?;
            }
            w.close();
            Ok(())
        }));
        // The parent's copy of `w` went with the closure at the end of
        // `fork`, so this reader sees EOF once the child is done.
        readers.push(r);
    }
    let mut got: Vec<Vec<u32>> = vec![Vec::new(); 4];
    while !readers.is_empty() {
        let objects: Vec<&dyn Waitable> = readers.iter().map(|r| r as &dyn Waitable).collect();
        let ready = wait(&objects, LIMIT).unwrap();
        assert!(!ready.is_empty(), "wait timed out");
        let mut finished = Vec::new();
        for i in ready {
            match readers[i].recv::<(u32, String)>() {
                Ok((n, name)) => {
                    let child: usize = name.trim_start_matches("Process-").parse().unwrap();
                    got[child].push(n);
                }
                Err(ConnectionError::Eof) => finished.push(i),
                Err(e) => panic!("{e}"),
            }
        }
        finished.sort_unstable();
        for i in finished.into_iter().rev() {
            readers.remove(i);
        }
    }
    for seq in got {
        assert_eq!(seq, (0..10).collect::<Vec<_>>());
    }
    for pid in pids {
        assert_eq!(reap(pid), 0);
    }
}

/// A pidfd is a process sentinel: `wait` reports it when the child exits.
fn sentinel_in_wait() {
    let (mut parent_end, mut child_end) = Pipe(true).unwrap();
    let pid = fork(move || {
        // Exit when told.
        let _: u8 = child_end.recv()?;
        Ok(())
    });
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(raw >= 0, "pidfd_open failed");
    // SAFETY: raw is a fresh descriptor we own.
    let sentinel = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    assert!(wait(
        &[&sentinel as &dyn Waitable, &parent_end],
        Some(Duration::ZERO)
    )
    .unwrap()
    .is_empty());
    parent_end.send(&1u8).unwrap();
    assert_eq!(wait(&[&sentinel as &dyn Waitable], LIMIT).unwrap(), vec![0]);
    assert_eq!(reap(pid), 0);
}

/// A connection serialized with its descriptor collected by `FdSink`,
/// rebuilt in a forked child by `FdSource`, carries messages back, and
/// keeps the bytes its sender had already buffered.
fn connection_through_its_serde_form() {
    let (mut ours, mut theirs) = Pipe(true).unwrap();
    ours.send(&"first".to_string()).unwrap();
    ours.send(&"second".to_string()).unwrap();
    // `theirs` reads one message; the second is now in its buffer.
    assert_eq!(theirs.recv::<String>().unwrap(), "first");
    let (bytes, fds) = FdSink::collect(|| {
        let mut out = Vec::new();
        ciborium::into_writer(&theirs, &mut out).map(|()| out)
    });
    let bytes = bytes.unwrap();
    assert_eq!(fds.len(), 1);
    drop(theirs);
    let pid = fork(move || {
        let conn: Result<Connection, _> =
            FdSource::provide(fds, || ciborium::from_reader(&bytes[..]));
        let mut conn = conn.map_err(|e| ConnectionError::Decode(e.to_string()))?;
        let second: String = conn.recv()?;
        conn.send(&format!("child got {second}"))?;
        Ok(())
    });
    assert_eq!(ours.recv::<String>().unwrap(), "child got second");
    assert_eq!(reap(pid), 0);
    // The child's end closed with the child.
    assert!(matches!(ours.recv::<String>(), Err(ConnectionError::Eof)));
}

fn serializing_outside_a_transport_fails() {
    let (a, _b) = Pipe(true).unwrap();
    let mut out = Vec::new();
    assert!(ciborium::into_writer(&a, &mut out).is_err());
    let mut closed = a;
    closed.close();
    let (result, fds) = FdSink::collect(|| ciborium::into_writer(&closed, &mut Vec::new()));
    assert!(result.is_err() && fds.is_empty());
}

#[test]
fn connections_across_forked_processes() {
    reference_wait_example();
    sentinel_in_wait();
    connection_through_its_serde_form();
    serializing_outside_a_transport_fails();
}
