//! Custom managers end to end: `get_server().serve_forever()` with a
//! shared callable, client-side `register` options and `proxytype`,
//! `start` with an initializer, every start method, and one connection
//! per process per server.
//!
//! A `harness = false` target: `main` calls `multiprocessing::init()`
//! first so that spawned and forkserver children are dispatched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mp_proto::{ErrorKind, Value};
use mp_server::objects::queue::QueueObject;
use mp_server::{Args, CallContext, Registry, Reply, SharedObject};
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::{
    register_shared, AutoProxy, BaseManager, BaseProxy, Manager, ManagerError, ProxyType,
    SyncManager,
};
use multiprocessing::Pipe;

const KEY: &[u8] = b"custom-test";
const LONG: Duration = Duration::from_secs(20);

type Outcome = Result<(), String>;

fn check(ok: bool, what: &str) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

fn e(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Set by the initializer in the server's process.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

fn initializer() {
    INITIALIZED.store(true, Ordering::SeqCst);
}

/// Reports whether the initializer ran in its process; `pid` its pid.
struct Probe;

mp_proto::shared_methods! {
    enum ProbeMethod {
        Initialized = "initialized",
        Pid = "pid",
        Twin = "twin",
    }
}

impl SharedObject for Probe {
    fn methods() -> &'static [mp_proto::methods::MethodSpec] {
        ProbeMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, _args: Args) -> Reply {
        match ProbeMethod::from_name(method) {
            Some(ProbeMethod::Initialized) => Reply::ok(INITIALIZED.load(Ordering::SeqCst)),
            Some(ProbeMethod::Pid) => Reply::ok(i64::from(std::process::id())),
            Some(ProbeMethod::Twin) => Reply::object(Probe),
            None => Reply::no_such_method("Probe", method),
        }
    }
}

fn probe_registry() -> Registry {
    let mut r = Registry::sync_manager();
    r.register("Probe", |_, _| Ok(Probe))
        .method_to_typeid("twin", "Probe");
    r
}

/// A user proxy type over `BaseProxy` (Python's `proxytype=`).
struct ProbeProxy {
    base: BaseProxy,
}

impl ProxyType for ProbeProxy {
    fn from_parts(base: BaseProxy, _exposed: Vec<String>) -> Self {
        ProbeProxy { base }
    }
}

impl ProbeProxy {
    fn initialized(&self) -> Result<bool, ManagerError> {
        self.base.call_as("initialized", vec![])
    }
    fn pid(&self) -> Result<i64, ManagerError> {
        self.base.call_as("pid", vec![])
    }
    fn twin(&self) -> Result<ProbeProxy, ManagerError> {
        self.base.call_returning("twin", vec![])
    }
}

/// `start_in` under `method`: a custom registry, an initializer, a user
/// proxy type, and a SyncManager type on the same server.
fn start_in(method: StartMethod) -> Outcome {
    let mut filled = BaseManager::new("127.0.0.1:0", KEY);
    filled
        .registry()
        .map_err(e)?
        .register("Probe", |_, _| Ok(Probe));
    check(
        matches!(
            filled.start_in(method, probe_registry, initializer),
            Err(ManagerError::State(_))
        ),
        "start_in ignored a filled registry",
    )?;
    let mut m = BaseManager::new("127.0.0.1:0", KEY);
    m.start_in(method, probe_registry, initializer).map_err(e)?;
    let probe: ProbeProxy = m.create_as("Probe", vec![]).map_err(e)?;
    check(probe.initialized().map_err(e)?, "initializer did not run")?;
    let server_pid = m.process().and_then(|p| p.pid().ok().flatten());
    check(
        server_pid.map(i64::from) == Some(probe.pid().map_err(e)?),
        "the server is not the started child",
    )?;
    check(probe.twin().map_err(e)?.initialized().map_err(e)?, "twin")?;
    let d: multiprocessing::managers::DictProxy<String, i64> =
        m.create_as("dict", vec![]).map_err(e)?;
    d.set("k", 5).map_err(e)?;
    check(d.get("k").map_err(e)? == Some(5), "dict")?;
    drop((probe, d));
    m.shutdown().map_err(e)?;
    check(m.process().is_none(), "shutdown left the process")?;
    // The parent's own flag is untouched: the initializer ran elsewhere.
    check(!INITIALIZED.load(Ordering::SeqCst), "initializer ran here")
}

/// The child of [`proxy_as_an_argument`].
fn fill(d: multiprocessing::managers::DictProxy<String, i64>) -> Outcome {
    d.set("from the child", 7).map_err(e)
}

/// A proxy as a child's argument under `method` (serialized for `spawn`
/// and `forkserver`: the child takes over the reference in transit). A
/// forked child reconnects with the manager's own key; a re-executed one
/// knows only the process's, which `Manager()` uses.
fn proxy_as_an_argument(method: StartMethod) -> Outcome {
    let m = if method == StartMethod::Fork {
        Manager::start("127.0.0.1:0", KEY).map_err(e)?
    } else {
        multiprocessing::managers::Manager().map_err(e)?
    };
    let d = m.dict::<String, i64>().map_err(e)?;
    let p = get_context(method).process(fill, (d.clone(),));
    p.start().map_err(e)?;
    check(p.join_timeout(LONG).map_err(e)?, "child hung")?;
    check(p.exitcode().map_err(e)? == Some(0), "child failed")?;
    check(
        d.get("from the child").map_err(e)? == Some(7),
        "the child's write is missing",
    )?;
    drop(d);
    check(
        m.wait_for_object_count(0, LONG).map_err(e)?,
        "a reference leaked",
    )
}

/// The child of [`a_proxy_moved_into_a_forked_child`]: uses the proxy
/// only when told to.
fn late_user(
    d: multiprocessing::managers::DictProxy<String, i64>,
    mut go: multiprocessing::Connection,
) -> Outcome {
    let _: bool = go.recv().map_err(e)?;
    d.set("late", 1).map_err(e)
}

/// A proxy moved into a forked child's arguments, which the parent drops
/// at once: the parent's reference stands until the child has exited.
fn a_proxy_moved_into_a_forked_child() -> Outcome {
    let m = Manager::start("127.0.0.1:0", KEY).map_err(e)?;
    let d = m.dict::<String, i64>().map_err(e)?;
    let id = d.base().token().id;
    let (go_rx, mut go_tx) = Pipe(false).map_err(e)?;
    let p = get_context(StartMethod::Fork).process(late_user, (d, go_rx));
    p.start().map_err(e)?; // drops the parent's only copy of `d`
                           // A later proxy's release is processed after `d`'s would be.
    let marker = m.list::<i64>().map_err(e)?;
    let marker_id = marker.base().token().id;
    drop(marker);
    let gone = |target| -> Result<bool, ManagerError> {
        Ok(!m.client().debug_info()?.iter().any(|o| o.id == target))
    };
    let deadline = std::time::Instant::now() + LONG;
    while !gone(marker_id).map_err(e)? {
        check(
            std::time::Instant::now() < deadline,
            "marker never released",
        )?;
        std::thread::sleep(Duration::from_millis(5));
    }
    check(!gone(id).map_err(e)?, "the child's dict was freed under it")?;
    go_tx.send(&true).map_err(e)?;
    check(p.join_timeout(LONG).map_err(e)?, "child hung")?;
    check(p.exitcode().map_err(e)? == Some(0), "child failed")?;
    // The child has exited: the parent's reference goes now.
    check(
        m.wait_for_object_count(0, LONG).map_err(e)?,
        "the deferred reference was never released",
    )
}

/// `Manager` (a SyncManager) under `method`.
fn sync_manager_in(method: StartMethod) -> Outcome {
    let m = Manager::start_in("127.0.0.1:0", KEY, method).map_err(e)?;
    let l = m.list_from::<i64>(&[1, 2, 3]).map_err(e)?;
    l.append(4).map_err(e)?;
    check(l.get_value().map_err(e)? == vec![1, 2, 3, 4], "list")
}

/// `start_with` (fork): an initializer capturing a pipe end.
fn start_with_a_capturing_initializer() -> Outcome {
    let (mut rx, mut tx) = Pipe(false).map_err(e)?;
    let mut m = BaseManager::new("127.0.0.1:0", KEY);
    m.registry().map_err(e)?.register("Probe", |_, _| Ok(Probe));
    m.start_with(move || {
        let _ = tx.send(&std::process::id());
    })
    .map_err(e)?;
    let pid: u32 = rx.recv().map_err(e)?;
    let probe: ProbeProxy = m.create_as("Probe", vec![]).map_err(e)?;
    check(i64::from(pid) == probe.pid().map_err(e)?, "initializer pid")
}

/// `get_server().serve_forever()` in a thread, a `register_shared`
/// queue, two clients in other processes (one puts, one gets) and the
/// client-side `register` options.
fn get_server_and_client_registrations() -> Outcome {
    let mut server_side = BaseManager::new("127.0.0.1:0", KEY);
    let registry = server_side.registry().map_err(e)?;
    register_shared(registry, "get_queue", |ctx| {
        QueueObject::create(ctx, Args::default())
    });
    registry.register("Probe", |_, _| Ok(Probe));
    let server = server_side.get_server().map_err(e)?;
    check(server_side.get_server().is_err(), "get_server twice")?;
    let address = server.address().to_owned();
    let serving = std::thread::spawn(move || server.serve_forever());

    let client = |put: bool| {
        let address = address.clone();
        get_context(StartMethod::Fork).process_fn(move || -> Outcome {
            let mut m = BaseManager::new(&address, KEY);
            m.register_typeid("get_queue");
            m.connect().map_err(e)?;
            let queue = m.create_auto("get_queue", vec![]).map_err(e)?;
            if put {
                queue.call_method("put", vec!["hello".into()]).map_err(e)?;
                Ok(())
            } else {
                let got = queue
                    .call_method("get", vec![])
                    .map_err(e)?
                    .into_value()
                    .map_err(e)?;
                check(got == Value::from("hello"), "the getter got something else")
            }
        })
    };
    let (getter, putter) = (client(false), client(true));
    getter.start().map_err(e)?;
    putter.start().map_err(e)?;
    for p in [&getter, &putter] {
        check(p.join_timeout(LONG).map_err(e)?, "client hung")?;
        check(p.exitcode().map_err(e)? == Some(0), "client failed")?;
    }

    let mut m = BaseManager::new(&address, KEY);
    m.register_typeid("Probe")
        .exposed(["pid", "nothing"])
        .method_to_typeid("initialized", "Probe");
    m.register_typeid("Secret").create_method(false);
    m.connect().map_err(e)?;
    let probe = m.create_auto("Probe", vec![]).map_err(e)?;
    check(probe.exposed() == ["pid"], "client-side exposed")?;
    let refused = probe
        .call_method("twin", vec![])
        .map_err(|x| x.remote().map(|r| r.kind.clone()));
    check(
        matches!(refused, Err(Some(ErrorKind::AttributeError))),
        "an unexposed method was called",
    )?;
    let unchecked: AutoProxy = m.create_as("Probe", vec![]).map_err(e)?;
    let bad = m.call_checked(&unchecked, "initialized", vec![]);
    check(
        matches!(bad, Err(ManagerError::Protocol(_))),
        "method_to_typeid not checked",
    )?;
    check(
        matches!(
            m.create_auto("Secret", vec![]),
            Err(ManagerError::Remote(ref r)) if r.kind == ErrorKind::AttributeError
        ),
        "create_method(false)",
    )?;
    // The same queue again: still one object behind every `get_queue`.
    let q1 = m.create_auto("get_queue", vec![]).map_err(e)?;
    let q2 = m.create_auto("get_queue", vec![]).map_err(e)?;
    q1.call_method("put", vec![1.into()]).map_err(e)?;
    let one = q2
        .call_method("get", vec![])
        .map_err(e)?
        .into_value()
        .map_err(e)?;
    check(one == Value::Int(1), "register_shared gave two queues")?;

    m.client().ok_or("no client")?.shutdown().map_err(e)?;
    let served = serving.join().map_err(|_| "the server thread panicked")?;
    served.map_err(e)
}

/// One connection per process per server, keyed by authkey.
fn one_connection_per_process() -> Outcome {
    let m = Manager::start("127.0.0.1:0", KEY).map_err(e)?;
    let a = SyncManager::connect(m.address(), KEY).map_err(e)?;
    let b = SyncManager::connect(m.address(), KEY).map_err(e)?;
    let _d = a.dict::<i64, i64>().map_err(e)?;
    let _l = b.list::<i64>().map_err(e)?;
    let status = m.client().status().map_err(e)?;
    check(status.connections == 1, "connect opened another connection")?;
    let wrong = SyncManager::connect(m.address(), b"wrong key");
    check(
        matches!(wrong, Err(ManagerError::Authentication(_))),
        "a wrong key reused the connection",
    )
}

fn main() {
    multiprocessing::init();
    let mut tests: Vec<(String, Box<dyn Fn() -> Outcome>)> = vec![
        (
            "get_server_and_client_registrations".into(),
            Box::new(get_server_and_client_registrations),
        ),
        (
            "start_with_a_capturing_initializer".into(),
            Box::new(start_with_a_capturing_initializer),
        ),
        (
            "one_connection_per_process".into(),
            Box::new(one_connection_per_process),
        ),
        (
            "a_proxy_moved_into_a_forked_child".into(),
            Box::new(a_proxy_moved_into_a_forked_child),
        ),
    ];
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        tests.push((format!("{m}::start_in"), Box::new(move || start_in(m))));
        tests.push((
            format!("{m}::sync_manager_in"),
            Box::new(move || sync_manager_in(m)),
        ));
        tests.push((
            format!("{m}::proxy_as_an_argument"),
            Box::new(move || proxy_as_an_argument(m)),
        ));
    }
    let mut failed = 0;
    for (name, test) in &tests {
        match test() {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
