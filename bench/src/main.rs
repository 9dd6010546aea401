//! Side-by-side benchmarks; see `bench/README.md`.

mod wire;
mod wire_conn;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str).unwrap_or_default() {
        "wire" => wire::run(args.get(2).map(String::as_str)),
        _ => {
            eprintln!("usage: mp-bench <benchmark>\n\nbenchmarks:\n  wire [frame|pipe]   framing and connections vs raw sockets and CPython");
            std::process::exit(2);
        }
    }
}
