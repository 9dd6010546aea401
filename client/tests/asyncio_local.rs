//! The local primitives' async methods (feature `asyncio`) across real
//! processes, under every start method and under both tokio runtimes: a
//! child sets the `Event`, puts on the `Queue`, releases the `Lock`, exits,
//! or a pool worker finishes, while the parent awaits alongside a ticker
//! task that must keep running (on a current-thread runtime a blocked
//! thread would stop it, and the child, which waits for the ticker, would
//! never act: the case would hang and fail at its timeout). Then
//! cancellation: futures dropped at many points take nothing.
//!
//! A `harness = false` target: `main` calls `multiprocessing::init()`
//! first so spawn and forkserver children are dispatched.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod harness;

use multiprocessing::shared_memory::SharedMemory;
use multiprocessing::synchronize::{Event, Lock};
use multiprocessing::{get_context, Queue, StartMethod};

/// Generous: only there to fail instead of hang.
const PATIENCE: Duration = Duration::from_secs(60);
/// Ticks the ticker makes before it lets the child act.
const TICKS: usize = 20;

type Outcome = Result<(), String>;

/// Runs `case` on a current-thread and on a multi-thread runtime.
fn on_both_runtimes<F, Fut>(case: F) -> Outcome
where
    F: Fn() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    for (name, rt) in [("current-thread", current), ("multi-thread", multi)] {
        rt.block_on(async { tokio::time::timeout(PATIENCE, case()).await })
            .map_err(|_| format!("{name}: hung (a blocked runtime thread?)"))?
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// A task that counts ticks, and sets `go` after [`TICKS`] of them.
fn ticker(go: Event) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    ticker_then(move || go.set())
}

/// A task that counts ticks, and calls `go` after [`TICKS`] of them.
fn ticker_then(go: impl Fn() + Send + 'static) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = Arc::clone(&ticks);
    let task = tokio::spawn(async move {
        loop {
            if t.fetch_add(1, Ordering::SeqCst) + 1 == TICKS {
                go();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (ticks, task)
}

fn ticked(ticks: &AtomicUsize) -> Outcome {
    let n = ticks.load(Ordering::SeqCst);
    if n < TICKS {
        return Err(format!("the other task ticked {n} times only"));
    }
    Ok(())
}

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// Joins `p` (async) and checks its exit code.
async fn exited(p: &multiprocessing::Process, code: i32) -> Outcome {
    p.join_async().await.map_err(e)?;
    match p.exitcode().map_err(e)? {
        Some(c) if c == code => Ok(()),
        other => Err(format!("child exit code {other:?}, expected {code}")),
    }
}

// ---- children ----

fn set_after(go: Event, ev: Event) {
    go.wait();
    ev.set();
}

fn put_after(go: Event, q: Queue<String>) -> Result<(), String> {
    go.wait();
    q.put(&"from the child".to_string()).map_err(e)
}

fn hold_lock(lock: Lock, held: Event, go: Event) -> Result<(), String> {
    lock.acquire();
    held.set();
    go.wait();
    lock.release().map_err(e)
}

fn exit_after(go: Event) -> Result<(), String> {
    go.wait();
    Err("exiting with 1 on purpose".into())
}

/// A pool task that waits for the first byte of the shared memory block
/// `go` to be set (pool tasks' arguments cannot carry an `Event`'s
/// descriptor, a block's name they can).
fn double_after(go: String, x: u32) -> Result<u32, String> {
    let shm = SharedMemory::attach(&go).map_err(e)?;
    while shm.buf()[0] == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(x * 2)
}

/// A flag pool tasks can wait for.
fn pool_gate() -> Result<SharedMemory, String> {
    SharedMemory::create(8).map_err(e)
}

fn open_gate(shm: &SharedMemory) {
    let _ = shm.write_at(0, &[1]);
}

fn churn_lock(lock: Lock, rounds: u32) {
    for _ in 0..rounds {
        lock.acquire();
        std::hint::spin_loop();
        let _ = lock.release();
    }
}

fn put_numbers(q: Queue<u32>, n: u32) -> Result<(), String> {
    for i in 0..n {
        q.put(&i).map_err(e)?;
    }
    Ok(())
}

fn get_until_none(q: Queue<Option<u32>>, out: Queue<Vec<u32>>) -> Result<(), String> {
    let mut got = Vec::new();
    while let Some(x) = q.get().map_err(e)? {
        got.push(x);
    }
    out.put(&got).map_err(e)
}

// ---- cases: a child acts while the parent awaits ----

fn event_set_by_a_child(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let (ev, go) = (Event::new().map_err(e)?, Event::new().map_err(e)?);
        let p = get_context(m).process(set_after, (go.clone(), ev.clone()));
        p.start().map_err(e)?;
        let (ticks, task) = ticker(go);
        ev.wait_async().await.map_err(e)?;
        task.abort();
        ticked(&ticks)?;
        exited(&p, 0).await
    })
}

fn queue_put_by_a_child(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let go = Event::new().map_err(e)?;
        let q: Queue<String> = Queue::new(0).map_err(e)?;
        let p = get_context(m).process(put_after, (go.clone(), q.clone()));
        p.start().map_err(e)?;
        let (ticks, task) = ticker(go);
        let got = q.get_async().await.map_err(e)?;
        task.abort();
        ticked(&ticks)?;
        if got != "from the child" {
            return Err(format!("got {got:?}"));
        }
        exited(&p, 0).await
    })
}

/// A lock a started child holds until `go` is set (`hold_lock`), once it
/// holds it; the lock, `go` and the child.
async fn lock_held_by_a_child(
    m: StartMethod,
) -> Result<(Lock, Event, multiprocessing::Process), String> {
    let lock = Lock::new().map_err(e)?;
    let (held, go) = (Event::new().map_err(e)?, Event::new().map_err(e)?);
    let p = get_context(m).process(hold_lock, (lock.clone(), held.clone(), go.clone()));
    p.start().map_err(e)?;
    held.wait_async().await.map_err(e)?;
    Ok((lock, go, p))
}

fn lock_released_by_a_child(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let (lock, go, p) = lock_held_by_a_child(m).await?;
        let (ticks, task) = ticker(go);
        let guard = lock.lock_async().await.map_err(e)?;
        task.abort();
        ticked(&ticks)?;
        if !lock.is_locked() {
            return Err("lock_async returned without the lock".into());
        }
        drop(guard);
        exited(&p, 0).await
    })
}

fn process_exit_awaited(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let go = Event::new().map_err(e)?;
        let p = get_context(m).process(exit_after, (go.clone(),));
        p.start().map_err(e)?;
        let (ticks, task) = ticker(go);
        exited(&p, 1).await?;
        task.abort();
        ticked(&ticks)
    })
}

fn pool_result_awaited(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let gate = pool_gate()?;
        let pool = get_context(m).pool(1).map_err(e)?;
        let pending = pool
            .apply_async(double_after, (gate.name().to_string(), 21))
            .map_err(e)?;
        let opener = gate.name().to_string();
        let (ticks, task) = ticker_then(move || {
            if let Ok(shm) = SharedMemory::attach(&opener) {
                open_gate(&shm);
            }
        });
        let got = pending.await.map_err(e)?;
        task.abort();
        ticked(&ticks)?;
        if got != 42 {
            return Err(format!("got {got}"));
        }
        pool.close().map_err(e)?;
        pool.join().map_err(e)?;
        gate.unlink().map_err(e)
    })
}

// ---- cancellation ----

/// Yields `n` times: a cancellation point that depends on nothing but
/// scheduling.
async fn yields(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

fn a_dropped_wait_takes_nothing(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let (lock, go, p) = lock_held_by_a_child(m).await?;
        // Each of these waits while the child holds the lock and go is
        // unset, so each is dropped before it completes.
        let short = Duration::from_millis(20);
        if tokio::time::timeout(short, lock.lock_async()).await.is_ok() {
            return Err("lock_async completed while the child held the lock".into());
        }
        if tokio::time::timeout(short, go.wait_async()).await.is_ok() {
            return Err("wait_async completed before the event was set".into());
        }
        if tokio::time::timeout(short, p.join_async()).await.is_ok() {
            return Err("join_async completed while the child ran".into());
        }
        go.set();
        // The dropped join leaves the process joinable, and the dropped
        // acquire left the lock to the child, which released it: free.
        exited(&p, 0).await?;
        if !lock.acquire_nowait() {
            return Err("a dropped lock_async left the lock held".into());
        }
        lock.release().map_err(e)
    })
}

fn lock_async_cancelled_at_random_points(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let lock = Lock::new().map_err(e)?;
        let p = get_context(m).process(churn_lock, (lock.clone(), 2000u32));
        p.start().map_err(e)?;
        let (mut got, mut dropped) = (0, 0);
        for round in 0..300usize {
            tokio::select! {
                biased;
                r = lock.lock_async() => {
                    let guard = r.map_err(e)?;
                    got += 1;
                    drop(guard);
                }
                () = yields(round % 7) => dropped += 1,
            }
        }
        exited(&p, 0).await?;
        if !lock.acquire_nowait() {
            return Err(format!(
                "the lock is held after {got} acquisitions and {dropped} cancellations"
            ));
        }
        lock.release().map_err(e)
    })
}

fn get_async_cancelled_at_random_points_loses_nothing(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        const N: u32 = 300;
        let q: Queue<u32> = Queue::new(0).map_err(e)?;
        let p = get_context(m).process(put_numbers, (q.clone(), N));
        p.start().map_err(e)?;
        let mut got = Vec::new();
        let mut round = 0usize;
        while got.len() < N as usize {
            round += 1;
            tokio::select! {
                biased;
                r = q.get_async() => got.push(r.map_err(e)?),
                () = yields(round % 5) => {}
            }
        }
        exited(&p, 0).await?;
        if !q.empty() {
            return Err(format!("{} items left over", q.qsize()));
        }
        if got != (0..N).collect::<Vec<_>>() {
            return Err(format!("items lost, duplicated or reordered: {got:?}"));
        }
        Ok(())
    })
}

fn put_async_cancelled_at_random_points_puts_what_it_says(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        // One item at a time, so most puts wait for the child to get.
        let q: Queue<Option<u32>> = Queue::new(1).map_err(e)?;
        let out: Queue<Vec<u32>> = Queue::new(0).map_err(e)?;
        let p = get_context(m).process(get_until_none, (q.clone(), out.clone()));
        p.start().map_err(e)?;
        let mut sent = Vec::new();
        for i in 0..300u32 {
            let item = Some(i);
            tokio::select! {
                biased;
                r = q.put_async(&item) => {
                    r.map_err(e)?;
                    sent.push(i);
                }
                () = yields(i as usize % 5) => {}
            }
        }
        q.put_async(&None).await.map_err(e)?;
        let received = out.get_async().await.map_err(e)?;
        exited(&p, 0).await?;
        if received != sent {
            return Err(format!(
                "the child got {} items, the parent put {}",
                received.len(),
                sent.len()
            ));
        }
        Ok(())
    })
}

fn a_pool_result_survives_a_cancelled_await(m: StartMethod) -> Outcome {
    on_both_runtimes(|| async move {
        let gate = pool_gate()?;
        let pool = get_context(m).pool(1).map_err(e)?;
        let mut pending = pool
            .apply_async(double_after, (gate.name().to_string(), 5))
            .map_err(e)?;
        if tokio::time::timeout(Duration::from_millis(20), &mut pending)
            .await
            .is_ok()
        {
            return Err("the result came before the task could finish".into());
        }
        open_gate(&gate);
        pending.wait_async().await;
        if !pending.ready() {
            return Err("wait_async returned before the result".into());
        }
        let got = (&mut pending).await.map_err(e)?;
        if got != 10 {
            return Err(format!("got {got}"));
        }
        pool.close().map_err(e)?;
        pool.join().map_err(e)?;
        gate.unlink().map_err(e)
    })
}

const TESTS: &[(&str, harness::Test)] = &[
    ("event_set_by_a_child", event_set_by_a_child),
    ("queue_put_by_a_child", queue_put_by_a_child),
    ("lock_released_by_a_child", lock_released_by_a_child),
    ("process_exit_awaited", process_exit_awaited),
    ("pool_result_awaited", pool_result_awaited),
    ("a_dropped_wait_takes_nothing", a_dropped_wait_takes_nothing),
    (
        "lock_async_cancelled_at_random_points",
        lock_async_cancelled_at_random_points,
    ),
    (
        "get_async_cancelled_at_random_points_loses_nothing",
        get_async_cancelled_at_random_points_loses_nothing,
    ),
    (
        "put_async_cancelled_at_random_points_puts_what_it_says",
        put_async_cancelled_at_random_points_puts_what_it_says,
    ),
    (
        "a_pool_result_survives_a_cancelled_await",
        a_pool_result_survives_a_cancelled_await,
    ),
];

fn main() {
    multiprocessing::init();
    harness::run(TESTS);
}
