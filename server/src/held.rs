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
//! Returning a `Held` from a method hands its references to the caller's
//! session instead of releasing them, so a value popped out of a container
//! cannot lose its objects before the client has them (see
//! [`crate::session`]).
//!
//! A `Held` compares and hashes as its value, and borrows as `&Value`, so
//! maps keyed by `Held` are looked up with a plain `&Value`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use mp_proto::{ObjectId, Value};

use crate::table::Table;

/// A stored value and the references it holds.
pub struct Held {
    value: Value,
    /// `None` for the common value that names no live object, so a plain
    /// `Held` costs one pointer more than its value.
    refs: Option<Box<Refs>>,
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
    /// it names. Tokens of other servers, or of objects already gone, are
    /// kept as plain data.
    pub fn new(value: Value, table: &Arc<Table>) -> Held {
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
        Held { value, refs }
    }

    /// A value that holds no references, for results computed from plain
    /// data (`len()`, `True`). If it does name live objects the engine adds
    /// the caller's references when it returns the value.
    pub fn plain(value: Value) -> Held {
        Held { value, refs: None }
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Takes the value out and releases the references it held.
    pub fn into_value(mut self) -> Value {
        std::mem::take(&mut self.value)
    }

    /// Takes the value and its references apart: the caller becomes
    /// responsible for decrementing each id.
    pub(crate) fn into_parts(mut self) -> (Value, Option<Box<Refs>>) {
        let refs = self.refs.take();
        (std::mem::take(&mut self.value), refs)
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
        if let Some(refs) = self.refs.take() {
            refs.release();
        }
    }
}

impl Clone for Held {
    fn clone(&self) -> Self {
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
        }
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
