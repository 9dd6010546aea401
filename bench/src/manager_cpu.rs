//! `mp-bench manager.cpu`: CPU time per call, server and client, against
//! a raw TCP echo's CPU time per round trip.
//!
//! Wall-clock rates on a 2-core machine shared with other work move a lot;
//! the CPU each side spends per call does not, and it is what the rates
//! are made of. Both sides run on CPU 0 (no cross-CPU wake-ups), the
//! client without its poll-before-sleep, and CPU time is read from
//! `/proc/<pid>/task/*/schedstat` (nanoseconds on CPU, every thread).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use mp_proto::message::Kwargs;
use multiprocessing::managers::{ConnectOptions, ManagerClient};

use crate::manager::{ServerProc, KEY};
use crate::report::{self, Row};
use crate::wire::{median, pin};

/// Calls per measurement.
const CALLS: u64 = 30_000;
/// Measurements; the median is reported.
const REPEATS: usize = 3;

/// Context switches of `pid` (voluntary, involuntary), summed over its
/// threads, for `MP_BENCH_DEBUG` figures.
pub(crate) fn switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let mut sum = (0, 0);
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            let value = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if line.starts_with("voluntary_ctxt_switches") {
                sum.0 += value(line).unwrap_or(0);
            } else if line.starts_with("nonvoluntary_ctxt_switches") {
                sum.1 += value(line).unwrap_or(0);
            }
        }
    }
    sum
}

/// Nanoseconds `pid` has run on a CPU, summed over its threads.
pub(crate) fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Runs `step` `CALLS` times and returns (server ns, client ns) per call.
fn measure(server_pid: u32, mut step: impl FnMut()) -> (f64, f64) {
    for _ in 0..1000 {
        step();
    }
    let me = std::process::id();
    let (s0, c0) = (cpu_ns(server_pid), cpu_ns(me));
    for _ in 0..CALLS {
        step();
    }
    let (s1, c1) = (cpu_ns(server_pid), cpu_ns(me));
    (
        (s1 - s0) as f64 / CALLS as f64,
        (c1 - c0) as f64 / CALLS as f64,
    )
}

/// How the echo side serves.
#[derive(Clone, Copy)]
enum Echo {
    /// Blocking `read_exact` / `write_all`.
    Blocking,
    /// A tokio task on a runtime of `n` threads (1: current-thread),
    /// reading what is there and writing it back, as mpserver's loop does.
    Tokio(usize),
}

fn tokio_echo(listener: TcpListener, threads: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async move {
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            let mut buf = Vec::with_capacity(2048);
            loop {
                buf.clear();
                match s.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }
    });
}

fn raw_echo(echo: Echo) -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    pin(Some(0));
    // SAFETY: the benchmark is single-threaded here; the child only runs
    // the echo loop and leaves by _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        match echo {
            Echo::Blocking => {
                if let Ok((mut s, _)) = listener.accept() {
                    let _ = s.set_nodelay(true);
                    let mut buf = [0u8; 8];
                    while s.read_exact(&mut buf).is_ok() {
                        if s.write_all(&buf).is_err() {
                            break;
                        }
                    }
                }
            }
            Echo::Tokio(threads) => tokio_echo(listener, threads),
        }
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    drop(listener);
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; 8];
    let runs: Vec<(f64, f64)> = (0..REPEATS)
        .map(|_| {
            measure(pid as u32, || {
                s.write_all(&buf).expect("write");
                s.read_exact(&mut buf).expect("read");
            })
        })
        .collect();
    drop(s);
    let mut status = 0;
    // SAFETY: reaps the child we forked; status is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    pin(None);
    split_median(runs)
}

fn split_median(runs: Vec<(f64, f64)>) -> (f64, f64) {
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

fn ours() -> (f64, f64) {
    let server = ServerProc::start(Some(0));
    pin(Some(0));
    let c = ManagerClient::connect_with(
        &server.address.parse().expect("address"),
        KEY,
        &ConnectOptions {
            spin: Duration::ZERO,
            ..ConnectOptions::default()
        },
    )
    .expect("connect");
    let d = c
        .create("dict", vec![], Kwargs::new())
        .expect("dict")
        .token
        .id;
    c.call_method(d, "__setitem__", vec!["k".into(), 1.into()], Kwargs::new())
        .expect("set");
    let runs: Vec<(f64, f64)> = (0..REPEATS)
        .map(|_| {
            measure(server.child.id(), || {
                c.call_method(d, "__getitem__", vec!["k".into()], Kwargs::new())
                    .expect("get");
            })
        })
        .collect();
    pin(None);
    split_median(runs)
}

/// The CPU-cost part.
pub fn run() {
    let (raw_server, raw_client) = raw_echo(Echo::Blocking);
    let (tokio1, tokio1_client) = raw_echo(Echo::Tokio(1));
    let (tokio2, _) = raw_echo(Echo::Tokio(2));
    let (server, client) = ours();
    let rows = vec![
        Row {
            name: "tokio_echo.current_thread.server_per_rt".into(),
            ours: tokio1,
            against: Some(("raw TCP echo, echo side".into(), raw_server)),
            unit: "ns",
            higher_is_better: false,
        },
        Row {
            name: "tokio_echo.current_thread.client_per_rt".into(),
            ours: tokio1_client,
            against: Some(("raw TCP echo, caller side".into(), raw_client)),
            unit: "ns",
            higher_is_better: false,
        },
        Row {
            name: "tokio_echo.multi_thread_2.server_per_rt".into(),
            ours: tokio2,
            against: Some(("raw TCP echo, echo side".into(), raw_server)),
            unit: "ns",
            higher_is_better: false,
        },
        Row {
            name: "manager.cpu.server_per_call".into(),
            ours: server,
            against: Some(("raw TCP echo, echo side".into(), raw_server)),
            unit: "ns",
            higher_is_better: false,
        },
        Row {
            name: "manager.cpu.client_per_call".into(),
            ours: client,
            against: Some(("raw TCP echo, caller side".into(), raw_client)),
            unit: "ns",
            higher_is_better: false,
        },
        Row {
            name: "manager.cpu.total_per_call".into(),
            ours: server + client,
            against: Some(("raw TCP echo, both".into(), raw_server + raw_client)),
            unit: "ns",
            higher_is_better: false,
        },
    ];
    report::print(
        "manager: CPU time per d[k] call, both on CPU 0, no spin",
        &rows,
    );
}
