//! `mp-bench manager`, memory part: the server's resident set with
//! 100,000 live dicts, and with 10,000 idle authenticated connections,
//! read from `/proc/<pid>/status` of the `mpserver` process.

use std::net::TcpStream;

use mp_proto::auth::{client_handshake, AuthOptions};
use mp_proto::codec::{decode, encode};
use mp_proto::frame::{read_frame, write_frame};
use mp_proto::message::{Hello, HelloReply, Kwargs};

use crate::manager::{ServerProc, KEY};
use crate::report::Row;

const DICTS: usize = 100_000;
const CONNECTIONS: usize = 10_000;

/// The resident set of `pid`, in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Raises this process's open-file limit to its hard limit.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid, owned struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn goal(name: &str, ours: f64, goal: f64, unit: &'static str) -> Row {
    Row {
        name: name.into(),
        ours,
        against: Some(("goal".into(), goal)),
        unit,
        higher_is_better: false,
    }
}

/// Measures both and returns the rows.
pub fn run() -> Vec<Row> {
    let mut rows = Vec::new();
    {
        let server = ServerProc::start(None);
        let c = server.client();
        let before = rss_mb(server.child.id());
        let mut kept = Vec::with_capacity(DICTS);
        for _ in 0..DICTS {
            kept.push(c.create("dict", vec![], Kwargs::new()).expect("create"));
        }
        let after = rss_mb(server.child.id());
        assert_eq!(c.number_of_objects().expect("count"), DICTS as u64);
        rows.push(Row {
            name: "manager.rss_idle_server".into(),
            ours: before,
            against: None,
            unit: "MB",
            higher_is_better: false,
        });
        rows.push(goal("manager.rss_100k_dicts", after, 100.0, "MB"));
        rows.push(Row {
            name: "manager.bytes_per_dict".into(),
            ours: (after - before) * 1024.0 * 1024.0 / DICTS as f64,
            against: None,
            unit: "B",
            higher_is_better: false,
        });
    }
    raise_fd_limit();
    let server = ServerProc::start(None);
    let before = rss_mb(server.child.id());
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        match open(&server.address) {
            Ok(s) => conns.push(s),
            Err(e) => {
                eprintln!("connection {} failed: {e}", conns.len());
                break;
            }
        }
    }
    // Let the server settle every connection into its idle state.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = rss_mb(server.child.id());
    let n = conns.len();
    rows.push(Row {
        name: format!("manager.rss_{n}_idle_connections"),
        ours: after,
        against: None,
        unit: "MB",
        higher_is_better: false,
    });
    rows.push(Row {
        name: "manager.kib_per_idle_connection".into(),
        ours: (after - before) * 1024.0 / n.max(1) as f64,
        against: None,
        unit: "KiB",
        higher_is_better: false,
    });
    rows
}

/// One authenticated, greeted, then idle connection.
fn open(address: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(address).map_err(|e| e.to_string())?;
    // As ManagerClient does: the handshake ends with two small writes,
    // which Nagle would hold back for the server's delayed ACK.
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    client_handshake(&mut s, KEY, &AuthOptions::default()).map_err(|e| e.to_string())?;
    let hello = encode(&Hello::current("mp-bench")).map_err(|e| e.to_string())?;
    write_frame(&mut s, &hello).map_err(|e| e.to_string())?;
    let reply = read_frame(&mut s, 1 << 16)
        .map_err(|e| e.to_string())?
        .ok_or("closed")?;
    match decode::<HelloReply>(&reply).map_err(|e| e.to_string())? {
        HelloReply::Welcome { .. } => Ok(s),
        HelloReply::Refused { message } => Err(message),
    }
}
