//! Load: 2,000 client connections open at once on one server, each making
//! a fixed mix of calls (a lock-protected counter, a dict, a shared list, a
//! queue, an object of its own), with no update lost and no object left;
//! once they are gone the server's resident memory is back near its
//! baseline (taken after a first wave, since the allocator keeps what it
//! freed for reuse), wave after wave.
//!
//! Sizes: `MP_SUITE_CONNECTIONS` (default 2,000) and `MP_SUITE_ROUNDS`
//! (default 2) scale it up for a soak run, e.g.
//! `MP_SUITE_CONNECTIONS=10000 MP_SUITE_ROUNDS=20 cargo test --release -p mp-tests --test server_suite_load`.

use std::sync::Arc;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::{ObjectId, Value};
use mp_tests::mpserver::{eventually, ServerProcess};
use multiprocessing::managers::ManagerClient;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Shared {
    lock: ObjectId,
    counter: ObjectId,
    dict: ObjectId,
    list: ObjectId,
    queue: ObjectId,
}

fn call(cl: &ManagerClient, id: ObjectId, m: &str, a: Vec<Value>) -> Value {
    cl.call_method(id, m, a, Kwargs::new())
        .unwrap_or_else(|e| panic!("{m}: {e}"))
        .into_value()
        .unwrap()
}

/// Opens `n` connections, runs `rounds` of the mix on each from
/// `threads` threads, checks the totals, and closes them. Returns the
/// server's VmRSS (KiB) while they were open.
fn wave(
    server: &ServerProcess,
    c: &ManagerClient,
    s: &Arc<Shared>,
    n: usize,
    rounds: usize,
) -> u64 {
    const THREADS: usize = 32;
    let clients: Vec<ManagerClient> = (0..n).map(|_| server.client()).collect();
    // The server counts a session just after its welcome is sent.
    assert!(eventually(
        Duration::from_secs(30),
        || c.status().unwrap().connections as usize == n + 1
    ));
    let before = call(c, s.counter, "get", vec![]).as_int().unwrap();
    let clients = Arc::new(clients);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let clients = Arc::clone(&clients);
            let s = Arc::clone(s);
            std::thread::spawn(move || {
                for (i, cl) in clients.iter().enumerate().skip(t).step_by(THREADS) {
                    let own = cl.create("list", vec![], Kwargs::new()).unwrap().token.id;
                    for r in 0..rounds as i64 {
                        assert_eq!(call(cl, s.lock, "acquire", vec![]), Value::Bool(true));
                        let v = call(cl, s.counter, "get", vec![]).as_int().unwrap();
                        call(cl, s.counter, "set", vec![(v + 1).into()]);
                        call(cl, s.lock, "release", vec![]);
                        let key = Value::Int(i as i64);
                        call(cl, s.dict, "__setitem__", vec![key.clone(), r.into()]);
                        assert_eq!(call(cl, s.dict, "__getitem__", vec![key]), r.into());
                        call(cl, s.list, "append", vec![r.into()]);
                        call(cl, s.queue, "put", vec![r.into()]);
                        call(cl, s.queue, "get", vec![]);
                        call(cl, own, "append", vec![r.into()]);
                        assert_eq!(call(cl, own, "__len__", vec![]), (r + 1).into());
                    }
                    // `own` is left for the session's end to free.
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let after = call(c, s.counter, "get", vec![]).as_int().unwrap();
    assert_eq!(after - before, (n * rounds) as i64, "lost updates");
    assert_eq!(call(c, s.dict, "__len__", vec![]), (n as i64).into());
    assert_eq!(call(c, s.queue, "qsize", vec![]), 0.into());
    let open = server.vm_rss_kib();
    drop(clients);
    assert!(
        eventually(Duration::from_secs(60), || c.status().unwrap().connections
            == 1),
        "sessions did not end"
    );
    open
}

#[test]
fn two_thousand_connections_lose_nothing_and_memory_returns() {
    let n = env_or("MP_SUITE_CONNECTIONS", 2000);
    let rounds = env_or("MP_SUITE_ROUNDS", 2);
    let server = ServerProcess::start();
    let c = server.client();
    let make = |t: &str, a: Vec<Value>| c.create(t, a, Kwargs::new()).unwrap().token.id;
    let s = Arc::new(Shared {
        lock: make("Lock", vec![]),
        counter: make("Value", vec!["q".into(), 0.into()]),
        dict: make("dict", vec![]),
        list: make("list", vec![]),
        queue: make("Queue", vec![]),
    });
    let objects = c.number_of_objects().unwrap();
    // A first wave grows the allocator's pools to their working size (it
    // keeps freed memory for reuse rather than returning it to the
    // system); the baseline is taken after it, with only the first client
    // connected, and later waves must not grow it.
    let cold = server.vm_rss_kib();
    let first = wave(&server, &c, &s, n, 1);
    let baseline = server.vm_rss_kib();
    let peak = wave(&server, &c, &s, n, rounds).max(wave(&server, &c, &s, n, rounds));
    let after = server.vm_rss_kib();
    eprintln!(
        "VmRSS: {cold} KiB cold, {first} KiB with {n} connections open, {baseline} KiB \
         after they closed (baseline), {peak} KiB at most in two more waves, {after} KiB after"
    );
    assert_eq!(c.number_of_objects().unwrap(), objects, "objects leaked");
    assert_eq!(
        call(&c, s.list, "__len__", vec![]),
        ((n + 2 * n * rounds) as i64).into()
    );
    // Two more waves of n connections may grow it by an eighth plus 4 MiB
    // of allocator slack at most: a leak of 2 KiB per connection (8 MiB
    // over the 4,000 of the default size) exceeds that. (Observed: 2,000
    // open connections cost about 11 MiB; the two later waves add under
    // 1 MiB.)
    assert!(
        after <= baseline + baseline / 8 + 4 * 1024,
        "VmRSS grew from {baseline} KiB to {after} KiB"
    );
}
