//! CPython's own manager tests against the real `mpserver`: the
//! `WithManagerTest*` classes `test._test_multiprocessing` generates
//! (queues, locks, semaphores, conditions, events, barriers, containers
//! with nested proxies, namespace) and `TestSyncManagerTypes` (each type
//! used from a child process), with their manager connected to an
//! external server by `tests/python/run_cpython_manager_tests.py`, under
//! every CPython ≥ 3.11 found (3.11 with `--legacy-auth`).
//!
//! Each interpreter runs them twice, each time against a fresh server:
//! over TCP with `fork` children (the one shared owner of TCP clients),
//! and over a Unix socket with `spawn` children (proxies pickled to each
//! child, one owner per client process). The interpreters run in
//! parallel. Every in-scope test must pass, and every class must leave
//! no object behind on the server; the runner lists what is out of scope
//! by design, with why. Skipped, with a message, when no `python3` is
//! installed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mp_tests::mpserver::{Options, ServerProcess};
use mp_tests::python::{skip_without_python, Python};

/// The longest one run of the suite may take before the test fails (the
/// runner dumps every thread's stack a little before).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How the suite reaches the server and starts its children.
#[derive(Clone, Copy)]
struct Setup {
    unix: bool,
    start_method: &'static str,
}

const SETUPS: [Setup; 2] = [
    Setup {
        unix: false,
        start_method: "fork",
    },
    Setup {
        unix: true,
        start_method: "spawn",
    },
];

fn runner() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/run_cpython_manager_tests.py")
}

/// What one run gave: its label, the runner's summary, and its standard
/// error (the unittest report).
struct Run {
    label: String,
    summary: serde_json::Value,
    stderr: String,
}

/// Runs the suite with `python` against a fresh server set up as `setup`.
fn run(python: &Python, setup: Setup) -> Result<Run, String> {
    let mut args = Vec::new();
    if python.legacy {
        args.push("--legacy-auth");
    }
    let server = ServerProcess::start_with(Options {
        unix: setup.unix,
        ..Options::args(&args)
    });
    let label = format!(
        "CPython {}.{} ({}, {})",
        python.version.0,
        python.version.1,
        if setup.unix { "Unix socket" } else { "TCP" },
        setup.start_method
    );
    let dir = tempfile::tempdir().map_err(|e| format!("{label}: a temp dir: {e}"))?;
    let limit = RUN_LIMIT.as_secs().saturating_sub(20).to_string();
    let mut child = Command::new(&python.path)
        .arg(runner())
        .env("MPSERVER_ADDRESS", &server.address)
        .env("MPSERVER_AUTHKEY_FILE", &server.key_file)
        .env("MPSERVER_START_METHOD", setup.start_method)
        .env("MPSERVER_TEST_LIMIT", limit)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{label}: cannot run {}: {e}", python.path.display()))?;
    // Read both pipes while it runs, so a full pipe cannot stall it.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let timed_out = loop {
        match child.try_wait() {
            Ok(Some(_)) => break false,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{label}: waiting for python: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if timed_out {
        return Err(format!(
            "{label}: did not finish in {RUN_LIMIT:?}\n{stderr}"
        ));
    }
    let summary = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| format!("{label}: no summary line\nstdout:\n{stdout}\nstderr:\n{stderr}"))?;
    Ok(Run {
        label,
        summary,
        stderr,
    })
}

fn names(summary: &serde_json::Value, key: &str) -> Vec<String> {
    summary[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    i.get("name")
                        .and_then(|n| n.as_str())
                        .or_else(|| i.as_str())
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn cpythons_own_manager_tests_pass_against_mpserver() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let results: Vec<Result<Run, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pythons
            .iter()
            .map(|python| {
                scope.spawn(move || {
                    SETUPS
                        .iter()
                        .map(|setup| run(python, *setup))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a runner thread panicked"))
            .collect()
    });
    let mut problems = Vec::new();
    for result in results {
        let run = match result {
            Ok(run) => run,
            Err(why) => {
                problems.push(why);
                continue;
            }
        };
        let s = &run.summary;
        let ran = s["ran"].as_u64().unwrap_or(0);
        let passed = s["passed"].as_u64().unwrap_or(0);
        let skipped = names(s, "skipped");
        let out_of_scope = names(s, "out_of_scope");
        let mut broken = names(s, "failed");
        broken.extend(names(s, "errors"));
        let in_scope = ran - skipped.len() as u64;
        println!(
            "{}: {passed} of {in_scope} pass ({} skipped by CPython's suite for managers: {}; \
             {} out of scope by design)",
            run.label,
            skipped.len(),
            skipped.join(", "),
            out_of_scope.len(),
        );
        if !broken.is_empty() || passed != in_scope || ran == 0 {
            problems.push(format!(
                "{}: {passed} of {in_scope} pass; failing: {}\n{}",
                run.label,
                broken.join(", "),
                run.stderr
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
