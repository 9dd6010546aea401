//! `mp-bench manager`: `mpserver` against CPython's `SyncManager` doing the
//! same work, and against a raw ping-pong, in one run; each over TCP
//! loopback and over a Unix socket (CPython's default family on Linux).
//!
//! * Single client, one call at a time with an authkey:
//!   `d[k]=v`, `d[k]`, `l.append(x)`, `q.put(x)`+`q.get()`,
//!   `lock.acquire()`+`release()`. Each figure is also compared, per
//!   round trip, with an 8-byte echo between two processes
//!   (the goal: at least 0.9x of it). Unpinned, same CPU and cross CPU.
//! * Eight client processes doing set+get on one dict (goal: 4x CPython).
//! * Server memory: see [`crate::manager_mem`].
//!
//! The server is the release `mpserver` binary beside this one (built if
//! missing), started per placement with its CPU affinity set before exec.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mp_proto::message::Kwargs;
use mp_proto::{ObjectId, Value};
use multiprocessing::managers::{ConnectOptions, ManagerClient};

use crate::report::{self, Row};
use crate::transport::{raw_echo, socket_path, Transport};
use crate::wire::{median, pin, rate, Placement};

/// Repeats per figure; the median is reported.
pub(crate) const REPEATS: usize = 3;
/// How long CPython measures each figure, as `wire::rate` does.
pub(crate) const PY_REPEAT_SECS: f64 = 0.3;
/// The CPython script.
const SCRIPT: &str = include_str!("manager_py.py");
/// The environment variable that turns this binary into a client worker.
const WORKER_ENV: &str = "MP_BENCH_MANAGER_WORKER";
/// The authkey every benchmark server uses.
pub(crate) const KEY: &[u8] = b"mp-bench-manager-key";

/// The release `mpserver` next to this binary, built if missing, or the
/// one `MP_BENCH_MPSERVER` names (another build, to compare two in turn).
pub(crate) fn mpserver_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MP_BENCH_MPSERVER") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let dir = exe.parent().expect("its directory").to_path_buf();
    let bin = dir.join("mpserver");
    if !bin.exists() {
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "-p", "mpserver"])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building mpserver failed");
    }
    bin
}

/// A running `mpserver serve` on a free loopback port or a Unix socket.
pub(crate) struct ServerProc {
    pub(crate) child: Child,
    pub(crate) address: String,
    key_file: PathBuf,
    socket: Option<PathBuf>,
}

impl ServerProc {
    /// Starts the server pinned to `cpu` (all its threads).
    pub(crate) fn start(cpu: Option<usize>) -> ServerProc {
        Self::start_with(cpu, &[])
    }

    /// [`start`](Self::start) with extra `serve` flags.
    pub(crate) fn start_with(cpu: Option<usize>, extra: &[String]) -> ServerProc {
        Self::start_on(cpu, Transport::Tcp, extra)
    }

    /// [`start_with`](Self::start_with) listening on `transport`.
    pub(crate) fn start_on(
        cpu: Option<usize>,
        transport: Transport,
        extra: &[String],
    ) -> ServerProc {
        let key_file = std::env::temp_dir().join(format!("mp-bench-{}.key", std::process::id()));
        std::fs::write(&key_file, KEY).expect("write the key file");
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600));
        let mut cmd = Command::new(mpserver_binary());
        let threads = std::env::var("MP_BENCH_SERVER_THREADS").unwrap_or_else(|_| "0".into());
        let socket = (transport == Transport::Unix).then(|| socket_path("mpserver"));
        match &socket {
            Some(path) => cmd.arg("serve").arg("--unix").arg(path),
            None => cmd.args(["serve", "--listen", "127.0.0.1:0"]),
        };
        cmd.args(["--log-level", "warn", "--threads", &threads])
            .arg("--authkey-file")
            .arg(&key_file)
            .args(extra);
        // SAFETY: between fork and exec the child only calls
        // sched_setaffinity, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                pin(cpu);
                Ok(())
            });
        }
        let (child, address) = spawn_serving(&mut cmd);
        ServerProc {
            child,
            address,
            key_file,
            socket,
        }
    }

    pub(crate) fn client(&self) -> ManagerClient {
        ManagerClient::connect(&self.address.parse().expect("address"), KEY).expect("connect")
    }
}

/// Spawns the `mpserver serve` command `cmd` and waits for its
/// `serving at ADDR` line; the child and `ADDR`.
pub(crate) fn spawn_serving(cmd: &mut Command) -> (std::process::Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start mpserver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the ready line");
    let address = line
        .trim()
        .strip_prefix("serving at ")
        .unwrap_or_else(|| panic!("not a ready line: {line:?}"))
        .to_owned();
    (child, address)
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.key_file);
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn call(c: &ManagerClient, id: ObjectId, method: &str, args: Vec<Value>) {
    c.call_method(id, method, args, Kwargs::new())
        .expect("call");
}

/// The five single-client workloads: name, round trips per step.
pub(crate) const WORKLOADS: [(&str, f64); 5] = [
    ("dict_set", 1.0),
    ("dict_get", 1.0),
    ("list_append", 1.0),
    ("queue_put_get", 2.0),
    ("lock_acquire_release", 2.0),
];

fn ours(placement: Placement, transport: Transport) -> Vec<f64> {
    let (server_cpu, client_cpu) = match placement {
        Placement::Unpinned => (None, None),
        Placement::SameCpu => (Some(0), Some(0)),
        Placement::CrossCpu => (Some(1), Some(0)),
    };
    let server = ServerProc::start_on(server_cpu, transport, &[]);
    pin(client_cpu);
    let c = server.client();
    let none = Kwargs::new;
    let d = c.create("dict", vec![], none()).expect("dict").token.id;
    let l = c.create("list", vec![], none()).expect("list").token.id;
    let q = c.create("Queue", vec![], none()).expect("Queue").token.id;
    let lock = c.create("Lock", vec![], none()).expect("Lock").token.id;
    // The same client without the poll-before-sleep, for comparison.
    let quiet = ManagerClient::connect_with(
        &server.address.parse().expect("address"),
        KEY,
        &ConnectOptions {
            spin: Duration::ZERO,
            ..ConnectOptions::default()
        },
    )
    .expect("connect");
    call(&c, d, "__setitem__", vec!["k".into(), 0.into()]);
    let mut samples = vec![Vec::new(); WORKLOADS.len() + 1];
    for _ in 0..REPEATS {
        samples[WORKLOADS.len()].push(rate(|| call(&quiet, d, "__getitem__", vec!["k".into()])));
        samples[0].push(rate(|| {
            call(&c, d, "__setitem__", vec!["k".into(), 1.into()])
        }));
        samples[1].push(rate(|| call(&c, d, "__getitem__", vec!["k".into()])));
        samples[2].push(rate(|| call(&c, l, "append", vec![1.into()])));
        samples[3].push(rate(|| {
            call(&c, q, "put", vec![1.into()]);
            call(&c, q, "get", vec![]);
        }));
        samples[4].push(rate(|| {
            call(&c, lock, "acquire", vec![]);
            call(&c, lock, "release", vec![]);
        }));
        call(&c, l, "clear", vec![]);
    }
    pin(None);
    samples.into_iter().map(median).collect()
}

pub(crate) fn python(args: &[&str]) -> Vec<(String, f64)> {
    run_python_script("python3", SCRIPT, args)
}

/// Runs `script` with `python` and `args`; its `name value` lines (none,
/// with the reason on stderr, if it fails).
pub(crate) fn run_python_script(python: &str, script: &str, args: &[&str]) -> Vec<(String, f64)> {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (name, v) = l.split_once(' ')?;
                Some((name.to_owned(), v.trim().parse().ok()?))
            })
            .collect(),
        Ok(out) => {
            eprintln!(
                "{python} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!("{python} not runnable: {e}");
            Vec::new()
        }
    }
}

pub(crate) fn placement_name(p: Placement) -> &'static str {
    match p {
        Placement::Unpinned => "unpinned",
        Placement::SameCpu => "samecpu",
        Placement::CrossCpu => "crosscpu",
    }
}

/// Runs the suite: every part below.
pub fn run() {
    run_single();
    crate::manager_proxy::run();
    run_clients();
    crate::manager_cpu::run();
    run_memory();
}

/// The 8-client part.
pub fn run_clients() {
    let clients = eight_clients();
    report::print("manager: 8 client processes, set+get on one dict", &clients);
}

/// The memory part.
pub fn run_memory() {
    report::print("manager: server memory", &crate::manager_mem::run());
}

/// The single-client part.
pub fn run_single() {
    let mut rows = Vec::new();
    for transport in Transport::ALL {
        for placement in Placement::ALL {
            single_rows(&mut rows, placement, transport);
        }
    }
    report::print("manager: single client, one call at a time", &rows);
}

fn single_rows(rows: &mut Vec<Row>, placement: Placement, transport: Transport) {
    let raw = raw_echo(placement, transport);
    let mine = ours(placement, transport);
    let secs = PY_REPEAT_SECS.to_string();
    let repeats = REPEATS.to_string();
    let py = python(&[
        "single",
        placement_name(placement),
        &secs,
        &repeats,
        transport.py_arg(),
    ]);
    let (sfx, t) = (placement.suffix(), transport.infix());
    let raw_label = format!("{} ping-pong", transport.label());
    let raw_row = format!("{}.pingpong_8b{sfx}", transport.raw_name());
    let ours_rows = Workloads {
        prefix: &format!("manager{t}"),
        sfx,
        python_label: "CPython SyncManager",
        raw_name: &raw_row,
        raw_label: &raw_label,
        raw,
    };
    ours_rows.push(rows, &mine, &py);
    rows.push(Row {
        name: format!("manager{t}.dict_get{sfx}.nospin.per_rt"),
        ours: mine[WORKLOADS.len()],
        against: Some((raw_label.clone(), raw)),
        unit: "RT/s",
        higher_is_better: true,
    });
    for (name, trips) in WORKLOADS {
        if let Some(theirs) = py.iter().find(|(n, _)| n == name).map(|(_, v)| *v) {
            rows.push(Row {
                name: format!("py.manager{t}.{name}{sfx}.per_rt"),
                ours: theirs * trips,
                against: Some((raw_label.clone(), raw)),
                unit: "RT/s",
                higher_is_better: true,
            });
        }
    }
}

/// How one placement's single-client figures are reported: the raw echo,
/// then per workload our figure against CPython's and, per round trip,
/// against the raw echo.
pub(crate) struct Workloads<'a> {
    /// Row names start with this (`manager`, `manager.unix`, `manager.proxy`).
    pub(crate) prefix: &'a str,
    /// The placement's suffix (`.samecpu`, …).
    pub(crate) sfx: &'a str,
    /// What CPython's figure is called.
    pub(crate) python_label: &'a str,
    /// The raw echo's row name.
    pub(crate) raw_name: &'a str,
    /// What the raw echo is called as a comparison.
    pub(crate) raw_label: &'a str,
    /// The raw echo's round trips per second.
    pub(crate) raw: f64,
}

impl Workloads<'_> {
    /// Pushes the rows for `mine` (one figure per [`WORKLOADS`] entry)
    /// and CPython's `py`.
    pub(crate) fn push(&self, rows: &mut Vec<Row>, mine: &[f64], py: &[(String, f64)]) {
        let (prefix, sfx) = (self.prefix, self.sfx);
        rows.push(Row {
            name: self.raw_name.to_owned(),
            ours: self.raw,
            against: None,
            unit: "RT/s",
            higher_is_better: true,
        });
        for ((name, trips), figure) in WORKLOADS.iter().zip(mine) {
            let theirs = py.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            let unit = if *trips > 1.0 { "pairs/s" } else { "ops/s" };
            rows.push(Row {
                name: format!("{prefix}.{name}{sfx}"),
                ours: *figure,
                against: theirs.map(|t| (self.python_label.into(), t)),
                unit,
                higher_is_better: true,
            });
            rows.push(Row {
                name: format!("{prefix}.{name}{sfx}.per_rt"),
                ours: figure * trips,
                against: Some((self.raw_label.into(), self.raw)),
                unit: "RT/s",
                higher_is_better: true,
            });
        }
    }
}

pub(crate) const CLIENTS: usize = 8;
pub(crate) const PAIRS: usize = 5000;

/// Repeats of the 8-client run, each side; the median is reported (the
/// CPython figure moves 2x between runs on this machine type).
const CLIENT_REPEATS: usize = 3;

fn eight_clients() -> Vec<Row> {
    let mut rows = Vec::new();
    for transport in Transport::ALL {
        rows.extend(eight_clients_on(transport));
    }
    // The ceiling of a shared-memory channel, against which the channel
    // rows (the default on one machine) are measured too.
    let raw = median(
        (0..CLIENT_REPEATS)
            .map(|_| crate::manager_raw::eight_raw_shm(CLIENTS, (PAIRS * 2) as u32))
            .collect(),
    );
    let ours = rows
        .iter()
        .find(|r| r.name == "manager.dict_setget_8clients")
        .map(|r| r.ours);
    rows.push(Row {
        name: "raw.shm_futex.8clients_pingpong".into(),
        ours: raw,
        against: None,
        unit: "RT/s",
        higher_is_better: true,
    });
    if let Some(ours) = ours {
        rows.push(Row {
            name: "manager.dict_setget_8clients.vs_raw_shm".into(),
            ours,
            against: Some(("raw shared-memory futex, 8 clients".into(), raw)),
            unit: "ops/s",
            higher_is_better: true,
        });
    }
    rows
}

fn eight_clients_on(transport: Transport) -> Vec<Row> {
    let mut ours = Vec::new();
    let mut sockets = Vec::new();
    let mut proxies = Vec::new();
    let mut theirs = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..CLIENT_REPEATS {
        raw.push(crate::manager_raw::eight_raw(CLIENTS, PAIRS * 2, transport));
        ours.push(eight_clients_once(Worker::Client, transport));
        sockets.push(eight_clients_once(Worker::Socket, transport));
        proxies.push(eight_clients_once(Worker::Proxy, transport));
        let py = python(&[
            "clients",
            &CLIENTS.to_string(),
            &(PAIRS / 5).to_string(),
            transport.py_arg(),
        ]);
        if let Some((_, v)) = py.first() {
            theirs.push(*v);
        }
    }
    let theirs = (!theirs.is_empty()).then(|| median(theirs));
    let raw = median(raw);
    let t = transport.infix();
    vec![
        Row {
            name: format!("{}.8clients_pingpong_8b", transport.raw_name()),
            ours: raw,
            against: theirs.map(|t| ("CPython SyncManager".into(), t)),
            unit: "RT/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager{t}.dict_setget_8clients.vs_raw"),
            ours: median(ours.clone()),
            against: Some((format!("{}, 8 clients", transport.label()), raw)),
            unit: "ops/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager{t}.dict_setget_8clients"),
            ours: median(ours),
            against: theirs.map(|t| ("CPython SyncManager".into(), t)),
            unit: "ops/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager{t}.socket.dict_setget_8clients"),
            ours: median(sockets),
            against: theirs.map(|t| ("CPython SyncManager".into(), t)),
            unit: "ops/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager{t}.proxy.dict_setget_8procs.vs_raw"),
            ours: median(proxies.clone()),
            against: Some((format!("{}, 8 clients", transport.label()), raw)),
            unit: "ops/s",
            higher_is_better: true,
        },
        Row {
            name: format!("manager{t}.proxy.dict_setget_8procs"),
            ours: median(proxies),
            against: theirs.map(|t| ("CPython SyncManager".into(), t)),
            unit: "ops/s",
            higher_is_better: true,
        },
    ]
}

/// What a worker process uses to reach the dict.
#[derive(Clone, Copy)]
enum Worker {
    /// `ManagerClient::call_method`, through a shared-memory channel
    /// (the default on one machine).
    Client,
    /// The same with channels off: every call through the socket.
    Socket,
    /// A `SyncManager` and a `DictProxy<String, i64>`.
    Proxy,
}

fn eight_clients_once(worker: Worker, transport: Transport) -> f64 {
    let server = ServerProc::start_on(None, transport, &[]);
    let c = server.client();
    let d = c
        .create("dict", vec![], Kwargs::new())
        .expect("dict")
        .token
        .id;
    let start = c
        .create("Event", vec![], Kwargs::new())
        .expect("Event")
        .token
        .id;
    let exe = std::env::current_exe().expect("own path");
    let workers: Vec<Child> = (0..CLIENTS)
        .map(|i| {
            Command::new(&exe)
                .env(
                    WORKER_ENV,
                    format!(
                        "{}|{}|{}|{}|{}|{}",
                        server.address,
                        d.0,
                        start.0,
                        i,
                        PAIRS,
                        matches!(worker, Worker::Proxy)
                    ),
                )
                .env(
                    multiprocessing::managers::SHARED_MEMORY_ENV,
                    if matches!(worker, Worker::Socket) {
                        "0"
                    } else {
                        "1"
                    },
                )
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.status().map(|s| s.connections).unwrap_or(0) < CLIENTS as u64 + 1 {
        assert!(Instant::now() < deadline, "workers did not connect");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Give the workers time to block in Event.wait.
    std::thread::sleep(Duration::from_millis(100));
    let server_cpu = crate::manager_cpu::cpu_ns(server.child.id());
    let server_switches = crate::manager_cpu::switches(server.child.id());
    let t0 = Instant::now();
    call(&c, start, "set", vec![]);
    let mut slowest: f64 = 0.0;
    let mut clients_cpu = 0u64;
    for w in workers {
        let out = w.wait_with_output().expect("worker output");
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut fields = out.split_whitespace();
        let secs: f64 = fields
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        let cpu: u64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        slowest = slowest.max(secs);
        clients_cpu += cpu;
    }
    if std::env::var_os("MP_BENCH_DEBUG").is_some() {
        let used = crate::manager_cpu::cpu_ns(server.child.id()) - server_cpu;
        let ops = (CLIENTS * PAIRS * 2) as f64;
        let (v, n) = crate::manager_cpu::switches(server.child.id());
        eprintln!(
            "server switches per op: {:.2} voluntary, {:.2} involuntary",
            (v - server_switches.0) as f64 / ops,
            (n - server_switches.1) as f64 / ops
        );
        eprintln!(
            "server cpu {:.2} s over {:.2} s wall, {:.0} ns/op; clients {:.0} ns/op",
            used as f64 / 1e9,
            t0.elapsed().as_secs_f64(),
            used as f64 / ops,
            clients_cpu as f64 / ops
        );
    }
    (CLIENTS * PAIRS * 2) as f64 / slowest
}

/// If this process was started as a benchmark client, does the work and
/// returns `true` (the caller then exits).
pub fn worker_main() -> bool {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return false;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [address, dict, start, index, pairs, proxy] = parts[..] else {
        eprintln!("bad {WORKER_ENV}");
        return true;
    };
    let parse = |s: &str| s.parse::<u64>().unwrap_or(0);
    let spin = std::env::var("MP_BENCH_SPIN_US")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(ConnectOptions::default().spin, Duration::from_micros);
    let options = ConnectOptions {
        spin,
        ..ConnectOptions::default()
    };
    let c = ManagerClient::connect_with(&address.parse().expect("address"), KEY, &options)
        .expect("connect");
    let (dict, start) = (ObjectId(parse(dict)), ObjectId(parse(start)));
    if proxy == "true" {
        crate::manager_proxy::worker(c, address, dict, start, parse(index), parse(pairs));
        return true;
    }
    call(&c, start, "wait", vec![]);
    let key = Value::from(format!("k{index}"));
    let cpu0 = crate::manager_cpu::cpu_ns(std::process::id());
    let began = Instant::now();
    for i in 0..parse(pairs) {
        call(
            &c,
            dict,
            "__setitem__",
            vec![key.clone(), Value::Int(i as i64)],
        );
        call(&c, dict, "__getitem__", vec![key.clone()]);
    }
    println!(
        "{} {}",
        began.elapsed().as_secs_f64(),
        crate::manager_cpu::cpu_ns(std::process::id()) - cpu0
    );
    true
}
