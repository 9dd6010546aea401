//! The reference documentation's remote manager ("Using a remote
//! manager": a server holding a queue, clients on other machines putting
//! and getting), with async workers in separate processes.
//!
//! * The server holds two named queues, `jobs` and `results` — what
//!   `mpserver serve --shared jobs=Queue --shared results=Queue` gives
//!   in production. Here the example starts a manager of its own and
//!   names the two queues with its blocking client.
//! * Two worker *processes* each run a tokio runtime of their own,
//!   connect, find the queues by name, and run three async tasks that
//!   take a number from `jobs` and put its square on `results`, until a
//!   `None` tells a task to stop. All three tasks share the process's one
//!   connection; a `get` waiting on the empty queue holds up nobody.
//! * This process is the client that hands out the work: it puts the
//!   numbers, one `None` per task, and gathers the results. Prints
//!
//! ```text
//! 20 squares from 2 worker processes
//! sum: 2470
//! ```
//!
//! Run with
//! `cargo run -p multiprocessing --example async_remote_queue --features asyncio`.

use std::error::Error;
use std::io::{self, Write};
use std::time::Duration;

use multiprocessing::connection::Address;
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::asyncio::{AsyncQueueProxy, AsyncSyncManager};
use multiprocessing::managers::Manager;

const AUTHKEY: &[u8] = b"abracadabra";
const WORKERS: usize = 2;
const TASKS_PER_WORKER: usize = 3;
const JOBS: i64 = 20;
/// How long anyone waits for the next item before giving up: a failed
/// process then ends the example with an error instead of a hang.
const PATIENCE: Duration = Duration::from_secs(60);

/// A worker's failure, sent across its tasks.
type BoxError = Box<dyn Error + Send + Sync>;

/// A worker process: its own runtime, one connection, three tasks.
fn worker(address: Address) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let manager = AsyncSyncManager::connect(&address, AUTHKEY).await?;
        // `QueueManager.register('get_queue')` in the reference: here the
        // queues are found by name.
        let jobs: AsyncQueueProxy<Option<i64>> = manager.lookup("jobs").await?;
        let results: AsyncQueueProxy<(u32, i64)> = manager.lookup("results").await?;
        let tasks: Vec<_> = (0..TASKS_PER_WORKER)
            .map(|_| {
                let (jobs, results) = (jobs.clone(), results.clone());
                tokio::spawn(async move {
                    while let Some(n) = jobs.get_timeout(PATIENCE).await? {
                        results.put((std::process::id(), n * n)).await?;
                    }
                    Ok::<(), BoxError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok(())
    })
}

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    // The server, with its two named queues. Everything that forks comes
    // before this process starts a runtime.
    let server = Manager::start("127.0.0.1:0", AUTHKEY)?;
    let address = server.address().clone();
    server.publish("jobs", &server.queue::<Option<i64>>()?)?;
    server.publish("results", &server.queue::<(u32, i64)>()?)?;

    let workers = (0..WORKERS)
        .map(|i| {
            let address = address.clone();
            let p = get_context(StartMethod::Fork)
                .process_fn(move || worker(address).map_err(|e| e.to_string()))
                .with_name(format!("worker-{i}"));
            p.start().map(|()| p)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let squares = runtime.block_on(async {
        let manager = AsyncSyncManager::connect(&address, AUTHKEY).await?;
        let jobs: AsyncQueueProxy<Option<i64>> = manager.lookup("jobs").await?;
        let results: AsyncQueueProxy<(u32, i64)> = manager.lookup("results").await?;
        for n in 0..JOBS {
            jobs.put(Some(n)).await?;
        }
        for _ in 0..WORKERS * TASKS_PER_WORKER {
            jobs.put(None).await?;
        }
        let mut squares = Vec::new();
        for _ in 0..JOBS {
            squares.push(results.get_timeout(PATIENCE).await?);
        }
        Ok::<_, Box<dyn Error>>(squares)
    })?;

    for w in &workers {
        w.join()?;
        if w.exitcode()? != Some(0) {
            return Err(format!("{} failed", w.name()).into());
        }
    }
    let mut values: Vec<i64> = squares.iter().map(|&(_, sq)| sq).collect();
    values.sort_unstable();
    if values != (0..JOBS).map(|n| n * n).collect::<Vec<_>>() {
        return Err(format!("wrong squares: {values:?}").into());
    }
    let mut processes: Vec<u32> = squares.iter().map(|&(pid, _)| pid).collect();
    processes.sort_unstable();
    processes.dedup();
    if processes.iter().any(|&pid| pid == std::process::id()) {
        return Err("a square was computed here, not in a worker".into());
    }
    writeln!(
        out,
        "{} squares from {WORKERS} worker processes",
        values.len()
    )?;
    writeln!(out, "sum: {}", values.iter().sum::<i64>())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
