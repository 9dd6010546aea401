//! The reference's `MathsClass`, shared by `mp-server`'s `maths` example
//! and the SDK's `manager_maths` example:
//!
//! ```python
//! class MathsClass:
//!     def add(self, x, y): return x + y
//!     def mul(self, x, y): return x * y
//! MyManager.register('Maths', MathsClass)
//! ```

use mp_server::prelude::*;

/// A type with two public methods; ints stay ints, as in Python.
pub struct MathsClass;

impl SharedObject for MathsClass {
    fn methods() -> &'static [&'static str] {
        &["add", "mul"]
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let ints = args
            .positional
            .iter()
            .map(Value::as_int)
            .collect::<Option<Vec<_>>>();
        match (method, ints.as_deref()) {
            ("add", Some([x, y])) => {
                return x
                    .checked_add(*y)
                    .map(Value::from)
                    .ok_or_else(overflow)
                    .into()
            }
            ("mul", Some([x, y])) => {
                return x
                    .checked_mul(*y)
                    .map(Value::from)
                    .ok_or_else(overflow)
                    .into()
            }
            _ => {}
        }
        match method {
            "add" => args
                .parse::<(f64, f64)>(method)
                .map(|(x, y)| Value::from(x + y))
                .into(),
            "mul" => args
                .parse::<(f64, f64)>(method)
                .map(|(x, y)| Value::from(x * y))
                .into(),
            _ => Reply::no_such_method("MathsClass", method),
        }
    }
}

fn overflow() -> RemoteError {
    RemoteError::new(ErrorKind::ValueError, "int too large")
}

/// Registers `Maths`.
pub fn register_maths(registry: &mut Registry) {
    registry.register("Maths", |_ctx, args| {
        args.none("Maths")?;
        Ok(MathsClass)
    });
}
