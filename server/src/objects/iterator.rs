//! `Iterator`: what `dict.__iter__` returns (Python's `IteratorProxy`),
//! and what `dict._iter_items` (not CPython's) returns for the SDK's
//! chunked iteration of a dict's pairs.
//!
//! It walks a snapshot taken when it was made, so it yields the items as
//! they were then, each once. A `dict.__iter__` iterator also checks the
//! dict's size before each step, as CPython's does: once the size is not
//! what it was, every step raises `RuntimeError: dictionary changed size
//! during iteration` (Python code that iterates a `DictProxy` while
//! changing it fails as it would on CPython's server). The SDK's
//! `_iter_items` iterator has no such check: changing the dict while
//! paging through it is safe. The snapshot is stored
//! (charged to the memory budget) until the iterator is exhausted,
//! closed, or released. `__next__` raises `StopIteration` at the end;
//! `close` ends it early; `_next_chunk(n)` (not CPython's) answers up to `n`
//! items at once with how many are left, bounded by the per-operation
//! limit (`max_value_bytes`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mp_proto::methods::builtin::IteratorMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::value::sequence_bytes;
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::args::{int_arg, Args};
use crate::budget::{shrink_deque, Budget};
use crate::errors::value_error;
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, SharedObject};

/// One item of the snapshot: a value, or a dict's `(key, value)` pair
/// kept as its two stored parts.
enum Item {
    One(Held),
    Pair(Held, Held),
}

impl Item {
    /// What the item is as an answer.
    fn value(&self) -> Value {
        match self {
            Item::One(h) => h.value().clone(),
            Item::Pair(k, v) => Value::Tuple(vec![k.value().clone(), v.value().clone()]),
        }
    }

    /// The bytes of [`value`](Self::value).
    fn bytes(&self) -> usize {
        match self {
            Item::One(h) => h.value().estimated_bytes(),
            Item::Pair(k, v) => sequence_bytes(
                2,
                k.value()
                    .estimated_bytes()
                    .saturating_add(v.value().estimated_bytes()),
            ),
        }
    }

    /// The item moved out as an answer, keeping its references for the
    /// caller.
    fn into_held(self) -> Held {
        match self {
            Item::One(h) => h,
            Item::Pair(k, v) => Held::pair(k, v),
        }
    }
}

/// The check of a `dict.__iter__` iterator: the dict's size when the
/// iterator was made, and how to read it now (`None` once the dict is
/// gone).
struct SizeGuard {
    len: usize,
    current: Box<dyn Fn() -> Option<usize> + Send + Sync>,
    /// Set at the first change: CPython's iterator stays broken after it.
    changed: AtomicBool,
}

impl SizeGuard {
    fn check(&self) -> Result<(), RemoteError> {
        let changed = self.changed.load(Ordering::Relaxed)
            || (self.current)().is_some_and(|now| now != self.len);
        if changed {
            self.changed.store(true, Ordering::Relaxed);
            return Err(RemoteError::new(
                ErrorKind::RuntimeError,
                "dictionary changed size during iteration",
            ));
        }
        Ok(())
    }
}

/// An iterator over stored values.
pub struct IteratorObject {
    items: Mutex<VecDeque<Item>>,
    /// For `#GETVALUE`, which has no call context.
    budget: Arc<Budget>,
    guard: Option<SizeGuard>,
}

impl IteratorObject {
    /// An iterator yielding `items` (stored, so charged to `budget`) in
    /// order.
    pub fn new(items: Vec<Held>, budget: Arc<Budget>) -> Self {
        IteratorObject {
            items: Mutex::new(items.into_iter().map(Item::One).collect()),
            budget,
            guard: None,
        }
    }

    /// An iterator over a dict's `keys` (stored, so charged to `budget`)
    /// that raises `RuntimeError` once `current()` (the dict's size now,
    /// `None` once it is gone) is not `keys.len()`, as CPython's
    /// `iter(dict)` does.
    pub fn dict_keys(
        keys: Vec<Held>,
        budget: Arc<Budget>,
        current: impl Fn() -> Option<usize> + Send + Sync + 'static,
    ) -> Self {
        let len = keys.len();
        IteratorObject {
            guard: Some(SizeGuard {
                len,
                current: Box::new(current),
                changed: AtomicBool::new(false),
            }),
            ..Self::new(keys, budget)
        }
    }

    /// `Err(RuntimeError)` if this is a dict's iterator and the dict's
    /// size changed since it was made.
    fn check(&self) -> Result<(), RemoteError> {
        self.guard.as_ref().map_or(Ok(()), SizeGuard::check)
    }

    /// An iterator yielding each of `pairs` (stored, so charged to
    /// `budget`) as the tuple `(key, value)`, in order.
    pub fn pairs(pairs: Vec<(Held, Held)>, budget: Arc<Budget>) -> Self {
        IteratorObject {
            items: Mutex::new(pairs.into_iter().map(|(k, v)| Item::Pair(k, v)).collect()),
            budget,
            guard: None,
        }
    }

    /// `_next_chunk(n)`: `(items, left)`.
    fn next_chunk(&self, ctx: &CallContext<'_>, args: Args) -> Result<Held, RemoteError> {
        let [n] = args.bind(IteratorMethod::NextChunk.name(), ["n"], 1)?;
        let n = int_arg(&n.unwrap_or_default())?;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| value_error("_next_chunk(n): n must be at least 1"))?;
        self.check()?;
        let limit = ctx.budget().max_value_bytes();
        let mut items = lock(&self.items);
        // The answer is checked item by item before it is built: it stops
        // short of the per-operation limit, and an item alone above it is
        // the MemoryError any other read of it would be.
        let mut taken = 0usize;
        let mut sum = 0usize;
        for item in items.iter().take(n) {
            let next = sum.saturating_add(item.bytes());
            if sequence_bytes(taken + 1, next) > limit {
                if taken == 0 {
                    ctx.check_value(sequence_bytes(1, next))?;
                }
                break;
            }
            sum = next;
            taken += 1;
        }
        let popped: Vec<Item> = items.drain(..taken).collect();
        shrink_deque(&mut items);
        let left = items.len();
        drop(items);
        let values = popped.iter().map(Item::value).collect();
        let answer = Value::Tuple(vec![
            Value::List(values),
            Value::Int(i64::try_from(left).unwrap_or(i64::MAX)),
        ]);
        // The answer holds its own references before the snapshot's
        // copies (and theirs) go.
        let answer = ctx.result(answer);
        drop(popped);
        Ok(answer)
    }
}

impl SharedObject for IteratorObject {
    fn methods() -> &'static [MethodSpec] {
        IteratorMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = IteratorMethod::from_name(method) else {
            return Reply::no_such_method("iterator", method);
        };
        match m {
            IteratorMethod::Next => match args.none(method) {
                Err(e) => Reply::err(e),
                Ok(()) => {
                    if let Err(e) = self.check() {
                        return Reply::err(e);
                    }
                    let mut items = lock(&self.items);
                    let next = items.pop_front();
                    shrink_deque(&mut items);
                    match next {
                        Some(item) => Reply::held(item.into_held()),
                        None => Reply::err(RemoteError::new(ErrorKind::StopIteration, "")),
                    }
                }
            },
            IteratorMethod::NextChunk => match self.next_chunk(ctx, args) {
                Ok(answer) => Reply::held(answer),
                Err(e) => Reply::err(e),
            },
            IteratorMethod::Close => {
                let rest = std::mem::take(&mut *lock(&self.items));
                drop(rest);
                Reply::none()
            }
        }
    }

    fn references(&self, out: &mut Vec<mp_proto::ObjectId>) {
        for item in lock(&self.items).iter() {
            match item {
                Item::One(h) => out.extend_from_slice(h.referenced_ids()),
                Item::Pair(k, v) => {
                    out.extend_from_slice(k.referenced_ids());
                    out.extend_from_slice(v.referenced_ids());
                }
            }
        }
    }

    fn repr(&self) -> Option<String> {
        Some(format!("<iterator, {} left>", lock(&self.items).len()))
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        let items = lock(&self.items);
        let sum = items
            .iter()
            .fold(0usize, |s, item| s.saturating_add(item.bytes()));
        self.budget.check_value(sequence_bytes(items.len(), sum))?;
        Ok(Held::plain(Value::List(
            items.iter().map(Item::value).collect(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::Harness;

    fn chunk(answer: Value) -> (Vec<Value>, i64) {
        match answer {
            Value::Tuple(parts) => match parts.as_slice() {
                [Value::List(items), Value::Int(left)] => (items.clone(), *left),
                _ => panic!("not (items, left): {parts:?}"),
            },
            other => panic!("not a tuple: {other:?}"),
        }
    }

    #[test]
    fn chunks_come_in_order_with_what_is_left() {
        let h = Harness::new();
        let ctx = h.ctx();
        let items = ctx.hold_all((0..5).map(Value::Int).collect()).unwrap();
        let it = IteratorObject::new(items, Arc::clone(ctx.budget()));
        let (got, left) = chunk(h.ok(&it, "_next_chunk", vec![2.into()]));
        assert_eq!((got, left), (vec![0.into(), 1.into()], 3));
        assert_eq!(h.ok(&it, "__next__", vec![]), Value::Int(2));
        let (got, left) = chunk(h.ok(&it, "_next_chunk", vec![10.into()]));
        assert_eq!((got, left), (vec![3.into(), 4.into()], 0));
        let (got, left) = chunk(h.ok(&it, "_next_chunk", vec![10.into()]));
        assert_eq!((got.len(), left), (0, 0));
        assert_eq!(
            h.err(&it, "__next__", vec![]).kind,
            ErrorKind::StopIteration
        );
        assert_eq!(
            h.err(&it, "_next_chunk", vec![0.into()]).kind,
            ErrorKind::ValueError
        );
        assert_eq!(
            h.err(&it, "_next_chunk", vec!["x".into()]).kind,
            ErrorKind::TypeError
        );
    }

    #[test]
    fn pairs_come_as_tuples() {
        let h = Harness::new();
        let ctx = h.ctx();
        let k = ctx.hold("a".into()).unwrap();
        let v = ctx.hold(1.into()).unwrap();
        let it = IteratorObject::pairs(vec![(k, v)], Arc::clone(ctx.budget()));
        let pair = Value::Tuple(vec!["a".into(), 1.into()]);
        assert_eq!(
            it.get_value().unwrap().value(),
            &Value::List(vec![pair.clone()])
        );
        assert_eq!(h.ok(&it, "__next__", vec![]), pair);
    }

    #[test]
    fn a_chunk_stops_short_of_the_per_operation_limit() {
        // Items of about 1 KiB each under a 4 KiB limit: a few per chunk,
        // never an answer past the limit, and every item in the end.
        let h = Harness::with_limits(u64::MAX, 4096);
        let ctx = h.ctx();
        let items = (0..10)
            .map(|i| ctx.hold(Value::Str(format!("{i}{}", "x".repeat(1000)))))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let it = IteratorObject::new(items, Arc::clone(ctx.budget()));
        let mut seen = 0;
        loop {
            let (got, left) = chunk(h.ok(&it, "_next_chunk", vec![100.into()]));
            assert!(!got.is_empty() && got.len() < 4, "{} items", got.len());
            seen += got.len();
            if left == 0 {
                break;
            }
        }
        assert_eq!(seen, 10);
    }
}
