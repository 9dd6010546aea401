//! The runner of the `harness = false` test targets whose cases run once
//! per start method: `main` calls [`run`] after `multiprocessing::init()`,
//! so spawned and forkserver children are dispatched before any test runs.
//! Usage like libtest: `cargo test -p multiprocessing --test NAME [FILTER]`.

use multiprocessing::StartMethod;

/// A case, run once per start method.
pub type Test = fn(StartMethod) -> Result<(), String>;

/// Runs every case under fork, spawn and forkserver (those whose
/// `method::name` contains a command-line filter, if any are given),
/// prints libtest-like lines and exits 1 if any failed.
pub fn run(tests: &[(&str, Test)]) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        for (name, test) in tests {
            let full = format!("{m}::{name}");
            if !filters.is_empty() && !filters.iter().any(|f| full.contains(f.as_str())) {
                continue;
            }
            match test(m) {
                Ok(()) => {
                    passed += 1;
                    println!("test {full} ... ok");
                }
                Err(e) => {
                    failed += 1;
                    println!("test {full} ... FAILED: {e}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
