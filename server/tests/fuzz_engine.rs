//! A fuzz target for the engine: every SyncManager type created, then
//! arbitrary method names — each type's exposed ones, the server's, and
//! junk — called with hostile arguments (edge integers, NaN and infinite
//! floats, empty and nested containers, tokens of objects that do not
//! exist, stray keywords). Every call must end in a value, a new proxy or a
//! typed error: never a panic, and a blocking call is polled once and
//! dropped (which cancels it), as a client disconnecting would.
//!
//! It runs under `cargo test` with proptest's default case count;
//! `PROPTEST_CASES=20000 cargo test -p mp-server --test fuzz_engine` runs
//! it longer. Inputs that once crashed the server are kept below as
//! regression tests of their own.

use std::sync::Arc;
use std::time::Duration;

use mp_proto::message::{Kwargs, Outcome, Request, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::value::{Map, ObjectId, Token, Value};
use mp_server::engine::Engine;
use mp_server::session::Session;
use mp_server::Registry;
use mp_server::Reply;
use proptest::prelude::*;

/// Each SyncManager typeid with arguments its constructor accepts, so the
/// calls that follow reach the object's methods.
fn fixtures() -> Vec<(&'static str, Vec<Value>)> {
    let ints = Value::List(vec![1.into(), 2.into(), 3.into()]);
    vec![
        ("dict", vec![]),
        ("list", vec![Value::List(vec!["a".into(), 1.into()])]),
        ("Queue", vec![2.into()]),
        ("JoinableQueue", vec![]),
        ("Lock", vec![]),
        ("RLock", vec![]),
        ("Semaphore", vec![1.into()]),
        ("BoundedSemaphore", vec![1.into()]),
        ("Condition", vec![]),
        ("Event", vec![]),
        ("Barrier", vec![2.into()]),
        ("Namespace", vec![]),
        ("Value", vec!["i".into(), 7.into()]),
        ("Array", vec!["i".into(), ints]),
    ]
}

/// Integers where arithmetic goes wrong.
fn edge_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        -3i64..10,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN + 1),
        Just(i64::MAX - 1),
        Just(1 << 31),
        Just(1 << 32),
        Just(1 << 62),
        Just(-(1 << 62)),
        Just(u32::MAX as i64),
        any::<i64>(),
    ]
}

fn edge_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(1e300),
        Just(-1e-300),
        -2.0f64..2.0,
    ]
}

fn token() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("dict".to_string()), "[A-Za-z]{0,8}"],
        any::<u64>(),
    )
        .prop_map(|(typeid, id)| {
            Value::from(Token {
                typeid,
                address: "nowhere".into(),
                id: ObjectId(id),
            })
        })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        edge_int().prop_map(Value::Int),
        edge_float().prop_map(Value::Float),
        prop_oneof![Just(String::new()), "[a-zA-Z_ ]{0,6}", ".{0,6}"].prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        token(),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Tuple),
            prop::collection::vec((leaf(), inner), 0..4)
                .prop_map(|pairs| Value::from(pairs.into_iter().collect::<Map>())),
        ]
    })
}

/// Keyword names the built-in methods take, and some they do not.
fn kwargs() -> impl Strategy<Value = Kwargs> {
    let name = prop_oneof![
        Just("timeout"),
        Just("block"),
        Just("blocking"),
        Just("n"),
        Just("key"),
        Just("reverse"),
        Just("default"),
        Just("value"),
        Just("parties"),
        Just("nonsense"),
    ];
    prop::collection::vec((name, value()), 0..3).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    })
}

/// One call of a fuzzed sequence, before its target is resolved against
/// the objects the case created.
#[derive(Clone, Debug)]
struct Call {
    /// `None`: the server; `Some(i)`: the i-th object made (wrapping), or
    /// an id nobody has when `stray` is set.
    target: Option<usize>,
    stray: bool,
    /// An index into every known method name, or a junk name.
    method: Result<usize, String>,
    args: Vec<Value>,
    kwargs: Kwargs,
    thread: u64,
}

fn call() -> impl Strategy<Value = Call> {
    (
        prop::option::weighted(0.85, any::<usize>()),
        prop::bool::weighted(0.05),
        prop_oneof![
            9 => any::<usize>().prop_map(Ok),
            1 => "[a-z_]{0,12}".prop_map(Err),
        ],
        prop::collection::vec(value(), 0..4),
        kwargs(),
        0u64..3,
    )
        .prop_map(|(target, stray, method, args, kwargs, thread)| Call {
            target,
            stray,
            method,
            args,
            kwargs,
            thread,
        })
}

/// Every method name a client could reach: each type's exposed list and
/// the server's own calls (all but `shutdown`, which would end the case).
fn method_names(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = ServerMethod::ALL
        .iter()
        .filter(|m| **m != ServerMethod::Shutdown)
        .map(|m| m.name().to_string())
        .collect();
    for (typeid, _) in fixtures() {
        if let Some(spec) = engine.spec(typeid) {
            names.extend(spec.exposed.iter().cloned());
        }
    }
    names.extend(["#GETVALUE", "__repr__", "__str__"].map(String::from));
    names
}

/// Answers `request`, polling a blocking call once and dropping it.
fn answer(
    runtime: &tokio::runtime::Runtime,
    engine: &Arc<Engine>,
    session: &Arc<Session>,
    request: Request,
) -> Outcome {
    match engine.call(session, request) {
        Reply::Ready(outcome) => outcome,
        Reply::Pending(future) => runtime
            .block_on(async { tokio::time::timeout(Duration::ZERO, future).await })
            .unwrap_or(Outcome::Return(Value::None)),
    }
}

/// Runs one fuzzed sequence on a fresh engine with two sessions (so that
/// ownership checks between clients are exercised) and ends both.
fn run(calls: Vec<Call>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let engine = Engine::new(Registry::sync_manager());
    let sessions = [engine.open_session("fuzz-a"), engine.open_session("fuzz-b")];
    let names = method_names(&engine);
    let mut ids = Vec::new();
    for (n, (typeid, args)) in fixtures().into_iter().enumerate() {
        let mut positional = vec![Value::from(typeid)];
        positional.extend(args);
        let request = Request {
            id: n as u64,
            target: Target::Server,
            method: "create".into(),
            args: positional,
            kwargs: Kwargs::new(),
            thread: 0,
        };
        match answer(&runtime, &engine, &sessions[0], request) {
            Outcome::Proxy(info) => ids.push(info.token.id),
            other => return Err(TestCaseError::fail(format!("create {typeid}: {other:?}"))),
        }
    }
    for (n, call) in calls.into_iter().enumerate() {
        let target = match call.target {
            None => Target::Server,
            Some(_) if call.stray => Target::Object(ObjectId(u64::MAX - 7)),
            Some(i) => Target::Object(ids[i % ids.len()]),
        };
        let method = match call.method {
            Ok(i) => names[i % names.len()].clone(),
            Err(junk) => junk,
        };
        let request = Request {
            id: 100 + n as u64,
            target,
            method: method.clone(),
            args: call.args,
            kwargs: call.kwargs,
            thread: call.thread,
        };
        let session = &sessions[n % 2];
        // A proxy handed back is owned by the session; ending it below
        // releases it, so nothing outlives the case.
        let outcome = answer(&runtime, &engine, session, request);
        if std::env::var_os("FUZZ_DEBUG").is_some() {
            eprintln!("{method}: {outcome:?}");
        }
        match outcome {
            Outcome::Return(_) | Outcome::Proxy(_) => {}
            // The engine turns a method's panic into this RuntimeError
            // so the server lives on; here it is a bug all the same.
            Outcome::Error(e) => prop_assert!(
                !e.message.starts_with("internal error"),
                "{method}: a method panicked ({e})"
            ),
        }
    }
    for session in &sessions {
        engine.end_session(session);
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_calls_answer_or_raise_never_panic(
        calls in prop::collection::vec(call(), 1..24)
    ) {
        run(calls)?;
    }
}

/// A call built by hand, for the regression cases below.
fn on(target: usize, method: &str, args: Vec<Value>) -> Call {
    Call {
        target: Some(target),
        stray: false,
        method: Err(method.to_owned()),
        args,
        kwargs: Kwargs::new(),
        thread: 0,
    }
}

#[test]
fn hostile_counts_and_bounds_are_typed_errors() {
    // The fixtures' order: 1 is the list, 6 the Semaphore, 13 the Array.
    let calls = vec![
        on(1, "__mul__", vec![i64::MAX.into()]),
        on(1, "__imul__", vec![i64::MIN.into()]),
        on(1, "__getitem__", vec![Value::from(i64::MIN)]),
        on(1, "insert", vec![i64::MIN.into(), 1.into()]),
        on(1, "pop", vec![i64::MIN.into()]),
        on(6, "release", vec![i64::MAX.into()]),
        on(6, "release", vec![i64::MAX.into()]),
        on(6, "release", vec![2.into()]),
        on(13, "__getitem__", vec![i64::MIN.into()]),
        on(13, "__setitem__", vec![i64::MAX.into(), 1.into()]),
    ];
    run(calls).unwrap();
}
