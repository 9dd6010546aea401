//! `mp-bench process`: start + join of a no-op target per start method,
//! beside CPython doing the same in the same run and the raw OS primitives
//! (`fork`+`_exit`+`waitpid`, `posix_spawn` of this binary exiting at once).

use std::process::Command;
use std::time::{Duration, Instant};

use multiprocessing::{get_context, StartMethod};

use crate::report::{self, Row};

/// The argument that makes this binary exit at once (the raw re-exec cost).
pub const NOOP_FLAG: &str = "--noop-exit";

fn noop() {}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn time_n(n: usize, mut f: impl FnMut()) -> Duration {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    median(samples)
}

fn ours(method: StartMethod, n: usize) -> Duration {
    let ctx = get_context(method);
    let once = || {
        let p = ctx.process(noop, ());
        p.start().expect("start");
        p.join().expect("join");
        assert_eq!(p.exitcode().expect("exitcode"), Some(0));
    };
    // Warm-up: the forkserver and the parent's pidfd start once.
    for _ in 0..10 {
        once();
    }
    time_n(n, once)
}

/// procspawn (re-executes like our spawn): spawn a no-op and join it.
#[cfg(feature = "peers")]
fn procspawn_peer(n: usize) -> Duration {
    let once = || {
        let h = procspawn::spawn((), |()| ());
        h.join().expect("procspawn join");
    };
    for _ in 0..10 {
        once();
    }
    time_n(n, once)
}

fn raw_fork(n: usize) -> Duration {
    time_n(n, || {
        // SAFETY: the child only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let mut st = 0;
        // SAFETY: valid out-pointer; pid is our child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    })
}

fn raw_spawn_self(n: usize) -> Duration {
    let exe = std::env::current_exe().expect("current_exe");
    time_n(n, || {
        let status = Command::new(&exe).arg(NOOP_FLAG).status().expect("spawn");
        assert!(status.success());
    })
}

const PY: &str = r#"
import multiprocessing as mp, sys, time
def noop(): pass
if __name__ == '__main__':
    for method, n in (('fork', int(sys.argv[1])), ('spawn', int(sys.argv[2])), ('forkserver', int(sys.argv[3]))):
        ctx = mp.get_context(method)
        for _ in range(3):
            p = ctx.Process(target=noop); p.start(); p.join()
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            p = ctx.Process(target=noop); p.start(); p.join()
            ts.append(time.perf_counter() - t)
        ts.sort()
        print(method, ts[len(ts) // 2] * 1e3)
"#;

fn cpython(n_fork: usize, n_spawn: usize, n_fs: usize) -> Vec<(String, f64)> {
    let dir = std::env::temp_dir().join(format!("mp-bench-process-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let script = dir.join("bench_process.py");
    if std::fs::write(&script, PY).is_err() {
        return Vec::new();
    }
    let out = Command::new("python3")
        .arg(&script)
        .args([n_fork.to_string(), n_spawn.to_string(), n_fs.to_string()])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let Ok(out) = out else {
        eprintln!("python3 not available: no CPython figures");
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (m, v) = l.split_once(' ')?;
            Some((m.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Runs the benchmark and prints its table (milliseconds, lower is better).
pub fn run() {
    let n = 300;
    let methods = [
        (StartMethod::Fork, 0.4),
        (StartMethod::Spawn, 1.0),
        (StartMethod::Forkserver, 0.8),
    ];
    let figures: Vec<(StartMethod, f64, f64)> = methods
        .iter()
        .map(|&(m, goal)| (m, ms(ours(m, n)), goal))
        .collect();
    let fork = ms(raw_fork(n));
    let exec = ms(raw_spawn_self(n));
    let py = cpython(200, 20, 50);
    let row = |name: String, ours: f64, against: Option<(String, f64)>| Row {
        name,
        ours,
        against,
        unit: "ms",
        higher_is_better: false,
    };
    let mut rows = Vec::new();
    for &(m, ours, _) in &figures {
        let theirs = py.iter().find(|(pm, _)| pm == m.as_str()).map(|(_, v)| *v);
        rows.push(row(
            format!("process.start_join.{m}"),
            ours,
            theirs.map(|v| (format!("CPython {m}"), v)),
        ));
    }
    rows.push(row(
        "process.start_join.fork".into(),
        figures[0].1,
        Some(("raw fork+_exit+waitpid".into(), fork)),
    ));
    rows.push(row(
        "process.start_join.spawn".into(),
        figures[1].1,
        Some(("raw re-exec of this binary".into(), exec)),
    ));
    #[cfg(feature = "peers")]
    rows.push(row(
        "process.start_join.spawn".into(),
        figures[1].1,
        Some(("procspawn spawn+join".into(), ms(procspawn_peer(n)))),
    ));
    report::print(
        &format!("process: start+join of a no-op (median of {n}; CPython 200/20/50)"),
        &rows,
    );
    for (m, ours, goal) in figures {
        let verdict = if ours <= goal { "met" } else { "MISSED" };
        println!("goal {m} <= {goal} ms: {verdict} ({ours:.3} ms)");
    }
}
