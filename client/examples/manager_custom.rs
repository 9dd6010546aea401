//! The reference documentation's customized managers-and-proxies demo,
//! typed with `#[shared]`: `Foo` registered as `Foo1` (exposing `f` and
//! `g`) and as `Foo2` (exposing `g` and `_h`); `baz`, a generator of
//! squares whose proxy is an iterator (Python's `GeneratorProxy`);
//! `operator`, a module-like object of public functions. Prints
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
//! the line and the client prints it. Protocol ints are 64-bit, so
//! `operator`'s results are 128-bit and travel as decimal text.
//! `manager_custom_untyped` is the same demo by name. Run with
//! `cargo run -p multiprocessing --example manager_custom`.

use std::error::Error;
use std::io::{self, Write};

use multiprocessing::managers::{shared, BaseManager, ManagerError, MethodError};
use serde::{Deserialize, Serialize};

#[derive(Default)]
struct Foo;

#[shared(typeid = "Foo1")]
impl Foo {
    fn f(&self) -> &'static str {
        "you called Foo.f()"
    }
    fn g(&self) -> &'static str {
        "you called Foo.g()"
    }
    fn _h(&self) -> &'static str {
        "you called Foo._h()"
    }
}

/// `baz()`: yields `i*i` for `i` in `0..10`.
#[derive(Default)]
struct Baz {
    i: i64,
}

#[shared(typeid = "baz")]
impl Baz {
    #[shared(name = "__next__")]
    fn next(&mut self) -> Option<i64> {
        (self.i < 10).then(|| {
            self.i += 1;
            (self.i - 1) * (self.i - 1)
        })
    }
}

/// Python's `GeneratorProxy`: the proxy as an iterator.
impl Iterator for BazProxy {
    type Item = Result<i64, ManagerError>;
    fn next(&mut self) -> Option<Self::Item> {
        BazProxy::next(self).transpose()
    }
}

/// `operator`'s six public functions.
#[derive(Default)]
struct Operator;

/// `OverflowError`.
#[derive(Debug, Serialize, Deserialize)]
struct Overflow;

#[shared(typeid = "operator")]
impl Operator {
    fn abs(&self, a: i64) -> String {
        i128::from(a).abs().to_string()
    }
    fn add(&self, a: i64, b: i64) -> String {
        (i128::from(a) + i128::from(b)).to_string()
    }
    fn mul(&self, a: i64, b: i64) -> String {
        (i128::from(a) * i128::from(b)).to_string()
    }
    fn neg(&self, a: i64) -> String {
        (-i128::from(a)).to_string()
    }
    fn pow(&self, a: i64, b: u32) -> Result<String, Overflow> {
        i128::from(a)
            .checked_pow(b)
            .map(|p| p.to_string())
            .ok_or(Overflow)
    }
    fn sub(&self, a: i64, b: i64) -> String {
        (i128::from(a) - i128::from(b)).to_string()
    }
}

/// Runs the demo, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let mut manager = BaseManager::new("127.0.0.1:0", b"demo");
    manager
        .register::<Foo>()?
        .register_as::<Foo>("Foo2", Some(&["g", "_h"]))?
        .register::<Baz>()?
        .register::<Operator>()?;
    manager.start()?;
    let rule = "-".repeat(20);

    writeln!(out, "{rule}")?;
    let f1 = manager.create::<Foo>()?;
    writeln!(out, "{}", f1.f()?)?;
    writeln!(out, "{}", f1.g()?)?;
    assert!(f1._h().is_err(), "_h is private in Foo1");

    writeln!(out, "{rule}")?;
    let f2: FooProxy = manager.create_as("Foo2", vec![])?;
    writeln!(out, "{}", f2.g()?)?;
    writeln!(out, "{}", f2._h()?)?;
    assert!(f2.f().is_err(), "f is not exposed by Foo2");

    writeln!(out, "{rule}")?;
    for i in manager.create::<Baz>()? {
        write!(out, "<{}> ", i?)?;
    }
    writeln!(out)?;

    writeln!(out, "{rule}")?;
    let op = manager.create::<Operator>()?;
    writeln!(out, "op.add(23, 45) = {}", op.add(23, 45)?)?;
    let pow = op.pow(2, 94).map_err(|e| match e {
        MethodError::Raised(Overflow) => "overflow".into(),
        MethodError::Manager(e) => e.to_string(),
    })?;
    writeln!(out, "op.pow(2, 94) = {pow}")?;
    let exposed = manager.client().ok_or("not started")?;
    let names = exposed.get_methods(op.base().token().id)?;
    let names: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    writeln!(out, "op._exposed_ = ({})", names.join(", "))?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
