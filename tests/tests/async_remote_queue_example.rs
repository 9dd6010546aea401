//! The async remote-queue example (`client/examples/async_remote_queue.rs`)
//! prints what it promises: its worker processes squared every number.
//!
//! A `harness = false` target: the example forks its workers, which must
//! happen in a process with no other test's threads (a thread holding a
//! lock at the fork leaves the child's copy locked forever).

use mp_tests::harness::{self, Outcome, Test};

#[allow(dead_code)]
#[path = "../../client/examples/async_remote_queue.rs"]
mod remote_queue;

fn the_async_remote_queue_example_squares_in_its_worker_processes() -> Outcome {
    let mut out = Vec::new();
    remote_queue::run(&mut out).map_err(|e| e.to_string())?;
    let printed = String::from_utf8(out).map_err(|e| e.to_string())?;
    if printed != "20 squares from 2 worker processes\nsum: 2470\n" {
        return Err(format!("printed {printed:?}"));
    }
    Ok(())
}

fn main() {
    multiprocessing::init();
    let tests: &[(&str, Test)] = &[(
        "the_async_remote_queue_example_squares_in_its_worker_processes",
        the_async_remote_queue_example_squares_in_its_worker_processes,
    )];
    harness::run(tests);
}
