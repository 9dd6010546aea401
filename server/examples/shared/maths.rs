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

shared_methods! {
    /// `MathsClass`'s methods, declared once: the server's dispatch, its
    /// exposed list and a client's calls all take them from here.
    pub enum MathsMethod {
        /// `add(x, y)`.
        Add = "add",
        /// `mul(x, y)`.
        Mul = "mul",
    }
}

/// A type with two public methods; ints stay ints, as in Python.
pub struct MathsClass;

impl SharedObject for MathsClass {
    fn methods() -> &'static [MethodSpec] {
        MathsMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = MathsMethod::from_name(method) else {
            return Reply::no_such_method("MathsClass", method);
        };
        let ints = args
            .positional
            .iter()
            .map(Value::as_int)
            .collect::<Option<Vec<_>>>();
        if let Some([x, y]) = ints.as_deref() {
            let exact = match m {
                MathsMethod::Add => x.checked_add(*y),
                MathsMethod::Mul => x.checked_mul(*y),
            };
            return exact.map(Value::from).ok_or_else(overflow).into();
        }
        args.parse::<(f64, f64)>(method)
            .map(|(x, y)| match m {
                MathsMethod::Add => Value::from(x + y),
                MathsMethod::Mul => Value::from(x * y),
            })
            .into()
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
