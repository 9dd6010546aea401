//! Awaiting local primitives from one tokio program (feature `asyncio`):
//! a worker process's exit, a `Queue` it fills, and a `Pool`'s
//! `AsyncResult`, while another task keeps ticking on the same
//! current-thread runtime — no thread is blocked for any of them.
//!
//! ```text
//! cargo run -p multiprocessing --features asyncio --example async_local
//! ```

use std::time::Duration;

use multiprocessing::{Pool, Process, Queue};

/// The worker process: reports three readings on the queue, then exits.
fn sensor(readings: Queue<(u32, f64)>) -> Result<(), String> {
    for i in 0..3u32 {
        std::thread::sleep(Duration::from_millis(50));
        readings
            .put(&(i, f64::from(i) * 1.5))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A pool task.
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x * x
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Shows the runtime stays free while everything below waits.
    let ticker = tokio::spawn(async {
        let mut ticks = 0u32;
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            ticks += 1;
            if ticks % 4 == 0 {
                println!("  (ticker: {ticks} ticks)");
            }
        }
    });

    let readings: Queue<(u32, f64)> = Queue::new(0)?;
    let worker = Process::new(sensor, (readings.clone(),));
    worker.start()?;

    let pool = Pool::new(2)?;
    let squares: Vec<_> = (1..=3u64)
        .map(|x| pool.apply_async(slow_square, (x,)))
        .collect::<Result<_, _>>()?;

    for _ in 0..3 {
        let (i, value) = readings.get_async().await?;
        println!("reading {i}: {value}");
    }
    worker.join_async().await?;
    println!("worker exited with {:?}", worker.exitcode()?);

    for (x, pending) in (1..=3u64).zip(squares) {
        // An AsyncResult is a future: awaiting it moves the result out.
        println!("{x}² = {}", pending.await?);
    }
    pool.close()?;
    pool.join()?;
    ticker.abort();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First: a spawn or forkserver child of this program starts here.
    multiprocessing::init();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
