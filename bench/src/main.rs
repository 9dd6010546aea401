//! Side-by-side benchmarks: ours, CPython doing the same work, the raw OS
//! primitive, and Rust peer crates, in one run. See `bench/README.md`.
//!
//! `cargo run --release -p mp-bench -- <suite>...`; no suite runs them all.

mod proto;
mod report;
mod sync;

/// A suite: its name on the command line and what runs it.
const SUITES: &[(&str, fn())] = &[("proto", proto::run), ("sync", sync::run)];

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    if wanted.iter().any(|w| w == "-h" || w == "--help") {
        println!("usage: mp-bench [SUITE]...\nsuites:");
        for (name, _) in SUITES {
            println!("  {name}");
        }
        return;
    }
    for w in &wanted {
        if !SUITES.iter().any(|(name, _)| name == w) {
            eprintln!("unknown suite {w:?}; try --help");
            std::process::exit(2);
        }
    }
    for (name, run) in SUITES {
        if wanted.is_empty() || wanted.iter().any(|w| w == name) {
            run();
        }
    }
}
