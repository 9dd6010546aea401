//! The runner of the `harness = false` test targets (those whose `main`
//! calls `multiprocessing::init()` first, so spawned and forkserver
//! children are dispatched before any test runs). Usage like libtest:
//! `cargo test -p mp-tests --test NAME [FILTER]`.

/// What a case gives: `Err` says why it failed.
pub type Outcome = Result<(), String>;

/// A case.
pub type Test = fn() -> Outcome;

/// Runs every case whose name contains a command-line filter (all if none
/// is given), prints libtest-like lines and exits 1 if any failed.
pub fn run(tests: &[(&str, Test)]) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match test() {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
