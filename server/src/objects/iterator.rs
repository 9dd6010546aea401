//! `Iterator`: what `dict.__iter__` returns (Python's `IteratorProxy`).
//!
//! It walks a snapshot taken when it was made, so changing the dict while
//! iterating is safe (CPython would raise `RuntimeError: dictionary changed
//! size during iteration`). `__next__` raises `StopIteration` at the end;
//! `close` ends it early.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mp_proto::methods::builtin::IteratorMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::value::sequence_bytes;
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::args::Args;
use crate::budget::{shrink_deque, Budget};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, SharedObject};

/// An iterator over stored values.
pub struct IteratorObject {
    items: Mutex<VecDeque<Held>>,
    /// For `#GETVALUE`, which has no call context.
    budget: Arc<Budget>,
}

impl IteratorObject {
    /// An iterator yielding `items` (stored, so charged to `budget`) in
    /// order.
    pub fn new(items: Vec<Held>, budget: Arc<Budget>) -> Self {
        IteratorObject {
            items: Mutex::new(items.into()),
            budget,
        }
    }
}

impl SharedObject for IteratorObject {
    fn methods() -> &'static [MethodSpec] {
        IteratorMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = IteratorMethod::from_name(method) else {
            return Reply::no_such_method("iterator", method);
        };
        match m {
            IteratorMethod::Next => match args.none(method) {
                Err(e) => Reply::err(e),
                Ok(()) => {
                    let mut items = lock(&self.items);
                    let next = items.pop_front();
                    shrink_deque(&mut items);
                    match next {
                        Some(item) => Reply::held(item),
                        None => Reply::err(RemoteError::new(ErrorKind::StopIteration, "")),
                    }
                }
            },
            IteratorMethod::Close => {
                let rest = std::mem::take(&mut *lock(&self.items));
                drop(rest);
                Reply::none()
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
            .fold(0usize, |s, h| s.saturating_add(h.value().estimated_bytes()));
        self.budget.check_value(sequence_bytes(items.len(), sum))?;
        Ok(Held::plain(Value::List(
            items.iter().map(|h| h.value().clone()).collect(),
        )))
    }
}
