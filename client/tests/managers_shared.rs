//! End to end: types made shared by `#[shared]`, served by a real server
//! (in this process on 127.0.0.1:0, or a forked child) and called through
//! their generated proxies.

// The types below are test fixtures, public only for their proxies.
#![allow(missing_docs)]

use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::ErrorKind;
use mp_server::{Listen, Registry};
use multiprocessing::connection::Address;
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::shared_type::register_type;
use multiprocessing::managers::{
    shared, BaseManager, ManagerError, ManagerServer, MethodError, NewObject, SharedType,
};
use serde::{Deserialize, Serialize};

const KEY: &[u8] = b"shared-test";

/// A counter exercising every kind of method the attribute supports.
#[derive(Default)]
pub struct Tally {
    n: i64,
    log: Vec<String>,
}

/// Why `take` refuses.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum TallyError {
    /// Not enough: how many there are.
    Short { have: i64 },
}

#[shared]
impl Tally {
    /// Starts at `n`; a negative start is refused.
    #[shared(new)]
    pub fn starting_at(n: i64) -> Result<Self, String> {
        if n < 0 {
            return Err(format!("cannot start below zero: {n}"));
        }
        Ok(Tally { n, log: Vec::new() })
    }

    pub fn add(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }

    pub fn get(&self) -> i64 {
        self.n
    }

    pub fn take(&mut self, by: i64) -> Result<i64, TallyError> {
        if by > self.n {
            return Err(TallyError::Short { have: self.n });
        }
        self.n -= by;
        Ok(self.n)
    }

    pub fn note(&mut self, line: &str, suffix: Option<String>) {
        self.log
            .push(format!("{line}{}", suffix.unwrap_or_default()));
    }

    pub fn last_note(&self) -> &str {
        self.log.last().map_or("", String::as_str)
    }

    pub fn sum(&self, values: &[i64]) -> i64 {
        values.iter().sum()
    }

    pub fn split(&self) -> NewObject<Tally> {
        NewObject(Tally {
            n: self.n / 2,
            log: Vec::new(),
        })
    }

    pub fn boom(&self) -> i64 {
        panic!("boom")
    }

    pub fn _secret(&self) -> i64 {
        42
    }
}

/// A gate the caller waits at until another call opens it: a method that
/// really blocks.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

#[shared(typeid = "TheGate", exposed = ["wait", "open"])]
impl Gate {
    /// Waits until opened; `false` if `seconds` passed first.
    #[shared(blocking)]
    pub fn wait(&self, seconds: f64) -> bool {
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .changed
            .wait_timeout_while(open, Duration::from_secs_f64(seconds), |o| !*o)
            .unwrap();
        *open
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    pub fn hidden_by_the_list(&self) -> bool {
        true
    }
}

/// Serves `Tally` and `Gate` on a thread of this process (two runtime
/// workers).
fn server() -> Address {
    let mut registry = Registry::new();
    register_type::<Tally>(&mut registry);
    register_type::<Gate>(&mut registry);
    let server = ManagerServer::bind(registry, KEY, &Listen::Tcp("127.0.0.1:0".into())).unwrap();
    let address = server.address().parse().unwrap();
    thread::spawn(move || server.serve_forever());
    address
}

fn connected() -> BaseManager {
    let address = server();
    let mut m = BaseManager::new(&address.to_string(), KEY);
    m.connect().unwrap();
    m
}

fn remote(e: &ManagerError) -> (ErrorKind, String) {
    let e = e.remote().expect("a remote error");
    (e.kind.clone(), e.message.clone())
}

#[test]
fn typed_calls_round_trip() {
    let m = connected();
    let t = m.create_with::<Tally>((5,)).unwrap();
    assert_eq!(t.add(3).unwrap(), 8);
    assert_eq!(t.get().unwrap(), 8);
    t.note("hello", None).unwrap();
    assert_eq!(t.last_note().unwrap(), "hello");
    t.note("hello", Some("!".into())).unwrap();
    assert_eq!(t.last_note().unwrap(), "hello!");
    assert_eq!(t.sum(&[1, 2, 3]).unwrap(), 6);
    assert_eq!(format!("{t:?}").split(' ').next(), Some("<TallyProxy"));
}

#[test]
fn a_methods_own_error_keeps_its_type() {
    let m = connected();
    let t = m.create_with::<Tally>((2,)).unwrap();
    match t.take(5) {
        Err(MethodError::Raised(e)) => assert_eq!(e, TallyError::Short { have: 2 }),
        other => panic!("expected the method's error, got {other:?}"),
    }
    assert_eq!(t.take(2).unwrap(), 0);
}

#[test]
fn wrong_arguments_are_type_errors_in_pythons_words() {
    let m = connected();
    let t = m.create_with::<Tally>((0,)).unwrap();
    let call = |args: Vec<mp_proto::Value>, kw: Kwargs| {
        remote(&t.base().call_kw("add", args, kw).unwrap_err())
    };
    assert_eq!(
        call(vec![], Kwargs::new()),
        (
            ErrorKind::TypeError,
            "Tally.add() missing 1 required positional argument: 'by'".into()
        )
    );
    assert_eq!(
        call(vec![1.into(), 2.into()], Kwargs::new()),
        (
            ErrorKind::TypeError,
            "Tally.add() takes 2 positional arguments but 3 were given".into()
        )
    );
    assert_eq!(
        call(vec!["x".into()], Kwargs::new()),
        (
            ErrorKind::TypeError,
            "Tally.add() argument 'by' must be int, not str".into()
        )
    );
    let mut kw = Kwargs::new();
    kw.insert("by".into(), 4.into());
    assert_eq!(t.base().call_kw("add", vec![], kw).unwrap(), 4.into());
    let mut kw = Kwargs::new();
    kw.insert("step".into(), 4.into());
    assert_eq!(
        call(vec![], kw),
        (
            ErrorKind::TypeError,
            "Tally.add() got an unexpected keyword argument 'step'".into()
        )
    );
    // The object is untouched by the refused calls.
    assert_eq!(t.get().unwrap(), 4);
}

#[test]
fn constructors_take_their_arguments_and_may_refuse() {
    let m = connected();
    let e = m.create_with::<Tally>((-1,)).unwrap_err();
    assert_eq!(
        remote(&e),
        (ErrorKind::ValueError, "cannot start below zero: -1".into())
    );
    let e = m.create_auto("Tally", vec![]).unwrap_err();
    assert_eq!(
        remote(&e),
        (
            ErrorKind::TypeError,
            "Tally.__init__() missing 1 required positional argument: 'n'".into()
        )
    );
}

#[test]
fn a_method_can_return_a_new_shared_object() {
    let m = connected();
    let t = m.create_with::<Tally>((10,)).unwrap();
    let half = t.split().unwrap();
    assert_eq!(half.add(1).unwrap(), 6);
    assert_eq!(t.get().unwrap(), 10, "a separate object");
    assert_ne!(half.base().token().id, t.base().token().id);
    assert_eq!(half.base().token().typeid, Tally::TYPEID);
}

#[test]
fn private_and_unlisted_methods_are_not_exposed() {
    let m = connected();
    let t = m.create_with::<Tally>((0,)).unwrap();
    assert_eq!(
        remote(&t._secret().unwrap_err()).0,
        ErrorKind::AttributeError
    );
    let client = m.client().unwrap();
    let exposed = client.get_methods(t.base().token().id).unwrap();
    assert!(exposed.contains(&"add".to_string()));
    assert!(!exposed.iter().any(|n| n == "_secret"));

    let g = m.create::<Gate>().unwrap();
    assert_eq!(g.base().token().typeid, "TheGate");
    let exposed = client.get_methods(g.base().token().id).unwrap();
    assert_eq!(exposed, ["wait", "open"]);
    assert_eq!(
        remote(&g.hidden_by_the_list().unwrap_err()).0,
        ErrorKind::AttributeError
    );
}

#[test]
fn a_panicking_method_fails_its_call_only() {
    let m = connected();
    let t = m.create_with::<Tally>((1,)).unwrap();
    assert_eq!(remote(&t.boom().unwrap_err()).0, ErrorKind::RuntimeError);
    assert_eq!(t.add(1).unwrap(), 2);
}

#[test]
fn exclusive_methods_do_not_lose_updates() {
    let m = connected();
    let t = m.create_with::<Tally>((0,)).unwrap();
    thread::scope(|s| {
        for _ in 0..4 {
            let t = t.clone();
            s.spawn(move || {
                for _ in 0..500 {
                    t.add(1).unwrap();
                }
            });
        }
    });
    assert_eq!(t.get().unwrap(), 2000);
}

#[test]
fn blocking_methods_leave_the_server_free() {
    // Four waiters on a server with two runtime workers: were `wait` run
    // on the event loop, `open` could never be served and every wait
    // would time out.
    let m = connected();
    let gate = m.create::<Gate>().unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let gate = gate.clone();
            thread::spawn(move || gate.wait(30.0).unwrap())
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    gate.open().unwrap();
    for w in waiters {
        assert!(w.join().unwrap(), "the gate opened before the timeout");
    }
}

#[test]
fn a_started_manager_serves_registered_types_to_a_child_process() {
    let mut m = BaseManager::new("127.0.0.1:0", KEY);
    m.register::<Tally>().unwrap();
    m.start().unwrap();
    let t = m.create_with::<Tally>((0,)).unwrap();
    let child = get_context(StartMethod::Fork).process(
        |t: TallyProxy| {
            t.add(7).unwrap();
        },
        (t.clone(),),
    );
    child.start().unwrap();
    child.join().unwrap();
    assert_eq!(child.exitcode().unwrap(), Some(0));
    assert_eq!(t.get().unwrap(), 7);
    // A SyncManager connected to the same server creates it too.
    let sync = multiprocessing::managers::SyncManager::connect(m.address().unwrap(), KEY).unwrap();
    assert_eq!(sync.create_with::<Tally>((3,)).unwrap().get().unwrap(), 3);
    let e = m.register::<Gate>().unwrap_err();
    assert!(matches!(e, ManagerError::State(_)), "{e}");
}
