//! The reference's queue-fed workers: tasks go into a task queue, four
//! worker processes take them until a STOP sentinel and put their answers
//! into a done queue.
//!
//! `cargo run -p multiprocessing --example queue_workers`. The random
//! sleep of `mul`/`plus` is up to 0.5 s as in the reference; set
//! `QUEUE_WORKERS_MAX_SLEEP` (seconds) to shorten it.

use std::io::Write;
use std::time::Duration;

use multiprocessing::{current_process, Process, Queue};
use serde::{Deserialize, Serialize};

/// What the task queue carries: a call, or the STOP sentinel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Item {
    /// `mul(a, b)`.
    Mul(i64, i64),
    /// `plus(a, b)`.
    Plus(i64, i64),
    /// Python's `'STOP'`.
    Stop,
}

fn random_sleep() {
    let max: f64 = std::env::var("QUEUE_WORKERS_MAX_SLEEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    std::thread::sleep(Duration::from_secs_f64(max * rand::random::<f64>()));
}

/// Runs one call and says who did it.
fn calculate(item: Item) -> Option<String> {
    let (name, args, result) = match item {
        Item::Mul(a, b) => {
            random_sleep();
            ("mul", (a, b), a * b)
        }
        Item::Plus(a, b) => {
            random_sleep();
            ("plus", (a, b), a + b)
        }
        Item::Stop => return None,
    };
    Some(format!(
        "{} says that {name}{args:?} = {result}",
        current_process().name()
    ))
}

/// The worker process: `for func, args in iter(input.get, 'STOP')`.
fn worker(input: Queue<Item>, output: Queue<String>) -> Result<(), String> {
    loop {
        let item = input.get().map_err(|e| e.to_string())?;
        let Some(result) = calculate(item) else {
            return Ok(());
        };
        output.put(&result).map_err(|e| e.to_string())?;
    }
}

/// The demonstration, printed to `out`.
pub fn run(out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    const NUMBER_OF_PROCESSES: usize = 4;
    let tasks1: Vec<Item> = (0..20).map(|i| Item::Mul(i, 7)).collect();
    let tasks2: Vec<Item> = (0..10).map(|i| Item::Plus(i, 8)).collect();

    let task_queue: Queue<Item> = Queue::new(0)?;
    let done_queue: Queue<String> = Queue::new(0)?;

    for task in &tasks1 {
        task_queue.put(task)?;
    }
    let workers: Vec<Process> = (0..NUMBER_OF_PROCESSES)
        .map(|_| Process::new(worker, (task_queue.clone(), done_queue.clone())))
        .collect();
    for p in &workers {
        p.start()?;
    }

    writeln!(out, "Unordered results:")?;
    for _ in 0..tasks1.len() {
        writeln!(out, "\t {}", done_queue.get()?)?;
    }
    for task in &tasks2 {
        task_queue.put(task)?;
    }
    for _ in 0..tasks2.len() {
        writeln!(out, "\t {}", done_queue.get()?)?;
    }
    for _ in 0..NUMBER_OF_PROCESSES {
        task_queue.put(&Item::Stop)?;
    }
    for p in &workers {
        p.join()?;
    }
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiprocessing::init();
    run(&mut std::io::stdout())
}
