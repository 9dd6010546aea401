//! Proxies of a manager with an authkey of its own, handed to `spawn` and
//! `forkserver` children: the start arguments carry the key, so the child
//! authenticates and writes back; a proxy sent over a `Pipe` carries none
//! (its bytes are decoded and checked), and a child that receives one
//! that way says which manager's key it lacks.
//!
//! Managers: one started by `Manager::start` (a forked server) and the
//! real `mpserver` binary, each with a key that is not the process's.
//!
//! A `harness = false` target: `main` calls `multiprocessing::init()`
//! first, so re-executed children are dispatched before any test runs.

use std::error::Error;
use std::time::Duration;

use mp_tests::mpserver::ServerProcess;
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::{DictProxy, Manager, QueueProxy, SyncManager};
use multiprocessing::{current_process, Connection, Pipe};

use mp_tests::harness::{self, Outcome, Test};

const OWN_KEY: &[u8] = b"a manager's own authkey, not the process's";
const LONG: Duration = Duration::from_secs(30);

fn e(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The child: writes its tag into the dict and the queue.
fn write_back(
    d: DictProxy<String, String>,
    q: QueueProxy<String>,
    tag: String,
) -> Result<(), Box<dyn Error>> {
    d.set(&tag, "written by the child")?;
    q.put(&tag)?;
    Ok(())
}

/// Starts `write_back` by `method` with proxies of `m` and checks what it
/// wrote.
fn child_writes_back(m: &SyncManager, method: StartMethod) -> Outcome {
    if current_process().authkey().as_bytes() == OWN_KEY {
        return Err("the test needs a manager key that differs from the process's".into());
    }
    let d = m.dict::<String, String>().map_err(e)?;
    let q = m.queue::<String>().map_err(e)?;
    let tag = format!("{method}-child");
    let p = get_context(method).process(write_back, (d.clone(), q.clone(), tag.clone()));
    p.start().map_err(e)?;
    if !p.join_timeout(LONG).map_err(e)? {
        let _ = p.kill();
        return Err("the child did not finish".into());
    }
    if p.exitcode().map_err(e)? != Some(0) {
        return Err(format!("the child failed: exit code {:?}", p.exitcode()));
    }
    let written = d.get(&tag).map_err(e)?;
    if written.as_deref() != Some("written by the child") {
        return Err(format!("the dict holds {written:?}"));
    }
    let got = q.get_timeout(LONG).map_err(e)?;
    if got != tag {
        return Err(format!("the queue gave {got:?}"));
    }
    Ok(())
}

fn with_started_manager(method: StartMethod) -> Outcome {
    let m = Manager::start("127.0.0.1:0", OWN_KEY).map_err(e)?;
    child_writes_back(&m, method)
}

fn with_mpserver(method: StartMethod) -> Outcome {
    let server = ServerProcess::start();
    let m = SyncManager::connect(&server.addr(), &server.key).map_err(e)?;
    child_writes_back(&m, method)
}

/// The `authkey` fields anywhere in a CBOR document.
fn authkeys(value: &ciborium::Value, found: &mut Vec<ciborium::Value>) {
    match value {
        ciborium::Value::Map(entries) => {
            for (k, v) in entries {
                if k.as_text() == Some("authkey") {
                    found.push(v.clone());
                }
                authkeys(v, found);
            }
        }
        ciborium::Value::Array(items) => items.iter().for_each(|v| authkeys(v, found)),
        ciborium::Value::Tag(_, inner) => authkeys(inner, found),
        _ => {}
    }
}

/// A proxy sent over a Pipe: the bytes hold its token and ticket, never
/// the manager's key.
fn a_pipe_carries_no_key() -> Outcome {
    let m = Manager::start("127.0.0.1:0", OWN_KEY).map_err(e)?;
    let d = m.dict::<String, String>().map_err(e)?;
    let (mut a, mut b) = Pipe(true).map_err(e)?;
    a.send(&d).map_err(e)?;
    let bytes = b.recv_bytes(None).map_err(e)?;
    if bytes.windows(OWN_KEY.len()).any(|w| w == OWN_KEY) {
        return Err("the key's bytes are in the message".into());
    }
    let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).map_err(e)?;
    let mut found = Vec::new();
    authkeys(&value, &mut found);
    if !found.is_empty() {
        return Err(format!("the message has authkey fields: {found:?}"));
    }
    // The same bytes did name the proxy: the check looked at a real one.
    let text = format!("{value:?}");
    if !text.contains(&d.base().token().address) {
        return Err(format!("the message does not name the manager: {text}"));
    }
    Ok(())
}

/// The child: receives a proxy over `conn` and reports what happened.
fn receive_over_pipe(mut conn: Connection) -> Result<(), Box<dyn Error>> {
    let report = match conn.recv::<DictProxy<String, String>>() {
        Ok(_) => "received".to_owned(),
        Err(err) => err.to_string(),
    };
    conn.send(&report)?;
    Ok(())
}

/// A spawned child that gets a proxy over a Pipe has no key for it, and
/// says so, naming the manager.
fn a_proxy_over_a_pipe_names_the_missing_key(method: StartMethod) -> Outcome {
    let m = Manager::start("127.0.0.1:0", OWN_KEY).map_err(e)?;
    let d = m.dict::<String, String>().map_err(e)?;
    let address = d.base().token().address.clone();
    let (mut ours, theirs) = Pipe(true).map_err(e)?;
    let p = get_context(method).process(receive_over_pipe, (theirs,));
    p.start().map_err(e)?;
    ours.send(&d).map_err(e)?;
    if !ours.poll(Some(LONG)).map_err(e)? {
        let _ = p.kill();
        return Err("the child did not report".into());
    }
    let report: String = ours.recv().map_err(e)?;
    p.join_timeout(LONG).map_err(e)?;
    if !report.contains(&address) || !report.contains("does not know that manager's authkey") {
        return Err(format!("unclear report: {report}"));
    }
    Ok(())
}

fn main() {
    multiprocessing::init();
    let tests: &[(&str, Test)] = &[
        ("spawn_child_writes_back_to_a_started_manager", || {
            with_started_manager(StartMethod::Spawn)
        }),
        ("forkserver_child_writes_back_to_a_started_manager", || {
            with_started_manager(StartMethod::Forkserver)
        }),
        ("spawn_child_writes_back_to_mpserver", || {
            with_mpserver(StartMethod::Spawn)
        }),
        ("forkserver_child_writes_back_to_mpserver", || {
            with_mpserver(StartMethod::Forkserver)
        }),
        ("a_pipe_carries_no_key", a_pipe_carries_no_key),
        (
            "spawn_child_given_a_proxy_over_a_pipe_names_the_missing_key",
            || a_proxy_over_a_pipe_names_the_missing_key(StartMethod::Spawn),
        ),
        (
            "forkserver_child_given_a_proxy_over_a_pipe_names_the_missing_key",
            || a_proxy_over_a_pipe_names_the_missing_key(StartMethod::Forkserver),
        ),
    ];
    harness::run(tests);
}
