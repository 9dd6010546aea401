//! `Namespace`: a bag of attributes (Python's `managers.Namespace`, served
//! through `NamespaceProxy`).
//!
//! `__getattribute__(name)`, `__setattr__(name, value)` and
//! `__delattr__(name)`; a missing name is `AttributeError: 'Namespace'
//! object has no attribute 'x'`. Its `repr()` is Python's:
//! `Namespace(x=10, y='hello')`, public names sorted.

use std::sync::Mutex;

use indexmap::IndexMap;
use mp_proto::value::Map;
use mp_proto::{RemoteError, Value};

use crate::args::{str_arg, Args};
use crate::errors::attribute_error;
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};

/// `NamespaceProxy`'s exposed list.
pub const EXPOSED: &[&str] = &["__getattribute__", "__setattr__", "__delattr__"];

/// A shared namespace.
pub struct NamespaceObject {
    attrs: Mutex<IndexMap<String, Held>>,
}

impl NamespaceObject {
    /// `Namespace(**kwds)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<NamespaceObject, RemoteError> {
        if !args.positional.is_empty() {
            return Err(crate::errors::type_error(
                "Namespace() takes no positional arguments",
            ));
        }
        let attrs = args
            .keywords
            .into_iter()
            .map(|(k, v)| (k, ctx.hold(v)))
            .collect();
        Ok(NamespaceObject {
            attrs: Mutex::new(attrs),
        })
    }

    fn missing(name: &str) -> RemoteError {
        attribute_error(format!("'Namespace' object has no attribute '{name}'"))
    }

    fn as_dict(attrs: &IndexMap<String, Held>) -> Value {
        let map: Map = attrs
            .iter()
            .map(|(k, v)| (Value::Str(k.clone()), v.value().clone()))
            .collect();
        Value::from(map)
    }

    fn dispatch(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        args: Args,
    ) -> Result<Return, RemoteError> {
        match method {
            "__getattribute__" => {
                let [name] = args.bind(method, ["name"], 1)?;
                let name = name.unwrap_or_default();
                let name = str_arg(&name, "attribute name")?;
                let attrs = lock(&self.attrs);
                if name == "__dict__" {
                    return Ok(Return::Value(ctx.hold(Self::as_dict(&attrs))));
                }
                attrs
                    .get(name)
                    .cloned()
                    .map(Return::Value)
                    .ok_or_else(|| Self::missing(name))
            }
            "__setattr__" => {
                let [name, value] = args.bind(method, ["name", "value"], 2)?;
                let name = name.unwrap_or_default();
                let name = str_arg(&name, "attribute name")?.to_owned();
                let held = ctx.hold(value.unwrap_or_default());
                let old = lock(&self.attrs).insert(name, held);
                drop(old);
                Ok(Value::None.into())
            }
            "__delattr__" => {
                let [name] = args.bind(method, ["name"], 1)?;
                let name = name.unwrap_or_default();
                let name = str_arg(&name, "attribute name")?;
                let old = lock(&self.attrs).shift_remove(name);
                match old {
                    Some(old) => {
                        drop(old);
                        Ok(Value::None.into())
                    }
                    None => Err(Self::missing(name)),
                }
            }
            _ => Err(attribute_error(format!(
                "'Namespace' object has no attribute '{method}'"
            ))),
        }
    }
}

impl SharedObject for NamespaceObject {
    fn methods() -> &'static [&'static str] {
        EXPOSED
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).into()
    }

    fn repr(&self) -> Option<String> {
        let attrs = lock(&self.attrs);
        let mut parts: Vec<String> = attrs
            .iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| format!("{k}={}", v.value().repr()))
            .collect();
        parts.sort();
        Some(format!("Namespace({})", parts.join(", ")))
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        Ok(Held::plain(Self::as_dict(&lock(&self.attrs))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::Harness;

    #[test]
    fn namespace_semantics() {
        let h = Harness::new();
        let mut kw = mp_proto::message::Kwargs::new();
        kw.insert("y".into(), "hello".into());
        let ns = NamespaceObject::create(&h.ctx(), Args::new(vec![], kw)).unwrap();
        h.ok(&ns, "__setattr__", vec!["x".into(), 10.into()]);
        h.ok(&ns, "__setattr__", vec!["_hidden".into(), 1.into()]);
        assert_eq!(ns.repr().unwrap(), "Namespace(x=10, y='hello')");
        assert_eq!(
            h.ok(&ns, "__getattribute__", vec!["x".into()]),
            Value::Int(10)
        );
        h.ok(&ns, "__delattr__", vec!["x".into()]);
        let e = h.err(&ns, "__getattribute__", vec!["x".into()]);
        assert_eq!(e.message, "'Namespace' object has no attribute 'x'");
        assert_eq!(e.kind, mp_proto::ErrorKind::AttributeError);
        assert_eq!(
            h.err(&ns, "__delattr__", vec!["x".into()]).kind,
            mp_proto::ErrorKind::AttributeError
        );
        assert_eq!(
            h.err(&ns, "__getattribute__", vec![1.into()]).kind,
            mp_proto::ErrorKind::TypeError
        );
    }
}
