//! The reference documentation's customized managers-and-proxies demo:
//! `Foo1` exposes `f` and `g`; `Foo2` exposes `g` and `_h`; `baz` is a
//! generator served behind a user proxy type (`GeneratorProxy`, Python's
//! `proxytype=`); `operator` is a module-like object whose public
//! functions are exposed. Prints
//!
//! ```text
//! --------------------
//! you called Foo.f()
//! you called Foo.g()
//! --------------------
//! you called Foo.g()
//! you called Foo._h()
//! --------------------
//! <0> <1> <4> <9> <16> <25> <36> <49> <64> <81>
//! --------------------
//! op.add(23, 45) = 68
//! op.pow(2, 94) = 19807040628566084398385987584
//! op._exposed_ = ('abs', 'add', 'mul', 'neg', 'pow', 'sub')
//! ```
//!
//! Python's `Foo` prints in the server's process; here its methods return
//! the line and the client prints it. Python's `operator` module exposes
//! every public function; this one has six.
//!
//! Run with `cargo run -p multiprocessing --example manager_custom_untyped`.

use std::error::Error;
use std::io::{self, Write};

use mp_proto::{ErrorKind, Value};
use multiprocessing::managers::{BaseManager, BaseProxy, ManagerError, ProxyType};

#[allow(dead_code)]
#[path = "../../server/examples/shared/custom.rs"]
mod custom;

/// Python's `GeneratorProxy`: a proxy that is an iterator.
struct GeneratorProxy {
    base: BaseProxy,
}

impl ProxyType for GeneratorProxy {
    fn from_parts(base: BaseProxy, _exposed: Vec<String>) -> Self {
        GeneratorProxy { base }
    }
}

impl Iterator for GeneratorProxy {
    type Item = Result<i64, ManagerError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.base.call_as("__next__", vec![]) {
            Err(ManagerError::Remote(e)) if e.kind == ErrorKind::StopIteration => None,
            other => Some(other),
        }
    }
}

fn line(value: Value) -> String {
    match value {
        Value::Str(s) => s,
        other => other.to_string(),
    }
}

/// Runs the demo, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let mut manager = BaseManager::new("127.0.0.1:0", b"demo");
    custom::register_demo(manager.registry()?);
    manager.start()?;
    let rule = "-".repeat(20);

    writeln!(out, "{rule}")?;
    let f1 = manager.create_auto("Foo1", vec![])?;
    writeln!(out, "{}", line(f1.call_method("f", vec![])?.into_value()?))?;
    writeln!(out, "{}", line(f1.call_method("g", vec![])?.into_value()?))?;
    assert!(!f1.exposed().contains(&"_h".to_string()));
    assert!(f1.call_method("_h", vec![]).is_err());
    let mut exposed = f1.exposed().to_vec();
    exposed.sort();
    assert_eq!(exposed, ["f", "g"]);

    writeln!(out, "{rule}")?;
    let f2 = manager.create_auto("Foo2", vec![])?;
    writeln!(out, "{}", line(f2.call_method("g", vec![])?.into_value()?))?;
    writeln!(out, "{}", line(f2.call_method("_h", vec![])?.into_value()?))?;
    assert!(f2.call_method("f", vec![]).is_err());
    let mut exposed = f2.exposed().to_vec();
    exposed.sort();
    assert_eq!(exposed, ["_h", "g"]);

    writeln!(out, "{rule}")?;
    let it: GeneratorProxy = manager.create_as("baz", vec![])?;
    for i in it {
        write!(out, "<{}> ", i?)?;
    }
    writeln!(out)?;

    writeln!(out, "{rule}")?;
    let op = manager.create_auto("operator", vec![])?;
    let add = op.call_method("add", vec![23.into(), 45.into()])?;
    writeln!(out, "op.add(23, 45) = {}", line(add.into_value()?))?;
    let pow = op.call_method("pow", vec![2.into(), 94.into()])?;
    writeln!(out, "op.pow(2, 94) = {}", line(pow.into_value()?))?;
    let names: Vec<Value> = op
        .exposed()
        .iter()
        .map(|m| Value::from(m.as_str()))
        .collect();
    writeln!(out, "op._exposed_ = {}", Value::Tuple(names).repr())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
