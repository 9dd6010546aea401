//! `list`: Python's `list` as a `SyncManager` serves it (`ListProxy`).
//!
//! Indexes may be negative; slices travel in the form of
//! [`crate::slice`]. Errors are Python's: `IndexError: list index out of
//! range`, `IndexError: pop from empty list`, `ValueError: list.remove(x):
//! x not in list`, `ValueError: 3 is not in list`. `sort` orders by
//! Python's `<` (a `key` function cannot travel, so only `key=None` is
//! accepted). `__iadd__`/`__imul__` change the list in place and return
//! `None` (the proxy returns itself client side, as CPython's does).

use std::sync::{Arc, Mutex};

use mp_proto::methods::builtin::ListMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::value::sequence_bytes;
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::args::{bool_arg, int_arg, Args};
use crate::budget::{shrink_vec, Budget};
use crate::compare::sort_by_key;
use crate::errors::{attribute_error, index_error, type_error, value_error};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::objects::iterate;
use crate::slice::{self, insertion_point, opt_int, position, Index};

/// A shared `list`.
pub struct ListObject {
    items: Mutex<Vec<Held>>,
    /// For `repr()` and `#GETVALUE`, which have no call context.
    budget: Arc<Budget>,
}

impl ListObject {
    /// `list(iterable=())`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<ListObject, RemoteError> {
        let [iterable] = args.bind("list", ["iterable"], 0)?;
        let items = match iterable {
            Some(v) => ctx.hold_all(iterate(ctx.budget(), v)?)?,
            None => Vec::new(),
        };
        Ok(ListObject {
            items: Mutex::new(items),
            budget: Arc::clone(ctx.budget()),
        })
    }
}

fn values(items: &[Held]) -> Vec<Value> {
    items.iter().map(|h| h.value().clone()).collect()
}

/// The bytes of a new list of `count` values, `items`.
fn list_bytes<'a>(count: usize, items: impl Iterator<Item = &'a Value>) -> usize {
    let sum = items.fold(0usize, |s, v| s.saturating_add(v.estimated_bytes()));
    sequence_bytes(count, sum)
}

/// `items * n`, checked before it is built: a count of 0 or less gives
/// an empty list, as in Python; one whose result would pass the
/// per-operation limit is `MemoryError`. `stored` counts the items as
/// they will be stored (`*=`) rather than as a new value.
fn repeat(
    budget: &Budget,
    items: &[Held],
    n: &Value,
    stored: bool,
) -> Result<Vec<Value>, RemoteError> {
    let n = int_arg(n).map_err(|_| {
        type_error(format!(
            "can't multiply sequence by non-int of type '{}'",
            n.type_name()
        ))
    })?;
    let n = usize::try_from(n).unwrap_or(0);
    if n == 0 || items.is_empty() {
        return Ok(Vec::new());
    }
    let count = items.len().saturating_mul(n);
    let one = if stored {
        items
            .iter()
            .fold(0usize, |s, h| s.saturating_add(Held::cost(h.value())))
    } else {
        items
            .iter()
            .fold(0usize, |s, h| s.saturating_add(h.value().estimated_bytes()))
    };
    budget.check_value(sequence_bytes(count, one.saturating_mul(n)))?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..n {
        out.extend(items.iter().map(|h| h.value().clone()));
    }
    Ok(out)
}

impl SharedObject for ListObject {
    fn methods() -> &'static [MethodSpec] {
        ListMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).into()
    }

    fn references(&self, out: &mut Vec<mp_proto::ObjectId>) {
        for item in lock(&self.items).iter() {
            out.extend_from_slice(item.referenced_ids());
        }
    }

    fn repr(&self) -> Option<String> {
        let items = lock(&self.items);
        // A repr is at most about four times the value's bytes (`\xNN`
        // for each byte); one too large to build falls back to the
        // default `<list object at …>`.
        let bytes = list_bytes(items.len(), items.iter().map(Held::value));
        if self.budget.check_value(bytes.saturating_mul(4)).is_err() {
            return None;
        }
        let mut out = String::from("[");
        for (i, h) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&h.value().repr());
        }
        out.push(']');
        Some(out)
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        let items = lock(&self.items);
        self.budget
            .check_value(list_bytes(items.len(), items.iter().map(Held::value)))?;
        Ok(Held::plain(Value::List(values(&items))))
    }
}

impl ListObject {
    fn dispatch(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        args: Args,
    ) -> Result<Return, RemoteError> {
        let mut items = lock(&self.items);
        // Removed values are dropped after the lock is released.
        let mut removed: Vec<Held> = Vec::new();
        let Some(m) = ListMethod::from_name(method) else {
            return Err(attribute_error(format!(
                "'list' object has no attribute '{method}'"
            )));
        };
        let value = match m {
            ListMethod::Len => {
                args.none(method)?;
                Value::Int(items.len() as i64)
            }
            ListMethod::GetItem => {
                let [i] = args.bind(method, ["index"], 1)?;
                match Index::from_value(&i.unwrap_or_default(), "list")? {
                    Index::At(i) => {
                        let p = position(i, items.len(), "list")?;
                        return Ok(Return::Value(items[p].clone()));
                    }
                    Index::Slice(s) => {
                        let r = s.indices(items.len())?;
                        ctx.check_value(list_bytes(
                            r.len,
                            r.positions().map(|p| items[p].value()),
                        ))?;
                        let picked = r.positions().map(|p| items[p].value().clone()).collect();
                        return Ok(Return::Value(ctx.result(Value::List(picked))));
                    }
                }
            }
            ListMethod::SetItem => {
                let [i, v] = args.bind(method, ["index", "value"], 2)?;
                let v = v.unwrap_or_default();
                match Index::from_value(&i.unwrap_or_default(), "list")? {
                    Index::At(i) => {
                        let p = position(i, items.len(), "list assignment")?;
                        let v = ctx.hold(v)?;
                        removed.push(std::mem::replace(&mut items[p], v));
                    }
                    Index::Slice(s) => {
                        let new = iterate(ctx.budget(), v).map_err(|e| match e.kind {
                            ErrorKind::TypeError => type_error("can only assign an iterable"),
                            _ => e,
                        })?;
                        let new = ctx.hold_all(new)?;
                        let mut old = std::mem::take(&mut *items);
                        let kept = slice::assign(&mut old, &s, new);
                        *items = old;
                        kept?;
                        shrink_vec(&mut items);
                    }
                }
                Value::None
            }
            ListMethod::DelItem => {
                let [i] = args.bind(method, ["index"], 1)?;
                match Index::from_value(&i.unwrap_or_default(), "list")? {
                    Index::At(i) => {
                        let p = position(i, items.len(), "list assignment")?;
                        removed.push(items.remove(p));
                    }
                    Index::Slice(s) => removed = slice::delete(&mut items, &s)?,
                }
                shrink_vec(&mut items);
                Value::None
            }
            ListMethod::Contains => {
                let [x] = args.bind(method, ["value"], 1)?;
                let x = x.unwrap_or_default();
                Value::Bool(items.iter().any(|h| *h.value() == x))
            }
            ListMethod::Add => {
                let [other] = args.bind(method, ["other"], 1)?;
                let other = match other.unwrap_or_default() {
                    Value::List(v) => v,
                    v => {
                        return Err(type_error(format!(
                            "can only concatenate list (not \"{}\") to list",
                            v.type_name()
                        )))
                    }
                };
                ctx.check_value(list_bytes(
                    items.len().saturating_add(other.len()),
                    items.iter().map(Held::value).chain(other.iter()),
                ))?;
                let mut out = values(&items);
                out.extend(other);
                return Ok(Return::Value(ctx.result(Value::List(out))));
            }
            ListMethod::Mul | ListMethod::RMul => {
                let [n] = args.bind(method, ["n"], 1)?;
                let out = repeat(ctx.budget(), &items, &n.unwrap_or_default(), false)?;
                return Ok(Return::Value(ctx.result(Value::List(out))));
            }
            ListMethod::IMul => {
                let [n] = args.bind(method, ["n"], 1)?;
                let out = repeat(ctx.budget(), &items, &n.unwrap_or_default(), true)?;
                let out = ctx.hold_all(out)?;
                removed = std::mem::replace(&mut *items, out);
                Value::None
            }
            ListMethod::Reversed => {
                args.none(method)?;
                ctx.check_value(list_bytes(items.len(), items.iter().map(Held::value)))?;
                let mut out = values(&items);
                out.reverse();
                return Ok(Return::Value(ctx.result(Value::List(out))));
            }
            ListMethod::Append => {
                let [x] = args.bind(method, ["object"], 1)?;
                items.push(ctx.hold(x.unwrap_or_default())?);
                Value::None
            }
            ListMethod::Extend | ListMethod::IAdd => {
                let [x] = args.bind(method, ["iterable"], 1)?;
                let new = ctx.hold_all(iterate(ctx.budget(), x.unwrap_or_default())?)?;
                items.extend(new);
                Value::None
            }
            ListMethod::Insert => {
                let [i, x] = args.bind(method, ["index", "object"], 2)?;
                let at = insertion_point(int_arg(&i.unwrap_or_default())?, items.len());
                items.insert(at, ctx.hold(x.unwrap_or_default())?);
                Value::None
            }
            ListMethod::Pop => {
                let [i] = args.bind(method, ["index"], 0)?;
                if items.is_empty() {
                    return Err(index_error("pop from empty list"));
                }
                let i = match i {
                    Some(v) => int_arg(&v)?,
                    None => -1,
                };
                let p = position(i, items.len(), "pop")?;
                let out = items.remove(p);
                shrink_vec(&mut items);
                return Ok(Return::Value(out));
            }
            ListMethod::Remove => {
                let [x] = args.bind(method, ["value"], 1)?;
                let x = x.unwrap_or_default();
                let p = items
                    .iter()
                    .position(|h| *h.value() == x)
                    .ok_or_else(|| value_error("list.remove(x): x not in list"))?;
                removed.push(items.remove(p));
                shrink_vec(&mut items);
                Value::None
            }
            ListMethod::Index => {
                let [x, start, stop] = args.bind(method, ["value", "start", "stop"], 1)?;
                let x = x.unwrap_or_default();
                let r = slice::Slice::new(opt_int(start.as_ref())?, opt_int(stop.as_ref())?, None)
                    .indices(items.len())?;
                let found = r.positions().find(|&p| *items[p].value() == x);
                match found {
                    Some(p) => Value::Int(p as i64),
                    None => return Err(value_error(format!("{} is not in list", x.repr()))),
                }
            }
            ListMethod::Count => {
                let [x] = args.bind(method, ["value"], 1)?;
                let x = x.unwrap_or_default();
                Value::Int(items.iter().filter(|h| *h.value() == x).count() as i64)
            }
            ListMethod::Reverse => {
                args.none(method)?;
                items.reverse();
                Value::None
            }
            ListMethod::Sort => {
                if !args.positional.is_empty() {
                    return Err(type_error("sort() takes no positional arguments"));
                }
                let [key, reverse] = args.bind(method, ["key", "reverse"], 0)?;
                if !matches!(key, None | Some(Value::None)) {
                    return Err(type_error(
                        "sort(): a key function cannot be sent to the server; sort client side",
                    ));
                }
                sort_by_key(&mut items, Held::value, bool_arg(reverse.as_ref(), false))?;
                Value::None
            }
            ListMethod::Clear => {
                args.none(method)?;
                removed = std::mem::take(&mut *items);
                Value::None
            }
            ListMethod::Copy => {
                args.none(method)?;
                ctx.check_value(list_bytes(items.len(), items.iter().map(Held::value)))?;
                return Ok(Return::Value(ctx.result(Value::List(values(&items)))));
            }
        };
        drop(items);
        drop(removed);
        Ok(value.into())
    }
}

/// A list persists its items.
impl crate::persist::Durable for ListObject {
    fn init(&self) -> Args {
        Args::default()
    }

    fn dump(&self) -> crate::persist::Dump {
        crate::persist::Dump {
            items: values(&lock(&self.items)),
            ..Default::default()
        }
    }

    fn fill(&self, ctx: &CallContext<'_>, items: Vec<Value>) -> Result<(), RemoteError> {
        // Each item on its own: each was stored by one call.
        let held = items
            .into_iter()
            .map(|v| ctx.hold(v))
            .collect::<Result<Vec<_>, _>>()?;
        lock(&self.items).extend(held);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::Harness;
    use crate::slice::Slice;
    use mp_proto::ErrorKind;

    fn ints(v: &[i64]) -> Value {
        Value::List(v.iter().map(|&i| Value::Int(i)).collect())
    }

    #[test]
    fn list_semantics() {
        let h = Harness::new();
        let l = ListObject::create(&h.ctx(), Args::positional(vec![ints(&[3, 1, 2])])).unwrap();
        h.ok(&l, "append", vec![5.into()]);
        h.ok(&l, "insert", vec![0.into(), 9.into()]);
        assert_eq!(h.ok(&l, "__getitem__", vec![(-1).into()]), Value::Int(5));
        assert_eq!(
            h.err(&l, "__getitem__", vec![10.into()]).message,
            "list index out of range"
        );
        let s = Slice::new(Some(1), Some(3), None).to_value();
        assert_eq!(h.ok(&l, "__getitem__", vec![s.clone()]), ints(&[3, 1]));
        h.ok(&l, "__setitem__", vec![s, ints(&[7])]);
        assert_eq!(l.repr().unwrap(), "[9, 7, 2, 5]");
        h.ok(&l, "sort", vec![]);
        assert_eq!(l.repr().unwrap(), "[2, 5, 7, 9]");
        assert_eq!(h.ok(&l, "pop", vec![]), Value::Int(9));
        assert_eq!(h.ok(&l, "index", vec![7.into()]), Value::Int(2));
        assert_eq!(
            h.err(&l, "index", vec![8.into()]).message,
            "8 is not in list"
        );
        assert_eq!(
            h.err(&l, "remove", vec![8.into()]).kind,
            ErrorKind::ValueError
        );
        h.ok(&l, "__imul__", vec![2.into()]);
        assert_eq!(h.ok(&l, "count", vec![5.into()]), Value::Int(2));
        h.ok(
            &l,
            "__delitem__",
            vec![Slice::new(None, None, Some(2)).to_value()],
        );
        assert_eq!(l.repr().unwrap(), "[5, 2, 7]");
        h.ok(&l, "__iadd__", vec![ints(&[1])]);
        h.ok(&l, "reverse", vec![]);
        assert_eq!(l.repr().unwrap(), "[1, 7, 2, 5]");
        h.ok(&l, "clear", vec![]);
        assert_eq!(h.err(&l, "pop", vec![]).message, "pop from empty list");
        assert_eq!(
            h.err(&l, "__getitem__", vec!["x".into()]).kind,
            ErrorKind::TypeError
        );
        h.ok(&l, "extend", vec![Value::List(vec![1.into(), Value::None])]);
        assert_eq!(h.err(&l, "sort", vec![]).kind, ErrorKind::TypeError);
    }
}
