//! `mp-bench manager.async`: the async client (`managers::asyncio`)
//! against the release `mpserver`, in one run (issue 19's goals):
//!
//! * 8 tasks on one connection, one call at a time each, on a
//!   multi-thread runtime: calls/s over the shared-memory channel (goal
//!   ≥ 300,000) and over loopback TCP beside it;
//! * one task, one call at a time, against the blocking client on the
//!   same server (goal ≥ 0.9×);
//! * 10,000 `get`s blocked at once on one connection: the memory each
//!   waiter costs the client and the server (resident set growth).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use multiprocessing::managers::asyncio::{AsyncManagerClient, AsyncSyncManager};
use multiprocessing::managers::{ConnectOptions, SyncManager};

use crate::manager::{ServerProc, KEY};
use crate::report::{self, Row};

/// Calls per task in the throughput figures.
const CALLS: usize = 20_000;
/// Blocked `get`s in the memory figure.
const WAITERS: usize = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

async fn manager(server: &ServerProc, channel: bool) -> AsyncSyncManager {
    let options = ConnectOptions {
        shared_memory: channel,
        ..ConnectOptions::default()
    };
    let address = server.address.parse().expect("address");
    let client = AsyncManagerClient::connect_with(&address, KEY, &options)
        .await
        .expect("connect");
    assert_eq!(client.uses_shared_memory(), channel);
    AsyncSyncManager::from_client(client)
}

/// Calls/s of `tasks` tasks each making `CALLS` `dict.__len__` calls, one
/// at a time, on one connection.
fn tasks_rate(server: &ServerProc, channel: bool, tasks: usize) -> f64 {
    runtime().block_on(async {
        let manager = manager(server, channel).await;
        let d = manager.dict::<String, i64>().await.expect("dict");
        let started = Instant::now();
        let all: Vec<_> = (0..tasks)
            .map(|_| {
                let d = d.clone();
                tokio::spawn(async move {
                    for _ in 0..CALLS {
                        d.len().await.expect("len");
                    }
                })
            })
            .collect();
        for t in all {
            t.await.expect("task");
        }
        (tasks * CALLS) as f64 / started.elapsed().as_secs_f64()
    })
}

/// Calls/s of one thread making `CALLS` calls with the blocking client.
fn sync_rate(server: &ServerProc) -> f64 {
    let address = server.address.parse().expect("address");
    let manager = SyncManager::connect(&address, KEY).expect("connect");
    let d = manager.dict::<String, i64>().expect("dict");
    let started = Instant::now();
    for _ in 0..CALLS {
        d.len().expect("len");
    }
    CALLS as f64 / started.elapsed().as_secs_f64()
}

/// The resident set of `pid`, in bytes.
fn rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb * 1024.0)
}

/// Bytes per blocked `get` on (the client, the server), and the calls/s
/// of one task on that connection while they are all blocked.
fn blocked_gets() -> (f64, f64, f64) {
    let server = ServerProc::start_with(None, &[format!("--max-in-flight={}", WAITERS * 2)]);
    runtime().block_on(async {
        let manager = manager(&server, true).await;
        let q = manager.queue::<i64>().await.expect("queue");
        manager.client().ping().await.expect("ping");
        let (client0, server0) = (rss(std::process::id()), rss(server.child.id()));
        let sent = std::sync::Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (q, sent) = (q.clone(), std::sync::Arc::clone(&sent));
                tokio::spawn(async move {
                    // The first poll of `get` writes its request.
                    sent.fetch_add(1, Ordering::Relaxed);
                    q.get().await
                })
            })
            .collect();
        while sent.load(Ordering::Relaxed) < WAITERS {
            tokio::task::yield_now().await;
        }
        // Behind every get on the one connection: all are on the server.
        manager.client().ping().await.expect("ping");
        let (client1, server1) = (rss(std::process::id()), rss(server.child.id()));
        let d = manager.dict::<String, i64>().await.expect("dict");
        let started = Instant::now();
        for _ in 0..CALLS {
            d.len().await.expect("len");
        }
        let rate = CALLS as f64 / started.elapsed().as_secs_f64();
        for i in 0..WAITERS {
            q.put(i as i64).await.expect("put");
        }
        for w in waiters {
            w.await.expect("task").expect("get");
        }
        (
            (client1 - client0) / WAITERS as f64,
            (server1 - server0) / WAITERS as f64,
            rate,
        )
    })
}

/// The suite.
pub fn run() {
    let server = ServerProc::start(None);
    let channel8 = tasks_rate(&server, true, 8);
    let socket8 = tasks_rate(&server, false, 8);
    let async1 = tasks_rate(&server, true, 1);
    let sync1 = sync_rate(&server);
    let (client_bytes, server_bytes, beside_blocked) = blocked_gets();
    let rows = vec![
        Row {
            name: "manager.async.8-tasks.channel".into(),
            ours: channel8,
            against: Some(("goal".into(), 300_000.0)),
            unit: "calls/s",
            higher_is_better: true,
        },
        Row {
            name: "manager.async.8-tasks.tcp".into(),
            ours: socket8,
            against: Some(("8 tasks on the channel".into(), channel8)),
            unit: "calls/s",
            higher_is_better: true,
        },
        Row {
            name: "manager.async.1-task.channel".into(),
            ours: async1,
            against: Some(("blocking client, 1 thread".into(), sync1)),
            unit: "calls/s",
            higher_is_better: true,
        },
        Row {
            name: "manager.async.1-task.beside-10k-blocked-gets".into(),
            ours: beside_blocked,
            against: Some(("1 task, nothing blocked".into(), async1)),
            unit: "calls/s",
            higher_is_better: true,
        },
        Row {
            name: "manager.async.blocked-get.client".into(),
            ours: client_bytes,
            against: None,
            unit: "B/waiter",
            higher_is_better: false,
        },
        Row {
            name: "manager.async.blocked-get.server".into(),
            ours: server_bytes,
            against: None,
            unit: "B/waiter",
            higher_is_better: false,
        },
    ];
    report::print("manager.async: the async client on one connection", &rows);
}
