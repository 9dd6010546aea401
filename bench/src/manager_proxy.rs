//! `mp-bench manager.proxy`: the typed proxies of
//! `multiprocessing::managers` (a `SyncManager` connection, `DictProxy`,
//! `ListProxy`, `QueueProxy`, `LockProxy`) against CPython's proxies doing
//! the same work and a raw TCP ping-pong, in one run.
//!
//! * Single client, one call at a time, in three placements (per round
//!   trip, the goal is 0.9x the raw TCP ping-pong).
//! * Proxy create+drop per second (`let d = m.dict()?; drop(d)`), against
//!   CPython's `x = m.list(); del x` (bounded count: it manages ~6/s).
//! * Many calls in flight on the one connection: eight threads sharing
//!   one `SyncManager`, and [`ManagerClient::call_many`] batches (goal:
//!   300,000 calls/s).
//!
//! Eight processes on one dict through proxies is in [`crate::manager`]'s
//! 8-client part, beside the same work through `ManagerClient`.

use std::time::{Duration, Instant};

use mp_proto::{ObjectId, Token};
use multiprocessing::managers::{BaseProxy, Call, DictProxy, ManagerClient, SyncManager};

use crate::manager::{placement_name, python, ServerProc, Workloads, REPEATS, WORKLOADS};
use crate::report::{self, Row};
use crate::transport::{raw_echo, Transport};
use crate::wire::{median, pin, rate, Placement};

/// Threads sharing one connection in the concurrent mode.
const THREADS: usize = 8;
/// Calls per `call_many` batch in the pipelined mode.
const BATCH: usize = 256;
/// How long each concurrent / pipelined measurement runs.
const RUN_FOR: Duration = Duration::from_millis(300);
/// CPython's create+drop count (each takes ~0.18 s on a stock CPython).
const PY_CREATES: &str = "8";

fn manager(server: &ServerProc) -> SyncManager {
    SyncManager::connect(
        &server.address.parse().expect("address"),
        crate::manager::KEY,
    )
    .expect("connect")
}

fn single(placement: Placement) -> Vec<f64> {
    let (server_cpu, client_cpu) = match placement {
        Placement::Unpinned => (None, None),
        Placement::SameCpu => (Some(0), Some(0)),
        Placement::CrossCpu => (Some(1), Some(0)),
    };
    let server = ServerProc::start(server_cpu);
    pin(client_cpu);
    let m = manager(&server);
    let d = m.dict::<String, i64>().expect("dict");
    let l = m.list::<i64>().expect("list");
    let q = m.queue::<i64>().expect("queue");
    let lock = m.lock().expect("lock");
    let k = "k".to_string();
    d.set(&k, 0).expect("set");
    let mut samples = vec![Vec::new(); WORKLOADS.len()];
    for _ in 0..REPEATS {
        samples[0].push(rate(|| d.set(&k, 1).expect("set")));
        samples[1].push(rate(|| {
            d.get_item(&k).expect("get");
        }));
        samples[2].push(rate(|| l.append(1).expect("append")));
        samples[3].push(rate(|| {
            q.put(1).expect("put");
            q.get().expect("get");
        }));
        samples[4].push(rate(|| {
            let guard = lock.acquire().expect("acquire");
            guard.release().expect("release");
        }));
        l.clear().expect("clear");
    }
    pin(None);
    samples.into_iter().map(median).collect()
}

/// The single-client part.
pub fn run_single() {
    let mut rows = Vec::new();
    for placement in Placement::ALL {
        let raw = raw_echo(placement, Transport::Tcp);
        let mine = single(placement);
        let secs = crate::manager::PY_REPEAT_SECS.to_string();
        let repeats = REPEATS.to_string();
        let py = python(&["single", placement_name(placement), &secs, &repeats]);
        let sfx = placement.suffix();
        Workloads {
            prefix: "manager.proxy",
            sfx,
            python_label: "CPython proxy",
            raw_name: &format!("raw.tcp_loopback.pingpong_8b{sfx}"),
            raw_label: "raw TCP ping-pong",
            raw,
        }
        .push(&mut rows, &mine, &py);
    }
    report::print("manager.proxy: single client, typed proxies", &rows);
}

/// Proxies created and dropped per second.
fn create_drop() -> f64 {
    let server = ServerProc::start(None);
    let m = manager(&server);
    let figures: Vec<f64> = (0..REPEATS)
        .map(|_| {
            rate(|| {
                let d = m.dict::<String, i64>().expect("dict");
                drop(d);
            })
        })
        .collect();
    // Every dropped proxy's reference must be given back in the end.
    let client = m.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.number_of_objects().expect("count") > 0 {
        assert!(Instant::now() < deadline, "dropped proxies leaked objects");
        std::thread::sleep(Duration::from_millis(5));
    }
    median(figures)
}

/// Calls per second from `THREADS` threads sharing one connection, each
/// doing `d[k]` one at a time.
fn threads_sharing(d: &DictProxy<String, i64>) -> f64 {
    let stop = Instant::now() + RUN_FOR;
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let k = "k".to_string();
                    let mut n = 0u64;
                    while Instant::now() < stop {
                        for _ in 0..16 {
                            d.get_item(&k).expect("get");
                        }
                        n += 16;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// Calls per second through `call_many` batches of `BATCH` `d[k]` calls.
fn pipelined(client: &ManagerClient, id: ObjectId) -> f64 {
    let batch = || (0..BATCH).map(|_| Call::method(id, "__getitem__", vec!["k".into()]));
    for r in client.call_many(batch()) {
        r.expect("warm-up call");
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN_FOR {
        for r in client.call_many(batch()) {
            r.expect("pipelined call");
        }
        n += BATCH as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The create+drop and concurrent / pipelined part.
pub fn run_throughput() {
    let ours = create_drop();
    let theirs = python(&["create", PY_CREATES]);
    let theirs = theirs.first().map(|(_, v)| *v);
    let server = ServerProc::start(None);
    let m = manager(&server);
    let d = m.dict::<String, i64>().expect("dict");
    d.set("k", 1).expect("set");
    let id = d.base().token().id;
    let mut threads = Vec::new();
    let mut batches = Vec::new();
    for _ in 0..REPEATS {
        threads.push(threads_sharing(&d));
        batches.push(pipelined(m.client(), id));
    }
    let py_single = python(&["single", "unpinned", "0.3", "1"])
        .into_iter()
        .find(|(n, _)| n == "dict_get")
        .map(|(_, v)| ("CPython proxy, one at a time".to_string(), v));
    let goal = ("goal".to_string(), 300_000.0);
    let rows = vec![
        Row {
            name: "manager.proxy.create_drop".into(),
            ours,
            against: theirs.map(|t| ("CPython m.list(); del x".into(), t)),
            unit: "proxies/s",
            higher_is_better: true,
        },
        Row {
            name: "manager.proxy.create_drop.vs_goal".into(),
            ours,
            against: Some(("goal".into(), 10_000.0)),
            unit: "proxies/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager.proxy.dict_get.{THREADS}threads"),
            ours: median(threads.clone()),
            against: py_single.clone(),
            unit: "calls/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager.proxy.dict_get.{THREADS}threads.vs_goal"),
            ours: median(threads),
            against: Some(goal.clone()),
            unit: "calls/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager.pipelined.dict_get.batch{BATCH}"),
            ours: median(batches.clone()),
            against: py_single,
            unit: "calls/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager.pipelined.dict_get.batch{BATCH}.vs_goal"),
            ours: median(batches),
            against: Some(goal),
            unit: "calls/s",
            higher_is_better: true,
        },
    ];
    report::print(
        "manager.proxy: create+drop, many calls in flight on one connection",
        &rows,
    );
}

/// Runs both parts.
pub fn run() {
    run_single();
    run_throughput();
}

/// A benchmark worker process using proxies: attaches to the dict and the
/// start `Event` by token, waits for the start, does `pairs` set+get pairs
/// on its own key and prints the seconds it took.
pub(crate) fn worker(
    client: ManagerClient,
    address: &str,
    dict: ObjectId,
    start: ObjectId,
    index: u64,
    pairs: u64,
) {
    let token = |typeid: &str, id| Token {
        typeid: typeid.into(),
        address: address.into(),
        id,
    };
    let m = SyncManager::from_client(client);
    let d: DictProxy<String, i64> = DictProxy::from_base(
        BaseProxy::from_token(m.client().clone(), token("dict", dict)).expect("attach dict"),
    );
    let event =
        BaseProxy::from_token(m.client().clone(), token("Event", start)).expect("attach event");
    event.call("wait", vec![]).expect("wait");
    let key = format!("k{index}");
    let cpu0 = crate::manager_cpu::cpu_ns(std::process::id());
    let began = Instant::now();
    for i in 0..pairs as i64 {
        d.set(&key, i).expect("set");
        let _: i64 = d.get_item(&key).expect("get");
    }
    println!(
        "{} {}",
        began.elapsed().as_secs_f64(),
        crate::manager_cpu::cpu_ns(std::process::id()) - cpu0
    );
}
