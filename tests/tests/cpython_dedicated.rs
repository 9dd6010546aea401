//! A CPython client calling back to back is served by a thread of its own
//! (`server/src/cpython/dedicated.rs`), and everything the event loop
//! guarantees still holds there: answers are right, large frames cross in
//! pieces, a blocking call hands the connection back and is answered, a
//! peer that stops reading its answers gets them all later, a quiet
//! connection goes back to the event loop, a killed client's session ends
//! (its `RLock` passes to a waiter), and a graceful stop reaches it.
//!
//! The server's `mpserver_dedicated_readers` gauge shows where a
//! connection is. Skipped, with a message, when no `python3` is
//! installed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::python::{prelude, run, skip_without_python, Python};
use mp_tests::scrape::{scrape, start_with_metrics};

const LIMIT: Duration = Duration::from_secs(60);

fn server(python: &Python) -> (ServerProcess, String) {
    let mut args = vec!["--shared-memory-channels", "0"];
    if python.legacy {
        args.push("--legacy-auth");
    }
    start_with_metrics(Options::args(&args))
}

/// Python helpers: `dedicated()`, the gauge; `until_dedicated(call)`,
/// `call()` in bursts until the gauge shows a dedicated connection.
fn gauge(metrics: &str) -> String {
    format!(
        r#"
import urllib.request
def dedicated():
    text = urllib.request.urlopen("http://{metrics}/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith("mpserver_dedicated_readers "):
            return int(float(line.split()[1]))
    raise SystemExit("no mpserver_dedicated_readers gauge")
def until_dedicated(call):
    deadline = time.time() + 60
    while time.time() < deadline:
        # A burst, then a look: looking takes longer than a call.
        for _ in range(200):
            call()
        if dedicated() >= 1:
            return
    raise SystemExit("the connection was never given a thread")
def eventually(check):
    deadline = time.time() + 60
    while not check():
        if time.time() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)
"#
    )
}

const ON_A_THREAD: &str = r#"
import os
d = m.dict(); q = m.Queue(); l = m.list(); rl = m.RLock()
def setk():
    d['k'] = 1
until_dedicated(setk)

# Answers are right on the thread, errors too.
for i in range(300):
    d['k'] = i
    assert d['k'] == i
l.extend(range(1000))
assert l[10:20] == list(range(10, 20))
try:
    d['missing']
    raise SystemExit("no KeyError")
except KeyError:
    pass

# A frame over 16 KiB: CPython writes its header and its payload apart.
big = b'x' * 3_000_000
d['big'] = big
assert d['big'] == big

# A blocking call hands the connection back; it is answered from
# another thread (its own connection) and the loop goes on.
threading.Timer(0.3, lambda: q.put('late')).start()
assert q.get(timeout=30) == 'late'
assert d['k'] == 299

# Quiet past the thread's patience: back on the event loop, then
# given a thread again.
time.sleep(0.5)
eventually(lambda: dedicated() == 0)
assert d['k'] == 299
until_dedicated(setk)

# A peer that stops reading its answers: sixteen 3 MB answers written
# while nobody reads; all arrive, in order, once it does.
from multiprocessing.connection import Client
c = Client(ADDRESS, authkey=KEY)
ident = d._token.id
def raw(method, *args):
    c.send((ident, method, args, {}))
    kind, value = c.recv()
    assert kind == '#RETURN', (kind, value)
    return value
until_dedicated(lambda: raw('__setitem__', 'r', 1))
for i in range(16):
    c.send((ident, '__getitem__', ('big',), {}))
time.sleep(1.0)
for i in range(16):
    kind, value = c.recv()
    assert kind == '#RETURN' and value == big, kind
assert raw('__getitem__', 'r') == 1
c.close()

# A killed client on a thread: its session ends and its RLock passes.
def child():
    rl.acquire()
    until_dedicated(setk)
    os._exit(0)
p = multiprocessing.get_context('fork').Process(target=child)
p.start(); p.join()
assert rl.acquire(timeout=30), "the dead client's RLock never passed"
rl.release()
print("ok")
"#;

#[test]
fn a_busy_python_connection_gets_a_thread_and_keeps_every_guarantee() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    for python in &pythons {
        let (server, metrics) = server(python);
        let script = format!("{}{ON_A_THREAD}", gauge(&metrics));
        let out = run(python, &server, &script);
        assert_eq!(out.trim(), "ok", "{}", python.path.display());
        server.client().ping().unwrap();
    }
}

#[test]
fn a_graceful_stop_reaches_a_python_connection_on_a_thread() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let python = pythons.last().expect("one python");
    let (mut server, metrics) = server(python);
    // Calls until the server goes away, saying where it stands.
    let script = format!(
        "{}{}",
        prelude(&server),
        r#"
d = m.dict()
print("calling", flush=True)
try:
    while True:
        d['k'] = 1
except (EOFError, ConnectionError, OSError, RemoteError) as e:
    print("stopped", type(e).__name__, flush=True)
"#
    );
    let mut child = Command::new(&python.path)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().expect("a line").expect("utf-8"), "calling");
    assert!(
        eventually(LIMIT, || scrape(&metrics).int("mpserver_dedicated_readers")
            == 1),
        "the connection was never given a thread"
    );
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let last = lines.next().expect("a line").expect("utf-8");
    assert!(last.starts_with("stopped"), "{last}");
    assert!(child.wait().expect("python exits").success());
}
