//! The reference's `Pool` demonstration: `calculate`/`mul`/`plus` tasks
//! through `apply_async`, `imap`, `imap_unordered` and `map`; error
//! handling with a task failing for x = 5 (Python's `ZeroDivisionError`,
//! here the `Err(ZeroDivisionError)` of `f`, which the caller gets back as
//! itself); timeouts on `AsyncResult::wait_timeout` and
//! `IMapIterator::next_timeout`.
//!
//! `cargo run -p multiprocessing --example pool_example`. The random sleep
//! of `mul`/`plus` is up to 0.5 s as in the reference; set
//! `POOL_EXAMPLE_MAX_SLEEP` (seconds) to shorten it.

use std::io::Write;
use std::time::Duration;

use multiprocessing::pool::PoolError;
use multiprocessing::{current_process, Pool};
use serde::{Deserialize, Serialize};

/// The functions a task names (Python passes the function itself).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Func {
    /// `mul(a, b)`.
    Mul,
    /// `plus(a, b)`.
    Plus,
}

/// A task: a function and its arguments.
pub type Task = (Func, (i64, i64));

fn random_sleep() {
    let max: f64 = std::env::var("POOL_EXAMPLE_MAX_SLEEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    std::thread::sleep(Duration::from_secs_f64(max * rand::random::<f64>()));
}

fn mul(a: i64, b: i64) -> i64 {
    random_sleep();
    a * b
}

fn plus(a: i64, b: i64) -> i64 {
    random_sleep();
    a + b
}

/// Runs a task and says who did it.
pub fn calculate(func: Func, args: (i64, i64)) -> String {
    let (name, result) = match func {
        Func::Mul => ("mul", mul(args.0, args.1)),
        Func::Plus => ("plus", plus(args.0, args.1)),
    };
    format!(
        "{} says that {name}{:?} = {result}",
        current_process().name(),
        args
    )
}

fn calculatestar(task: Task) -> String {
    calculate(task.0, task.1)
}

/// Python's `ZeroDivisionError`: the task's own error, which reaches the
/// caller as itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroDivisionError;

impl std::fmt::Display for ZeroDivisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("float division by zero")
    }
}

impl std::error::Error for ZeroDivisionError {}

/// `1 / (x - 5)`, failing for x = 5 as Python's raises ZeroDivisionError.
fn f(x: i64) -> Result<f64, ZeroDivisionError> {
    if x == 5 {
        return Err(ZeroDivisionError);
    }
    Ok(1.0 / (x as f64 - 5.0))
}

/// The demonstration, printed to `out`.
pub fn run(out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    const PROCESSES: usize = 4;
    writeln!(out, "Creating pool with {PROCESSES} processes\n")?;
    let pool = Pool::new(PROCESSES)?;

    let tasks: Vec<Task> = (0..10)
        .map(|i| (Func::Mul, (i, 7)))
        .chain((0..10).map(|i| (Func::Plus, (i, 8))))
        .collect();
    let results = tasks
        .iter()
        .map(|&(func, args)| pool.apply_async(calculate, (func, args)))
        .collect::<Result<Vec<_>, _>>()?;
    let imap_it = pool.imap(calculatestar, tasks.clone())?;
    let imap_unordered_it = pool.imap_unordered(calculatestar, tasks.clone())?;

    writeln!(out, "Ordered results using pool.apply_async():")?;
    for r in results {
        writeln!(out, "\t {}", r.get()?)?;
    }
    writeln!(out)?;
    writeln!(out, "Ordered results using pool.imap():")?;
    for x in imap_it {
        writeln!(out, "\t {}", x?)?;
    }
    writeln!(out)?;
    writeln!(out, "Unordered results using pool.imap_unordered():")?;
    for x in imap_unordered_it {
        writeln!(out, "\t {}", x?)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Ordered results using pool.map() --- will block till complete:"
    )?;
    for x in pool.map(calculatestar, tasks.clone())? {
        writeln!(out, "\t {x}")?;
    }
    writeln!(out)?;

    // Error handling.
    writeln!(out, "Testing error handling:")?;
    match pool.apply(f, (5,)) {
        Err(PoolError::Task {
            error: ZeroDivisionError,
            ..
        }) => writeln!(out, "\tGot ZeroDivisionError as expected from pool.apply()")?,
        other => return Err(format!("expected ZeroDivisionError, got {other:?}").into()),
    }
    match pool.map(f, 0..10) {
        Err(PoolError::Task {
            index: 5,
            error: ZeroDivisionError,
        }) => writeln!(out, "\tGot ZeroDivisionError as expected from pool.map()")?,
        other => return Err(format!("expected ZeroDivisionError, got {other:?}").into()),
    }
    match pool.imap(f, 0..10)?.collect::<Result<Vec<f64>, _>>() {
        Err(PoolError::Task {
            index: 5,
            error: ZeroDivisionError,
        }) => writeln!(
            out,
            "\tGot ZeroDivisionError as expected from list(pool.imap())"
        )?,
        other => return Err(format!("expected ZeroDivisionError, got {other:?}").into()),
    }
    let mut last = 0;
    for (i, x) in pool.imap(f, 0..10)?.enumerate() {
        match (i, x) {
            (5, Err(PoolError::Task { .. })) => {}
            (5, Ok(_)) => return Err("expected ZeroDivisionError at 5".into()),
            (_, Err(e)) => return Err(format!("unexpected error at {i}: {e}").into()),
            (_, Ok(_)) => {}
        }
        last = i;
    }
    if last != 9 {
        return Err(format!("the iteration stopped at {last}").into());
    }
    writeln!(
        out,
        "\tGot ZeroDivisionError as expected from IMapIterator.next()"
    )?;
    writeln!(out)?;

    // Timeouts. Python retries `get(timeout)`; here `get` takes the
    // result by value, so the waiting is `wait_timeout`, then one `get`.
    write!(out, "Testing ApplyResult.get() with timeout:")?;
    let res = pool.apply_async(calculate, tasks[0])?;
    while !res.wait_timeout(Duration::from_millis(20)) {
        write!(out, ".")?;
    }
    write!(out, "\n\t{}", res.get()?)?;
    writeln!(out, "\n")?;
    write!(out, "Testing IMapIterator.next() with timeout:")?;
    let mut it = pool.imap(calculatestar, tasks)?;
    loop {
        match it.next_timeout(Duration::from_millis(20)) {
            None => break,
            Some(Ok(v)) => write!(out, "\n\t{v}")?,
            Some(Err(PoolError::Timeout)) => write!(out, ".")?,
            Some(Err(e)) => return Err(e.into()),
        }
    }
    writeln!(out, "\n")?;
    pool.close()?;
    pool.join()?;
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiprocessing::init();
    run(&mut std::io::stdout())
}
