//! Running the real `mpserver` binary for end-to-end tests.
//!
//! [`binary`] finds `target/<profile>/mpserver` next to the test
//! executable (`cargo test --workspace` builds it, because the `mpserver`
//! package has integration tests of its own); if it is missing or older
//! than the server's sources — `cargo test -p mp-tests` alone — it is
//! built once with cargo into a separate target directory, so the outer
//! cargo's lock is not waited on.
//! [`ServerProcess`] starts it on `127.0.0.1:0` (or a Unix socket) with a
//! fresh key, reads the `serving at ADDR` line, and kills it when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use multiprocessing::connection::Address;
use multiprocessing::managers::ManagerClient;

/// The target directory of the running test executable
/// (`target/debug`), found from `target/debug/deps/<test>`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the deps directory");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("the profile directory")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// The `mpserver` binary, built if it is not there yet.
pub fn binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = profile_dir();
        let beside = dir.join("mpserver");
        if modified(&beside).is_some_and(|built| built >= newest_source()) {
            return beside;
        }
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_owned();
        let target = dir
            .parent()
            .expect("the target directory")
            .join("mp-tests-mpserver");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "-q",
            "-p",
            "mpserver",
            "--bin",
            "mpserver",
            "--target-dir",
        ])
        .arg(&target);
        if profile == "release" {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo to build mpserver");
        assert!(status.success(), "building mpserver failed");
        target.join(&profile).join("mpserver")
    })
    .clone()
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the sources `mpserver` is built
/// from (the proto, server, client and cli crates).
fn newest_source() -> std::time::SystemTime {
    fn walk(dir: &Path, newest: &mut std::time::SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Some(t) = modified(&path) {
                *newest = (*newest).max(t);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for krate in ["proto", "server", "client", "cli"] {
        walk(&root.join(krate).join("src"), &mut newest);
        if let Some(t) = modified(&root.join(krate).join("Cargo.toml")) {
            newest = newest.max(t);
        }
    }
    newest
}

/// A running `mpserver serve`.
pub struct ServerProcess {
    child: Child,
    /// Where it serves.
    pub address: String,
    /// Its key file (0600).
    pub key_file: PathBuf,
    /// Its key.
    pub key: Vec<u8>,
    /// Log lines written so far are collected here.
    pub log: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

/// How to start it.
#[derive(Default)]
pub struct Options {
    /// Serve on a Unix socket in the temp dir instead of TCP.
    pub unix: bool,
    /// Extra flags for `serve`.
    pub args: Vec<String>,
}

impl Options {
    /// Loopback TCP with `args` as extra flags for `serve`.
    pub fn args(args: &[&str]) -> Options {
        Options {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Options::default()
        }
    }
}

impl ServerProcess {
    /// Starts a server on `127.0.0.1:0` with a fresh key.
    pub fn start() -> ServerProcess {
        Self::start_with(Options::default())
    }

    /// Starts a server with options.
    pub fn start_with(options: Options) -> ServerProcess {
        let dir = tempfile::tempdir().expect("a temp dir");
        let key_file = dir.path().join("authkey");
        let key = format!("test-key-{}", std::process::id()).into_bytes();
        std::fs::write(&key_file, &key).expect("write the key");
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--authkey-file").arg(&key_file);
        if options.unix {
            cmd.arg("--unix").arg(dir.path().join("mpserver.sock"));
        } else {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(&options.args)
            .args(["--log-format", "json", "--log-level", "info"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start mpserver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("mpserver printed no `serving at` line in 30 s");
        let address = line
            .trim()
            .strip_prefix("serving at ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let log = collect(child.stderr.take().expect("stderr"));
        ServerProcess {
            child,
            address,
            key_file,
            key,
            log,
            _dir: dir,
        }
    }

    /// Runs `mpserver serve` with `options` expecting it to fail at
    /// start (before `serving at`): its exit status and standard error.
    pub fn start_failing(options: Options) -> (ExitStatus, String) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let key_file = dir.path().join("authkey");
        std::fs::write(&key_file, b"failing-start-key").expect("write the key");
        let out = Command::new(binary())
            .arg("serve")
            .arg("--authkey-file")
            .arg(&key_file)
            .args(["--listen", "127.0.0.1:0"])
            .args(&options.args)
            .stdin(Stdio::null())
            .output()
            .expect("run mpserver");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("serving at"),
            "mpserver started"
        );
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The log lines received so far, without waiting.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// A new connection to it.
    pub fn client(&self) -> ManagerClient {
        ManagerClient::connect(&self.addr(), &self.key).expect("connect to mpserver")
    }

    /// Its address, parsed.
    pub fn addr(&self) -> Address {
        self.address.parse().expect("a valid address")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits (at most 30 s) for it to exit.
    pub fn signal_and_wait(&mut self, signal: i32) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        self.wait(Duration::from_secs(30))
    }

    /// Waits for it to exit by itself (after a `shutdown` call).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for mpserver") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "mpserver did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its resident memory (`VmRSS` in /proc/PID/status), in KiB.
    pub fn vm_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// The key file's path.
    pub fn key_path(&self) -> &Path {
        &self.key_file
    }
}

fn collect(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it is true or `limit` passes; returns the last
/// result. For conditions another process brings about asynchronously.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An `mpserver` on a fixed loopback port that a test can kill and start
/// again at the same address (for clients that reconnect), serving the
/// named objects `shared` declares (`jobs=Queue`, …). Its key file ends
/// in a newline, as `echo key > file` writes it.
pub struct Restartable {
    port: u16,
    shared: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The server's key (the file's bytes without the newline).
    pub key: Vec<u8>,
}

impl Restartable {
    /// Picks a free port and starts the server on it.
    pub fn start(shared: &[&str]) -> Restartable {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("a temp dir");
        let key = format!("restartable-{port}").into_bytes();
        std::fs::write(dir.path().join("key"), [key.as_slice(), b"\n"].concat())
            .expect("write the key");
        let mut server = Restartable {
            port,
            shared: shared.iter().map(|s| s.to_string()).collect(),
            dir,
            child: None,
            key,
        };
        server.restart();
        server
    }

    /// Starts the server again (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--authkey-file")
            .arg(self.key_file());
        for declaration in &self.shared {
            cmd.args(["--shared", declaration]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mpserver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the ready line");
        assert!(line.starts_with("serving at"), "{line:?}");
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where it serves.
    pub fn address(&self) -> Address {
        format!("127.0.0.1:{}", self.port)
            .parse()
            .expect("a valid address")
    }

    /// Its key file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("key")
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.kill();
    }
}
