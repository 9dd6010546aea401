//! The reading role the async client's tasks share with each other and
//! with the blocking client's threads (`managers::client::reading`),
//! against the real `mpserver`: futures dropped at any point, including
//! the one woken to take over reading, never leave the connection without
//! a reader; and a blocking and an async client on one connection answer
//! each other's callers.

use mp_proto::message::Kwargs;
use mp_proto::Value;
use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::runtimes::{on_both_runtimes, Jitter, LIMIT};
use multiprocessing::connection::Address;
use multiprocessing::managers::asyncio::{AsyncManagerClient, AsyncProxyType, AsyncSyncManager};
use multiprocessing::managers::{ConnectOptions, ManagerClient, SyncManager};
use tokio::time::timeout;

fn options(channel: bool) -> ConnectOptions {
    ConnectOptions {
        shared_memory: channel,
        ..ConnectOptions::default()
    }
}

#[test]
fn futures_dropped_at_random_points_never_strand_the_reader() {
    let server = ServerProcess::start_with(Options::default());
    let address: Address = server.address.parse().unwrap();
    for channel in [true, false] {
        on_both_runtimes(|| {
            let (address, key) = (address.clone(), server.key.clone());
            async move {
                let client = AsyncManagerClient::connect_with(&address, &key, &options(channel))
                    .await
                    .unwrap();
                let manager = AsyncSyncManager::from_client(client.clone());
                let d = manager.dict::<String, i64>().await.unwrap();
                d.set("k", 7).await.unwrap();
                let tasks: Vec<_> = (0..16u64)
                    .map(|t| {
                        let d = d.clone();
                        tokio::spawn(async move {
                            let mut jitter = Jitter(0x9e37_79b9 + t);
                            let mut answered = 0;
                            for _ in 0..300 {
                                // A deadline of 0–40 µs drops the call's
                                // future before, while or after it reads
                                // (or was woken to read) for the others.
                                let cut = jitter.micros(40);
                                if let Ok(got) = timeout(cut, d.get("k")).await {
                                    assert_eq!(got.unwrap(), Some(7));
                                    answered += 1;
                                }
                                if jitter.next_u64() % 4 == 0 {
                                    tokio::task::yield_now().await;
                                }
                            }
                            // Whoever was left reading, every call still
                            // gets its answer.
                            for _ in 0..20 {
                                assert_eq!(d.get("k").await.unwrap(), Some(7));
                            }
                            answered
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                client.ping().await.unwrap();
            }
        });
    }
}

#[test]
fn a_blocking_and_an_async_client_share_one_connection() {
    let server = ServerProcess::start_with(Options::default());
    let address: Address = server.address.parse().unwrap();
    for channel in [true, false] {
        let sync = ManagerClient::connect_with(&address, &server.key, &options(channel)).unwrap();
        // The last round's connection may still be closing on the server.
        assert!(eventually(LIMIT, || sync.status().unwrap().connections == 1));
        on_both_runtimes(|| {
            let sync = sync.clone();
            async move {
                let client = AsyncManagerClient::from_sync(&sync);
                assert!(client.to_sync().same_connection(&sync));
                let manager = AsyncSyncManager::from_client(client.clone());
                let q = manager.queue::<i64>().await.unwrap();
                let d = manager.dict::<String, i64>().await.unwrap();
                let (qid, did) = (q.base().token().id, d.base().token().id);
                // Tasks blocked in `get` while threads call on the same
                // connection: the threads' reads deliver the tasks'
                // answers and the other way round.
                let getters: Vec<_> = (0..8)
                    .map(|_| {
                        let q = q.clone();
                        tokio::spawn(async move { q.get().await.unwrap() })
                    })
                    .collect();
                let callers = {
                    let sync = sync.clone();
                    tokio::task::spawn_blocking(move || {
                        let threads: Vec<_> = (0..4)
                            .map(|_| {
                                let sync = sync.clone();
                                std::thread::spawn(move || {
                                    for _ in 0..500 {
                                        sync.call_method(did, "__len__", vec![], Kwargs::new())
                                            .unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in threads {
                            t.join().unwrap();
                        }
                        for i in 0..8 {
                            sync.call_method(qid, "put", vec![Value::Int(i)], Kwargs::new())
                                .unwrap();
                        }
                    })
                };
                for _ in 0..500 {
                    d.len().await.unwrap();
                }
                callers.await.unwrap();
                let mut got = Vec::new();
                for g in getters {
                    got.push(g.await.unwrap());
                }
                got.sort();
                assert_eq!(got, (0..8).collect::<Vec<_>>());
            }
        });
        // One connection for both APIs.
        assert_eq!(sync.status().unwrap().connections, 1);
    }
}

#[test]
fn sync_and_async_managers_connecting_to_one_server_share_a_connection() {
    let server = ServerProcess::start_with(Options::default());
    let address: Address = server.address.parse().unwrap();
    on_both_runtimes(|| async {
        // Blocking first, async second: the async manager reuses it.
        let sync = SyncManager::connect(&address, &server.key).unwrap();
        let manager = AsyncSyncManager::connect(&address, &server.key)
            .await
            .unwrap();
        assert!(manager.client().to_sync().same_connection(sync.client()));
        let d = manager.dict::<String, i64>().await.unwrap();
        d.set("a", 1).await.unwrap();
        // One connection for both (the last round's may still be closing).
        let client = sync.client().clone();
        assert!(eventually(LIMIT, || client.status().unwrap().connections == 1));
        drop((sync, d, manager));

        // Async first, blocking second, then another async one.
        let first = AsyncSyncManager::connect(&address, &server.key)
            .await
            .unwrap();
        let sync = SyncManager::connect(&address, &server.key).unwrap();
        assert!(first.client().to_sync().same_connection(sync.client()));
        let again = AsyncSyncManager::connect(&address, &server.key)
            .await
            .unwrap();
        assert!(again.client().to_sync().same_connection(sync.client()));
        let client = sync.client().clone();
        assert!(eventually(LIMIT, || client.status().unwrap().connections == 1));

        // Another key is another connection (and refused here).
        assert!(AsyncSyncManager::connect(&address, b"another key")
            .await
            .is_err());
    });
}
