//! CPython's own manager clients against the real `mpserver`: unmodified
//! `SyncManager(address=..., authkey=...).connect()` programs of every
//! CPython on this machine (3.11 with `--legacy-auth`, 3.12 and 3.13 from
//! pyenv), each typeid as Python code calls it, the exceptions Python
//! catches, a Rust SDK client and a Python client on one dict, queue and
//! lock,
//! hostile pickles refused to their sender only, and a Python process's
//! references dropped when it dies.
//!
//! Skipped, with a message, when no `python3` is installed.

use std::process::Command;
use std::time::Duration;

use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::python::{run, skip_without_python, Python};
use multiprocessing::managers::{DictProxy, LockProxy, ManagerClient, QueueProxy};

fn server_for(python: &Python, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<&str> = extra.to_vec();
    if python.legacy {
        args.push("--legacy-auth");
    }
    ServerProcess::start_with(Options::args(&args))
}

const EVERY_TYPEID: &str = r#"
d = m.dict({'a': 1})
d['t'] = (1, 'x', None, 2.5, b'b')
d['s'] = {1, 2}
d['big'] = 2**100
d['c'] = 1 + 2j
assert d['t'] == (1, 'x', None, 2.5, b'b') and type(d['t']) is tuple
assert d['s'] == {1, 2} and d['big'] == 2**100 and d['c'] == 1 + 2j
assert len(d) == 5 and 'a' in d and d.get('zz', 7) == 7
assert sorted(d.keys()) == ['a', 'big', 'c', 's', 't']
assert sorted(iter(d)) == ['a', 'big', 'c', 's', 't']
try:
    d['missing']
    raise AssertionError('no KeyError')
except KeyError:
    pass
try:
    d[[1]] = 2
    raise AssertionError('no TypeError')
except TypeError:
    pass
assert d.pop('a') == 1 and d.setdefault('n', 3) == 3
d.update({'u': 1}); assert d['u'] == 1
assert isinstance(d.copy(), dict)

l = m.list(range(10))
assert l[2:5] == [2, 3, 4] and l[::-3] == [9, 6, 3, 0] and l[-1] == 9
l[0:2] = ['a', 'b']; del l[2]; assert l[:3] == ['a', 'b', 3]
try:
    l[100]
    raise AssertionError('no IndexError')
except IndexError:
    pass
try:
    l.remove('nope')
    raise AssertionError('no ValueError')
except ValueError:
    pass
before = l
l += [1]; l *= 2
assert l is before and len(l) == 20
assert l.count(1) == 2 and l.index('b') == 1

for maker in (m.Queue, m.JoinableQueue):
    q = maker(2)
    q.put(1); q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    try:
        q.put(3, timeout=0.05)
        raise AssertionError('no Full')
    except queue.Full:
        pass
    assert q.get() == 1 and q.get_nowait() == 2 and q.empty()
    try:
        q.get(timeout=0.05)
        raise AssertionError('no Empty')
    except queue.Empty:
        pass
    try:
        q.get_nowait()
        raise AssertionError('no Empty')
    except queue.Empty:
        pass
jq = m.JoinableQueue()
jq.put('job')
def worker():
    jq.get(); jq.task_done()
t = threading.Thread(target=worker); t.start(); jq.join(); t.join()

for reentrant in (False, True):
    lock = m.RLock() if reentrant else m.Lock()
    assert lock.acquire() is True
    assert lock.acquire(timeout=0.05) is reentrant
    lock.release()
    if reentrant:
        lock.release()
    with lock:
        pass
sem = m.Semaphore(2); sem.acquire(); sem.acquire(); assert sem.acquire(False) is False
sem.release(); sem.release()
bs = m.BoundedSemaphore(1)
try:
    bs.release()
    raise AssertionError('no ValueError')
except ValueError:
    pass

cond = m.Condition()
with cond:
    assert cond.wait(0.05) is False
    assert cond.wait_for(lambda: True, 0.05) is True
flag = m.Value('i', 0)
def notifier():
    time.sleep(0.1)
    with cond:
        flag.value = 1
        cond.notify_all()
t = threading.Thread(target=notifier); t.start()
with cond:
    assert cond.wait_for(lambda: flag.value == 1, 30)
t.join()

ev = m.Event()
assert ev.is_set() is False and ev.wait(0.05) is False
ev.set(); assert ev.wait(1) is True; ev.clear(); assert not ev.is_set()

b = m.Barrier(2, timeout=30)
assert b.parties == 2 and b.n_waiting == 0 and b.broken is False
t = threading.Thread(target=b.wait); t.start(); b.wait(); t.join()
try:
    b.wait(0.05)
    raise AssertionError('no BrokenBarrierError')
except threading.BrokenBarrierError:
    pass
assert b.broken
b.reset(); assert not b.broken
b.abort()
try:
    b.wait()
    raise AssertionError('no BrokenBarrierError')
except threading.BrokenBarrierError:
    pass

ns = m.Namespace(x=1)
ns.y = 'two'; assert ns.x == 1 and ns.y == 'two'
del ns.x
try:
    ns.x
    raise AssertionError('no AttributeError')
except AttributeError:
    pass

v = m.Value('d', 1.5); v.value += 1; assert v.value == 2.5
arr = m.Array('i', [1, 2, 3]); arr[0] = 7
assert arr[:] == [7, 2, 3] and len(arr) == 3

inner = m.dict(); outer = m.list([inner]); outer[0]['k'] = 'v'
assert inner['k'] == 'v'
d['inner'] = inner; assert d['inner']['k'] == 'v'

assert 'dict' in repr(d) or '{' in str(d)
print('every typeid ok')
"#;

#[test]
fn every_typeid_as_python_calls_it() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    for python in &pythons {
        let server = server_for(python, &[]);
        let out = run(python, &server, EVERY_TYPEID);
        assert!(out.contains("every typeid ok"), "{out}");
    }
}

#[test]
fn every_typeid_over_a_unix_socket() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let python = pythons.last().expect("one python");
    let mut options = Options::args(if python.legacy {
        &["--legacy-auth"]
    } else {
        &[]
    });
    options.unix = true;
    let server = ServerProcess::start_with(options);
    let out = run(python, &server, EVERY_TYPEID);
    assert!(out.contains("every typeid ok"), "{out}");
}

#[test]
fn a_legacy_client_is_refused_without_the_flag_and_the_log_names_it() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let Some(python) = pythons.iter().find(|p| p.legacy) else {
        eprintln!("no CPython 3.11 here: skipped");
        return;
    };
    let server = ServerProcess::start();
    let code = format!(
        "from multiprocessing.managers import SyncManager\n\
         from multiprocessing import AuthenticationError\n\
         m = SyncManager(address={address}, authkey={key:?}.encode())\n\
         try:\n    m.connect()\nexcept AuthenticationError:\n    print('refused')\n",
        address = {
            let (host, port) = server.address.rsplit_once(':').unwrap();
            format!("({host:?}, {port})")
        },
        key = String::from_utf8_lossy(&server.key),
    );
    let out = Command::new(&python.path)
        .args(["-c", &code])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused"));
    let mut named = false;
    eventually(Duration::from_secs(10), || {
        named |= server
            .log_lines()
            .iter()
            .any(|l| l.contains("--legacy-auth"));
        named
    });
    assert!(named, "no log line names --legacy-auth");
}

#[test]
fn a_rust_client_and_a_python_client_share_a_dict_and_a_queue() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let python = pythons.last().expect("one python");
    let server = server_for(
        python,
        &["--shared", "jobs=Queue", "--shared", "table=dict"],
    );
    let rust = ManagerClient::connect(&server.addr(), &server.key).unwrap();
    let jobs: QueueProxy<String> = rust.lookup("jobs").unwrap();
    let table: DictProxy<String, (i64, String)> = rust.lookup("table").unwrap();
    jobs.put("from rust").unwrap();
    table.set("rust", (1, "one".to_owned())).unwrap();

    let out = run(
        python,
        &server,
        r#"
class Named(BaseManager): pass
Named.register('jobs'); Named.register('table')
n = Named(address=ADDRESS, authkey=KEY); n.connect()
jobs = n.jobs(); table = n.table()
assert jobs.get(timeout=30) == 'from rust'
assert table['rust'] == (1, 'one'), table['rust']
table['python'] = (2, 'two')
jobs.put('from python')
print('python ok')
"#,
    );
    assert!(out.contains("python ok"), "{out}");
    assert_eq!(jobs.get().unwrap(), "from python");
    assert_eq!(table.get_item("python").unwrap(), (2, "two".to_owned()));
}

#[test]
fn a_rust_client_and_a_python_client_exclude_each_other_on_one_lock() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let python = pythons.last().expect("one python");
    let server = server_for(python, &["--shared", "door=Lock"]);
    let rust = ManagerClient::connect(&server.addr(), &server.key).unwrap();
    let door: LockProxy = rust.lookup("door").unwrap();
    let python_door = |body: &str| {
        let script = format!(
            "class Named(BaseManager): pass\nNamed.register('door')\n\
             n = Named(address=ADDRESS, authkey=KEY); n.connect()\n\
             door = n.door()\n{body}\nprint('python ok')\n"
        );
        let out = run(python, &server, &script);
        assert!(out.contains("python ok"), "{out}");
    };

    // Held by Rust: Python waits and gives up.
    let guard = door.acquire().unwrap();
    python_door("assert door.acquire(timeout=0.2) is False");
    guard.release().unwrap();
    // Taken by Python, which leaves it held as `threading.Lock` does
    // when its acquirer exits: Rust cannot take it.
    python_door("assert door.acquire(timeout=30) is True");
    assert!(door.try_acquire().unwrap().is_none(), "Python holds it");
    // Released by another Python process: Rust takes it.
    python_door("door.release()");
    let guard = door.acquire_timeout(Duration::from_secs(30)).unwrap();
    assert!(guard.is_some(), "released by Python");
}

#[test]
fn a_hostile_pickle_is_refused_to_its_sender_only() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let python = pythons.last().expect("one python");
    let server = server_for(python, &[]);
    let out = run(
        python,
        &server,
        r#"
import os, pickle
from multiprocessing.connection import Client
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))
good = m.dict()
conn = Client(ADDRESS, authkey=KEY)
# a request whose argument would run a command in whoever unpickles it
conn.send((None, 'create', ('dict', Evil()), {}))
kind, text = conn.recv()
assert kind == '#TRACEBACK' and '.system is not allowed' in text, (kind, text)
# a memo bomb: each level a list of a thousand copies of the last one
bomb = b'\x80\x04]\x940'
for i in range(5):
    bomb += b'(' + (b'h' + bytes([i])) * 1000 + b'l\x940'
conn.send_bytes(bomb[:-1] + b'.')
kind, text = conn.recv()
assert kind == '#TRACEBACK' and 'exceeds' in text, (kind, text)
# a length far past the end of the frame
conn.send_bytes(b'\x80\x04\x8d' + (2**62).to_bytes(8, 'little') + b'x')
kind, text = conn.recv()
assert kind == '#TRACEBACK' and 'remain' in text, (kind, text)
# nesting deeper than the bound
conn.send_bytes(b'\x80\x04' + b'(' * 5000 + b'l' * 5000 + b'.')
kind, text = conn.recv()
assert kind == '#TRACEBACK' and 'deeper' in text, (kind, text)
# the same connection goes on
conn.send((None, 'dummy', (), {}))
assert conn.recv() == ('#RETURN', None)
# and other clients were never affected
good['k'] = 1
assert good['k'] == 1
print('refused ok')
"#,
    );
    assert!(out.contains("refused ok"), "{out}");
    // The server is still there for everyone.
    server.client().ping().unwrap();
}

#[test]
fn a_python_process_that_dies_gives_back_its_references() {
    let Some(pythons) = skip_without_python() else {
        return;
    };
    let python = pythons.last().expect("one python");
    let mut options = Options::args(if python.legacy {
        &["--legacy-auth"]
    } else {
        &[]
    });
    options.unix = true;
    let server = ServerProcess::start_with(options);
    let rust = server.client();
    let before = rust.number_of_objects().unwrap();
    // It exits without running its proxies' finalizers: no decref is sent.
    let out = run(
        python,
        &server,
        "d = m.dict(); l = m.list(); q = m.Queue()\nprint(m._number_of_objects(), flush=True)\nimport os; os._exit(0)\n",
    );
    assert_eq!(out.trim(), (before + 3).to_string());
    assert!(
        eventually(Duration::from_secs(10), || rust
            .number_of_objects()
            .unwrap()
            == before),
        "the dead process's objects are still there"
    );
}
