//! `pool` suite: `multiprocessing::Pool` against CPython's `mp.Pool` doing
//! the same work in the same run (and procspawn's pool with `--features
//! peers`):
//!
//! * `Pool(2).map` over 20,000 trivial tasks with chunksize 1;
//! * `Pool(2).imap_unordered`, the same 20,000 tasks, chunksize 1;
//! * `apply_async(...).get()` one at a time;
//! * a CPU-bound `map` with 1 and with 2 workers: parallel efficiency
//!   `T(1) / (2 × T(2))`.
//!
//! Pool start-up is outside every timing, on both sides.

use std::time::Instant;

use multiprocessing::Pool;

use crate::report::{self, Row};

const TASKS: u64 = 20_000;
const ROUND_TRIPS: u64 = 3_000;
/// CPU-bound map: this many tasks of [`spin`] each.
const CPU_TASKS: u64 = 16;
const CPU_WORK: u64 = 4_000_000;

fn trivial(x: u64) -> u64 {
    x
}

/// A few tens of milliseconds of arithmetic the optimizer cannot skip.
fn spin(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..CPU_WORK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
def trivial(x): return x
def spin(seed):
    x = seed | 1
    for _ in range(WORK):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
    return x
WORK = 200000
if __name__ == '__main__':
    kind = sys.argv[1]
    if kind == 'cpu':
        times = []
        for n in (1, 2):
            with mp.Pool(n) as p:
                p.map(trivial, range(4))
                t = time.perf_counter(); p.map(spin, range(16), chunksize=1); times.append(time.perf_counter() - t)
        print(times[0] / (2 * times[1]))
        sys.exit()
    with mp.Pool(2) as p:
        p.map(trivial, range(100))
        if kind == 'map':
            t = time.perf_counter(); p.map(trivial, range(20000), chunksize=1); el = time.perf_counter() - t
            print(20000 / el)
        elif kind == 'imap':
            t = time.perf_counter()
            for _ in p.imap_unordered(trivial, range(20000), chunksize=1): pass
            print(20000 / (time.perf_counter() - t))
        else:
            n = 3000
            t = time.perf_counter()
            for i in range(n): p.apply_async(trivial, (i,)).get()
            print(n / (time.perf_counter() - t))
"#;

fn python(kind: &str) -> Option<f64> {
    let path = std::env::temp_dir().join(format!("mp-bench-pool-{}.py", std::process::id()));
    std::fs::write(&path, PYTHON).ok()?;
    let out = std::process::Command::new("python3")
        .arg(&path)
        .arg(kind)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&path);
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn map_rate(pool: &Pool) -> f64 {
    let t = Instant::now();
    let r = pool
        .map_chunked(trivial, 0..TASKS, 1)
        .expect("map over the pool");
    let el = t.elapsed().as_secs_f64();
    assert_eq!(r.len() as u64, TASKS);
    TASKS as f64 / el
}

fn imap_rate(pool: &Pool) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    for r in pool
        .imap_unordered(trivial, 0..TASKS)
        .expect("imap_unordered")
    {
        r.expect("task");
        n += 1;
    }
    let el = t.elapsed().as_secs_f64();
    assert_eq!(n, TASKS);
    TASKS as f64 / el
}

fn apply_rate(pool: &Pool) -> f64 {
    let t = Instant::now();
    for i in 0..ROUND_TRIPS {
        let v = pool
            .apply_async(trivial, (i,))
            .and_then(|r| r.get())
            .expect("apply_async round trip");
        assert_eq!(v, i);
    }
    ROUND_TRIPS as f64 / t.elapsed().as_secs_f64()
}

/// Seconds for the CPU-bound map with `n` workers.
fn cpu_time(n: usize) -> f64 {
    let pool = Pool::new(n).expect("pool");
    pool.map(trivial, 0..4u64).expect("warm-up");
    let t = Instant::now();
    pool.map_chunked(spin, 0..CPU_TASKS, 1).expect("cpu map");
    t.elapsed().as_secs_f64()
}

#[cfg(feature = "peers")]
fn procspawn_apply_rate() -> Option<f64> {
    let pool = procspawn::Pool::new(2).ok()?;
    for i in 0..100u64 {
        pool.spawn(i, trivial).join().ok()?;
    }
    let t = Instant::now();
    for i in 0..ROUND_TRIPS {
        pool.spawn(i, trivial).join().ok()?;
    }
    Some(ROUND_TRIPS as f64 / t.elapsed().as_secs_f64())
}

#[cfg(not(feature = "peers"))]
fn procspawn_apply_rate() -> Option<f64> {
    None
}

/// Only the 20k-task `map` and `imap_unordered` rows (no CPython).
pub fn run_throughput() {
    let pool = Pool::new(2).expect("Pool(2)");
    pool.map(trivial, 0..100u64).expect("warm-up");
    let rows = vec![
        Row {
            name: "pool.map 20k trivial, chunksize 1".into(),
            ours: report::median(5, || map_rate(&pool)),
            against: None,
            unit: "tasks/s",
            higher_is_better: true,
        },
        Row {
            name: "pool.imap_unordered 20k trivial, chunk 1".into(),
            ours: report::median(5, || imap_rate(&pool)),
            against: None,
            unit: "tasks/s",
            higher_is_better: true,
        },
    ];
    report::print("pool.throughput (ours only)", &rows);
}

/// Only the `apply_async` round trip (and procspawn's with `peers`).
pub fn run_apply() {
    let pool = Pool::new(2).expect("Pool(2)");
    pool.map(trivial, 0..100u64).expect("warm-up");
    let rows = vec![Row {
        name: "pool.apply_async round trip".into(),
        ours: report::median(5, || apply_rate(&pool)),
        against: procspawn_apply_rate().map(|p| ("procspawn Pool(2) spawn+join".to_string(), p)),
        unit: "trips/s",
        higher_is_better: true,
    }];
    report::print("pool.apply (ours, procspawn with --features peers)", &rows);
}

/// Only the CPU-bound efficiency row (no CPython).
pub fn run_cpu() {
    let t1 = report::median(5, || cpu_time(1));
    let t2 = report::median(5, || cpu_time(2));
    let rows = vec![Row {
        name: "pool.cpu_map efficiency T1/(2*T2)".into(),
        ours: 100.0 * t1 / (2.0 * t2),
        against: None,
        unit: "%",
        higher_is_better: true,
    }];
    report::print("pool.cpu (ours only)", &rows);
    println!(
        "cpu map: 1 worker {:.1} ms, 2 workers {:.1} ms",
        t1 * 1e3,
        t2 * 1e3
    );
}

/// Runs the suite and prints its table.
pub fn run() {
    let pool = Pool::new(2).expect("Pool(2)");
    pool.map(trivial, 0..100u64).expect("warm-up");
    let mut rows = Vec::new();
    rows.push(Row {
        name: "pool.map 20k trivial, chunksize 1".into(),
        ours: report::median(3, || map_rate(&pool)),
        against: Some(("CPython Pool(2).map".into(), python("map").unwrap_or(0.0))),
        unit: "tasks/s",
        higher_is_better: true,
    });
    rows.push(Row {
        name: "pool.imap_unordered 20k trivial, chunk 1".into(),
        ours: report::median(3, || imap_rate(&pool)),
        against: Some((
            "CPython imap_unordered".into(),
            python("imap").unwrap_or(0.0),
        )),
        unit: "tasks/s",
        higher_is_better: true,
    });
    let apply = report::median(3, || apply_rate(&pool));
    rows.push(Row {
        name: "pool.apply_async round trip".into(),
        ours: apply,
        against: Some((
            "CPython apply_async().get()".into(),
            python("apply").unwrap_or(0.0),
        )),
        unit: "trips/s",
        higher_is_better: true,
    });
    if let Some(peer) = procspawn_apply_rate() {
        rows.push(Row {
            name: "pool.apply_async round trip".into(),
            ours: apply,
            against: Some(("procspawn Pool(2) spawn+join".into(), peer)),
            unit: "trips/s",
            higher_is_better: true,
        });
    }
    drop(pool);
    let t1 = report::median(3, || cpu_time(1));
    let t2 = report::median(3, || cpu_time(2));
    rows.push(Row {
        name: "pool.cpu_map efficiency T1/(2*T2)".into(),
        ours: 100.0 * t1 / (2.0 * t2),
        against: Some((
            "CPython, same rule".into(),
            100.0 * python("cpu").unwrap_or(0.0),
        )),
        unit: "%",
        higher_is_better: true,
    });
    report::print(
        &format!(
            "pool: Pool(2), start method {} (CPython: fork)",
            multiprocessing::get_start_method()
        ),
        &rows,
    );
    println!(
        "cpu map: {CPU_TASKS} tasks, 1 worker {:.1} ms, 2 workers {:.1} ms",
        t1 * 1e3,
        t2 * 1e3
    );
}
