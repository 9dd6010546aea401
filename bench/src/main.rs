//! Side-by-side benchmarks; see `bench/README.md`.

mod process;

fn main() {
    // First: spawned and forkserver children of the benchmarks run from here.
    multiprocessing::init();
    #[cfg(feature = "peers")]
    procspawn::init();
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(process::NOOP_FLAG) => {}
        Some("process") => process::run(),
        _ => {
            eprintln!("usage: mp-bench <process>");
            std::process::exit(2);
        }
    }
}
