//! `Value`: one shared value with a typecode (Python's `managers.Value`,
//! served through `ValueProxy`: `get`, `set`, and the `value` property on
//! the client).
//!
//! Like CPython's, the typecode is recorded and shown (`Value('i', 5)`)
//! but not enforced: the manager's `Value` is a plain box, unlike
//! `sharedctypes.Value`.

use std::sync::{Arc, Mutex};

use mp_proto::methods::builtin::ValueMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::RemoteError;

use crate::args::{str_arg, Args};
use crate::budget::Budget;
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, SharedObject};

/// A shared value.
pub struct ValueObject {
    /// A `str`, stored (and charged) like the value: any string is
    /// accepted, as in CPython.
    typecode: Held,
    value: Mutex<Held>,
    /// For `repr()`, which has no call context.
    budget: Arc<Budget>,
}

impl ValueObject {
    /// `Value(typecode, value, lock=True)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<ValueObject, RemoteError> {
        let [typecode, value, _lock] = args.bind("Value", ["typecode", "value", "lock"], 2)?;
        let typecode = typecode.unwrap_or_default();
        str_arg(&typecode, "typecode")?;
        Ok(ValueObject {
            typecode: ctx.hold(typecode)?,
            value: Mutex::new(ctx.hold(value.unwrap_or_default())?),
            budget: Arc::clone(ctx.budget()),
        })
    }
}

impl SharedObject for ValueObject {
    fn methods() -> &'static [MethodSpec] {
        ValueMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = ValueMethod::from_name(method) else {
            return Reply::no_such_method("Value", method);
        };
        match m {
            ValueMethod::Get => match args.none(method) {
                Ok(()) => Reply::held(lock(&self.value).clone()),
                Err(e) => Reply::err(e),
            },
            ValueMethod::Set => match args
                .bind(method, ["value"], 1)
                .and_then(|[v]| ctx.hold(v.unwrap_or_default()))
            {
                Ok(new) => {
                    let old = std::mem::replace(&mut *lock(&self.value), new);
                    drop(old);
                    Reply::none()
                }
                Err(e) => Reply::err(e),
            },
        }
    }

    fn references(&self, out: &mut Vec<mp_proto::ObjectId>) {
        out.extend_from_slice(self.typecode.referenced_ids());
        out.extend_from_slice(lock(&self.value).referenced_ids());
    }

    fn repr(&self) -> Option<String> {
        let value = lock(&self.value);
        // A repr is at most about four times the value's bytes; one too
        // large to build falls back to the default `<Value object at …>`.
        let bytes = value
            .value()
            .estimated_bytes()
            .saturating_add(self.typecode.value().estimated_bytes())
            .saturating_mul(4);
        if self.budget.check_value(bytes).is_err() {
            return None;
        }
        Some(format!(
            "Value({}, {})",
            self.typecode.value().repr(),
            value.value().repr()
        ))
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        Ok(lock(&self.value).clone())
    }
}

/// A value persists its typecode and value.
impl crate::persist::Durable for ValueObject {
    fn init(&self) -> Args {
        Args::positional(vec![self.typecode.value().clone(), mp_proto::Value::None])
    }

    fn dump(&self) -> crate::persist::Dump {
        crate::persist::Dump {
            items: vec![lock(&self.value).value().clone()],
            ..Default::default()
        }
    }

    fn fill(&self, ctx: &CallContext<'_>, items: Vec<mp_proto::Value>) -> Result<(), RemoteError> {
        if let Some(v) = items.into_iter().last() {
            let new = ctx.hold(v)?;
            let old = std::mem::replace(&mut *lock(&self.value), new);
            drop(old);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::Harness;
    use mp_proto::Value;

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
