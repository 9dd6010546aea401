//! `dict`: an insertion-ordered mapping, Python's `dict` as a
//! `SyncManager` serves it (`DictProxy`).
//!
//! Keys must be hashable (`TypeError: unhashable type: 'list'`), a missing
//! key is `KeyError(key)`. `keys()`, `values()` and `items()` return lists
//! (CPython pickles its views as lists too); `__iter__` returns a new
//! `Iterator` object over a snapshot of the keys. Deleting keeps the order
//! of the others, at O(n) per deletion.

use std::sync::Mutex;

use indexmap::IndexMap;
use mp_proto::{RemoteError, Value};

use crate::args::Args;
use crate::errors::{key_error, key_error_msg, type_error, unhashable};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::objects::iterate;
use crate::objects::iterator::IteratorObject;

/// CPython 3.11's `DictProxy` exposed list, plus 3.9's `|`/`|=` and
/// `__reversed__`.
pub const EXPOSED: &[&str] = &[
    "__contains__",
    "__delitem__",
    "__getitem__",
    "__iter__",
    "__len__",
    "__setitem__",
    "clear",
    "copy",
    "get",
    "items",
    "keys",
    "pop",
    "popitem",
    "setdefault",
    "update",
    "values",
    "__or__",
    "__ior__",
    "__reversed__",
];

/// A shared `dict`.
pub struct DictObject {
    map: Mutex<IndexMap<Held, Held>>,
}

impl DictObject {
    /// `dict(mapping_or_pairs=(), **kwargs)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<DictObject, RemoteError> {
        let mut map = IndexMap::new();
        update(ctx, &mut map, args, "dict")?;
        Ok(DictObject {
            map: Mutex::new(map),
        })
    }

    fn key(value: &Value) -> Result<(), RemoteError> {
        if value.is_hashable() {
            Ok(())
        } else {
            Err(unhashable(value))
        }
    }
}

fn update(
    ctx: &CallContext<'_>,
    map: &mut IndexMap<Held, Held>,
    mut args: Args,
    method: &str,
) -> Result<(), RemoteError> {
    let keywords = std::mem::take(&mut args.keywords);
    if args.positional.len() > 1 {
        return Err(type_error(format!(
            "{method} expected at most 1 argument, got {}",
            args.positional.len()
        )));
    }
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    if let Some(source) = args.positional.pop() {
        match source {
            Value::Dict(m) => pairs.extend(*m),
            other => {
                for (i, item) in iterate(other)?.into_iter().enumerate() {
                    match item {
                        Value::List(kv) | Value::Tuple(kv) if kv.len() == 2 => {
                            let mut kv = kv.into_iter();
                            if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                                pairs.push((k, v));
                            }
                        }
                        Value::List(kv) | Value::Tuple(kv) => {
                            return Err(crate::errors::value_error(format!(
                                "dictionary update sequence element #{i} has length {}; 2 is required",
                                kv.len()
                            )))
                        }
                        other => {
                            return Err(type_error(format!(
                                "cannot convert dictionary update sequence element #{i} to a sequence (got '{}')",
                                other.type_name()
                            )))
                        }
                    }
                }
            }
        }
    }
    pairs.extend(keywords.into_iter().map(|(k, v)| (Value::Str(k), v)));
    for (k, _) in &pairs {
        DictObject::key(k)?;
    }
    for (k, v) in pairs {
        let v = ctx.hold(v);
        match map.get_mut(&k) {
            // Python keeps the original key object when overwriting.
            Some(slot) => *slot = v,
            None => {
                map.insert(ctx.hold(k), v);
            }
        }
    }
    Ok(())
}

fn as_dict(map: &IndexMap<Held, Held>) -> Value {
    Value::from(
        map.iter()
            .map(|(k, v)| (k.value().clone(), v.value().clone()))
            .collect::<mp_proto::value::Map>(),
    )
}

impl SharedObject for DictObject {
    fn methods() -> &'static [&'static str] {
        EXPOSED
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).into()
    }

    fn repr(&self) -> Option<String> {
        Some(as_dict(&lock(&self.map)).repr())
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        Ok(Held::plain(as_dict(&lock(&self.map))))
    }
}

impl DictObject {
    fn dispatch(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        args: Args,
    ) -> Result<Return, RemoteError> {
        let mut map = lock(&self.map);
        let value = match method {
            "__getitem__" => {
                let [k] = args.bind(method, ["key"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                return map
                    .get(&k)
                    .cloned()
                    .map(Return::Value)
                    .ok_or_else(|| key_error(&k));
            }
            "__setitem__" => {
                let [k, v] = args.bind(method, ["key", "value"], 2)?;
                let (k, v) = (k.unwrap_or_default(), v.unwrap_or_default());
                Self::key(&k)?;
                let v = ctx.hold(v);
                match map.get_mut(&k) {
                    Some(slot) => *slot = v,
                    None => {
                        map.insert(ctx.hold(k), v);
                    }
                }
                Value::None
            }
            "__delitem__" => {
                let [k] = args.bind(method, ["key"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                // Dropped after the lock is released, with its references.
                let removed = map.shift_remove_entry(&k).ok_or_else(|| key_error(&k))?;
                drop(map);
                drop(removed);
                return Ok(Value::None.into());
            }
            "__contains__" => {
                let [k] = args.bind(method, ["key"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                Value::Bool(map.contains_key(&k))
            }
            "__len__" => {
                args.none(method)?;
                Value::Int(map.len() as i64)
            }
            "__iter__" => {
                args.none(method)?;
                let keys = map.keys().cloned().collect();
                return Ok(Return::Object(std::sync::Arc::new(IteratorObject::new(
                    keys,
                ))));
            }
            "__reversed__" => {
                args.none(method)?;
                Value::List(map.keys().rev().map(|k| k.value().clone()).collect())
            }
            "keys" => {
                args.none(method)?;
                Value::List(map.keys().map(|k| k.value().clone()).collect())
            }
            "values" => {
                args.none(method)?;
                Value::List(map.values().map(|v| v.value().clone()).collect())
            }
            "items" => {
                args.none(method)?;
                Value::List(
                    map.iter()
                        .map(|(k, v)| Value::Tuple(vec![k.value().clone(), v.value().clone()]))
                        .collect(),
                )
            }
            "copy" => {
                args.none(method)?;
                as_dict(&map)
            }
            "clear" => {
                args.none(method)?;
                let old = std::mem::take(&mut *map);
                drop(map);
                drop(old);
                return Ok(Value::None.into());
            }
            "get" => {
                let [k, default] = args.bind(method, ["key", "default"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                return Ok(match map.get(&k) {
                    Some(v) => Return::Value(v.clone()),
                    None => default.unwrap_or_default().into(),
                });
            }
            "pop" => {
                let [k, default] = args.bind(method, ["key", "default"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                return match map.shift_remove(&k) {
                    Some(v) => Ok(Return::Value(v)),
                    None => default.map(Return::from).ok_or_else(|| key_error(&k)),
                };
            }
            "popitem" => {
                args.none(method)?;
                let (k, v) = map
                    .pop()
                    .ok_or_else(|| key_error_msg("'popitem(): dictionary is empty'"))?;
                // The pair's references go to the caller with the pair.
                let pair = Value::Tuple(vec![k.value().clone(), v.value().clone()]);
                let held = ctx.hold(pair);
                drop(map);
                drop((k, v));
                return Ok(Return::Value(held));
            }
            "setdefault" => {
                let [k, default] = args.bind(method, ["key", "default"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                if let Some(v) = map.get(&k) {
                    return Ok(Return::Value(v.clone()));
                }
                let v = ctx.hold(default.unwrap_or_default());
                let out = v.clone();
                map.insert(ctx.hold(k), v);
                return Ok(Return::Value(out));
            }
            "update" | "__ior__" => {
                update(ctx, &mut map, args, method)?;
                Value::None
            }
            "__or__" => {
                let [other] = args.bind(method, ["other"], 1)?;
                let other = match other.unwrap_or_default() {
                    Value::Dict(other) => other,
                    v => {
                        return Err(type_error(format!(
                            "unsupported operand type(s) for |: 'dict' and '{}'",
                            v.type_name()
                        )))
                    }
                };
                let Value::Dict(mut mine) = as_dict(&map) else {
                    return Err(type_error("dict expected"));
                };
                for (k, v) in other.into_iter() {
                    mine.insert(k, v);
                }
                Value::Dict(mine)
            }
            _ => return Err(no_method(method)),
        };
        Ok(value.into())
    }
}

fn no_method(method: &str) -> RemoteError {
    crate::errors::attribute_error(format!("'dict' object has no attribute '{method}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::Harness;

    #[test]
    fn dict_semantics() {
        let h = Harness::new();
        let d = DictObject::create(&h.ctx(), Args::default()).unwrap();
        h.ok(&d, "__setitem__", vec!["a".into(), 1.into()]);
        h.ok(&d, "__setitem__", vec!["b".into(), 2.into()]);
        h.ok(&d, "__setitem__", vec!["a".into(), 3.into()]);
        assert_eq!(
            h.ok(&d, "keys", vec![]),
            Value::List(vec!["a".into(), "b".into()])
        );
        assert_eq!(h.ok(&d, "__getitem__", vec!["a".into()]), Value::Int(3));
        let e = h.err(&d, "__getitem__", vec!["zz".into()]);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (mp_proto::ErrorKind::KeyError, "'zz'")
        );
        let e = h.err(&d, "__getitem__", vec![Value::List(vec![])]);
        assert_eq!(e.message, "unhashable type: 'list'");
        assert_eq!(h.ok(&d, "get", vec!["zz".into(), 7.into()]), Value::Int(7));
        assert_eq!(h.ok(&d, "get", vec!["zz".into()]), Value::None);
        assert_eq!(h.ok(&d, "pop", vec!["zz".into(), 0.into()]), Value::Int(0));
        assert_eq!(
            h.err(&d, "pop", vec!["zz".into()]).kind,
            mp_proto::ErrorKind::KeyError
        );
        assert_eq!(
            h.ok(&d, "setdefault", vec!["c".into(), 9.into()]),
            Value::Int(9)
        );
        assert_eq!(
            h.ok(&d, "setdefault", vec!["c".into(), 10.into()]),
            Value::Int(9)
        );
        assert_eq!(
            h.ok(&d, "popitem", vec![]),
            Value::Tuple(vec!["c".into(), 9.into()])
        );
        h.ok(&d, "__delitem__", vec!["a".into()]);
        assert_eq!(h.ok(&d, "__len__", vec![]), Value::Int(1));
        assert_eq!(
            h.ok(&d, "__contains__", vec!["b".into()]),
            Value::Bool(true)
        );
        let pairs = Value::List(vec![Value::Tuple(vec!["x".into(), 1.into()])]);
        h.ok(&d, "update", vec![pairs]);
        assert_eq!(d.repr().unwrap(), "{'b': 2, 'x': 1}");
        // 1 and 1.0 and True are one key, as in Python.
        h.ok(&d, "__setitem__", vec![1.into(), "int".into()]);
        h.ok(&d, "__setitem__", vec![1.0.into(), "float".into()]);
        assert_eq!(
            h.ok(&d, "__getitem__", vec![true.into()]),
            Value::from("float")
        );
        h.ok(&d, "clear", vec![]);
        let e = h.err(&d, "popitem", vec![]);
        assert_eq!(e.kind, mp_proto::ErrorKind::KeyError);
        assert!(
            h.err(&d, "update", vec![Value::List(vec![1.into()])]).kind
                == mp_proto::ErrorKind::TypeError
        );
    }
}
