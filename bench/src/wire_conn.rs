//! `mp-bench wire`, Part B: the SDK's `Pipe` / `Connection` against a raw
//! socketpair and against CPython's `multiprocessing.Pipe`, same run.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Instant;

use multiprocessing::Pipe;

use crate::wire::{forked, median, rate, raw_pingpong, Placement, Row, REPEATS};

/// CPython's script, run with `python3 -c`.
const PY: &str = include_str!("wire_py.py");
/// 1 MiB messages per throughput repeat.
const MESSAGES: usize = 256;
const MIB: usize = 1 << 20;

/// Our `Pipe` ping-pong of a small value (an `i64`).
fn pipe_pingpong(placement: Placement) -> f64 {
    let (mut a, mut b) = Pipe(true).expect("Pipe");
    forked(
        placement,
        move || {
            while let Ok(v) = b.recv::<i64>() {
                if b.send(&v).is_err() {
                    break;
                }
            }
        },
        move || {
            rate(|| {
                a.send(&12345i64).expect("send");
                assert_eq!(a.recv::<i64>().expect("recv"), 12345);
            })
        },
    )
}

/// How a throughput run moves its 1 MiB messages.
#[derive(Clone, Copy)]
enum Way {
    Raw,
    SendBytes,
    SendVec,
}

/// One way, `MESSAGES` × 1 MiB: bytes per second from the first send to
/// the receiver's acknowledgement of the last message.
fn throughput(way: Way) -> f64 {
    let (a, b) = Pipe(true).expect("Pipe");
    let (mut ra, mut rb) = UnixStream::pair().expect("socketpair");
    forked(
        Placement::Unpinned,
        move || {
            let mut b = b;
            match way {
                Way::Raw => {
                    let mut buf = vec![0u8; MIB];
                    for _ in 0..MESSAGES {
                        rb.read_exact(&mut buf).expect("read");
                    }
                    rb.write_all(b"k").expect("ack");
                }
                Way::SendBytes => {
                    for _ in 0..MESSAGES {
                        std::hint::black_box(b.recv_bytes(None).expect("recv"));
                    }
                    b.send_bytes(b"k").expect("ack");
                }
                Way::SendVec => {
                    for _ in 0..MESSAGES {
                        std::hint::black_box(b.recv::<Vec<u8>>().expect("recv"));
                    }
                    b.send_bytes(b"k").expect("ack");
                }
            }
        },
        move || {
            let mut a = a;
            let data = vec![7u8; MIB];
            let start = Instant::now();
            match way {
                Way::Raw => {
                    for _ in 0..MESSAGES {
                        ra.write_all(&data).expect("write");
                    }
                    ra.read_exact(&mut [0u8; 1]).expect("ack");
                }
                Way::SendBytes | Way::SendVec => {
                    for _ in 0..MESSAGES {
                        match way {
                            Way::SendVec => a.send(&data).expect("send"),
                            _ => a.send_bytes(&data).expect("send"),
                        }
                    }
                    a.recv_bytes(None).expect("ack");
                }
            }
            (MESSAGES * MIB) as f64 / start.elapsed().as_secs_f64()
        },
    )
}

/// Runs CPython's side; NaN (shown as such) if python3 is missing or fails.
fn python(args: &[&str]) -> f64 {
    Command::new("python3")
        .arg("-c")
        .arg(PY)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Part B's figures.
pub(crate) fn connection_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for placement in Placement::ALL {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            ours.push(pipe_pingpong(placement));
            raw.push(raw_pingpong(placement));
        }
        let (ours, raw) = (median(ours), median(raw));
        let sfx = placement.suffix();
        let py = python(&["pingpong", &placement_arg(placement)]);
        rows.push(Row {
            name: format!("wire.pipe.pingpong_small{sfx}"),
            ours,
            against: format!("raw.unix_socketpair.pingpong_8b{sfx}"),
            theirs: raw,
            unit: "round_trips/s",
        });
        rows.push(Row {
            name: format!("wire.pipe.pingpong_small{sfx}"),
            ours,
            against: format!("py.pipe.pingpong_small{sfx}"),
            theirs: py,
            unit: "round_trips/s",
        });
    }
    let (mut raw, mut bytes, mut vecs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        raw.push(throughput(Way::Raw));
        bytes.push(throughput(Way::SendBytes));
        vecs.push(throughput(Way::SendVec));
    }
    let (raw, bytes, vecs) = (median(raw) / 1e6, median(bytes) / 1e6, median(vecs) / 1e6);
    let py = python(&["bytes", &MESSAGES.to_string()]) / 1e6;
    for (name, ours) in [
        ("wire.pipe.send_bytes_1mib", bytes),
        ("wire.pipe.send_vec_1mib", vecs),
    ] {
        rows.push(Row {
            name: name.into(),
            ours,
            against: "raw.unix_socketpair.throughput_1mib".into(),
            theirs: raw,
            unit: "MB/s",
        });
        rows.push(Row {
            name: name.into(),
            ours,
            against: "py.pipe.send_bytes_1mib".into(),
            theirs: py,
            unit: "MB/s",
        });
    }
    rows
}

fn placement_arg(placement: Placement) -> String {
    match placement {
        Placement::Unpinned => "unpinned",
        Placement::SameCpu => "samecpu",
        Placement::CrossCpu => "crosscpu",
    }
    .into()
}

/// Diagnostic: CPU cost of one message in a single process (send then
/// receive on the same socketpair, no wake-ups), ours vs raw.
pub(crate) fn cpu_rows() -> Vec<Row> {
    let (mut a, mut b) = Pipe(true).expect("Pipe");
    let (mut ra, mut rb) = UnixStream::pair().expect("socketpair");
    let (mut ours, mut raw, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        ours.push(rate(|| {
            a.send(&12345i64).expect("send");
            assert_eq!(b.recv::<i64>().expect("recv"), 12345);
        }));
        bytes.push(rate(|| {
            a.send_bytes(&[7u8; 8]).expect("send");
            std::hint::black_box(b.recv_bytes(None).expect("recv"));
        }));
        raw.push(rate(|| {
            let mut buf = [7u8; 8];
            ra.write_all(&buf).expect("write");
            rb.read_exact(&mut buf).expect("read");
        }));
    }
    let raw = median(raw);
    vec![
        Row {
            name: "wire.pipe.send_recv_small.one_process".into(),
            ours: median(ours),
            against: "raw.unix_socketpair.write_read_8b.one_process".into(),
            theirs: raw,
            unit: "messages/s",
        },
        Row {
            name: "wire.pipe.send_recv_bytes_8b.one_process".into(),
            ours: median(bytes),
            against: "raw.unix_socketpair.write_read_8b.one_process".into(),
            theirs: raw,
            unit: "messages/s",
        },
    ]
}
