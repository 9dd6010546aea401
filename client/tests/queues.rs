//! Queues across real processes under every start method (`fork`,
//! `spawn`, `forkserver`). A `harness = false` target: `main` calls
//! `multiprocessing::init()` first so re-executed children are dispatched.

use std::collections::HashSet;
use std::time::Duration;

mod harness;

use multiprocessing::queues::QueueError;
use multiprocessing::{get_context, JoinableQueue, Queue, SimpleQueue, StartMethod};

const PATIENCE: Duration = Duration::from_secs(60);
const N: u32 = 2_000;
/// Producers, and consumers, in the many-to-many test.
const WORKERS: u32 = 8;

type Item = Option<(u32, u32)>;

fn producer(q: Queue<Item>, id: u32, n: u32) -> i32 {
    for i in 0..n {
        if q.put(&Some((id, i))).is_err() {
            return 1;
        }
    }
    0
}

fn consumer(q: Queue<Item>, out: Queue<Vec<(u32, u32)>>) -> i32 {
    let mut got = Vec::new();
    loop {
        match q.get_timeout(PATIENCE) {
            Ok(Some(x)) => got.push(x),
            Ok(None) => break,
            Err(_) => return 1,
        }
    }
    if out.put(&got).is_err() {
        return 2;
    }
    0
}

fn big_putter(q: SimpleQueue<String>) -> i32 {
    match q.put(&"X".repeat(1_000_000)) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn big_into_small_ring(q: Queue<Vec<u8>>) -> i32 {
    for i in 0..3u8 {
        if q.put(&vec![i; 1 << 20]).is_err() {
            return 1;
        }
    }
    0
}

fn blocked_getter(q: Queue<u32>, started: Queue<u32>) -> i32 {
    if started.put(&1).is_err() {
        return 1;
    }
    // Sleeps in get until killed.
    i32::from(q.get().is_ok()) + 2
}

fn worker(tasks: JoinableQueue<u64>, results: Queue<u64>) -> i32 {
    loop {
        match tasks.get_timeout(PATIENCE) {
            Ok(0) => {
                return i32::from(tasks.task_done().is_err());
            }
            Ok(x) => {
                if results.put(&(x * 2)).is_err() || tasks.task_done().is_err() {
                    return 1;
                }
            }
            Err(_) => return 2,
        }
    }
}

fn spinner(q: Queue<Vec<u8>>) -> i32 {
    let mut i = 0u8;
    loop {
        // Each item is 48 KiB of one byte value: a torn one would show.
        let _ = q.put(&vec![i; 48 << 10]);
        i = i.wrapping_add(1);
    }
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn join_ok(p: &multiprocessing::Process) -> Result<(), String> {
    check(
        p.join_timeout(PATIENCE).map_err(|e| e.to_string())?,
        "child hung",
    )?;
    let code = p.exitcode().map_err(|e| e.to_string())?;
    check(code == Some(0), &format!("child exit code {code:?}"))
}

/// One producer's items arrive in order, through a ring small enough to
/// wrap and fill many times.
fn order_from_one_producer(m: StartMethod) -> Result<(), String> {
    let q: Queue<Item> = Queue::with_capacity(0, 4096).map_err(|e| e.to_string())?;
    let p = get_context(m).process(producer, (q.clone(), 7u32, N));
    p.start().map_err(|e| e.to_string())?;
    for i in 0..N {
        let got = q.get_timeout(PATIENCE).map_err(|e| e.to_string())?;
        check(got == Some((7, i)), &format!("item {i}: got {got:?}"))?;
    }
    join_ok(&p)?;
    check(q.empty(), "left-overs")
}

/// 8 producers and 8 consumers: every item arrives exactly once.
fn many_producers_many_consumers(m: StartMethod) -> Result<(), String> {
    let q: Queue<Item> = Queue::with_capacity(16, 4096).map_err(|e| e.to_string())?;
    let out: Queue<Vec<(u32, u32)>> = Queue::new(0).map_err(|e| e.to_string())?;
    let ctx = get_context(m);
    let n = N / WORKERS;
    let producers: Vec<_> = (0..WORKERS)
        .map(|id| ctx.process(producer, (q.clone(), id, n)))
        .collect();
    let consumers: Vec<_> = (0..WORKERS)
        .map(|_| ctx.process(consumer, (q.clone(), out.clone())))
        .collect();
    for p in producers.iter().chain(&consumers) {
        p.start().map_err(|e| e.to_string())?;
    }
    for p in &producers {
        join_ok(p)?;
    }
    for _ in 0..WORKERS {
        q.put(&None).map_err(|e| e.to_string())?;
    }
    let mut seen = HashSet::new();
    for _ in 0..WORKERS {
        for x in out.get_timeout(PATIENCE).map_err(|e| e.to_string())? {
            check(seen.insert(x), &format!("{x:?} twice"))?;
        }
    }
    for p in &consumers {
        join_ok(p)?;
    }
    check(seen.len() == (WORKERS * n) as usize, "items lost")
}

/// The reference's deadlock example: the child puts a large item and the
/// parent joins it before getting.
fn large_item_then_join(m: StartMethod) -> Result<(), String> {
    let q: SimpleQueue<String> = SimpleQueue::new().map_err(|e| e.to_string())?;
    let p = get_context(m).process(big_putter, (q.clone(),));
    p.start().map_err(|e| e.to_string())?;
    join_ok(&p)?;
    let s = q.get().map_err(|e| e.to_string())?;
    check(s.len() == 1_000_000 && s.bytes().all(|b| b == b'X'), "item")
}

/// Items larger than the ring travel in side segments, and survive their
/// producer's exit.
fn items_larger_than_the_ring(m: StartMethod) -> Result<(), String> {
    let q: Queue<Vec<u8>> = Queue::with_capacity(0, 4096).map_err(|e| e.to_string())?;
    let p = get_context(m).process(big_into_small_ring, (q.clone(),));
    p.start().map_err(|e| e.to_string())?;
    join_ok(&p)?;
    for i in 0..3u8 {
        let item = q.get_nowait().map_err(|e| e.to_string())?;
        check(item == vec![i; 1 << 20], &format!("big item {i}"))?;
    }
    check(q.empty(), "left-overs")
}

/// Timeouts across processes, and a consumer killed while asleep in
/// `get` does not disturb the others.
fn timeouts_and_a_killed_sleeper(m: StartMethod) -> Result<(), String> {
    let short = Duration::from_millis(50);
    let q: Queue<u32> = Queue::new(1).map_err(|e| e.to_string())?;
    let started: Queue<u32> = Queue::new(0).map_err(|e| e.to_string())?;
    let p = get_context(m).process(blocked_getter, (q.clone(), started.clone()));
    p.start().map_err(|e| e.to_string())?;
    started.get_timeout(PATIENCE).map_err(|e| e.to_string())?;
    check(
        matches!(q.get_timeout(short), Err(QueueError::Empty)),
        "get_timeout on an empty queue",
    )?;
    p.kill().map_err(|e| e.to_string())?;
    p.join_timeout(PATIENCE).map_err(|e| e.to_string())?;
    q.put_timeout(&5, short).map_err(|e| e.to_string())?;
    check(
        matches!(q.put_timeout(&6, short), Err(QueueError::Full)),
        "put_timeout on a full queue",
    )?;
    check(
        matches!(q.put_nowait(&6), Err(QueueError::Full)),
        "put_nowait on a full queue",
    )?;
    check(
        q.get_timeout(short).map_err(|e| e.to_string())? == 5,
        "item",
    )?;
    check(
        matches!(q.get_nowait(), Err(QueueError::Empty)),
        "get_nowait on an empty queue",
    )
}

/// JoinableQueue: join returns once workers marked every task done.
fn joinable_tasks(m: StartMethod) -> Result<(), String> {
    let ctx = get_context(m);
    let tasks: JoinableQueue<u64> = ctx.joinable_queue(0).map_err(|e| e.to_string())?;
    let results: Queue<u64> = ctx.queue(0).map_err(|e| e.to_string())?;
    let ws: Vec<_> = (0..2)
        .map(|_| ctx.process(worker, (tasks.clone(), results.clone())))
        .collect();
    for w in &ws {
        w.start().map_err(|e| e.to_string())?;
    }
    for x in 1..=100u64 {
        tasks.put(&x).map_err(|e| e.to_string())?;
    }
    check(tasks.join_timeout(PATIENCE), "join timed out")?;
    check(results.qsize() == 100, "results before join returned")?;
    let mut sum = 0;
    for _ in 0..100 {
        sum += results.get_nowait().map_err(|e| e.to_string())?;
    }
    check(sum == 2 * 5050, "sum")?;
    for _ in &ws {
        tasks.put(&0).map_err(|e| e.to_string())?;
    }
    for w in &ws {
        join_ok(w)?;
    }
    check(tasks.join_timeout(PATIENCE), "join after stop")?;
    check(
        matches!(tasks.task_done(), Err(QueueError::TaskDone)),
        "task_done too often",
    )
}

/// A producer killed at random points while putting large items leaves
/// only whole items behind, and the queue keeps working.
fn killed_producer_corrupts_nothing(m: StartMethod) -> Result<(), String> {
    let q: Queue<Vec<u8>> = Queue::with_capacity(0, 256 << 10).map_err(|e| e.to_string())?;
    for round in 0..5 {
        let p = get_context(m).process(spinner, (q.clone(),));
        p.start().map_err(|e| e.to_string())?;
        // Let it fill the ring and block, or be mid-put, then kill it.
        for _ in 0..3 + round {
            let item = q.get_timeout(PATIENCE).map_err(|e| e.to_string())?;
            check(item.len() == 48 << 10, "torn length")?;
            check(item.iter().all(|&b| b == item[0]), "torn item")?;
        }
        p.kill().map_err(|e| e.to_string())?;
        p.join_timeout(PATIENCE).map_err(|e| e.to_string())?;
        while let Ok(item) = q.get_nowait() {
            check(item.len() == 48 << 10, "torn length after kill")?;
            check(item.iter().all(|&b| b == item[0]), "torn item after kill")?;
        }
        check(q.empty() && q.qsize() == 0, "count after kill")?;
        q.put_timeout(&vec![1, 2, 3], PATIENCE)
            .map_err(|e| e.to_string())?;
        check(
            q.get_nowait().map_err(|e| e.to_string())? == [1, 2, 3],
            "after",
        )?;
    }
    Ok(())
}

use harness::Test;

const TESTS: &[(&str, Test)] = &[
    ("order_from_one_producer", order_from_one_producer),
    (
        "many_producers_many_consumers",
        many_producers_many_consumers,
    ),
    ("large_item_then_join", large_item_then_join),
    ("items_larger_than_the_ring", items_larger_than_the_ring),
    ("joinable_tasks", joinable_tasks),
    (
        "timeouts_and_a_killed_sleeper",
        timeouts_and_a_killed_sleeper,
    ),
    (
        "killed_producer_corrupts_nothing",
        killed_producer_corrupts_nothing,
    ),
];

fn main() {
    multiprocessing::init();
    harness::run(TESTS);
}
