//! `mp-bench manager.python`: one unmodified CPython manager client
//! (`bench/src/manager_python.py`) against `mpserver` and against
//! CPython's own `SyncManager` server, in one run, over TCP loopback.
//!
//! * One client: `d["k"] = 1; d["k"]` and `q.put(1); q.get()`, pairs/s
//!   (goal ≥ 1.5x CPython's server).
//! * Eight Python processes doing set+get on one dict, pairs/s over the
//!   slowest (goal ≥ 3x).
//! * `x = m.dict(); del x` per second (goal ≥ 100x).
//! * The server's CPU time per call during the dict loop, from
//!   `/proc/<pid>/task/*/schedstat` (goal ≤ 0.3x CPython's server).
//!
//! A third server, the *instant* one ([`instant_main`]), does the
//! handshake and then answers every request with a fixed
//! `('#RETURN', 1)` without reading it, from a thread per connection that
//! sleeps in `recv` between requests: the same client against it shows
//! what the Python client costs by itself beside a server that does
//! nothing but sleep and wake. (A server that polls for the next request,
//! as `mpserver`'s threads do, can be faster: the answer is back before
//! the client sleeps.)
//!
//! The client runs under `MP_BENCH_PYTHON` (default: pyenv's 3.12.1 if
//! present, else `python3`); a CPython before 3.12 makes `mpserver` start
//! with `--legacy-auth`. The three servers are measured in turn, repeat
//! after repeat, so a busy machine slows them alike.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command};

use mp_proto::auth::{server_handshake, AuthOptions};
use mp_proto::frame::{read_frame, write_frame};

use crate::manager::{spawn_serving, ServerProc, KEY};
use crate::report::{self, Row};
use crate::wire::median;

/// The client (and CPython server) script.
const SCRIPT: &str = include_str!("manager_python.py");
/// The environment variable that turns this binary into the instant
/// server; its value is `legacy` to accept CPython ≤ 3.11's handshake.
const INSTANT_ENV: &str = "MP_BENCH_INSTANT_SERVER";
/// Repeats of each single-client figure (the median is reported).
const REPEATS: usize = 5;
/// Seconds each single-client figure is measured for.
const SECS: &str = "0.4";
/// Client processes, and set+get pairs each, in the many-client part.
const PROCS: usize = 8;
const PAIRS: usize = 2_000;
/// `('#RETURN', 1)` pickled (protocol 2).
const RETURN_ONE: &[u8] = &[
    128, 2, 88, 7, 0, 0, 0, 35, 82, 69, 84, 85, 82, 78, 113, 0, 75, 1, 134, 113, 1, 46,
];

/// The Python that runs the client.
fn python() -> String {
    if let Ok(p) = std::env::var("MP_BENCH_PYTHON") {
        return p;
    }
    let pyenv = "/root/.pyenv/versions/3.12.1/bin/python3";
    if std::path::Path::new(pyenv).exists() {
        pyenv.into()
    } else {
        "python3".into()
    }
}

/// Whether `python` needs the legacy (≤ 3.11) handshake.
fn legacy(python: &str) -> bool {
    let out = Command::new(python)
        .args(["-c", "import sys; print(int(sys.version_info < (3, 12)))"])
        .output();
    matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "1")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the script with `args`; its `name value` lines.
fn run_script(python: &str, args: &[&str]) -> Vec<(String, f64)> {
    crate::manager::run_python_script(python, SCRIPT, args)
}

/// A server the client is pointed at.
struct Target {
    child: Child,
    host: String,
    port: String,
}

impl Target {
    fn new(child: Child, address: &str) -> Target {
        let (host, port) = address.rsplit_once(':').expect("HOST:PORT");
        Target {
            child,
            host: host.to_owned(),
            port: port.to_owned(),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// If this process was started as the instant server, serves until
/// killed and returns true.
pub fn instant_main() -> bool {
    let Ok(mode) = std::env::var(INSTANT_ENV) else {
        return false;
    };
    let options = if mode == "legacy" {
        AuthOptions::legacy()
    } else {
        AuthOptions::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    println!("serving at {address}");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let options = options.clone();
        std::thread::spawn(move || {
            let _ = s.set_nodelay(true);
            if server_handshake(&mut s, KEY, &options).is_err() {
                return;
            }
            while let Ok(Some(_)) = read_frame(&mut s, 1 << 20) {
                if write_frame(&mut s, RETURN_ONE).is_err() {
                    return;
                }
            }
        });
    }
    true
}

fn instant(legacy: bool) -> Target {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let (child, address) =
        spawn_serving(Command::new(exe).env(INSTANT_ENV, if legacy { "legacy" } else { "modern" }));
    Target::new(child, &address)
}

fn cpython_server(python: &str) -> Target {
    let (child, address) = spawn_serving(
        Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .args(["serve", &hex(KEY)]),
    );
    Target::new(child, &address)
}

/// What one single-client run against `host:port`, served by process
/// `pid`, printed.
fn single(python: &str, host: &str, port: &str, pid: u32, instant: bool) -> Vec<(String, f64)> {
    let (pid, key) = (pid.to_string(), hex(KEY));
    let mut args = vec!["single", host, port, &key, &pid, SECS];
    if instant {
        args.push("instant");
    }
    run_script(python, &args)
}

fn get(figures: &[(String, f64)], name: &str) -> f64 {
    figures
        .iter()
        .find(|(n, _)| n == name)
        .map_or(f64::NAN, |(_, v)| *v)
}

/// The medians of `name` over runs.
fn med(runs: &[Vec<(String, f64)>], name: &str) -> f64 {
    median(runs.iter().map(|r| get(r, name)).collect())
}

fn range(runs: &[Vec<(String, f64)>], name: &str) -> String {
    let v: Vec<f64> = runs.iter().map(|r| get(r, name)).collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}–{}", report::human(lo), report::human(hi))
}

fn row(name: &str, ours: f64, against: &str, theirs: f64, unit: &'static str, hib: bool) -> Row {
    Row {
        name: name.into(),
        ours,
        against: Some((against.into(), theirs)),
        unit,
        higher_is_better: hib,
    }
}

/// The suite.
pub fn run() {
    let python = python();
    let legacy = legacy(&python);
    let extra: Vec<String> = if legacy {
        vec!["--legacy-auth".into()]
    } else {
        Vec::new()
    };
    let server = ServerProc::start_with(None, &extra);
    let (host, port) = server.address.rsplit_once(':').expect("HOST:PORT");
    let theirs = cpython_server(&python);
    let fast = instant(legacy);
    let key = hex(KEY);

    let (mut ours_runs, mut theirs_runs, mut instant_runs) = (vec![], vec![], vec![]);
    for _ in 0..REPEATS {
        ours_runs.push(single(&python, host, port, server.child.id(), false));
        theirs_runs.push(single(
            &python,
            &theirs.host,
            &theirs.port,
            theirs.child.id(),
            false,
        ));
        instant_runs.push(single(
            &python,
            &fast.host,
            &fast.port,
            fast.child.id(),
            true,
        ));
    }
    let (mut ours_many, mut theirs_many, mut instant_many) = (vec![], vec![], vec![]);
    let (mut ours_create, mut theirs_create) = (vec![], vec![]);
    let (procs, pairs) = (PROCS.to_string(), PAIRS.to_string());
    for _ in 0..3 {
        ours_many.push(run_script(
            &python,
            &["clients", host, port, &key, &procs, &pairs],
        ));
        theirs_many.push(run_script(
            &python,
            &["clients", &theirs.host, &theirs.port, &key, &procs, &pairs],
        ));
        instant_many.push(run_script(
            &python,
            &[
                "clients", &fast.host, &fast.port, &key, &procs, &pairs, "instant",
            ],
        ));
        ours_create.push(run_script(&python, &["create", host, port, &key, "0.3"]));
        theirs_create.push(run_script(
            &python,
            &["create", &theirs.host, &theirs.port, &key, "0.3"],
        ));
    }
    drop(fast);
    drop(theirs);
    drop(server);

    let py = "CPython's server";
    let rows = vec![
        row(
            "python.manager.dict_setget",
            med(&ours_runs, "dict_setget"),
            py,
            med(&theirs_runs, "dict_setget"),
            "pairs/s",
            true,
        ),
        row(
            "python.manager.queue_put_get",
            med(&ours_runs, "queue_put_get"),
            py,
            med(&theirs_runs, "queue_put_get"),
            "pairs/s",
            true,
        ),
        row(
            "python.instant.dict_setget (sleeping)",
            med(&instant_runs, "dict_setget"),
            py,
            med(&theirs_runs, "dict_setget"),
            "pairs/s",
            true,
        ),
        row(
            "python.instant.queue_put_get (sleeping)",
            med(&instant_runs, "queue_put_get"),
            py,
            med(&theirs_runs, "queue_put_get"),
            "pairs/s",
            true,
        ),
        row(
            "python.manager.dict_setget.vs_instant",
            med(&ours_runs, "dict_setget"),
            "instant server",
            med(&instant_runs, "dict_setget"),
            "pairs/s",
            true,
        ),
        row(
            "python.manager.dict_setget_8procs",
            med(&ours_many, "dict_setget_procs"),
            py,
            med(&theirs_many, "dict_setget_procs"),
            "pairs/s",
            true,
        ),
        row(
            "python.instant.dict_setget_8procs (sleeping)",
            med(&instant_many, "dict_setget_procs"),
            py,
            med(&theirs_many, "dict_setget_procs"),
            "pairs/s",
            true,
        ),
        row(
            "python.manager.dict_create_del",
            med(&ours_create, "dict_create_del"),
            py,
            med(&theirs_create, "dict_create_del"),
            "/s",
            true,
        ),
        row(
            "python.manager.server_cpu_per_call",
            med(&ours_runs, "server_ns_per_call"),
            py,
            med(&theirs_runs, "server_ns_per_call"),
            "ns",
            false,
        ),
        row(
            "python.instant.server_cpu_per_call",
            med(&instant_runs, "server_ns_per_call"),
            py,
            med(&theirs_runs, "server_ns_per_call"),
            "ns",
            false,
        ),
        row(
            "python.manager.client_cpu_per_call",
            med(&ours_runs, "client_ns_per_call"),
            "the same, on CPython's server",
            med(&theirs_runs, "client_ns_per_call"),
            "ns",
            false,
        ),
    ];
    report::print(
        &format!("manager.python: CPython clients ({python}), TCP loopback"),
        &rows,
    );
    println!("\nranges over {REPEATS} interleaved runs (ours | CPython's | instant):");
    for name in [
        "dict_setget",
        "queue_put_get",
        "server_ns_per_call",
        "client_ns_per_call",
    ] {
        println!(
            "  {name}: {} | {} | {}",
            range(&ours_runs, name),
            range(&theirs_runs, name),
            range(&instant_runs, name)
        );
    }
    println!(
        "  dict_setget_procs: {} | {} | {}\n  dict_create_del: {} | {}",
        range(&ours_many, "dict_setget_procs"),
        range(&theirs_many, "dict_setget_procs"),
        range(&instant_many, "dict_setget_procs"),
        range(&ours_create, "dict_create_del"),
        range(&theirs_create, "dict_create_del"),
    );
}
