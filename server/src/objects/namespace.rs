//! `Namespace`: a bag of attributes (Python's `managers.Namespace`, served
//! through `NamespaceProxy`).
//!
//! `__getattribute__(name)`, `__setattr__(name, value)` and
//! `__delattr__(name)`; a missing name is `AttributeError: 'Namespace'
//! object has no attribute 'x'`. Its `repr()` is Python's:
//! `Namespace(x=10, y='hello')`, public names sorted.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use mp_proto::methods::builtin::NamespaceMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::value::{dict_bytes, heap_block, Map};
use mp_proto::{RemoteError, Value};

use crate::args::{str_arg, Args};
use crate::budget::{shrink_map, Budget, Charge};
use crate::errors::attribute_error;
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};

/// One attribute: its value, and the charge for its name (the map's key,
/// a plain string outside any [`Held`]).
struct Attr {
    value: Held,
    _name: Charge,
}

/// A shared namespace.
pub struct NamespaceObject {
    attrs: Mutex<IndexMap<String, Attr>>,
    /// For `repr()` and `#GETVALUE`, which have no call context.
    budget: Arc<Budget>,
}

/// What an attribute's name costs as a key: its string and its entry's
/// hash.
fn name_bytes(name: &str) -> usize {
    std::mem::size_of::<String>() + std::mem::size_of::<u64>() + heap_block(name.len())
}

impl NamespaceObject {
    /// `Namespace(**kwds)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<NamespaceObject, RemoteError> {
        if !args.positional.is_empty() {
            return Err(crate::errors::type_error(
                "Namespace() takes no positional arguments",
            ));
        }
        let (names, values): (Vec<String>, Vec<Value>) = args.keywords.into_iter().unzip();
        let names_bytes = names
            .iter()
            .fold(0usize, |s, n| s.saturating_add(name_bytes(n)));
        ctx.check_value(names_bytes)?;
        let values = ctx.hold_all(values)?;
        let attrs = names
            .into_iter()
            .zip(values)
            .map(|(name, value)| {
                let charge = ctx.budget().charge(name_bytes(&name))?;
                Ok((
                    name,
                    Attr {
                        value,
                        _name: charge,
                    },
                ))
            })
            .collect::<Result<_, RemoteError>>()?;
        Ok(NamespaceObject {
            attrs: Mutex::new(attrs),
            budget: Arc::clone(ctx.budget()),
        })
    }

    fn missing(name: &str) -> RemoteError {
        attribute_error(format!("'Namespace' object has no attribute '{name}'"))
    }

    /// The bytes of [`as_dict`](Self::as_dict)'s result.
    fn dict_bytes(attrs: &IndexMap<String, Attr>) -> usize {
        let heaps = attrs.iter().fold(0usize, |s, (k, a)| {
            s.saturating_add(heap_block(k.len()))
                .saturating_add(a.value.value().heap_bytes())
        });
        dict_bytes(attrs.len(), heaps)
    }

    fn as_dict(attrs: &IndexMap<String, Attr>) -> Value {
        let map: Map = attrs
            .iter()
            .map(|(k, a)| (Value::Str(k.clone()), a.value.value().clone()))
            .collect();
        Value::from(map)
    }

    fn dispatch(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        args: Args,
    ) -> Result<Return, RemoteError> {
        let Some(m) = NamespaceMethod::from_name(method) else {
            return Err(attribute_error(format!(
                "'Namespace' object has no attribute '{method}'"
            )));
        };
        match m {
            NamespaceMethod::GetAttribute => {
                let [name] = args.bind(method, ["name"], 1)?;
                let name = name.unwrap_or_default();
                let name = str_arg(&name, "attribute name")?;
                let attrs = lock(&self.attrs);
                if name == "__dict__" {
                    ctx.check_value(Self::dict_bytes(&attrs))?;
                    return Ok(Return::Value(ctx.result(Self::as_dict(&attrs))));
                }
                attrs
                    .get(name)
                    .map(|a| Return::Value(a.value.clone()))
                    .ok_or_else(|| Self::missing(name))
            }
            NamespaceMethod::SetAttr => {
                let [name, value] = args.bind(method, ["name", "value"], 2)?;
                let name = name.unwrap_or_default();
                let name = str_arg(&name, "attribute name")?.to_owned();
                ctx.check_value(name_bytes(&name))?;
                let value = ctx.hold(value.unwrap_or_default())?;
                let mut attrs = lock(&self.attrs);
                let old = match attrs.get_mut(&name) {
                    Some(slot) => Some(std::mem::replace(&mut slot.value, value)),
                    None => {
                        let charge = ctx.budget().charge(name_bytes(&name))?;
                        attrs.insert(
                            name,
                            Attr {
                                value,
                                _name: charge,
                            },
                        );
                        None
                    }
                };
                drop(attrs);
                drop(old);
                Ok(Value::None.into())
            }
            NamespaceMethod::DelAttr => {
                let [name] = args.bind(method, ["name"], 1)?;
                let name = name.unwrap_or_default();
                let name = str_arg(&name, "attribute name")?;
                let mut attrs = lock(&self.attrs);
                let old = attrs.shift_remove(name);
                shrink_map(&mut attrs);
                drop(attrs);
                match old {
                    Some(old) => {
                        drop(old);
                        Ok(Value::None.into())
                    }
                    None => Err(Self::missing(name)),
                }
            }
        }
    }
}

impl SharedObject for NamespaceObject {
    fn methods() -> &'static [MethodSpec] {
        NamespaceMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).into()
    }

    fn references(&self, out: &mut Vec<mp_proto::ObjectId>) {
        for attr in lock(&self.attrs).values() {
            out.extend_from_slice(attr.value.referenced_ids());
        }
    }

    fn repr(&self) -> Option<String> {
        let attrs = lock(&self.attrs);
        // As for a list: a repr too large to build falls back to the
        // default `<Namespace object at …>`.
        if self
            .budget
            .check_value(Self::dict_bytes(&attrs).saturating_mul(4))
            .is_err()
        {
            return None;
        }
        let mut parts: Vec<String> = attrs
            .iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, a)| format!("{k}={}", a.value.value().repr()))
            .collect();
        parts.sort();
        Some(format!("Namespace({})", parts.join(", ")))
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        let attrs = lock(&self.attrs);
        self.budget.check_value(Self::dict_bytes(&attrs))?;
        Ok(Held::plain(Self::as_dict(&attrs)))
    }
}

/// A namespace persists its attributes, in order.
impl crate::persist::Durable for NamespaceObject {
    fn init(&self) -> Args {
        Args::default()
    }

    fn dump(&self) -> crate::persist::Dump {
        let items = lock(&self.attrs)
            .iter()
            .flat_map(|(k, a)| [Value::Str(k.clone()), a.value.value().clone()])
            .collect();
        crate::persist::Dump {
            items,
            ..Default::default()
        }
    }

    fn fill(&self, ctx: &CallContext<'_>, items: Vec<Value>) -> Result<(), RemoteError> {
        let mut items = items.into_iter();
        let mut attrs = lock(&self.attrs);
        while let (Some(name), Some(value)) = (items.next(), items.next()) {
            let name = str_arg(&name, "attribute name")?.to_owned();
            let value = ctx.hold(value)?;
            match attrs.get_mut(&name) {
                Some(slot) => slot.value = value,
                None => {
                    let charge = ctx.budget().charge(name_bytes(&name))?;
                    attrs.insert(
                        name,
                        Attr {
                            value,
                            _name: charge,
                        },
                    );
                }
            }
        }
        Ok(())
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
