//! `Pool` across real worker processes under every start method. A
//! `harness = false` target: `main` calls `multiprocessing::init()` first
//! so re-executed workers are dispatched.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod harness;
#[path = "pool_cases/typed.rs"]
mod typed;

use multiprocessing::pool::PoolError;
use multiprocessing::{get_context, Pool, StartMethod};

const PATIENCE: Duration = Duration::from_secs(60);

static INITIALIZED: AtomicU32 = AtomicU32::new(0);

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn fails_at_five(x: u32) -> Result<u32, String> {
    if x == 5 {
        Err(format!("{x} is not allowed"))
    } else {
        Ok(x * 10)
    }
}

fn panics_at_three(x: u32) -> u32 {
    assert!(x != 3, "three is right out");
    x
}

fn dies_at_two(x: u32) -> u32 {
    if x == 2 {
        // SAFETY: kill(2) on our own pid.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    x
}

fn pause_then_echo(x: u32) -> u32 {
    std::thread::sleep(Duration::from_micros(300));
    x
}

fn my_pid(_: u32) -> u32 {
    std::process::id()
}

fn failing_init() -> Result<(), String> {
    Err("this initializer always fails".into())
}

fn init(value: u32) {
    INITIALIZED.store(value, Ordering::SeqCst);
}

fn read_init(_: u32) -> u32 {
    INITIALIZED.load(Ordering::SeqCst)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// `ByteBuf` so the bytes travel as one CBOR byte string; a type that is
/// not a plain value to `TaskResult` comes back in a `Result`.
fn reverse(v: serde_bytes::ByteBuf) -> Result<serde_bytes::ByteBuf, String> {
    Ok(serde_bytes::ByteBuf::from(
        v.into_iter().rev().collect::<Vec<u8>>(),
    ))
}

fn pool(m: StartMethod, n: usize) -> Result<Pool, String> {
    get_context(m).pool(n).map_err(|e| e.to_string())
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn map_apply_starmap(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    let want: Vec<u64> = (0..100u64).map(|x| x * x).collect();
    check(
        p.map(square, 0..100u64).map_err(|e| e.to_string())? == want,
        "map",
    )?;
    check(
        p.map_chunked(square, 0..100u64, 7)
            .map_err(|e| e.to_string())?
            == want,
        "map chunked",
    )?;
    check(
        p.apply(add, (2, 3)).map_err(|e| e.to_string())? == 5,
        "apply",
    )?;
    let closure = p.map(|x: u64| x + 1, 0..3u64).map_err(|e| e.to_string())?;
    check(closure == vec![1, 2, 3], "a non-capturing closure")?;
    let r = p
        .starmap(add, vec![(1, 2), (3, 4), (5, 6)])
        .map_err(|e| e.to_string())?;
    check(r == vec![3, 7, 11], "starmap")?;
    let a = p
        .starmap_async(add, vec![(1, 1)])
        .map_err(|e| e.to_string())?;
    check(a.wait_timeout(PATIENCE), "starmap_async ready")?;
    check(a.successful() == Ok(true), "successful")?;
    check(a.get() == Ok(vec![2]), "starmap_async")?;
    let empty: Vec<u64> = p.map(square, Vec::new()).map_err(|e| e.to_string())?;
    check(empty.is_empty(), "empty map")?;
    p.close().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())?;
    check(
        p.map(square, [1u64]) == Err(PoolError::NotRunning),
        "map after close",
    )
}

fn errors_surface_at_their_position(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    let got: Vec<_> = p
        .imap(fails_at_five, 0..8u32)
        .map_err(|e| e.to_string())?
        .collect();
    for (i, r) in got.iter().enumerate() {
        let ok = match r {
            Ok(v) => i != 5 && *v == i as u32 * 10,
            Err(PoolError::Task { index, error }) => {
                i == 5 && *index == 5 && error == "5 is not allowed"
            }
            Err(_) => false,
        };
        check(ok, &format!("imap item {i}: {r:?}"))?;
    }
    match p.map(panics_at_three, 0..6u32) {
        Err(PoolError::Panic {
            index: 3,
            message,
            location: Some(at),
        }) if message == "three is right out" && at.contains("pool.rs") => {}
        other => return Err(format!("map with a panic: {other:?}")),
    }
    let a = p
        .apply_async(fails_at_five, (5,))
        .map_err(|e| e.to_string())?;
    a.wait();
    check(a.successful() == Ok(false), "apply_async failure")?;
    // The pool goes on.
    check(
        p.map(square, 0..4u64) == Ok(vec![0, 1, 4, 9]),
        "map after failures",
    )
}

fn imap_orders_and_unordered_collects(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    let ordered: Vec<u64> = p
        .imap(square, 0..50u64)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    check(
        ordered == (0..50u64).map(|x| x * x).collect::<Vec<_>>(),
        "imap order",
    )?;
    let mut unordered: Vec<u64> = p
        .imap_unordered_chunked(square, 0..50u64, 4)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    unordered.sort_unstable();
    check(unordered == ordered, "imap_unordered contents")?;
    let mut it = p.imap(sleep_ms, [500u64]).map_err(|e| e.to_string())?;
    check(
        it.next_timeout(Duration::from_millis(10)) == Some(Err(PoolError::Timeout)),
        "next_timeout times out",
    )?;
    check(
        it.next_timeout(PATIENCE) == Some(Ok(500)),
        "next_timeout gets it",
    )?;
    check(it.next().is_none(), "imap ends")?;
    let slow = p.apply_async(sleep_ms, (500,)).map_err(|e| e.to_string())?;
    check(
        !slow.wait_timeout(Duration::from_millis(10)),
        "wait_timeout times out",
    )?;
    check(
        slow.successful() == Err(PoolError::NotReady),
        "successful too early",
    )?;
    check(slow.get_timeout(PATIENCE) == Ok(500), "get after a wait")?;
    let slower = p.apply_async(sleep_ms, (500,)).map_err(|e| e.to_string())?;
    check(
        slower.get_timeout(Duration::from_millis(10)) == Err(PoolError::Timeout),
        "get_timeout",
    )
}

fn callbacks_run(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let ok = p
        .apply_async_with(
            add,
            (20, 22),
            move |v| s1.lock().unwrap().push(format!("ok {v}")),
            |_| {},
        )
        .map_err(|e| e.to_string())?;
    let bad = p
        .map_async_with(
            fails_at_five,
            0..10u32,
            Some(1),
            |_| {},
            move |e| s2.lock().unwrap().push(format!("err {:?}", e.index())),
        )
        .map_err(|e| e.to_string())?;
    ok.wait();
    bad.wait();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    check(
        seen == vec!["err Some(5)".to_string(), "ok 42".to_string()],
        &format!("callbacks: {seen:?}"),
    )
}

fn a_killed_worker_fails_its_task_and_is_replaced(m: StartMethod) -> Result<(), String> {
    // One worker: it finishes tasks 0 and 1 (their results wait in its
    // batch while more tasks are queued) and dies in task 2.
    killed_worker_with(m, 1)?;
    killed_worker_with(m, 2)
}

fn killed_worker_with(m: StartMethod, workers: usize) -> Result<(), String> {
    let p = pool(m, workers)?;
    let got: Vec<_> = p
        .imap(dies_at_two, 0..5u32)
        .map_err(|e| e.to_string())?
        .collect();
    // Task 2 kills its worker: it fails with WorkerLost, at its position;
    // every other task succeeds, including those the dead worker had
    // finished without sending their results yet.
    let lost_pid = match &got[2] {
        Err(PoolError::WorkerLost {
            index: 2,
            exitcode: -9,
            pid,
        }) => *pid,
        other => return Err(format!("item 2: {other:?}")),
    };
    for (i, r) in got.iter().enumerate() {
        let ok = match r {
            Ok(v) => i != 2 && *v == i as u32,
            Err(_) => i == 2,
        };
        check(ok, &format!("item {i}: {r:?}"))?;
    }
    check(p.map(square, 0..10u64).is_ok(), "map after the death")?;
    // The dead worker was replaced.
    let pids: HashSet<u32> = p.worker_pids().into_iter().collect();
    check(
        pids.len() == workers && !pids.contains(&lost_pid),
        &format!("two live workers: {pids:?}"),
    )
}

/// Workers killed at random instants, while they take, run and answer
/// tasks: every task still gets exactly one outcome, its value or
/// `WorkerLost`, and nothing hangs (a task taken from the queue by a
/// worker killed before it could say so would never complete).
fn workers_killed_at_random_lose_no_task(m: StartMethod) -> Result<(), String> {
    const TASKS: u32 = 300;
    let p = Arc::new(pool(m, 2)?);
    let results = p
        .imap_unordered(pause_then_echo, 0..TASKS)
        .map_err(|e| e.to_string())?;
    let killer = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            for round in 0..25u64 {
                std::thread::sleep(Duration::from_micros(1500 + round * 137 % 1000));
                let pids = p.worker_pids();
                if let Some(pid) = pids.get(round as usize % pids.len().max(1)) {
                    // SAFETY: kill(2) on a worker of this pool.
                    unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
                }
            }
        })
    };
    let mut results = results;
    let (mut ok, mut lost) = (HashSet::new(), 0);
    for _ in 0..TASKS {
        match results.next_timeout(PATIENCE) {
            Some(Ok(x)) => check(ok.insert(x), &format!("{x} came twice"))?,
            Some(Err(PoolError::WorkerLost { .. })) => lost += 1,
            other => {
                let _ = killer.join();
                return Err(format!("after {} results: {other:?}", ok.len() + lost));
            }
        }
    }
    let _ = killer.join();
    check(
        results.next_timeout(PATIENCE).is_none(),
        "more results than tasks",
    )?;
    check(
        p.map(square, 0..10u64).is_ok(),
        &format!("map after the kills ({lost} lost)"),
    )
}

/// `imap` takes its input lazily, as Python's does: an endless input
/// gives results as they come, a finite one ends, and an input that
/// panics fails the position it would have filled.
fn imap_takes_its_input_lazily(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    let mut endless = p
        .imap_chunked(square, 0u64.., 3)
        .map_err(|e| e.to_string())?;
    for i in 0..50u64 {
        let got = endless.next_timeout(PATIENCE);
        check(
            got == Some(Ok(i * i)),
            &format!("endless item {i}: {got:?}"),
        )?;
    }
    check(
        endless.size_hint().1.is_none(),
        "an endless input has no known length",
    )?;
    drop(endless);
    // The endless input holds up later submissions until terminate (as in
    // Python): a fresh pool for the rest.
    p.terminate().map_err(|e| e.to_string())?;

    let p = pool(m, 2)?;
    let unordered: HashSet<u64> = p
        .imap_unordered(square, (0..20u64).filter(|x| x % 2 == 0))
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let want: HashSet<u64> = (0..20u64).filter(|x| x % 2 == 0).map(|x| x * x).collect();
    check(unordered == want, &format!("unordered: {unordered:?}"))?;
    let empty: Vec<_> = p
        .imap(square, Vec::<u64>::new())
        .map_err(|e| e.to_string())?
        .collect();
    check(empty.is_empty(), "an empty input")?;

    let faulty = (0..10u64).inspect(|&x| assert!(x != 4, "no item four"));
    let got: Vec<_> = p.imap(square, faulty).map_err(|e| e.to_string())?.collect();
    check(
        got.len() == 5,
        &format!("four values and the failure: {got:?}"),
    )?;
    check(
        got[..4] == [Ok(0), Ok(1), Ok(4), Ok(9)],
        &format!("values before the failure: {got:?}"),
    )?;
    check(
        matches!(&got[4], Err(PoolError::InputPanic { index: 4, message }) if message == "no item four"),
        &format!("the failure: {:?}", got[4]),
    )?;
    p.close().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())
}

fn maxtasksperchild_and_initializer(m: StartMethod) -> Result<(), String> {
    let p = Pool::builder()
        .processes(2)
        .context(get_context(m))
        .maxtasksperchild(1)
        .initializer(init, (77,))
        .build()
        .map_err(|e| e.to_string())?;
    let pids: HashSet<u32> = p
        .map_chunked(my_pid, 0..6u32, 1)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    check(
        pids.len() == 6,
        &format!("a fresh worker per task: {pids:?}"),
    )?;
    let inits = p.map(read_init, 0..4u32).map_err(|e| e.to_string())?;
    check(inits == vec![77; 4], &format!("initializer ran: {inits:?}"))?;
    p.close().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())
}

fn terminate_fails_pending_work(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 1)?;
    let slow = p
        .map_async(sleep_ms, vec![10_000u64; 3])
        .map_err(|e| e.to_string())?;
    check(
        p.join() == Err(PoolError::StillRunning),
        "join before close",
    )?;
    p.terminate().map_err(|e| e.to_string())?;
    match slow.get_timeout(PATIENCE) {
        Err(PoolError::Terminated { .. }) => {}
        other => return Err(format!("after terminate: {other:?}")),
    }
    check(p.join().is_ok(), "join after terminate")?;
    check(
        p.apply(add, (1, 1)) == Err(PoolError::NotRunning),
        "apply after terminate",
    )
}

fn many_queued_tasks(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    let fds_before = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let r = p
        .map_chunked(square, 0..20_000u64, 1)
        .map_err(|e| e.to_string())?;
    check(
        r.len() == 20_000 && r[19_999] == 19_999 * 19_999,
        "20k tasks",
    )?;
    let fds_after = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    check(
        fds_after <= fds_before + 2,
        &format!("fds {fds_before} -> {fds_after}"),
    )
}

fn large_values_travel(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    // 100 KiB: larger than a worker's result batch; 9 MiB: larger than the
    // queues' ring (a side segment).
    for len in [100 * 1024, 9 << 20] {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let want = serde_bytes::ByteBuf::from(bytes.iter().rev().copied().collect::<Vec<u8>>());
        let input = serde_bytes::ByteBuf::from(bytes);
        let got = p
            .map(reverse, vec![input.clone(), input])
            .map_err(|e| e.to_string())?;
        check(got == vec![want.clone(), want], &format!("{len} bytes"))?;
    }
    Ok(())
}

fn a_forked_copy_leaves_the_pool_alone(m: StartMethod) -> Result<(), String> {
    let shared = Arc::new(Mutex::new(Some(pool(m, 2)?)));
    let copy = shared.clone();
    // The child takes its copy of the pool out and drops it: that must
    // not stop the parent's workers nor its result thread.
    let child = get_context(StartMethod::Fork).process_fn(move || {
        let taken = copy.lock().map(|mut g| g.take());
        drop(taken);
    });
    child.start().map_err(|e| e.to_string())?;
    child.join().map_err(|e| e.to_string())?;
    let guard = shared.lock().map_err(|e| e.to_string())?;
    let p = guard.as_ref().ok_or("the parent's pool is gone")?;
    let r = p.map_async(square, 0..10u64).map_err(|e| e.to_string())?;
    check(
        r.get_timeout(PATIENCE).map(|v| v.len()) == Ok(10),
        "the pool still works",
    )
}

fn terminate_from_a_callback(m: StartMethod) -> Result<(), String> {
    let shared: Arc<Mutex<Option<Pool>>> = Arc::new(Mutex::new(Some(pool(m, 1)?)));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let inside = shared.clone();
    let guard = shared.lock().map_err(|e| e.to_string())?;
    let p = guard.as_ref().ok_or("no pool")?;
    p.apply_async_with(
        add,
        (1, 2),
        move |_| {
            // Runs on the pool's result thread: terminate and drop the
            // pool from there.
            if let Some(p) = inside.lock().ok().and_then(|mut g| g.take()) {
                let _ = p.terminate();
                drop(p);
            }
            let _ = done_tx.send(());
        },
        |_| {},
    )
    .map_err(|e| e.to_string())?;
    drop(guard);
    done_rx
        .recv_timeout(PATIENCE)
        .map_err(|_| "the callback never finished".to_string())
}

fn a_failing_initializer_breaks_the_pool_instead_of_hanging(m: StartMethod) -> Result<(), String> {
    let p = Pool::builder()
        .processes(2)
        .context(get_context(m))
        .initializer(failing_init, ())
        .build()
        .map_err(|e| e.to_string())?;
    // The pool may give up before or after the call is queued.
    match p
        .map_async(square, 0..4u64)
        .and_then(|r| r.get_timeout(PATIENCE))
    {
        Err(PoolError::Broken(why)) if why.contains("initializer") => {}
        other => return Err(format!("map with a failing initializer: {other:?}")),
    }
    match p.apply(add, (1, 1)) {
        Err(PoolError::Broken(_)) => {}
        other => return Err(format!("apply on a broken pool: {other:?}")),
    }
    p.close().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())
}

use harness::Test;

const TESTS: &[(&str, Test)] = &[
    ("map_apply_starmap", map_apply_starmap),
    (
        "errors_surface_at_their_position",
        errors_surface_at_their_position,
    ),
    (
        "imap_orders_and_unordered_collects",
        imap_orders_and_unordered_collects,
    ),
    ("callbacks_run", callbacks_run),
    (
        "a_killed_worker_fails_its_task_and_is_replaced",
        a_killed_worker_fails_its_task_and_is_replaced,
    ),
    (
        "maxtasksperchild_and_initializer",
        maxtasksperchild_and_initializer,
    ),
    (
        "workers_killed_at_random_lose_no_task",
        workers_killed_at_random_lose_no_task,
    ),
    ("imap_takes_its_input_lazily", imap_takes_its_input_lazily),
    ("terminate_fails_pending_work", terminate_fails_pending_work),
    ("many_queued_tasks", many_queued_tasks),
    ("large_values_travel", large_values_travel),
    (
        "a_forked_copy_leaves_the_pool_alone",
        a_forked_copy_leaves_the_pool_alone,
    ),
    ("terminate_from_a_callback", terminate_from_a_callback),
    (
        "a_failing_initializer_breaks_the_pool_instead_of_hanging",
        a_failing_initializer_breaks_the_pool_instead_of_hanging,
    ),
    (
        "typed_errors_cross_from_the_workers",
        typed::typed_errors_cross_from_the_workers,
    ),
    ("results_need_no_clone", typed::results_need_no_clone),
    (
        "a_forked_copy_cannot_close_terminate_or_join",
        typed::a_forked_copy_cannot_close_terminate_or_join,
    ),
];

fn main() {
    multiprocessing::init();
    harness::run(TESTS);
}
