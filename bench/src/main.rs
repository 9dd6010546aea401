//! Side-by-side benchmarks; see `bench/README.md`.

mod wire;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    match which.as_str() {
        "wire" => wire::run(),
        _ => {
            eprintln!("usage: mp-bench <benchmark>\n\nbenchmarks:\n  wire   framing and connections vs raw sockets and CPython");
            std::process::exit(2);
        }
    }
}
