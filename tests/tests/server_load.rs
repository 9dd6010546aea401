//! Load: a thousand connections on one lock-protected counter, and eight
//! producer processes feeding eight consumers through one queue.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;

use mp_proto::message::Kwargs;
use mp_proto::{ObjectId, Value};
use mp_tests::client_process;
use mp_tests::mpserver::ServerProcess;
use multiprocessing::managers::ManagerClient;

#[test]
fn a_thousand_connections_lose_no_update() {
    const CONNECTIONS: usize = 1000;
    const THREADS: usize = 50;
    const INCREMENTS: i64 = 3;
    let server = ServerProcess::start();
    let c = server.client();
    let lock = c.create("Lock", vec![], Kwargs::new()).unwrap().token.id;
    let counter = c
        .create("Value", vec!["i".into(), 0.into()], Kwargs::new())
        .unwrap()
        .token
        .id;
    let clients: Vec<ManagerClient> = (0..CONNECTIONS).map(|_| server.client()).collect();
    assert_eq!(c.status().unwrap().connections as usize, CONNECTIONS + 1);
    let clients = Arc::new(clients);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let clients = Arc::clone(&clients);
            std::thread::spawn(move || {
                let call = |cl: &ManagerClient, id: ObjectId, m: &str, a: Vec<Value>| {
                    cl.call_method(id, m, a, Kwargs::new())
                        .unwrap()
                        .into_value()
                        .unwrap()
                };
                for _ in 0..INCREMENTS {
                    for cl in clients.iter().skip(t).step_by(THREADS) {
                        assert_eq!(call(cl, lock, "acquire", vec![]), Value::Bool(true));
                        let v = call(cl, counter, "get", vec![]).as_int().unwrap();
                        call(cl, counter, "set", vec![(v + 1).into()]);
                        call(cl, lock, "release", vec![]);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = c
        .call_method(counter, "get", vec![], Kwargs::new())
        .unwrap()
        .into_value()
        .unwrap();
    assert_eq!(total, Value::Int(CONNECTIONS as i64 * INCREMENTS));
}

#[test]
fn eight_producers_and_eight_consumers_lose_and_duplicate_nothing() {
    const PROCS: i64 = 8;
    const ITEMS: i64 = 10_000;
    let server = ServerProcess::start();
    let c = server.client();
    let q = c
        .create("Queue", vec![100.into()], Kwargs::new())
        .unwrap()
        .token
        .id;
    let spawn = |args: Vec<String>| {
        client_process::spawn(
            env!("CARGO_BIN_EXE_mp-server-client"),
            &server,
            &args,
            Stdio::piped(),
        )
    };
    let consumers: Vec<_> = (0..PROCS)
        .map(|_| spawn(vec!["consume".into(), q.0.to_string()]))
        .collect();
    let producers: Vec<_> = (0..PROCS)
        .map(|p| {
            spawn(vec![
                "produce".into(),
                q.0.to_string(),
                p.to_string(),
                ITEMS.to_string(),
            ])
        })
        .collect();
    for p in producers {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success());
    }
    // One end marker per consumer, after every item.
    for _ in 0..PROCS {
        c.call_method(q, "put", vec![Value::None], Kwargs::new())
            .unwrap();
    }
    let mut seen = HashSet::new();
    let mut count = 0;
    for consumer in consumers {
        let out = consumer.wait_with_output().unwrap();
        assert!(out.status.success());
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            count += 1;
            assert!(seen.insert(line.to_owned()), "{line} was delivered twice");
        }
    }
    assert_eq!(count, PROCS * ITEMS);
    for p in 0..PROCS {
        for i in [0, ITEMS / 2, ITEMS - 1] {
            assert!(seen.contains(&format!("{p} {i}")));
        }
    }
    assert_eq!(
        c.call_method(q, "qsize", vec![], Kwargs::new())
            .unwrap()
            .into_value()
            .unwrap(),
        Value::Int(0)
    );
}
