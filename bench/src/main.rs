//! Side-by-side benchmarks: ours, CPython doing the same work, the raw OS
//! primitive, and Rust peer crates, in one run. See `bench/README.md`.
//!
//! `cargo run --release -p mp-bench -- <suite>...`; no suite runs them all.

mod heap;
mod manager;
mod manager_async;
mod manager_cpu;
mod manager_durable;
mod manager_iter;
mod manager_mem;
mod manager_proxy;
mod manager_python;
mod manager_raw;
mod manager_reconnect;
mod manager_shared;
mod pool;
mod process;
mod proto;
mod queue;
mod report;
mod sync;
mod tls;
mod transport;
mod wire;
mod wire_conn;

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

/// A suite: its name on the command line and what runs it.
const SUITES: &[(&str, fn())] = &[
    ("manager", manager::run),
    ("manager.single", manager::run_single),
    ("manager.clients", manager::run_clients),
    ("manager.memory", manager::run_memory),
    ("manager.cpu", manager_cpu::run),
    ("manager.proxy", manager_proxy::run),
    ("manager.python", manager_python::run),
    ("manager.proxy.single", manager_proxy::run_single),
    ("manager.proxy.throughput", manager_proxy::run_throughput),
    ("manager.shared", manager_shared::run),
    ("manager.proxy.iter", manager_iter::run),
    ("manager.durable", manager_durable::run),
    ("manager.reconnect", manager_reconnect::run),
    ("manager.async", manager_async::run),
    ("proto", proto::run),
    ("wire", wire::run),
    ("wire.frame", wire::run_frame),
    ("wire.pipe", wire::run_pipe),
    ("wire.cpu", wire::run_cpu),
    ("process", process::run),
    ("sync", sync::run),
    ("queue", queue::run),
    ("tls", tls::run),
    ("pool", pool::run),
    ("pool.throughput", pool::run_throughput),
    ("pool.apply", pool::run_apply),
    ("pool.cpu", pool::run_cpu),
];

fn main() {
    // First: spawned and forkserver children of the benchmarks run from here.
    multiprocessing::init();
    #[cfg(feature = "peers")]
    procspawn::init();
    if manager::worker_main() || manager_python::instant_main() {
        return;
    }
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    if wanted.first().map(String::as_str) == Some(process::NOOP_FLAG) {
        return;
    }
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
