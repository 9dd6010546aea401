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

use mp_proto::methods::builtin::SemaphoreMethod;
use mp_proto::{RemoteError, Value};

use crate::budget::Budget;
use crate::errors::type_error;
use crate::held::Held;
use crate::registry::Registry;

/// Registers every SyncManager type with CPython's exposed lists.
pub fn register_builtins(r: &mut Registry) {
    // Each type's exposed list and method_to_typeid come from its
    // declaration (mp_proto::methods::builtin); only the narrower
    // registrations of the shared semaphore object name their subset.
    // Every type but the iterator persists in a data directory
    // (crate::persist); an iterator is a snapshot a client walks.
    let acquirer = [SemaphoreMethod::Acquire, SemaphoreMethod::Release].map(SemaphoreMethod::name);
    r.register_durable("dict", dict::DictObject::create);
    r.register_durable("list", list::ListObject::create);
    r.register_returned::<iterator::IteratorObject>("Iterator");
    r.register_durable("Queue", queue::QueueObject::create);
    r.register_durable("JoinableQueue", queue::QueueObject::create);
    r.register_durable("Lock", semaphore::SemaphoreObject::create_lock);
    r.register_durable("RLock", semaphore::SemaphoreObject::create_rlock)
        .exposed(acquirer);
    r.register_durable("Semaphore", semaphore::SemaphoreObject::create_semaphore)
        .exposed(acquirer);
    r.register_durable(
        "BoundedSemaphore",
        semaphore::SemaphoreObject::create_bounded,
    )
    .exposed(acquirer);
    r.register_durable("Condition", condition::ConditionObject::create);
    r.register_durable("Event", event::EventObject::create);
    r.register_durable("Barrier", barrier::BarrierObject::create);
    r.register_durable("Namespace", namespace::NamespaceObject::create);
    r.register_durable("Value", value::ValueObject::create);
    r.register_durable("Array", array::ArrayObject::create);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposed lists (what `get_methods` answers, in its order) as
    /// they were written out by hand before each type declared its
    /// methods once: the declarations must give exactly these (plus the
    /// two methods of the SDK's chunked iteration, which CPython's
    /// clients never call: `dict._iter_items`, `Iterator._next_chunk`).
    #[test]
    fn declared_methods_give_the_exposed_lists_clients_know() {
        let dict = [
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
            "_iter_items",
        ];
        let list = [
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
        let queue = [
            "empty",
            "full",
            "get",
            "get_nowait",
            "join",
            "put",
            "put_nowait",
            "qsize",
            "task_done",
            "_unget",
        ];
        let acquirer = ["acquire", "release"];
        let expected: &[(&str, &[&str])] = &[
            ("dict", &dict),
            ("list", &list),
            ("Iterator", &["__next__", "close", "_next_chunk"]),
            ("Queue", &queue),
            ("JoinableQueue", &queue),
            ("Lock", &["acquire", "release", "locked"]),
            ("RLock", &acquirer),
            ("Semaphore", &acquirer),
            ("BoundedSemaphore", &acquirer),
            (
                "Condition",
                &["acquire", "release", "wait", "notify", "notify_all"],
            ),
            ("Event", &["is_set", "set", "clear", "wait"]),
            ("Barrier", &["__getattribute__", "wait", "abort", "reset"]),
            (
                "Namespace",
                &["__getattribute__", "__setattr__", "__delattr__"],
            ),
            ("Value", &["get", "set"]),
            ("Array", &["__len__", "__getitem__", "__setitem__"]),
        ];
        let types = Registry::sync_manager().freeze();
        assert_eq!(
            types.keys().map(String::as_str).collect::<Vec<_>>(),
            expected.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
        for (typeid, exposed) in expected {
            assert_eq!(types[*typeid].exposed, *exposed, "{typeid}");
        }
        let iter = types["dict"].method_to_typeid.iter().collect::<Vec<_>>();
        let iterator = "Iterator".to_owned();
        assert_eq!(
            iter,
            [
                (&"__iter__".to_owned(), &iterator),
                (&"_iter_items".to_owned(), &iterator)
            ]
        );
        assert!(types
            .values()
            .all(|t| t.typeid == "dict" || t.method_to_typeid.is_empty()));
    }
}
