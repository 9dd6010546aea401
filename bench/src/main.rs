//! Side-by-side benchmarks; see `bench/README.md`.

fn main() {}
