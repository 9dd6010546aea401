//! The `mp-server-client` helper binary run against a server (tests pass
//! its path, `env!("CARGO_BIN_EXE_mp-server-client")`, which only
//! integration tests see), and a client thread waiting for a lock.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use mp_proto::message::Kwargs;
use mp_proto::ObjectId;
use multiprocessing::managers::{ManagerError, Return};

use crate::mpserver::ServerProcess;

/// Starts `binary ADDRESS KEYFILE job...` with its stdout as given.
pub fn spawn(binary: &str, server: &ServerProcess, job: &[String], stdout: Stdio) -> Child {
    Command::new(binary)
        .arg(&server.address)
        .arg(server.key_path())
        .args(job)
        .stdout(stdout)
        .spawn()
        .expect("start mp-server-client")
}

/// [`spawn`] a job that prints `ready` once set up, and waits for that.
pub fn spawn_ready(binary: &str, server: &ServerProcess, job: &[String]) -> Child {
    let mut child = spawn(binary, server, job, Stdio::piped());
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("its stdout"))
        .read_line(&mut line)
        .expect("read its first line");
    assert_eq!(line.trim(), "ready", "mp-server-client {job:?}");
    child
}

/// A new client, on a thread, waiting for `lock` with no timeout; once it
/// has it, it releases it (only the owner may) and returns what
/// `acquire` answered.
pub fn lock_waiter(
    server: &ServerProcess,
    lock: ObjectId,
) -> JoinHandle<Result<Return, ManagerError>> {
    let c = server.client();
    std::thread::spawn(move || {
        let got = c.call_method(lock, "acquire", vec![], Kwargs::new())?;
        c.call_method(lock, "release", vec![], Kwargs::new())?;
        Ok(got)
    })
}
