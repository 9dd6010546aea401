//! The CPython interpreters on this machine that the CPython-client tests
//! run: `python3` and every pyenv version (`~/.pyenv/versions/*`), 3.11
//! or newer, one per minor version, and how a test runs a script in one
//! against a server.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::mpserver::ServerProcess;

/// A CPython interpreter and whether it needs `--legacy-auth` (3.11 and
/// older answer the handshake with HMAC-MD5).
pub struct Python {
    /// The executable.
    pub path: PathBuf,
    /// `(major, minor)`.
    pub version: (u32, u32),
    /// Whether the server must be started with `--legacy-auth` for it.
    pub legacy: bool,
}

fn version(path: &PathBuf) -> Option<(u32, u32)> {
    let out = Command::new(path)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse().ok());
    Some((parts.next()??, parts.next()??))
}

/// `python3` and the pyenv interpreters that exist here, 3.11 or newer,
/// the first found of each minor version.
pub fn pythons() -> Vec<Python> {
    let mut candidates = vec![PathBuf::from("python3")];
    if let Some(home) = std::env::var_os("HOME") {
        let versions = PathBuf::from(home).join(".pyenv/versions");
        if let Ok(entries) = std::fs::read_dir(&versions) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin/python3"))
                .filter(|p| p.exists())
                .collect();
            found.sort();
            candidates.extend(found);
        }
    }
    let mut out: Vec<Python> = Vec::new();
    for path in candidates {
        let Some(v) = version(&path) else { continue };
        if v < (3, 11) || out.iter().any(|p| p.version == v) {
            continue;
        }
        out.push(Python {
            path,
            version: v,
            legacy: v < (3, 12),
        });
    }
    out
}

/// [`pythons`], or `None` (with a message saying the tests are skipped)
/// if there is none.
pub fn skip_without_python() -> Option<Vec<Python>> {
    let found = pythons();
    if found.is_empty() {
        eprintln!("no python3 (3.11 or newer) found: CPython client tests skipped");
        return None;
    }
    Some(found)
}

/// The longest one Python script may take before the test fails.
pub const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

/// Python code that connects `m`, a `SyncManager`, to `server` (and makes
/// the server's key this process's, as CPython's tests do, so nested
/// proxies can authenticate).
pub fn prelude(server: &ServerProcess) -> String {
    let address = match server.address.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => format!("({host:?}, {port})"),
        _ => format!("{:?}", server.address),
    };
    format!(
        "import multiprocessing, queue, threading, sys, time\n\
         from multiprocessing.managers import SyncManager, BaseManager, RemoteError\n\
         ADDRESS = {address}\n\
         KEY = {key:?}.encode()\n\
         multiprocessing.current_process().authkey = KEY\n\
         m = SyncManager(address=ADDRESS, authkey=KEY)\n\
         m.connect()\n",
        key = String::from_utf8_lossy(&server.key),
    )
}

/// Runs `script` (after the prelude) with `python`; fails the test on a
/// non-zero exit or after [`SCRIPT_LIMIT`]. Returns standard output.
pub fn run(python: &Python, server: &ServerProcess, script: &str) -> String {
    let code = format!("{}{}", prelude(server), script);
    let mut child = Command::new(&python.path)
        .args(["-c", &code])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let deadline = Instant::now() + SCRIPT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish in {SCRIPT_LIMIT:?}",
                python.path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    assert!(
        status.success(),
        "{} failed:\n{err}\nstdout:\n{out}",
        python.path.display()
    );
    out
}
