//! The socket family a manager benchmark runs over — TCP loopback, or a
//! Unix socket (CPython's `Manager()` default on Linux:
//! `multiprocessing.connection.default_family == 'AF_UNIX'`) — and the raw
//! 8-byte echo over it, the transport ceiling for one call at a time.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::manager::REPEATS;
use crate::wire::{forked, median, rate, Placement};

/// Which socket family a server and its clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// TCP on 127.0.0.1, TCP_NODELAY.
    Tcp,
    /// A Unix stream socket in the temporary directory.
    Unix,
}

impl Transport {
    /// Both, TCP first.
    pub(crate) const ALL: [Transport; 2] = [Transport::Tcp, Transport::Unix];

    /// The infix of a manager row's name: none for TCP (the historical
    /// rows), `.unix` for Unix sockets.
    pub(crate) fn infix(self) -> &'static str {
        match self {
            Transport::Tcp => "",
            Transport::Unix => ".unix",
        }
    }

    /// The raw echo rows' name.
    pub(crate) fn raw_name(self) -> &'static str {
        match self {
            Transport::Tcp => "raw.tcp_loopback",
            Transport::Unix => "raw.unix_socket",
        }
    }

    /// How a comparison column names the raw echo.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "raw TCP",
            Transport::Unix => "raw Unix socket",
        }
    }

    /// The family argument of `manager_py.py`.
    pub(crate) fn py_arg(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

/// A fresh socket path in the temporary directory, unique in this run.
pub(crate) fn socket_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("mp-bench-{tag}-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A connected stream of either family.
pub(crate) trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A listening socket of either family; a Unix one removes its path when
/// dropped by the process that bound it.
pub(crate) enum EchoListener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf, u32),
}

impl EchoListener {
    pub(crate) fn bind(transport: Transport) -> EchoListener {
        match transport {
            Transport::Tcp => EchoListener::Tcp(TcpListener::bind("127.0.0.1:0").expect("bind")),
            Transport::Unix => {
                let path = socket_path("echo");
                let l = UnixListener::bind(&path).expect("bind a Unix socket");
                EchoListener::Unix(l, path, std::process::id())
            }
        }
    }

    pub(crate) fn accept(&self) -> io::Result<Box<dyn Stream>> {
        Ok(match self {
            EchoListener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            EchoListener::Unix(l, _, _) => Box::new(l.accept()?.0),
        })
    }

    pub(crate) fn connect(&self) -> Box<dyn Stream> {
        match self {
            EchoListener::Tcp(l) => {
                let s = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                Box::new(s)
            }
            EchoListener::Unix(_, path, _) => {
                Box::new(UnixStream::connect(path).expect("connect a Unix socket"))
            }
        }
    }
}

impl Drop for EchoListener {
    fn drop(&mut self) {
        if let EchoListener::Unix(_, path, owner) = self {
            if *owner == std::process::id() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Echoes 8-byte messages back until the peer goes away.
pub(crate) fn echo(mut s: Box<dyn Stream>) {
    let mut buf = [0u8; 8];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            break;
        }
    }
}

/// An 8-byte echo between this process and a forked one, round trips/s
/// (median of [`REPEATS`]).
pub(crate) fn raw_echo(placement: Placement, transport: Transport) -> f64 {
    let listener = EchoListener::bind(transport);
    let runs: Vec<f64> = (0..REPEATS)
        .map(|_| {
            forked(
                placement,
                || {
                    if let Ok(s) = listener.accept() {
                        echo(s);
                    }
                },
                || {
                    let mut s = listener.connect();
                    let mut buf = [0u8; 8];
                    rate(|| {
                        s.write_all(&buf).expect("write");
                        s.read_exact(&mut buf).expect("read");
                    })
                },
            )
        })
        .collect();
    median(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trips_over_both_families_and_the_unix_path_goes_away() {
        for transport in Transport::ALL {
            let listener = EchoListener::bind(transport);
            let path = match &listener {
                EchoListener::Unix(_, path, _) => Some(path.clone()),
                EchoListener::Tcp(_) => None,
            };
            let mut client = listener.connect();
            let server = listener.accept().unwrap();
            let echoer = std::thread::spawn(move || echo(server));
            for i in 0..3u64 {
                client.write_all(&i.to_le_bytes()).unwrap();
                let mut buf = [0u8; 8];
                client.read_exact(&mut buf).unwrap();
                assert_eq!(u64::from_le_bytes(buf), i, "{transport:?}");
            }
            drop(client);
            echoer.join().unwrap();
            drop(listener);
            if let Some(path) = path {
                assert!(!path.exists(), "{} left behind", path.display());
            }
        }
    }
}
