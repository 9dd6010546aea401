//! `mp-bench manager.shared`: a type made shared by `#[shared]`, called
//! through its generated proxy, against the same server method called
//! through a hand-written typed proxy, and against a hand-written
//! `SharedObject` doing the same work behind a hand-written proxy — in one
//! run, on one connection, one call at a time (issue 16's goal: the
//! generated proxy within 5 % of the hand-written one).
//!
//! The server is a `BaseManager` started in a forked child; each figure
//! is the median of 5 interleaved repeats, pinned (client and server on
//! CPU 0) and unpinned.

use mp_server::prelude::*;
use multiprocessing::managers::{
    shared, BaseManager, BaseProxy, ManagerError, ProxyType, PyObject,
};

use crate::report::{self, Row};
use crate::wire::{pin, rate, Placement};

/// Interleaved repeats per figure.
const REPEATS: usize = 5;

/// The reference's `MathsClass`, shared by the attribute.
#[derive(Default)]
pub struct Maths;

#[shared]
impl Maths {
    /// `x + y`.
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
}

/// A typed proxy written by hand, as the built-in proxies are: the
/// method's name and its arguments' wire form spelled out.
struct HandProxy {
    base: BaseProxy,
}

impl ProxyType for HandProxy {
    fn from_parts(base: BaseProxy, _exposed: Vec<String>) -> Self {
        HandProxy { base }
    }
}

impl HandProxy {
    fn add(&self, x: i64, y: i64) -> Result<i64, ManagerError> {
        self.base
            .call_as(MathsMethod::Add, vec![PyObject::Int(x), PyObject::Int(y)])
    }
}

/// The same type written by hand against `mp_server::SharedObject`.
struct HandMaths;

impl SharedObject for HandMaths {
    fn methods() -> &'static [MethodSpec] {
        MathsMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        if MathsMethod::from_name(method).is_none() {
            return Reply::no_such_method("HandMaths", method);
        }
        args.parse::<(i64, i64)>(method)
            .map(|(x, y)| Value::Int(x + y))
            .into()
    }
}

fn started() -> BaseManager {
    let mut m = BaseManager::new("127.0.0.1:0", b"bench-shared");
    m.register::<Maths>().expect("register");
    m.registry()
        .expect("registry")
        .register("HandMaths", |_ctx, args| {
            args.none("HandMaths")?;
            Ok(HandMaths)
        });
    m.start().expect("start");
    m
}

/// Calls per second: generated proxy, hand proxy (same server object),
/// hand proxy on the hand-written object.
fn measure(placement: Placement) -> [f64; 3] {
    let (cpu, _) = placement.cpus();
    pin(cpu);
    let m = started();
    let generated = m.create::<Maths>().expect("create");
    let hand: HandProxy = m.create_as("Maths", vec![]).expect("create");
    let hand_object: HandProxy = m.create_as("HandMaths", vec![]).expect("create");
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..REPEATS {
        samples[0].push(rate(|| {
            generated.add(4, 3).expect("add");
        }));
        samples[1].push(rate(|| {
            hand.add(4, 3).expect("add");
        }));
        samples[2].push(rate(|| {
            hand_object.add(4, 3).expect("add");
        }));
    }
    drop((generated, hand, hand_object, m));
    pin(None);
    samples.map(crate::wire::median)
}

/// The suite.
pub fn run() {
    let mut rows = Vec::new();
    for placement in [Placement::SameCpu, Placement::Unpinned] {
        let [generated, hand, hand_object] = measure(placement);
        let suffix = crate::manager::placement_name(placement);
        rows.push(Row {
            name: format!("manager.shared.add.{suffix}"),
            ours: generated,
            against: Some(("hand-written proxy".into(), hand)),
            unit: "calls/s",
            higher_is_better: true,
        });
        rows.push(Row {
            name: format!("manager.shared.add.{suffix}"),
            ours: generated,
            against: Some(("hand proxy + hand object".into(), hand_object)),
            unit: "calls/s",
            higher_is_better: true,
        });
    }
    report::print("manager.shared: #[shared] against hand-written", &rows);
}
