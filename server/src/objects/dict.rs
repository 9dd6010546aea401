//! `dict`: an insertion-ordered mapping, Python's `dict` as a
//! `SyncManager` serves it (`DictProxy`).
//!
//! Keys must be hashable (`TypeError: unhashable type: 'list'`), a missing
//! key is `KeyError(key)`. `keys()`, `values()` and `items()` return lists
//! (CPython pickles its views as lists too); `__iter__` returns a new
//! `Iterator` object over a snapshot of the keys (which raises
//! `RuntimeError` once the dict's size changes, as CPython's does), and `_iter_items` (not
//! CPython's) one over a snapshot of the `(key, value)` pairs, which the
//! SDK's `DictProxy::iter` pages through; a snapshot is one operation,
//! bounded as `items()` is. Deleting keeps the order of the others, at
//! O(n) per deletion.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use mp_proto::methods::builtin::DictMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::value::{dict_bytes, sequence_bytes};
use mp_proto::{RemoteError, Value};

use crate::args::Args;
use crate::budget::{shrink_map, Budget};
use crate::errors::{key_error, key_error_msg, type_error, unhashable};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::objects::iterate;
use crate::objects::iterator::IteratorObject;

type Entries = IndexMap<Held, Held>;

/// A shared `dict`.
pub struct DictObject {
    /// Shared with the iterators `__iter__` makes, which check its size.
    map: Arc<Mutex<Entries>>,
    /// For `repr()` and `#GETVALUE`, which have no call context.
    budget: Arc<Budget>,
}

impl DictObject {
    /// `dict(mapping_or_pairs=(), **kwargs)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<DictObject, RemoteError> {
        let mut map = IndexMap::new();
        update(ctx, &mut map, args, "dict")?;
        Ok(DictObject {
            map: Arc::new(Mutex::new(map)),
            budget: Arc::clone(ctx.budget()),
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

/// `update(mapping_or_pairs=(), **kwargs)`: every pair is stored as one
/// operation, so a `MemoryError` (or a bad pair) leaves `map` unchanged.
fn update(
    ctx: &CallContext<'_>,
    map: &mut Entries,
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
                for (i, item) in iterate(ctx.budget(), other)?.into_iter().enumerate() {
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
    let flat: Vec<Value> = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
    let mut held = ctx.hold_all(flat)?.into_iter();
    while let (Some(k), Some(v)) = (held.next(), held.next()) {
        match map.get_mut(k.value()) {
            // Python keeps the original key object when overwriting.
            Some(slot) => *slot = v,
            None => {
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

/// The heaps of every key and value of `map`.
fn heaps(map: &Entries) -> usize {
    map.iter().fold(0usize, |s, (k, v)| {
        s.saturating_add(k.value().heap_bytes())
            .saturating_add(v.value().heap_bytes())
    })
}

/// The bytes of a list of `map`'s keys or values (`which` picks them).
fn column_bytes(map: &Entries, which: impl Fn(&Held, &Held) -> usize) -> usize {
    let sum = map
        .iter()
        .fold(0usize, |s, (k, v)| s.saturating_add(which(k, v)));
    sequence_bytes(map.len(), sum)
}

fn key_bytes(k: &Held, _: &Held) -> usize {
    k.value().estimated_bytes()
}

fn value_bytes(_: &Held, v: &Held) -> usize {
    v.value().estimated_bytes()
}

/// One `(key, value)` tuple of `items()`.
fn item_bytes(k: &Held, v: &Held) -> usize {
    sequence_bytes(
        2,
        k.value()
            .estimated_bytes()
            .saturating_add(v.value().estimated_bytes()),
    )
}

fn as_dict(map: &Entries) -> Value {
    Value::from(
        map.iter()
            .map(|(k, v)| (k.value().clone(), v.value().clone()))
            .collect::<mp_proto::value::Map>(),
    )
}

impl SharedObject for DictObject {
    fn methods() -> &'static [MethodSpec] {
        DictMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).into()
    }

    fn references(&self, out: &mut Vec<mp_proto::ObjectId>) {
        for (k, v) in lock(&self.map).iter() {
            out.extend_from_slice(k.referenced_ids());
            out.extend_from_slice(v.referenced_ids());
        }
    }

    fn repr(&self) -> Option<String> {
        let map = lock(&self.map);
        // As for a list: a repr too large to build falls back to the
        // default `<dict object at …>`.
        let bytes = dict_bytes(map.len(), heaps(&map));
        if self.budget.check_value(bytes.saturating_mul(4)).is_err() {
            return None;
        }
        let mut out = String::from("{");
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&k.value().repr());
            out.push_str(": ");
            out.push_str(&v.value().repr());
        }
        out.push('}');
        Some(out)
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        let map = lock(&self.map);
        self.budget
            .check_value(dict_bytes(map.len(), heaps(&map)))?;
        Ok(Held::plain(as_dict(&map)))
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
        let Some(m) = DictMethod::from_name(method) else {
            return Err(no_method(method));
        };
        let value = match m {
            DictMethod::GetItem => {
                let [k] = args.bind(method, ["key"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                return map
                    .get(&k)
                    .cloned()
                    .map(Return::Value)
                    .ok_or_else(|| key_error(&k));
            }
            DictMethod::SetItem => {
                let [k, v] = args.bind(method, ["key", "value"], 2)?;
                let (k, v) = (k.unwrap_or_default(), v.unwrap_or_default());
                Self::key(&k)?;
                let v = ctx.hold(v)?;
                match map.get_mut(&k) {
                    Some(slot) => *slot = v,
                    None => {
                        let k = ctx.hold(k)?;
                        map.insert(k, v);
                    }
                }
                Value::None
            }
            DictMethod::DelItem => {
                let [k] = args.bind(method, ["key"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                // Dropped after the lock is released, with its references.
                let removed = map.shift_remove_entry(&k).ok_or_else(|| key_error(&k))?;
                shrink_map(&mut map);
                drop(map);
                drop(removed);
                return Ok(Value::None.into());
            }
            DictMethod::Contains => {
                let [k] = args.bind(method, ["key"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                Value::Bool(map.contains_key(&k))
            }
            DictMethod::Len => {
                args.none(method)?;
                Value::Int(map.len() as i64)
            }
            DictMethod::Iter => {
                args.none(method)?;
                // The snapshot is kept by a new object: stored, charged.
                let keys = Held::clone_all(map.keys(), ctx.budget())?;
                let dict = Arc::downgrade(&self.map);
                return Ok(Return::Object(Arc::new(IteratorObject::dict_keys(
                    keys,
                    Arc::clone(ctx.budget()),
                    move || dict.upgrade().map(|map| lock(&map).len()),
                ))));
            }
            DictMethod::IterItems => {
                args.none(method)?;
                // One snapshot of every key and value, stored and charged
                // as one operation, then paired up again.
                let parts = Held::clone_all(map.iter().flat_map(|(k, v)| [k, v]), ctx.budget())?;
                let mut parts = parts.into_iter();
                let mut pairs = Vec::with_capacity(map.len());
                while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                    pairs.push((k, v));
                }
                return Ok(Return::Object(Arc::new(IteratorObject::pairs(
                    pairs,
                    Arc::clone(ctx.budget()),
                ))));
            }
            DictMethod::Reversed => {
                args.none(method)?;
                ctx.check_value(column_bytes(&map, key_bytes))?;
                Value::List(map.keys().rev().map(|k| k.value().clone()).collect())
            }
            DictMethod::Keys => {
                args.none(method)?;
                ctx.check_value(column_bytes(&map, key_bytes))?;
                Value::List(map.keys().map(|k| k.value().clone()).collect())
            }
            DictMethod::Values => {
                args.none(method)?;
                ctx.check_value(column_bytes(&map, value_bytes))?;
                Value::List(map.values().map(|v| v.value().clone()).collect())
            }
            DictMethod::Items => {
                args.none(method)?;
                ctx.check_value(column_bytes(&map, item_bytes))?;
                Value::List(
                    map.iter()
                        .map(|(k, v)| Value::Tuple(vec![k.value().clone(), v.value().clone()]))
                        .collect(),
                )
            }
            DictMethod::Copy => {
                args.none(method)?;
                ctx.check_value(dict_bytes(map.len(), heaps(&map)))?;
                as_dict(&map)
            }
            DictMethod::Clear => {
                args.none(method)?;
                let old = std::mem::take(&mut *map);
                drop(map);
                drop(old);
                return Ok(Value::None.into());
            }
            DictMethod::Get => {
                let [k, default] = args.bind(method, ["key", "default"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                return Ok(match map.get(&k) {
                    Some(v) => Return::Value(v.clone()),
                    None => default.unwrap_or_default().into(),
                });
            }
            DictMethod::Pop => {
                let [k, default] = args.bind(method, ["key", "default"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                let removed = map.shift_remove_entry(&k);
                shrink_map(&mut map);
                drop(map);
                return match removed {
                    Some((_, v)) => Ok(Return::Value(v)),
                    None => default.map(Return::from).ok_or_else(|| key_error(&k)),
                };
            }
            DictMethod::PopItem => {
                args.none(method)?;
                let (k, v) = map
                    .pop()
                    .ok_or_else(|| key_error_msg("'popitem(): dictionary is empty'"))?;
                shrink_map(&mut map);
                drop(map);
                // The pair's references go to the caller with the pair.
                return Ok(Return::Value(Held::pair(k, v)));
            }
            DictMethod::SetDefault => {
                let [k, default] = args.bind(method, ["key", "default"], 1)?;
                let k = k.unwrap_or_default();
                Self::key(&k)?;
                if let Some(v) = map.get(&k) {
                    return Ok(Return::Value(v.clone()));
                }
                let v = ctx.hold(default.unwrap_or_default())?;
                let k = ctx.hold(k)?;
                let out = v.clone();
                map.insert(k, v);
                return Ok(Return::Value(out));
            }
            DictMethod::Update | DictMethod::IOr => {
                update(ctx, &mut map, args, method)?;
                Value::None
            }
            DictMethod::Or => {
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
                let theirs = other.iter().fold(0usize, |s, (k, v)| {
                    s.saturating_add(k.heap_bytes())
                        .saturating_add(v.heap_bytes())
                });
                ctx.check_value(dict_bytes(
                    map.len().saturating_add(other.len()),
                    heaps(&map).saturating_add(theirs),
                ))?;
                let Value::Dict(mut mine) = as_dict(&map) else {
                    return Err(type_error("dict expected"));
                };
                for (k, v) in other.into_iter() {
                    mine.insert(k, v);
                }
                Value::Dict(mine)
            }
        };
        Ok(value.into())
    }
}

fn no_method(method: &str) -> RemoteError {
    crate::errors::attribute_error(format!("'dict' object has no attribute '{method}'"))
}

/// A dict persists its pairs, in order.
impl crate::persist::Durable for DictObject {
    fn init(&self) -> Args {
        Args::default()
    }

    fn dump(&self) -> crate::persist::Dump {
        let map = lock(&self.map);
        let items = map
            .iter()
            .flat_map(|(k, v)| [k.value().clone(), v.value().clone()])
            .collect();
        crate::persist::Dump {
            items,
            ..Default::default()
        }
    }

    fn fill(&self, ctx: &CallContext<'_>, items: Vec<Value>) -> Result<(), RemoteError> {
        let mut items = items.into_iter();
        let mut map = lock(&self.map);
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            Self::key(&k)?;
            let v = ctx.hold(v)?;
            match map.get_mut(&k) {
                Some(slot) => *slot = v,
                None => {
                    map.insert(ctx.hold(k)?, v);
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
    fn iter_items_walks_a_snapshot_of_the_pairs() {
        let h = Harness::new();
        let d = DictObject::create(&h.ctx(), Args::default()).unwrap();
        h.ok(&d, "__setitem__", vec!["a".into(), 1.into()]);
        h.ok(&d, "__setitem__", vec!["b".into(), 2.into()]);
        let it = match h.call(&d, "_iter_items", vec![]) {
            Reply::Ready(Ok(Return::Object(it))) => it,
            _ => panic!("_iter_items did not make an object"),
        };
        // Changes after the snapshot are not seen.
        h.ok(&d, "__delitem__", vec!["a".into()]);
        h.ok(&d, "__setitem__", vec!["c".into(), 3.into()]);
        let pair = |k: &str, v: i64| Value::Tuple(vec![k.into(), v.into()]);
        assert_eq!(
            h.ok(&*it, "_next_chunk", vec![10.into()]),
            Value::Tuple(vec![
                Value::List(vec![pair("a", 1), pair("b", 2)]),
                0.into()
            ])
        );
        assert_eq!(
            h.err(&d, "_iter_items", vec![1.into()]).kind,
            mp_proto::ErrorKind::TypeError
        );
    }

    #[test]
    fn iter_raises_once_the_size_changes_and_stays_broken() {
        // CPython's `test_dict_iter`: `it = iter(d); d.clear(); next(it)`
        // is `RuntimeError`, and so is every later step.
        let h = Harness::new();
        let d = DictObject::create(&h.ctx(), Args::default()).unwrap();
        h.ok(&d, "__setitem__", vec!["a".into(), 1.into()]);
        h.ok(&d, "__setitem__", vec!["b".into(), 2.into()]);
        let iter = |h: &Harness| match h.call(&d, "__iter__", vec![]) {
            Reply::Ready(Ok(Return::Object(it))) => it,
            _ => panic!("__iter__ did not make an object"),
        };
        // Unchanged: every key, then StopIteration.
        let it = iter(&h);
        assert_eq!(h.ok(&*it, "__next__", vec![]), "a".into());
        assert_eq!(h.ok(&*it, "__next__", vec![]), "b".into());
        let end = h.err(&*it, "__next__", vec![]).kind;
        assert_eq!(end, mp_proto::ErrorKind::StopIteration);
        // A value replaced keeps the size: no error.
        let it = iter(&h);
        h.ok(&d, "__setitem__", vec!["a".into(), 5.into()]);
        assert_eq!(h.ok(&*it, "__next__", vec![]), "a".into());
        // Cleared: RuntimeError, again after the size is back.
        h.ok(&d, "clear", vec![]);
        for _ in 0..2 {
            let e = h.err(&*it, "__next__", vec![]);
            assert_eq!(e.kind, mp_proto::ErrorKind::RuntimeError);
            assert_eq!(e.message, "dictionary changed size during iteration");
            h.ok(&d, "__setitem__", vec!["a".into(), 1.into()]);
            h.ok(&d, "__setitem__", vec!["b".into(), 2.into()]);
        }
        let e = h.err(&*it, "_next_chunk", vec![10.into()]);
        assert_eq!(e.kind, mp_proto::ErrorKind::RuntimeError);
    }
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
