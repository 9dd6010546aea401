//! SyncManager's built-in shared objects, one file per type.
//!
//! | typeid | file | Python |
//! | --- | --- | --- |
//! | `dict` | [`dict`] | `dict` |
//! | `list` | [`list`] | `list` |
//! | `Iterator` | [`iterator`] | the iterator `dict.__iter__` returns |
//! | `Queue`, `JoinableQueue` | [`queue`] | `queue.Queue` |
//! | `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore` | [`semaphore`] | `threading`'s |
//! | `Condition` | [`condition`] | `threading.Condition` |
//! | `Event` | [`event`] | `threading.Event` |
//! | `Barrier` | [`barrier`] | `threading.Barrier` |
//! | `Namespace` | [`namespace`] | `managers.Namespace` |
//! | `Value` | [`value`] | `managers.Value` |
//! | `Array` | [`array`](mod@array) | `array.array` |
//!
//! The blocking ones (queue, the semaphore family, condition, event,
//! barrier) sit on the one waiting engine in [`crate::wait`]. Method names,
//! exposed lists and error kinds are CPython 3.11's (plus the few methods
//! later versions added), since CPython's own clients are served the same
//! objects through another codec.

pub mod array;
pub mod barrier;
pub mod condition;
pub mod dict;
pub mod event;
pub mod iterator;
pub mod list;
pub mod namespace;
pub mod queue;
pub mod semaphore;
pub mod value;

use mp_proto::{RemoteError, Value};

use crate::budget::Budget;
use crate::errors::type_error;
use crate::held::Held;
use crate::registry::Registry;

/// Registers every SyncManager type with CPython's exposed lists.
pub fn register_builtins(r: &mut Registry) {
    r.register("dict", dict::DictObject::create)
        .exposed(dict::EXPOSED.iter().copied())
        .method_to_typeid("__iter__", "Iterator");
    r.register("list", list::ListObject::create)
        .exposed(list::EXPOSED.iter().copied());
    r.register_returned::<iterator::IteratorObject>("Iterator")
        .exposed(iterator::EXPOSED.iter().copied());
    r.register("Queue", queue::QueueObject::create);
    r.register("JoinableQueue", queue::QueueObject::create);
    r.register("Lock", semaphore::SemaphoreObject::create_lock)
        .exposed(semaphore::LOCK_EXPOSED.iter().copied());
    r.register("RLock", semaphore::SemaphoreObject::create_rlock)
        .exposed(semaphore::EXPOSED.iter().copied());
    r.register("Semaphore", semaphore::SemaphoreObject::create_semaphore)
        .exposed(semaphore::EXPOSED.iter().copied());
    r.register(
        "BoundedSemaphore",
        semaphore::SemaphoreObject::create_bounded,
    )
    .exposed(semaphore::EXPOSED.iter().copied());
    r.register("Condition", condition::ConditionObject::create)
        .exposed(condition::EXPOSED.iter().copied());
    r.register("Event", event::EventObject::create)
        .exposed(event::EXPOSED.iter().copied());
    r.register("Barrier", barrier::BarrierObject::create)
        .exposed(barrier::EXPOSED.iter().copied());
    r.register("Namespace", namespace::NamespaceObject::create)
        .exposed(namespace::EXPOSED.iter().copied());
    r.register("Value", value::ValueObject::create)
        .exposed(value::EXPOSED.iter().copied());
    r.register("Array", array::ArrayObject::create)
        .exposed(array::EXPOSED.iter().copied());
}

/// Python's iteration of a value: a list's or tuple's items, a dict's
/// keys, a string's characters, a bytes object's integers.
///
/// A string or bytes value is exploded into one value per character or
/// byte — 80 bytes each once stored, for one byte on the wire — so their
/// size is checked against `budget`'s per-operation limit first
/// (`MemoryError`); a list's, tuple's or dict's items already exist and
/// are checked when they are stored.
pub fn iterate(budget: &Budget, value: Value) -> Result<Vec<Value>, RemoteError> {
    let exploded = match &value {
        Value::Str(s) => s
            .chars()
            .count()
            .saturating_mul(Held::cost(&Value::Str("x".into()))),
        Value::Bytes(b) => b.len().saturating_mul(Held::cost(&Value::Int(0))),
        _ => 0,
    };
    budget.check_value(exploded)?;
    match value {
        Value::List(items) | Value::Tuple(items) => Ok(items),
        Value::Dict(map) => Ok(map.into_iter().map(|(k, _)| k).collect()),
        Value::Str(s) => Ok(s.chars().map(|c| Value::Str(c.to_string())).collect()),
        Value::Bytes(b) => Ok(b.into_iter().map(|x| Value::Int(i64::from(x))).collect()),
        other => Err(type_error(format!(
            "'{}' object is not iterable",
            other.type_name()
        ))),
    }
}

#[cfg(test)]
pub(crate) mod testing;
