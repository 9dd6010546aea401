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

impl SharedObject for Foo {
    fn methods() -> &'static [&'static str] {
        &["f", "g", "_h"]
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let said = match method {
            "f" => "you called Foo.f()",
            "g" => "you called Foo.g()",
            "_h" => "you called Foo._h()",
            _ => return Reply::no_such_method("Foo", method),
        };
        args.none(method).map(|()| Value::from(said)).into()
    }
}

/// `baz()`: yields the squares of 0..10, then raises `StopIteration`.
pub struct Squares {
    next: Mutex<i64>,
}

impl SharedObject for Squares {
    fn methods() -> &'static [&'static str] {
        &["__next__"]
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        if method != "__next__" {
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

impl SharedObject for Operator {
    fn methods() -> &'static [&'static str] {
        &["abs", "add", "mul", "neg", "pow", "sub"]
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let n = match ints(&args, method) {
            Ok(n) => n,
            Err(e) => return Reply::err(e),
        };
        let wide = |x: i64| i128::from(x);
        let result = match (method, n.as_slice()) {
            ("abs", [a]) => Ok(big(wide(*a).abs())),
            ("neg", [a]) => Ok(big(-wide(*a))),
            ("add", [a, b]) => Ok(big(wide(*a) + wide(*b))),
            ("sub", [a, b]) => Ok(big(wide(*a) - wide(*b))),
            ("mul", [a, b]) => Ok(big(wide(*a) * wide(*b))),
            ("pow", [a, b]) => u32::try_from(*b)
                .ok()
                .and_then(|e| wide(*a).checked_pow(e))
                .map(big)
                .ok_or_else(overflow),
            (m, _) if Operator::methods().contains(&m) => Err(RemoteError::new(
                ErrorKind::TypeError,
                format!("{m}() got the wrong number of arguments"),
            )),
            _ => return Reply::no_such_method("module", method),
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
