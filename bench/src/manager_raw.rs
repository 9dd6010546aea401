//! The raw limit of the 8-client manager workload: eight client processes
//! each doing one 8-byte TCP_NODELAY round trip at a time against an echo
//! process with one blocking thread per connection — no protocol, no
//! encoding, no event loop. Whatever a manager does per call comes on top
//! of this, so it bounds what `manager.dict_setget_8clients` can reach.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Round trips per second over all `clients`, each doing `trips`, timed
/// as the manager figure is: by the slowest client, from a common start.
pub(crate) fn eight_raw(clients: usize, trips: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // SAFETY: the child only runs the echo threads and leaves by _exit.
    let server = unsafe { libc::fork() };
    assert!(server >= 0, "fork failed");
    if server == 0 {
        let threads: Vec<_> = (0..clients)
            .filter_map(|_| listener.accept().ok())
            .map(|(mut s, _)| {
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = [0u8; 8];
                    while s.read_exact(&mut buf).is_ok() {
                        if s.write_all(&buf).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    drop(listener);
    let mut pids = Vec::new();
    let mut starts = Vec::new();
    let mut results = Vec::new();
    for _ in 0..clients {
        let (start_tx, mut start_rx) = UnixStream::pair().expect("socketpair");
        let (mut result_tx, result_rx) = UnixStream::pair().expect("socketpair");
        // SAFETY: the child only runs the client loop and leaves by _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(start_tx);
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let mut go = [0u8; 1];
            let _ = start_rx.read_exact(&mut go);
            let mut buf = [0u8; 8];
            let cpu0 = crate::manager_cpu::cpu_ns(std::process::id());
            let began = Instant::now();
            for _ in 0..trips {
                s.write_all(&buf).expect("write");
                s.read_exact(&mut buf).expect("read");
            }
            let secs = began.elapsed().as_secs_f64();
            let cpu = crate::manager_cpu::cpu_ns(std::process::id()) - cpu0;
            let _ = result_tx.write_all(&secs.to_le_bytes());
            let _ = result_tx.write_all(&cpu.to_le_bytes());
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        drop(start_rx);
        drop(result_tx);
        pids.push(pid);
        starts.push(start_tx);
        results.push(result_rx);
    }
    // Let every client connect before the start.
    std::thread::sleep(std::time::Duration::from_millis(100));
    for s in &mut starts {
        let _ = s.write_all(&[1]);
    }
    let server_cpu = crate::manager_cpu::cpu_ns(server as u32);
    let mut slowest: f64 = 0.0;
    let mut clients_cpu = 0;
    for r in &mut results {
        let mut b = [0u8; 8];
        if r.read_exact(&mut b).is_ok() {
            slowest = slowest.max(f64::from_le_bytes(b));
        }
        if r.read_exact(&mut b).is_ok() {
            clients_cpu += u64::from_le_bytes(b);
        }
    }
    if std::env::var_os("MP_BENCH_DEBUG").is_some() {
        let ops = (clients * trips) as f64;
        eprintln!(
            "raw: echo cpu {:.0} ns/op, clients {:.0} ns/op",
            (crate::manager_cpu::cpu_ns(server as u32) - server_cpu) as f64 / ops,
            clients_cpu as f64 / ops
        );
    }
    for pid in pids.into_iter().chain([server]) {
        let mut status = 0;
        // SAFETY: reaps a child we forked; status is a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    (clients * trips) as f64 / slowest
}
