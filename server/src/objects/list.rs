//! `list`: Python's `list` as a `SyncManager` serves it (`ListProxy`).
//!
//! Indexes may be negative; slices travel in the form of
//! [`crate::slice`]. Errors are Python's: `IndexError: list index out of
//! range`, `IndexError: pop from empty list`, `ValueError: list.remove(x):
//! x not in list`, `ValueError: 3 is not in list`. `sort` orders by
//! Python's `<` (a `key` function cannot travel, so only `key=None` is
//! accepted). `__iadd__`/`__imul__` change the list in place and return
//! `None` (the proxy returns itself client side, as CPython's does).

use std::sync::Mutex;

use mp_proto::{RemoteError, Value};

use crate::args::{bool_arg, int_arg, Args};
use crate::compare::sort_by_key;
use crate::errors::{attribute_error, index_error, type_error, value_error};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::objects::iterate;
use crate::slice::{self, insertion_point, opt_int, position, Index};

/// CPython 3.11's `ListProxy` exposed list plus 3.13's `clear`/`copy` and
/// the in-place `__iadd__`.
pub const EXPOSED: &[&str] = &[
    "__add__",
    "__contains__",
    "__delitem__",
    "__getitem__",
    "__len__",
    "__mul__",
    "__reversed__",
    "__rmul__",
    "__setitem__",
    "append",
    "count",
    "extend",
    "index",
    "insert",
    "pop",
    "remove",
    "reverse",
    "sort",
    "__imul__",
    "__iadd__",
    "clear",
    "copy",
];

/// A shared `list`.
pub struct ListObject {
    items: Mutex<Vec<Held>>,
}

impl ListObject {
    /// `list(iterable=())`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<ListObject, RemoteError> {
        let [iterable] = args.bind("list", ["iterable"], 0)?;
        let items = match iterable {
            Some(v) => iterate(v)?.into_iter().map(|v| ctx.hold(v)).collect(),
            None => Vec::new(),
        };
        Ok(ListObject {
            items: Mutex::new(items),
        })
    }
}

fn values(items: &[Held]) -> Vec<Value> {
    items.iter().map(|h| h.value().clone()).collect()
}

fn repeat(items: &[Held], n: &Value) -> Result<Vec<Value>, RemoteError> {
    let n = int_arg(n).map_err(|_| {
        type_error(format!(
            "can't multiply sequence by non-int of type '{}'",
            n.type_name()
        ))
    })?;
    let n = usize::try_from(n).unwrap_or(0);
    let total = items.len().checked_mul(n).ok_or_else(memory_error)?;
    if total > MAX_REPEAT {
        return Err(memory_error());
    }
    let one = values(items);
    Ok((0..n).flat_map(|_| one.iter().cloned()).collect())
}

/// A bound on what one `*` may build, so a client cannot ask the server
/// for a petabyte list.
const MAX_REPEAT: usize = 1 << 26;

fn memory_error() -> RemoteError {
    RemoteError::new(mp_proto::ErrorKind::MemoryError, "")
}

impl SharedObject for ListObject {
    fn methods() -> &'static [&'static str] {
        EXPOSED
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).into()
    }

    fn repr(&self) -> Option<String> {
        Some(Value::List(values(&lock(&self.items))).repr())
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        Ok(Held::plain(Value::List(values(&lock(&self.items)))))
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
        let value = match method {
            "__len__" => {
                args.none(method)?;
                Value::Int(items.len() as i64)
            }
            "__getitem__" => {
                let [i] = args.bind(method, ["index"], 1)?;
                match Index::from_value(&i.unwrap_or_default(), "list")? {
                    Index::At(i) => {
                        let p = position(i, items.len(), "list")?;
                        return Ok(Return::Value(items[p].clone()));
                    }
                    Index::Slice(s) => {
                        let r = s.indices(items.len())?;
                        let picked = r.positions().map(|p| items[p].value().clone()).collect();
                        return Ok(Return::Value(ctx.hold(Value::List(picked))));
                    }
                }
            }
            "__setitem__" => {
                let [i, v] = args.bind(method, ["index", "value"], 2)?;
                let v = v.unwrap_or_default();
                match Index::from_value(&i.unwrap_or_default(), "list")? {
                    Index::At(i) => {
                        let p = position(i, items.len(), "list assignment")?;
                        removed.push(std::mem::replace(&mut items[p], ctx.hold(v)));
                    }
                    Index::Slice(s) => {
                        let new: Vec<Held> = iterate(v)
                            .map_err(|_| type_error("can only assign an iterable"))?
                            .into_iter()
                            .map(|v| ctx.hold(v))
                            .collect();
                        let mut old = std::mem::take(&mut *items);
                        let kept = slice::assign(&mut old, &s, new);
                        *items = old;
                        kept?;
                    }
                }
                Value::None
            }
            "__delitem__" => {
                let [i] = args.bind(method, ["index"], 1)?;
                match Index::from_value(&i.unwrap_or_default(), "list")? {
                    Index::At(i) => {
                        let p = position(i, items.len(), "list assignment")?;
                        removed.push(items.remove(p));
                    }
                    Index::Slice(s) => removed = slice::delete(&mut items, &s)?,
                }
                Value::None
            }
            "__contains__" => {
                let [x] = args.bind(method, ["value"], 1)?;
                let x = x.unwrap_or_default();
                Value::Bool(items.iter().any(|h| *h.value() == x))
            }
            "__add__" => {
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
                let mut out = values(&items);
                out.extend(other);
                return Ok(Return::Value(ctx.hold(Value::List(out))));
            }
            "__mul__" | "__rmul__" => {
                let [n] = args.bind(method, ["n"], 1)?;
                return Ok(Return::Value(
                    ctx.hold(Value::List(repeat(&items, &n.unwrap_or_default())?)),
                ));
            }
            "__imul__" => {
                let [n] = args.bind(method, ["n"], 1)?;
                let out = repeat(&items, &n.unwrap_or_default())?;
                removed =
                    std::mem::replace(&mut *items, out.into_iter().map(|v| ctx.hold(v)).collect());
                Value::None
            }
            "__reversed__" => {
                args.none(method)?;
                let mut out = values(&items);
                out.reverse();
                return Ok(Return::Value(ctx.hold(Value::List(out))));
            }
            "append" => {
                let [x] = args.bind(method, ["object"], 1)?;
                items.push(ctx.hold(x.unwrap_or_default()));
                Value::None
            }
            "extend" | "__iadd__" => {
                let [x] = args.bind(method, ["iterable"], 1)?;
                let new = iterate(x.unwrap_or_default())?;
                items.extend(new.into_iter().map(|v| ctx.hold(v)));
                Value::None
            }
            "insert" => {
                let [i, x] = args.bind(method, ["index", "object"], 2)?;
                let at = insertion_point(int_arg(&i.unwrap_or_default())?, items.len());
                items.insert(at, ctx.hold(x.unwrap_or_default()));
                Value::None
            }
            "pop" => {
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
                return Ok(Return::Value(out));
            }
            "remove" => {
                let [x] = args.bind(method, ["value"], 1)?;
                let x = x.unwrap_or_default();
                let p = items
                    .iter()
                    .position(|h| *h.value() == x)
                    .ok_or_else(|| value_error("list.remove(x): x not in list"))?;
                removed.push(items.remove(p));
                Value::None
            }
            "index" => {
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
            "count" => {
                let [x] = args.bind(method, ["value"], 1)?;
                let x = x.unwrap_or_default();
                Value::Int(items.iter().filter(|h| *h.value() == x).count() as i64)
            }
            "reverse" => {
                args.none(method)?;
                items.reverse();
                Value::None
            }
            "sort" => {
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
            "clear" => {
                args.none(method)?;
                removed = std::mem::take(&mut *items);
                Value::None
            }
            "copy" => {
                args.none(method)?;
                return Ok(Return::Value(ctx.hold(Value::List(values(&items)))));
            }
            _ => {
                return Err(attribute_error(format!(
                    "'list' object has no attribute '{method}'"
                )))
            }
        };
        drop(items);
        drop(removed);
        Ok(value.into())
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
