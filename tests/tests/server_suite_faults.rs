//! Faults: client processes SIGKILLed in the middle of their calls, in a
//! loop, and a server SIGTERMed with calls in flight. Whatever dies, the
//! server gives back what the dead held (references, lock, semaphore
//! units, waits) and nobody hangs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::{ErrorKind, ObjectId, Value};
use mp_tests::mpserver::{eventually, ServerProcess};
use multiprocessing::managers::{ManagerClient, ManagerError};

/// `repr()` of an object, as text.
fn repr(c: &ManagerClient, id: ObjectId) -> String {
    c.call_method(id, "__repr__", vec![], Kwargs::new())
        .unwrap()
        .into_value()
        .unwrap()
        .to_string()
}

fn busy(server: &ServerProcess, lock: ObjectId, sem: ObjectId, q: ObjectId) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mp-server-client"))
        .arg(&server.address)
        .arg(server.key_path())
        .args([
            "busy",
            &lock.0.to_string(),
            &sem.0.to_string(),
            &q.0.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn clients_killed_mid_call_in_a_loop_leave_nothing_behind() {
    const ROUNDS: u64 = 8;
    let server = ServerProcess::start();
    let c = server.client();
    let lock = c.create("Lock", vec![], Kwargs::new()).unwrap().token.id;
    let sem = c
        .create("BoundedSemaphore", vec![2.into()], Kwargs::new())
        .unwrap()
        .token
        .id;
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    let baseline = c.number_of_objects().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..ROUNDS {
        // Two processes: the first to take the lock prints "ready" and
        // keeps calls in flight; the other waits for the lock inside
        // `acquire`. Both are killed, at a varying moment.
        let mut children = [busy(&server, lock, sem, q), busy(&server, lock, sem, q)];
        let ready = {
            let (tx, rx) = mpsc::channel();
            for child in &mut children {
                let out = child.stdout.take().unwrap();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let _ = BufReader::new(out).read_line(&mut line);
                    let _ = tx.send(line);
                });
            }
            rx
        };
        assert_eq!(
            ready.recv_timeout(Duration::from_secs(60)).unwrap().trim(),
            "ready"
        );
        assert!(eventually(Duration::from_secs(30), || repr(&c, q)
            .contains("getters=1")
            && repr(&c, lock).contains("waiters=1")));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 20));
        for child in &mut children {
            child.kill().unwrap();
        }
        for child in &mut children {
            child.wait().unwrap();
        }
        assert!(
            eventually(Duration::from_secs(30), || {
                c.status().unwrap().connections == 1
            }),
            "round {round}: sessions not ended"
        );
        assert_eq!(c.number_of_objects().unwrap(), baseline, "round {round}");
        assert!(repr(&c, q).contains("getters=0"), "round {round}");
        assert!(
            repr(&c, lock).contains("unlocked, waiters=0"),
            "round {round}"
        );
        assert!(repr(&c, sem).contains("value=2/2"), "round {round}");
    }
    // The lock works for the survivor.
    let take = |m: &str, args: Vec<Value>| {
        c.call_method(lock, m, args, Kwargs::new())
            .unwrap()
            .into_value()
            .unwrap()
    };
    assert_eq!(take("acquire", vec![false.into()]), Value::Bool(true));
    take("release", vec![]);
}

/// How a call ended when the server went away under it.
fn ended_cleanly(r: &Result<(), ManagerError>) -> bool {
    match r {
        Ok(()) => true,
        Err(ManagerError::ConnectionLost(_)) => true,
        Err(ManagerError::Remote(e)) => e.kind == ErrorKind::ShuttingDown,
        Err(_) => false,
    }
}

#[test]
fn sigterm_with_calls_in_flight_answers_or_fails_cleanly() {
    let mut server = ServerProcess::start();
    let c = server.client();
    let q = c.create("Queue", vec![], Kwargs::new()).unwrap().token.id;
    let d = c.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    let (tx, rx) = mpsc::channel();
    // Waiting calls on their own connections and on a shared one, and
    // back-to-back quick calls, all in flight when SIGTERM arrives.
    let shared = server.client();
    let mut clients: Vec<ManagerClient> = (0..4).map(|_| server.client()).collect();
    clients.extend((0..4).map(|_| shared.clone()));
    for (i, cl) in clients.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = if i % 2 == 0 {
                cl.call_method(q, "get", vec![], Kwargs::new()).map(drop)
            } else {
                (0i64..)
                    .try_for_each(|n| {
                        cl.call_method(d, "__setitem__", vec![n.into(), n.into()], Kwargs::new())
                            .map(drop)
                    })
                    .map(drop)
            };
            // After the server is gone, a new call fails at once too.
            let after = cl
                .call_method(d, "__len__", vec![], Kwargs::new())
                .map(drop);
            let _ = tx.send((i, r, after));
        });
    }
    drop(tx);
    assert!(eventually(Duration::from_secs(30), || repr(&c, q)
        .contains("getters=4")));
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let mut ended = 0;
    for _ in 0..8 {
        let (i, r, after) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a call in flight hung after SIGTERM");
        assert!(ended_cleanly(&r), "client {i}: {r:?}");
        if i % 2 == 1 {
            assert!(r.is_err(), "client {i} looped forever");
        }
        assert!(
            matches!(after, Err(ManagerError::ConnectionLost(_))),
            "client {i} after: {after:?}"
        );
        ended += 1;
    }
    assert_eq!(ended, 8);
}
