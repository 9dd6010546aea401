//! Values stored inside shared objects, holding a reference to every
//! shared object they name.
//!
//! The one mechanism behind nested proxies: a container (dict, list,
//! queue, namespace, value, or an embedder's type) stores [`Held`] instead
//! of [`Value`]. Making a `Held` ([`Held::new`], through
//! [`CallContext::hold`](crate::object::CallContext::hold)) adds a
//! reference to each proxy token inside the value that names a live object
//! of this server; cloning one adds them again; dropping one — on removal,
//! overwrite, or the container's own death — releases them. So a token
//! keeps its object alive exactly while it is stored, and no container
//! type counts anything itself.
//!
//! It is also where stored values are charged to the server's memory
//! budget ([`crate::budget`]): [`Held::new`] checks the value's bytes
//! against the limits and charges them, and dropping the `Held` gives them
//! back, so every container is bounded without counting bytes itself.
//!
//! Returning a `Held` from a method hands its references to the caller's
//! session instead of releasing them, so a value popped out of a container
//! cannot lose its objects before the client has them (see
//! [`crate::session`]).
//!
//! A `Held` compares and hashes as its value, and borrows as `&Value`, so
//! maps keyed by `Held` are looked up with a plain `&Value`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::mem::size_of;
use std::sync::{Arc, Weak};

use mp_proto::{ObjectId, RemoteError, Value};

use crate::budget::Budget;
use crate::table::Table;

/// A stored value and the references it holds.
pub struct Held {
    value: Value,
    /// `None` for the common value that names no live object, so a plain
    /// `Held` costs one pointer more than its value.
    refs: Option<Box<Refs>>,
    /// The budget the value's bytes ([`Held::cost`]) are charged to while
    /// it lives; `None` for a result that was never stored.
    budget: Option<Arc<Budget>>,
}

/// References a [`Held`] owns.
pub(crate) struct Refs {
    /// The table the ids live in; weak so that objects holding tokens do
    /// not keep the table alive in a cycle.
    pub(crate) table: Weak<Table>,
    /// One entry per reference (an id stored twice is here twice).
    pub(crate) ids: Vec<ObjectId>,
}

impl Held {
    /// Stores `value`, adding a reference to every live object of `table`
    /// it names (tokens of other servers, or of objects already gone, are
    /// kept as plain data), and charging its bytes to the table's
    /// [`Budget`]: `MemoryError` if the value is larger than one operation
    /// may store, or would take the stored values past the server's limit.
    pub fn new(value: Value, table: &Arc<Table>) -> Result<Held, RemoteError> {
        let budget = table.budget();
        let bytes = Held::cost(&value);
        budget.check_value(bytes)?;
        budget.try_charge(bytes)?;
        Ok(Held::with_refs(value, table, Some(Arc::clone(budget))))
    }

    /// Stores every value of `values` as one operation: the sum of their
    /// bytes is checked against both limits and charged at once, and
    /// either all are stored or none.
    pub fn new_all(values: Vec<Value>, table: &Arc<Table>) -> Result<Vec<Held>, RemoteError> {
        let budget = table.budget();
        let bytes = values
            .iter()
            .fold(0usize, |sum, v| sum.saturating_add(Held::cost(v)));
        budget.check_value(bytes)?;
        budget.try_charge(bytes)?;
        Ok(values
            .into_iter()
            .map(|v| Held::with_refs(v, table, Some(Arc::clone(budget))))
            .collect())
    }

    /// A result built for a caller, not stored: it holds references to
    /// the live objects it names (so they outlive whatever it was taken
    /// from) but is not charged to the budget — the caller checked its
    /// size with [`Budget::check_value`] before building it.
    pub fn result(value: Value, table: &Arc<Table>) -> Held {
        Held::with_refs(value, table, None)
    }

    fn with_refs(value: Value, table: &Arc<Table>, budget: Option<Arc<Budget>>) -> Held {
        let ids: Vec<ObjectId> = value
            .tokens()
            .into_iter()
            .filter(|t| table.incref_token(t))
            .map(|t| t.id)
            .collect();
        let refs = (!ids.is_empty()).then(|| {
            Box::new(Refs {
                table: Arc::downgrade(table),
                ids,
            })
        });
        Held {
            value,
            refs,
            budget,
        }
    }

    /// A value that holds no references, for results computed from plain
    /// data (`len()`, `True`). If it does name live objects the engine adds
    /// the caller's references when it returns the value.
    pub fn plain(value: Value) -> Held {
        Held {
            value,
            refs: None,
            budget: None,
        }
    }

    /// What storing `value` is charged: its slot in a container and its
    /// heap ([`Value::heap_bytes`]).
    pub fn cost(value: &Value) -> usize {
        size_of::<Held>().saturating_add(value.heap_bytes())
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Takes the value out and releases the references it held.
    pub fn into_value(mut self) -> Value {
        self.uncharge();
        std::mem::take(&mut self.value)
    }

    /// Takes the value and its references apart: the caller becomes
    /// responsible for decrementing each id.
    pub(crate) fn into_parts(mut self) -> (Value, Option<Box<Refs>>) {
        self.uncharge();
        let refs = self.refs.take();
        (std::mem::take(&mut self.value), refs)
    }

    /// The tuple `(key, value)` of a pair taken out of a container
    /// (`popitem`), moved rather than copied: it keeps both parts'
    /// references for the caller and is no longer charged as stored.
    pub fn pair(key: Held, value: Held) -> Held {
        let (k, krefs) = key.into_parts();
        let (v, vrefs) = value.into_parts();
        let refs = match (krefs, vrefs) {
            (Some(mut a), Some(b)) => {
                a.ids.extend(b.ids);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        Held {
            value: Value::Tuple(vec![k, v]),
            refs,
            budget: None,
        }
    }

    /// A copy to keep (an iterator's snapshot): charged like a new store,
    /// so it may be refused with `MemoryError` where [`Clone`] is not.
    pub fn try_clone(&self) -> Result<Held, RemoteError> {
        if let Some(budget) = &self.budget {
            budget.try_charge(Held::cost(&self.value))?;
        }
        Ok(self.copy())
    }

    /// Copies of every item of `items` to keep, as one operation (see
    /// [`Held::new_all`]); `budget` is the table's.
    pub fn clone_all<'a>(
        items: impl Iterator<Item = &'a Held> + Clone,
        budget: &Budget,
    ) -> Result<Vec<Held>, RemoteError> {
        let bytes = items
            .clone()
            .filter(|h| h.budget.is_some())
            .fold(0usize, |sum, h| sum.saturating_add(Held::cost(&h.value)));
        budget.check_value(bytes)?;
        budget.try_charge(bytes)?;
        Ok(items.map(Held::copy).collect())
    }

    /// A copy whose charge (if any) the caller has made.
    fn copy(&self) -> Held {
        let refs = self.refs.as_ref().and_then(|r| {
            let table = r.table.upgrade()?;
            // The original holds a reference to each id, so each is alive.
            let ids: Vec<ObjectId> = r
                .ids
                .iter()
                .copied()
                .filter(|id| table.incref(*id).is_ok())
                .collect();
            Some(Box::new(Refs {
                table: r.table.clone(),
                ids,
            }))
        });
        Held {
            value: self.value.clone(),
            refs,
            budget: self.budget.clone(),
        }
    }

    /// Gives the value's bytes back to the budget.
    fn uncharge(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.credit(Held::cost(&self.value));
        }
    }

    /// The ids of the objects this value holds a reference to, once per
    /// reference.
    pub fn referenced_ids(&self) -> &[ObjectId] {
        self.refs.as_ref().map_or(&[], |r| &r.ids)
    }

    /// How many references this value holds.
    pub fn reference_count(&self) -> usize {
        self.refs.as_ref().map_or(0, |r| r.ids.len())
    }
}

impl Refs {
    /// Releases every reference.
    pub(crate) fn release(self) {
        if let Some(table) = self.table.upgrade() {
            for id in self.ids {
                // The object may already be gone if the table was cleared
                // at shutdown; nothing else is left to release then.
                let _ = table.decref(id);
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The value is never changed while held, so its cost now is what
        // was charged.
        self.uncharge();
        if let Some(refs) = self.refs.take() {
            refs.release();
        }
    }
}

/// A copy on its way out to a client (`__getitem__` of a stored value):
/// charged like the original while it lives, whatever the limit, since
/// refusing it would refuse a read.
impl Clone for Held {
    fn clone(&self) -> Self {
        if let Some(budget) = &self.budget {
            budget.force_charge(Held::cost(&self.value));
        }
        self.copy()
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Held {}

impl Hash for Held {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}

impl Borrow<Value> for Held {
    fn borrow(&self) -> &Value {
        &self.value
    }
}

impl From<Value> for Held {
    fn from(value: Value) -> Self {
        Held::plain(value)
    }
}
