//! The async client (`managers::asyncio`) against the real `mpserver`,
//! under tokio's current-thread and multi-thread runtimes, over the
//! shared-memory channel, loopback TCP and a Unix socket: blocked calls
//! do not hold up others on the one connection, dropped blocking calls
//! take and hold nothing, and a restarted server is found again.

use std::collections::BTreeSet;
use std::time::Duration;

use mp_proto::codec::decode;
use mp_proto::message::{Outcome, Response, Target};
use mp_proto::{ErrorKind, Value};
use mp_tests::mpserver::{Options, Restartable, ServerProcess};
use mp_tests::raw::{request, RawPeer};
use mp_tests::runtimes::{on_both_runtimes, Jitter};
use multiprocessing::connection::Address;
use multiprocessing::managers::asyncio::{AsyncManagerClient, AsyncQueueProxy, AsyncSyncManager};
use multiprocessing::managers::{ConnectOptions, ManagerError};
use multiprocessing::queues::QueueError;
use tokio::time::timeout;

/// The three ways to reach a server on this machine.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Channel,
    Tcp,
    Unix,
}

async fn connect(server: &ServerProcess, transport: Transport) -> AsyncSyncManager {
    let address: Address = server.address.parse().unwrap();
    let options = ConnectOptions {
        shared_memory: matches!(transport, Transport::Channel),
        ..ConnectOptions::default()
    };
    let client = AsyncManagerClient::connect_with(&address, &server.key, &options)
        .await
        .unwrap();
    assert_eq!(
        client.uses_shared_memory(),
        matches!(transport, Transport::Channel)
    );
    AsyncSyncManager::from_client(client)
}

fn server_for(transport: Transport) -> ServerProcess {
    ServerProcess::start_with(Options {
        unix: matches!(transport, Transport::Unix),
        ..Options::default()
    })
}

#[test]
fn blocked_gets_do_not_hold_up_other_calls() {
    for transport in [Transport::Channel, Transport::Tcp, Transport::Unix] {
        let server = server_for(transport);
        on_both_runtimes(|| async {
            let manager = connect(&server, transport).await;
            let q = manager.queue::<i64>().await.unwrap();
            let d = manager.dict::<String, i64>().await.unwrap();
            let getters: Vec<_> = (0..50)
                .map(|_| {
                    let q = q.clone();
                    tokio::spawn(async move { q.get().await })
                })
                .collect();
            // Fifty gets wait on the server; every other call goes on.
            let workers: Vec<_> = (0..8)
                .map(|w| {
                    let d = d.clone();
                    tokio::spawn(async move {
                        for i in 0..50 {
                            let key = format!("{w}-{i}");
                            d.set(key.as_str(), i).await.unwrap();
                            assert_eq!(d.get_item(key.as_str()).await.unwrap(), i);
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.unwrap();
            }
            assert_eq!(d.len().await.unwrap(), 400);
            for i in 0..50 {
                q.put(i).await.unwrap();
            }
            let mut got = Vec::new();
            for g in getters {
                got.push(g.await.unwrap().unwrap());
            }
            got.sort();
            assert_eq!(got, (0..50).collect::<Vec<_>>(), "{transport:?}");
        });
    }
}

/// Consumers that give up on `get` at random moments while a producer
/// puts: every item is received exactly once or is still in the queue.
async fn gets_cancelled_at_random(manager: &AsyncSyncManager, seed: u64) {
    const ITEMS: i64 = 300;
    let q: AsyncQueueProxy<i64> = manager.queue().await.unwrap();
    let consumers: Vec<_> = (0..4)
        .map(|c| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut jitter = Jitter(seed + c);
                let mut got = Vec::new();
                for _ in 0..150 {
                    if let Ok(item) = timeout(jitter.micros(400), q.get()).await {
                        got.push(item.unwrap());
                    }
                }
                got
            })
        })
        .collect();
    let mut jitter = Jitter(seed ^ 0x5555);
    for i in 0..ITEMS {
        q.put(i).await.unwrap();
        tokio::time::sleep(jitter.micros(100)).await;
    }
    let mut all = Vec::new();
    for c in consumers {
        all.extend(c.await.unwrap());
    }
    // Undone takes arrive as requests after the consumers' last answer:
    // a ping behind them sees them done.
    manager.client().ping().await.unwrap();
    loop {
        match q.get_nowait().await {
            Ok(item) => all.push(item),
            Err(QueueError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let distinct: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "an item came out twice");
    assert_eq!(distinct, (0..ITEMS).collect(), "an item was lost");
}

#[test]
fn cancelled_gets_lose_no_item() {
    for transport in [Transport::Channel, Transport::Tcp] {
        let server = server_for(transport);
        on_both_runtimes(|| async {
            let manager = connect(&server, transport).await;
            gets_cancelled_at_random(&manager, 17).await;
            // Nothing of ours is left on the server but what we hold.
            let info = manager.client().debug_info().await.unwrap();
            assert!(info.iter().all(|o| o.refcount <= 1), "{info:?}");
        });
    }
}

#[test]
fn cancelled_acquires_leave_nothing_held() {
    let server = ServerProcess::start();
    on_both_runtimes(|| async {
        let manager = connect(&server, Transport::Channel).await;
        let lock = manager.lock().await.unwrap();
        let sem = manager.semaphore(2).await.unwrap();
        let cond = manager.condition().await.unwrap();
        let tasks: Vec<_> = (0..6)
            .map(|t| {
                let (lock, sem, cond) = (lock.clone(), sem.clone(), cond.clone());
                tokio::spawn(async move {
                    let mut jitter = Jitter(99 + t);
                    for _ in 0..60 {
                        if let Ok(guard) = timeout(jitter.micros(300), lock.acquire()).await {
                            tokio::time::sleep(jitter.micros(50)).await;
                            drop(guard.unwrap());
                        }
                        if let Ok(guard) = timeout(jitter.micros(300), sem.acquire()).await {
                            tokio::task::yield_now().await;
                            guard.unwrap().release().await.unwrap();
                        }
                        if let Ok(guard) = timeout(jitter.micros(300), cond.acquire()).await {
                            let mut guard = guard.unwrap();
                            // A wait dropped part way leaves the lock free.
                            let _ = timeout(jitter.micros(200), guard.wait()).await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        manager.client().ping().await.unwrap();
        let held = lock.try_acquire().await.unwrap();
        assert!(held.is_some(), "a cancelled acquire left the lock held");
        let a = sem.try_acquire().await.unwrap();
        let b = sem.try_acquire().await.unwrap();
        assert!(a.is_some() && b.is_some(), "a semaphore unit leaked");
        let c = cond.acquire_timeout(Duration::from_secs(30)).await.unwrap();
        assert!(c.is_some(), "a cancelled condition call left its lock held");
    });
}

#[test]
fn cancelled_waits_and_joins_leave_nothing_behind() {
    let server = ServerProcess::start();
    on_both_runtimes(|| async {
        let manager = connect(&server, Transport::Channel).await;
        let event = manager.event().await.unwrap();
        let q = manager.joinable_queue::<i64>().await.unwrap();
        q.put(1).await.unwrap();
        for _ in 0..100 {
            assert!(timeout(Duration::from_micros(200), event.wait())
                .await
                .is_err());
            assert!(timeout(Duration::from_micros(200), q.join()).await.is_err());
        }
        event.set().await.unwrap();
        event.wait().await.unwrap();
        assert_eq!(q.get().await.unwrap(), 1);
        q.task_done().await.unwrap();
        q.join().await.unwrap();
    });
}

#[test]
fn the_server_drops_a_cancelled_call_and_answers_both() {
    let server = ServerProcess::start();
    let mut peer = RawPeer::welcomed(&server.address, &server.key);
    let Outcome::Proxy(q) = peer.call(Target::Server, "create", vec!["Queue".into()]) else {
        panic!("no queue")
    };
    let queue = Target::Object(q.token.id);
    peer.frame(&request(100, queue, "get", vec![]));
    peer.frame(&request(
        101,
        Target::Server,
        "cancel",
        vec![Value::Int(100)],
    ));
    let mut answers = Vec::new();
    for _ in 0..2 {
        let frame = peer.read().expect("an answer");
        answers.push(decode::<Response>(&frame).unwrap());
    }
    answers.sort_by_key(|r| r.id);
    assert_eq!(answers[1].outcome, Outcome::Return(Value::Bool(true)));
    match &answers[0].outcome {
        Outcome::Error(e) => assert_eq!(e.kind, ErrorKind::RuntimeError),
        other => panic!("the cancelled get answered {other:?}"),
    }
    // Nothing waits any more: a put stays in the queue.
    peer.call(queue, "put", vec![Value::Int(7)]);
    assert_eq!(
        peer.call(queue, "qsize", vec![]),
        Outcome::Return(Value::Int(1))
    );
    // Nothing to cancel: False.
    assert_eq!(
        peer.call(Target::Server, "cancel", vec![Value::Int(100)]),
        Outcome::Return(Value::Bool(false))
    );
}

#[test]
fn a_server_restart_under_load() {
    let mut server = Restartable::start(&["jobs=Queue", "table=dict"]);
    let address = server.address();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let manager =
            AsyncSyncManager::connect_with(&address, &server.key, &ConnectOptions::default())
                .await
                .unwrap();
        let table = manager
            .lookup::<multiprocessing::managers::asyncio::AsyncDictProxy<String, i64>>("table")
            .await
            .unwrap();
        let jobs = manager
            .lookup::<AsyncQueueProxy<i64>>("jobs")
            .await
            .unwrap();
        let private = manager.dict::<String, i64>().await.unwrap();
        // A get blocked across the restart resumes on the new server.
        let waiting = {
            let jobs = jobs.clone();
            tokio::spawn(async move { jobs.get().await })
        };
        // Load: calls that may fail with ConnectionLost while it is down,
        // going on until well after the reconnection.
        let load: Vec<_> = (0..4)
            .map(|w| {
                let table = table.clone();
                let client = manager.client().clone();
                tokio::spawn(async move {
                    let mut after = 0;
                    let mut n = 0;
                    while after < 100 {
                        n += 1;
                        match table.set(format!("{w}").as_str(), n).await {
                            Ok(()) if client.generation() > 0 => after += 1,
                            Ok(()) => {}
                            Err(ManagerError::ConnectionLost(_)) => {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let seen = manager.client().generation();
        let server = tokio::task::spawn_blocking(move || {
            server.kill();
            server.restart();
            server
        })
        .await
        .unwrap();
        assert!(manager.client().wait_reconnected(seen).await);
        for l in load {
            l.await.unwrap();
        }
        // The named queue is found again by name; the blocked get resumes.
        jobs.put(5).await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 5);
        // A session object is lost with the old server.
        assert!(matches!(
            private.len().await,
            Err(ManagerError::ObjectLost { .. })
        ));
        assert_eq!(table.len().await.unwrap(), 4);
        drop(server);
    });
}
