//! The types of the reference's customized managers-and-proxies demo,
//! shared by `mp-server`'s `generator` example and the SDK's
//! `manager_custom` example:
//!
//! ```python
//! class Foo:
//!     def f(self): print('you called Foo.f()')
//!     def g(self): print('you called Foo.g()')
//!     def _h(self): print('you called Foo._h()')
//! def baz():
//!     for i in range(10):
//!         yield i*i
//! def get_operator_module(): return operator
//! MyManager.register('Foo1', Foo)                             # f and g
//! MyManager.register('Foo2', Foo, exposed=('g', '_h'))        # g and _h
//! MyManager.register('baz', baz, proxytype=GeneratorProxy)    # __next__
//! MyManager.register('operator', get_operator_module)         # public functions
//! ```
//!
//! Python's `Foo` prints in the server's process; here each method
//! returns the line instead, so the client prints it where a test can
//! read it.

use std::sync::Mutex;

use mp_server::prelude::*;

/// Methods `f`, `g`, and the private `_h`.
pub struct Foo;

shared_methods! {
    /// `Foo`'s methods: `_h` is private unless a registration exposes it.
    pub enum FooMethod {
        /// `f()`.
        F = "f",
        /// `g()`.
        G = "g",
        /// `_h()`.
        H = "_h",
    }
}

impl SharedObject for Foo {
    fn methods() -> &'static [MethodSpec] {
        FooMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let said = match FooMethod::from_name(method) {
            Some(FooMethod::F) => "you called Foo.f()",
            Some(FooMethod::G) => "you called Foo.g()",
            Some(FooMethod::H) => "you called Foo._h()",
            None => return Reply::no_such_method("Foo", method),
        };
        args.none(method).map(|()| Value::from(said)).into()
    }
}

/// `baz()`: yields the squares of 0..10, then raises `StopIteration`.
pub struct Squares {
    next: Mutex<i64>,
}

shared_methods! {
    /// A generator's one method; a dunder, so hidden unless exposed.
    pub enum GeneratorMethod {
        /// `next(gen)`.
        Next = "__next__",
    }
}

impl SharedObject for Squares {
    fn methods() -> &'static [MethodSpec] {
        GeneratorMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        if GeneratorMethod::from_name(method).is_none() {
            return Reply::no_such_method("generator", method);
        }
        if let Err(e) = args.none(method) {
            return Reply::err(e);
        }
        let mut i = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if *i >= 10 {
            return Reply::err(RemoteError::new(ErrorKind::StopIteration, ""));
        }
        let square = *i * *i;
        *i += 1;
        Reply::ok(square)
    }
}

/// An `operator`-like module object: its public functions.
pub struct Operator;

fn ints(args: &Args, method: &str) -> Result<Vec<i64>, RemoteError> {
    args.positional
        .iter()
        .map(|v| {
            v.as_int().ok_or_else(|| {
                RemoteError::new(
                    ErrorKind::TypeError,
                    format!("{method}() takes ints, not {}", v.type_name()),
                )
            })
        })
        .collect()
}

/// An int result: a `Value::Int` when it fits 64 bits, else its decimal
/// digits (the protocol's ints are 64-bit; Python's are unbounded).
fn big(n: i128) -> Value {
    match i64::try_from(n) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Str(n.to_string()),
    }
}

fn overflow() -> RemoteError {
    RemoteError::new(ErrorKind::ValueError, "int too large")
}

shared_methods! {
    /// The `operator` module's functions the example serves.
    pub enum OperatorMethod {
        /// `abs(a)`.
        Abs = "abs",
        /// `add(a, b)`.
        Add = "add",
        /// `mul(a, b)`.
        Mul = "mul",
        /// `neg(a)`.
        Neg = "neg",
        /// `pow(a, b)`.
        Pow = "pow",
        /// `sub(a, b)`.
        Sub = "sub",
    }
}

impl SharedObject for Operator {
    fn methods() -> &'static [MethodSpec] {
        OperatorMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        use OperatorMethod as Op;
        let Some(op) = Op::from_name(method) else {
            return Reply::no_such_method("module", method);
        };
        let n = match ints(&args, method) {
            Ok(n) => n,
            Err(e) => return Reply::err(e),
        };
        let wide = |x: i64| i128::from(x);
        let result = match (op, n.as_slice()) {
            (Op::Abs, [a]) => Ok(big(wide(*a).abs())),
            (Op::Neg, [a]) => Ok(big(-wide(*a))),
            (Op::Add, [a, b]) => Ok(big(wide(*a) + wide(*b))),
            (Op::Sub, [a, b]) => Ok(big(wide(*a) - wide(*b))),
            (Op::Mul, [a, b]) => Ok(big(wide(*a) * wide(*b))),
            (Op::Pow, [a, b]) => u32::try_from(*b)
                .ok()
                .and_then(|e| wide(*a).checked_pow(e))
                .map(big)
                .ok_or_else(overflow),
            _ => Err(RemoteError::new(
                ErrorKind::TypeError,
                format!("{method}() got the wrong number of arguments"),
            )),
        };
        result.into()
    }
}

/// Registers `Foo1`, `Foo2` (exposing `g` and `_h`), `baz` (exposing
/// `__next__`) and `operator`.
pub fn register_demo(registry: &mut Registry) {
    registry.register("Foo1", |_ctx, _args| Ok(Foo));
    registry
        .register("Foo2", |_ctx, _args| Ok(Foo))
        .exposed(["g", "_h"]);
    // Dunder names are hidden by default: list `__next__` explicitly.
    registry
        .register("baz", |_ctx, _args| {
            Ok(Squares {
                next: Mutex::new(0),
            })
        })
        .exposed(["__next__"]);
    registry.register("operator", |_ctx, _args| Ok(Operator));
}
