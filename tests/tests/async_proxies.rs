//! The async proxies against real servers: those `#[shared]` writes for a
//! program's own types (the SDK's `asyncio` feature seen from a crate
//! that declares no feature of its own), the chunked iterators and
//! slices of the async list, array and dict, and the async typed
//! proxies' methods beside the blocking ones'.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::Poll;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::ErrorKind;
use mp_tests::mpserver::{Options, ServerProcess};
use mp_tests::runtimes::{on_both_runtimes, Jitter, LIMIT};
use multiprocessing::connection::Address;
use multiprocessing::managers::asyncio::{
    AsyncDictIter, AsyncDictProxy, AsyncListIter, AsyncProxyType, AsyncSyncManager,
};
use multiprocessing::managers::{
    shared, BaseManager, BaseProxy, IntoSlice, ManagerError, MethodError, NewObject, PyObject,
    QueueProxy, Slice,
};
use serde::{Deserialize, Serialize};
use tokio::time::timeout;

#[allow(dead_code)]
#[path = "../../client/examples/manager_maths.rs"]
mod maths;

/// A counter with every kind of method `#[shared]` serves.
#[derive(Default)]
pub struct Tally {
    n: AtomicI64,
    label: String,
}

/// `take`'s own error.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Underflow {
    short_by: i64,
}

#[shared]
impl Tally {
    /// Starts at `n`, labelled.
    #[shared(new)]
    pub fn starting_at(n: i64, label: &str) -> Self {
        Tally {
            n: AtomicI64::new(n),
            label: label.to_owned(),
        }
    }
    /// Adds `by`; the new count.
    pub fn add(&self, by: i64) -> i64 {
        self.n.fetch_add(by, Ordering::SeqCst) + by
    }
    /// Takes `by` away, unless that goes below zero.
    pub fn take(&mut self, by: i64) -> Result<i64, Underflow> {
        let n = self.n.get_mut();
        if by > *n {
            return Err(Underflow { short_by: by - *n });
        }
        *n -= by;
        Ok(*n)
    }
    /// The label (a borrowed result).
    pub fn label(&self) -> &str {
        &self.label
    }
    /// Replaces the label (a borrowed parameter).
    pub fn relabel(&mut self, label: &str) {
        self.label = label.to_owned();
    }
    /// A new tally on the server, as a proxy.
    pub fn fork(&self) -> NewObject<Tally> {
        NewObject(Tally {
            n: AtomicI64::new(self.n.load(Ordering::SeqCst)),
            label: format!("{} copy", self.label),
        })
    }
    /// Waits until the count reaches `n` (on a thread of its own).
    #[shared(blocking)]
    pub fn wait_for(&self, n: i64) -> i64 {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let now = self.n.load(Ordering::SeqCst);
            if now >= n || std::time::Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    /// Served, not exposed.
    pub fn _hidden(&self) -> i64 {
        0
    }
}

/// A started server with `Tally` and the example's `MathsClass`.
/// The address of a server of this process serving the test's
/// `#[shared]` types, on a thread of its own (`get_server().serve_forever()`):
/// no fork, which in a test binary whose other tests run tokio runtimes
/// could copy a lock another thread holds into the child.
fn start_server() -> Address {
    let mut manager = BaseManager::new("127.0.0.1:0", b"shared-async");
    manager.register::<Tally>().unwrap();
    manager.register::<maths::MathsClass>().unwrap();
    let server = manager.get_server().unwrap();
    let address: Address = server.address().parse().unwrap();
    std::thread::spawn(move || server.serve_forever());
    address
}

async fn connect(server: &Address) -> AsyncSyncManager {
    AsyncSyncManager::connect(server, b"shared-async")
        .await
        .unwrap()
}

#[test]
fn the_maths_examples_type_has_an_async_proxy() {
    let server = start_server();
    on_both_runtimes(|| async {
        let manager = connect(&server).await;
        let m: maths::AsyncMathsClassProxy =
            manager.create_shared::<maths::MathsClass>().await.unwrap();
        assert_eq!(m.add(4, 3).await.unwrap(), 7);
        assert_eq!(m.mul(7, 8).await.unwrap(), 56);
        assert_eq!(
            maths::AsyncMathsClassProxy::TYPEIDS,
            ["Maths"],
            "the typeid the attribute was given"
        );
        // One object, many tasks on one connection.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let m = m.clone();
                tokio::spawn(async move { m.mul(i, i).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let i = i as i64;
            assert_eq!(t.await.unwrap().unwrap(), i * i);
        }
    });
}

#[test]
fn every_kind_of_method_works_async() {
    let server = start_server();
    on_both_runtimes(|| async {
        let manager = connect(&server).await;
        let t = manager
            .create_shared_with::<Tally>((5, "first".to_owned()))
            .await
            .unwrap();
        assert_eq!(t.add(2).await.unwrap(), 7);
        assert_eq!(t.take(3).await.unwrap(), 4);
        match t.take(10).await {
            Err(MethodError::Raised(e)) => assert_eq!(e, Underflow { short_by: 6 }),
            other => panic!("expected the method's own error, got {other:?}"),
        }
        assert_eq!(t.label().await.unwrap(), "first");
        t.relabel("renamed").await.unwrap();
        assert_eq!(t.label().await.unwrap(), "renamed");

        // A new object comes back as the returned type's async proxy.
        let copy: AsyncTallyProxy = t.fork().await.unwrap();
        assert_eq!(copy.label().await.unwrap(), "renamed copy");
        assert_eq!(copy.take(4).await.unwrap(), 0);
        assert_eq!(t.add(0).await.unwrap(), 4, "the original is its own object");

        // Published, and found by name as its async proxy.
        manager.publish("tally", &t).await.unwrap();
        let again: AsyncTallyProxy = manager.lookup("tally").await.unwrap();
        assert_eq!(again.add(1).await.unwrap(), 5);
        let wrong = manager.lookup::<maths::AsyncMathsClassProxy>("tally").await;
        assert!(matches!(wrong, Err(ManagerError::Remote(_))), "{wrong:?}");
        manager.unpublish("tally").await.unwrap();
    });
}

#[test]
fn a_blocking_method_holds_up_nothing_and_can_be_dropped() {
    let server = start_server();
    on_both_runtimes(|| async {
        let manager = connect(&server).await;
        let t = manager
            .create_shared_with::<Tally>((0, "waits".to_owned()))
            .await
            .unwrap();
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.wait_for(3).await })
        };
        // The waiting call holds up neither the connection nor the object.
        for _ in 0..3 {
            t.add(1).await.unwrap();
        }
        assert!(waiter.await.unwrap().unwrap() >= 3);

        // A dropped wait leaves the connection usable (the method runs
        // on to its end on the server: reaching 10 ends it).
        let dropped = timeout(Duration::from_millis(20), t.wait_for(10)).await;
        assert!(dropped.is_err(), "the wait cannot have finished");
        assert_eq!(t.add(7).await.unwrap(), 10);
    });
}

/// A manager on the real `mpserver` binary, with `args` for `serve`.
fn binary_server(args: &[&str]) -> ServerProcess {
    ServerProcess::start_with(Options::args(args))
}

async fn connect_to(server: &ServerProcess) -> AsyncSyncManager {
    let address: Address = server.address.parse().unwrap();
    AsyncSyncManager::connect(&address, &server.key)
        .await
        .unwrap()
}

/// Requests the server has answered so far.
async fn requests(m: &AsyncSyncManager) -> u64 {
    m.client().status().await.unwrap().requests_total
}

/// Every item `it` yields.
async fn all<T>(mut it: AsyncListIter<'_, T>) -> Vec<T>
where
    T: serde::de::DeserializeOwned,
{
    let mut got = Vec::new();
    while let Some(x) = it.next().await {
        got.push(x.unwrap());
    }
    got
}

/// Every pair `it` yields.
async fn all_pairs<K, V>(mut it: AsyncDictIter<'_, K, V>) -> Vec<(K, V)>
where
    K: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
{
    let mut got = Vec::new();
    while let Some(x) = it.next().await {
        got.push(x.unwrap());
    }
    got
}

/// Waits until the server holds `n` objects; whether it did in time.
async fn object_count_reaches(m: &AsyncSyncManager, n: u64) -> bool {
    for _ in 0..1000 {
        if m.client().number_of_objects().await.unwrap() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// The server's exception kind.
fn raised<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> ErrorKind {
    match r {
        Err(ManagerError::Remote(e)) => e.kind,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn an_async_list_iterates_in_chunks_one_round_trip_each() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let n = 10_000i64;
        let l = m.list::<i64>().await.unwrap();
        l.extend(0..n).await.unwrap();
        let before = requests(&m).await;
        let got = all(l.iter_chunked(1024)).await;
        let used = requests(&m).await - before;
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        // ceil(10_000 / 1024) = 10 slices (the last one short ends it),
        // and the status call that reads the counter.
        assert!((10..=12).contains(&used), "{used} requests");

        // By bytes: 1024 items first, then the rest at once.
        let before = requests(&m).await;
        let got = all(l.iter()).await;
        let used = requests(&m).await - before;
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        assert!((2..=4).contains(&used), "{used} requests");

        // A chunk of one: one round trip per item, what chunks save.
        let small = m.list::<i64>().await.unwrap();
        small.extend(0..20).await.unwrap();
        let before = requests(&m).await;
        assert_eq!(
            all(small.iter_chunked(1)).await,
            (0..20).collect::<Vec<_>>()
        );
        assert!(requests(&m).await - before >= 20);

        let empty = m.list::<i64>().await.unwrap();
        assert!(empty.iter().next().await.is_none());
    });
}

#[test]
fn an_async_list_iterator_walks_by_position_as_the_blocking_one_does() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        // An item appended before the end is reached is seen.
        let l = m.list::<i64>().await.unwrap();
        l.extend(0..6).await.unwrap();
        let mut got = Vec::new();
        let mut it = l.iter_chunked(4);
        while let Some(x) = it.next().await {
            let x = x.unwrap();
            if x == 0 {
                l.append(100).await.unwrap();
            }
            got.push(x);
        }
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 100]);
        // A deletion before the position reached shows from the chunk
        // after next (the next one was read ahead), as with ListIter.
        let l = m.list::<i64>().await.unwrap();
        l.extend(0..12).await.unwrap();
        let mut got = Vec::new();
        let mut it = l.iter_chunked(4);
        while let Some(x) = it.next().await {
            let x = x.unwrap();
            if x == 0 {
                l.del(0).await.unwrap();
            }
            got.push(x);
        }
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11]);
    });
}

#[test]
fn an_async_dict_iterates_a_snapshot_in_chunks() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let n = 10_000i64;
        let d = m.dict::<i64, String>().await.unwrap();
        d.update((0..n).map(|i| (i, i.to_string()))).await.unwrap();
        let objects = m.client().number_of_objects().await.unwrap();
        let before = requests(&m).await;
        let got = all_pairs(d.iter_chunked(1024)).await;
        let used = requests(&m).await - before;
        assert_eq!(got.len(), n as usize);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, (k, v))| *k == i as i64 && *v == k.to_string()));
        // The snapshot, ten chunks, the release and the status call.
        assert!((11..=13).contains(&used), "{used} requests");
        let before = requests(&m).await;
        assert_eq!(all_pairs(d.iter()).await.len(), n as usize);
        let used = requests(&m).await - before;
        assert!((4..=7).contains(&used), "{used} requests");
        assert!(
            object_count_reaches(&m, objects).await,
            "the snapshot is released"
        );

        // Changes made while iterating are not seen: every pair, once.
        let d = m.dict::<String, i64>().await.unwrap();
        d.update([("a", 1), ("b", 2), ("c", 3)]).await.unwrap();
        let mut seen = Vec::new();
        let mut it = d.iter_chunked(2);
        while let Some(pair) = it.next().await {
            let (k, v) = pair.unwrap();
            d.del(&k).await.unwrap();
            d.set(format!("{k}{k}"), v * 10).await.unwrap();
            seen.push((k, v));
        }
        assert_eq!(
            seen,
            [("a".to_string(), 1), ("b".into(), 2), ("c".into(), 3)]
        );
        assert_eq!(d.keys().await.unwrap(), ["aa", "bb", "cc"]);

        // Dropped half way: the snapshot is released.
        let mut it = d.iter_chunked(1);
        assert!(it.next().await.unwrap().is_ok());
        drop(it);
        assert!(object_count_reaches(&m, objects + 1).await);

        let empty = m.dict::<String, i64>().await.unwrap();
        assert!(empty.iter().next().await.is_none());
    });
}

/// Drives `next` to the end, dropping it part-way at random; what it
/// yielded, in order.
macro_rules! drain_with_drops {
    ($it:expr, $jitter:expr) => {{
        let mut got = Vec::new();
        let mut dropped = 0;
        loop {
            let wait = $jitter.micros(300);
            match timeout(wait, $it.next()).await {
                Ok(Some(x)) => got.push(x.unwrap()),
                Ok(None) => break,
                Err(_) => dropped += 1,
            }
        }
        (got, dropped)
    }};
}

#[test]
fn dropped_next_calls_lose_and_leak_nothing() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let l = m.list::<i64>().await.unwrap();
        l.extend(0..3000).await.unwrap();
        let d = m.dict::<i64, i64>().await.unwrap();
        d.update((0..3000).map(|i| (i, -i))).await.unwrap();
        let objects = m.client().number_of_objects().await.unwrap();
        let mut total_dropped = 0;
        for seed in 1..=5u64 {
            let mut jitter = Jitter(seed * 7919);
            let mut it = l.iter_chunked(97);
            let (got, dropped) = drain_with_drops!(it, jitter);
            assert_eq!(got, (0..3000).collect::<Vec<_>>(), "seed {seed}");
            total_dropped += dropped;

            let mut it = d.iter_chunked(97);
            let (got, dropped) = drain_with_drops!(it, jitter);
            assert_eq!(
                got,
                (0..3000).map(|i| (i, -i)).collect::<Vec<_>>(),
                "seed {seed}: every pair once, in order"
            );
            total_dropped += dropped;
        }
        assert!(
            total_dropped > 0,
            "no next() was dropped: the test proved nothing"
        );
        // Every snapshot was released; none was left with the connection.
        assert!(object_count_reaches(&m, objects).await);
    });
}

/// The references the server counts to the object named `table`.
async fn table_refs(m: &AsyncSyncManager) -> u64 {
    let objects = m.client().debug_info().await.unwrap();
    let table = objects
        .iter()
        .find(|o| o.names.iter().any(|n| n == "table"));
    table.expect("the named dict").refcount
}

#[test]
fn dropped_creates_and_lookups_leak_no_reference() {
    let server = binary_server(&["--shared", "table=dict"]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let objects = m.client().number_of_objects().await.unwrap();
        let refs = table_refs(&m).await;
        // A thread blocked in `get` on the same connection holds the
        // reading role, so a call's first poll sends it and returns
        // `Pending`: dropping the future then abandons a call in flight.
        let sync = m.client().to_sync();
        let base = BaseProxy::create(&sync, "Queue", vec![], Kwargs::new()).unwrap();
        let wake: QueueProxy<i64> = QueueProxy::from_base(base);
        let blocked = std::thread::scope(|scope| {
            let getter = scope.spawn(|| wake.get());
            let mut dropped = 0;
            for _ in 0..200 {
                let mut create = std::pin::pin!(m.dict::<i64, i64>());
                match poll_once(create.as_mut()) {
                    Poll::Ready(d) => drop(d.unwrap()),
                    Poll::Pending => dropped += 1,
                }
                let mut found = std::pin::pin!(m.lookup::<AsyncDictProxy<String, i64>>("table"));
                match poll_once(found.as_mut()) {
                    Poll::Ready(d) => drop(d.unwrap()),
                    Poll::Pending => dropped += 1,
                }
            }
            wake.put(1).unwrap();
            assert_eq!(getter.join().unwrap().unwrap(), 1);
            dropped
        });
        drop(wake);
        assert!(
            blocked > 0,
            "no call was dropped in flight: the test proved nothing"
        );
        // The answers of the dropped calls brought references that no
        // proxy owns: each was given back.
        assert!(object_count_reaches(&m, objects).await);
        for _ in 0..1000 {
            if table_refs(&m).await == refs {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the named dict kept {} references, not {refs}",
            table_refs(&m).await
        );
    });
}

/// Polls `future` once (its request goes out), with a waker nobody uses.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    struct Unused;
    impl std::task::Wake for Unused {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unused));
    future.poll(&mut std::task::Context::from_waker(&waker))
}

#[test]
fn async_chunks_stay_within_the_per_operation_limit() {
    // 64 KiB per operation, items of about 4 KB: the list iterator halves
    // its slices until they fit.
    let server = binary_server(&["--max-value-bytes", "65536"]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let items: Vec<String> = (0..64)
            .map(|i| format!("{i:04}{}", "x".repeat(4000)))
            .collect();
        let l = m.list::<String>().await.unwrap();
        for item in &items {
            l.append(item).await.unwrap();
        }
        assert_eq!(raised(l.get_value().await), ErrorKind::MemoryError);
        assert_eq!(all(l.iter()).await, items);

        // A dict too large to snapshot at once: the MemoryError, then the end.
        let d = m.dict::<i64, String>().await.unwrap();
        for (i, item) in items.iter().enumerate() {
            d.set(i as i64, item).await.unwrap();
        }
        let mut it = d.iter();
        assert_eq!(raised(it.next().await.unwrap()), ErrorKind::MemoryError);
        assert!(it.next().await.is_none());
    });
}

#[test]
fn async_lists_and_arrays_slice_as_python_does() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let l = m.list::<i64>().await.unwrap();
        l.extend(0..10).await.unwrap();
        assert_eq!(l.get_slice(2..5).await.unwrap(), [2, 3, 4]);
        assert_eq!(l.get_slice((..).with_step(-3)).await.unwrap(), [9, 6, 3, 0]);
        assert_eq!(l.get_slice(-3..).await.unwrap(), [7, 8, 9]);
        assert_eq!(
            l.get_slice(Slice::new(Some(8), Some(2), Some(-2)))
                .await
                .unwrap(),
            [8, 6, 4]
        );
        l.set_slice(0..2, [100]).await.unwrap(); // l[0:2] = [100]
        assert_eq!(l.get_slice(..3).await.unwrap(), [100, 2, 3]);
        let extended = l.set_slice((..).with_step(2), [1]).await;
        assert_eq!(raised(extended), ErrorKind::ValueError);
        l.del_slice(..=-4).await.unwrap(); // del l[:-3]
        assert_eq!(l.copy().await.unwrap(), [7, 8, 9]);
        assert_eq!(
            raised(l.get_slice((..).with_step(0)).await),
            ErrorKind::ValueError
        );
        assert_eq!(l.index_in(&9, 1..).await.unwrap(), 2);
        l.iadd([1]).await.unwrap().sort().await.unwrap();
        assert_eq!(l.get_value().await.unwrap(), [1, 7, 8, 9]);
        assert_eq!(l.concat([2]).await.unwrap(), [1, 7, 8, 9, 2]);
        assert_eq!(l.repeat(2).await.unwrap().len(), 8);

        let a = m.array::<i64>("i", [1, 2, 3, 4]).await.unwrap();
        a.set_slice(1..3, [20, 30]).await.unwrap();
        assert_eq!(a.get_slice(..).await.unwrap(), [1, 20, 30, 4]);
        assert_eq!(a.get_slice((..).with_step(-2)).await.unwrap(), [4, 20]);
        assert_eq!(all(a.iter_chunked(3)).await, [1, 20, 30, 4]);
        assert_eq!(a.get_value().await.unwrap(), [1, 20, 30, 4]);
    });
}

#[test]
fn the_async_dict_has_the_blocking_ones_methods() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let d = m.dict::<String, i64>().await.unwrap();
        d.update([("a", 1), ("b", 2)]).await.unwrap();
        assert_eq!(d.pop_or("zz", -1).await.unwrap(), -1);
        assert_eq!(d.setdefault("c", 3).await.unwrap(), 3);
        assert_eq!(d.popitem().await.unwrap(), ("c".to_string(), 3));
        assert_eq!(d.reversed().await.unwrap(), ["b", "a"]);
        d.ior([("d", 4)]).await.unwrap().set("e", 5).await.unwrap();
        let merged = d.union([("a", 10)]).await.unwrap();
        assert_eq!(merged[0], ("a".to_string(), 10));
        assert_eq!(d.get_item("a").await.unwrap(), 1, "union leaves it");
        assert_eq!(d.copy().await.unwrap().len(), 4);
        assert_eq!(d.get_value().await.unwrap(), d.items().await.unwrap());
        let any = m.dict::<PyObject, i64>().await.unwrap();
        let unhashable = any.union([(PyObject::List(vec![]), 1)]).await;
        assert!(matches!(unhashable, Err(ManagerError::Conversion(_))));
    });
}

#[test]
fn an_async_namespace_keeps_underscore_names_local() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let ns = m.namespace().await.unwrap();
        ns.set("x", 10).await.unwrap();
        ns.set("_local", "here").await.unwrap();
        assert_eq!(ns.get::<String>("_local").await.unwrap(), "here");
        assert!(ns.has("_local").await.unwrap());
        // The server never saw it: another proxy of the same object lacks it.
        let other = ns.clone();
        assert!(!other.has("_local").await.unwrap());
        #[derive(Deserialize, Debug, PartialEq)]
        struct Attrs {
            x: i64,
        }
        assert_eq!(ns.get_value_as::<Attrs>().await.unwrap(), Attrs { x: 10 });
        ns.del("_local").await.unwrap();
        assert_eq!(raised(ns.del("_local").await), ErrorKind::AttributeError);
    });
}

#[test]
fn the_async_sync_primitives_have_the_blocking_ones_methods() {
    let server = binary_server(&[]);
    on_both_runtimes(|| async {
        let m = connect_to(&server).await;
        let lock = m.lock().await.unwrap();
        assert_eq!(raised(lock.get_value().await), ErrorKind::TypeError);
        let guard = lock.acquire().await.unwrap();
        assert!(lock.locked().await.unwrap());
        guard.release().await.unwrap();
        assert!(!lock.locked().await.unwrap());
        let sem = m.bounded_semaphore(1).await.unwrap();
        std::mem::forget(sem.acquire().await.unwrap());
        sem.release().await.unwrap();
        assert!(matches!(
            sem.release().await,
            Err(multiprocessing::synchronize::ReleaseError::TooManyReleases)
        ));

        let cond = m.condition().await.unwrap();
        let notifier = {
            let cond = cond.clone();
            tokio::spawn(async move {
                loop {
                    let guard = cond.acquire().await.unwrap();
                    guard.notify_all().await.unwrap();
                    guard.release().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let mut guard = cond.acquire().await.unwrap();
        let mut calls = 0;
        let met = guard
            .wait_for(
                || {
                    calls += 1;
                    calls >= 3
                },
                Some(Duration::from_secs(30)),
            )
            .await
            .unwrap();
        assert!(met);
        notifier.abort();
        let _ = notifier.await;
        let unmet = guard
            .wait_for(|| false, Some(Duration::from_millis(20)))
            .await
            .unwrap();
        assert!(!unmet);
        guard.release().await.unwrap();
    });
}
