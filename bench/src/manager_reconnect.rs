//! `mp-bench manager.reconnect`: how soon a client is back after its
//! server restarts (issue 17's goal: ≤ 1 s from the restarted server's
//! `serving at` line to the client's first successful call).
//!
//! The release `mpserver` serves a named queue on a fixed port; a client
//! holding a proxy found by name keeps calling `qsize()` while the server
//! is killed (SIGKILL) and started again on the same port. The figure is
//! the median of 5 restarts; the reconnection thread's default backoff
//! (50 ms doubling to 500 ms) bounds it.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use multiprocessing::managers::{ConnectOptions, ManagerClient, QueueProxy};

use crate::manager::{mpserver_binary, spawn_serving, KEY};
use crate::report::{self, Row};
use crate::wire::median;

/// Restarts measured.
const RESTARTS: usize = 5;

/// Starts `mpserver` on `port`; returns it once it serves.
fn serve(port: u16, key: &std::path::Path) -> Child {
    spawn_serving(
        Command::new(mpserver_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--log-level", "warn", "--shared", "jobs=Queue"])
            .arg("--authkey-file")
            .arg(key),
    )
    .0
}

/// Seconds from each restarted server's ready line to the first call
/// that succeeds.
fn back_after_restart() -> Vec<f64> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("dir");
    let key = dir.path().join("key");
    std::fs::write(&key, KEY).expect("key");
    let mut server = serve(port, &key);
    let options = ConnectOptions {
        shared_memory: false,
        ..ConnectOptions::default()
    };
    let address = format!("127.0.0.1:{port}").parse().expect("address");
    let client = ManagerClient::connect_with(&address, KEY, &options).expect("connect");
    let jobs: QueueProxy<i64> = client.lookup("jobs").expect("lookup");
    let mut figures = Vec::new();
    for _ in 0..RESTARTS {
        let _ = server.kill();
        let _ = server.wait();
        // The client learns of the break on its next call.
        while jobs.qsize().is_ok() {}
        server = serve(port, &key);
        let ready = Instant::now();
        while jobs.qsize().is_err() {
            assert!(
                ready.elapsed() < Duration::from_secs(30),
                "never reconnected"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        figures.push(ready.elapsed().as_secs_f64());
    }
    let _ = server.kill();
    let _ = server.wait();
    figures
}

/// The suite.
pub fn run() {
    let figures = back_after_restart();
    let rows = vec![Row {
        name: "manager.reconnect.first-call-after-restart".into(),
        ours: median(figures),
        against: Some(("goal".into(), 1.0)),
        unit: "s",
        higher_is_better: false,
    }];
    report::print(
        "manager.reconnect: a client back after a server restart",
        &rows,
    );
}
