//! `Value`: one shared value with a typecode (Python's `managers.Value`,
//! served through `ValueProxy`: `get`, `set`, and the `value` property on
//! the client).
//!
//! Like CPython's, the typecode is recorded and shown (`Value('i', 5)`)
//! but not enforced: the manager's `Value` is a plain box, unlike
//! `sharedctypes.Value`.

use std::sync::Mutex;

use mp_proto::{RemoteError, Value};

use crate::args::{str_arg, Args};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, SharedObject};

/// `ValueProxy`'s exposed list.
pub const EXPOSED: &[&str] = &["get", "set"];

/// A shared value.
pub struct ValueObject {
    typecode: String,
    value: Mutex<Held>,
}

impl ValueObject {
    /// `Value(typecode, value, lock=True)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<ValueObject, RemoteError> {
        let [typecode, value, _lock] = args.bind("Value", ["typecode", "value", "lock"], 2)?;
        let typecode = typecode.unwrap_or_default();
        let typecode = str_arg(&typecode, "typecode")?.to_owned();
        Ok(ValueObject {
            typecode,
            value: Mutex::new(ctx.hold(value.unwrap_or_default())),
        })
    }
}

impl SharedObject for ValueObject {
    fn methods() -> &'static [&'static str] {
        EXPOSED
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        match method {
            "get" => match args.none(method) {
                Ok(()) => Reply::held(lock(&self.value).clone()),
                Err(e) => Reply::err(e),
            },
            "set" => match args.bind(method, ["value"], 1) {
                Ok([v]) => {
                    let new = ctx.hold(v.unwrap_or_default());
                    let old = std::mem::replace(&mut *lock(&self.value), new);
                    drop(old);
                    Reply::none()
                }
                Err(e) => Reply::err(e),
            },
            _ => Reply::no_such_method("Value", method),
        }
    }

    fn repr(&self) -> Option<String> {
        Some(format!(
            "Value({}, {})",
            Value::Str(self.typecode.clone()).repr(),
            lock(&self.value).value().repr()
        ))
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        Ok(lock(&self.value).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::Harness;

    #[test]
    fn value_semantics() {
        let h = Harness::new();
        let v =
            ValueObject::create(&h.ctx(), Args::positional(vec!["i".into(), 5.into()])).unwrap();
        assert_eq!(h.ok(&v, "get", vec![]), Value::Int(5));
        h.ok(&v, "set", vec![7.into()]);
        assert_eq!(v.repr().unwrap(), "Value('i', 7)");
        assert!(ValueObject::create(&h.ctx(), Args::positional(vec!["i".into()])).is_err());
    }
}
