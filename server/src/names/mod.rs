//! Named objects: shared objects the server owns by name, apart from any
//! session — what the reference's remote-manager recipe
//! (`QueueManager.register('get_queue', callable=lambda: queue)`) needs,
//! as a service: one client, or the operator at start, names a queue;
//! any other client finds it by that name.
//!
//! A name holds one reference of its own to its object, so the object
//! lives while it is named, whoever else comes and goes. Names are
//! published at start ([`Declaration`], `mpserver serve --shared
//! jobs=Queue`) or at run time (`publish`, guarded: replacing a name is
//! explicit), looked up (`lookup`, which gives the caller a reference of
//! its own) and removed (`unpublish`).
//!
//! **CPython clients.** A name is also served as a typeid: `create(name)`
//! with no arguments gives a new reference to the named object, so a
//! Python program does `QueueManager.register('jobs')` then
//! `m.jobs()`. A name therefore cannot be a registered typeid, and it
//! must be a Python identifier (letters, digits, `_`) to be called as
//! `m.<name>()`; other names (with `-`, `.`) are for `lookup`. This one
//! rule lives in [`Engine::create`](crate::Engine::create).
//!
//! **Bounds.** A name is 1 to [`MAX_NAME_BYTES`] bytes of ASCII letters,
//! digits, `_`, `-` and `.`, starting with a letter or `_`; a server holds
//! at most [`MAX_NAMES`] names. The objects are charged to the memory
//! budget as any other.

mod declaration;

use std::sync::Mutex;

use indexmap::IndexMap;
use mp_proto::{ObjectId, RemoteError};

use crate::errors::{key_error_msg, value_error};
use crate::table::{no_such_object, Table};

pub use declaration::Declaration;

/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// The most names one server holds.
pub const MAX_NAMES: usize = 65_536;

/// The server's names, each holding one reference to its object.
#[derive(Default)]
pub struct Names {
    map: Mutex<IndexMap<String, ObjectId>>,
}

/// Checks that `name` may name an object.
pub fn check_name(name: &str) -> Result<(), RemoteError> {
    let bytes = name.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
    let rest_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if bytes.len() > MAX_NAME_BYTES || !first_ok || !rest_ok {
        return Err(value_error(format!(
            "invalid object name {name:?}: 1 to {MAX_NAME_BYTES} ASCII letters, digits, '_', '-' \
             or '.', starting with a letter or '_'"
        )));
    }
    Ok(())
}

impl Names {
    /// Names object `id` `name`, taking a reference to it. An existing
    /// name is an error unless `replace`, which gives back the reference
    /// the name held.
    pub fn publish(
        &self,
        table: &Table,
        name: &str,
        id: ObjectId,
        replace: bool,
    ) -> Result<(), RemoteError> {
        check_name(name)?;
        let mut map = crate::lock(&self.map);
        let old = map.get(name).copied();
        match old {
            Some(_) if !replace => {
                return Err(value_error(format!(
                    "the name '{name}' is taken; unpublish it first, or publish with replace=True"
                )))
            }
            None if map.len() >= MAX_NAMES => {
                return Err(value_error(format!(
                    "this server holds {MAX_NAMES} names already"
                )))
            }
            _ => {}
        }
        table.incref(id).map_err(|_| no_such_object(id))?;
        map.insert(name.to_owned(), id);
        drop(map);
        if let Some(old) = old {
            // The name's reference to what it named before.
            let _ = table.decref(old);
        }
        Ok(())
    }

    /// Removes `name`, giving back its reference; the object it named.
    pub fn unpublish(&self, table: &Table, name: &str) -> Result<ObjectId, RemoteError> {
        let id = crate::lock(&self.map)
            .shift_remove(name)
            .ok_or_else(|| no_such_name(name))?;
        let _ = table.decref(id);
        Ok(id)
    }

    /// The object `name` names.
    pub fn get(&self, name: &str) -> Option<ObjectId> {
        crate::lock(&self.map).get(name).copied()
    }

    /// Every name and its object, in publication order.
    pub fn list(&self) -> Vec<(String, ObjectId)> {
        crate::lock(&self.map)
            .iter()
            .map(|(n, id)| (n.clone(), *id))
            .collect()
    }

    /// How many names there are.
    pub fn len(&self) -> usize {
        crate::lock(&self.map).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `KeyError` for a name nothing was published under.
pub fn no_such_name(name: &str) -> RemoteError {
    key_error_msg(format!("no object is published under the name '{name}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in [
            "jobs",
            "get_queue",
            "_x",
            "a.b-c",
            &"n".repeat(MAX_NAME_BYTES),
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1jobs",
            "-x",
            "a b",
            "é",
            "a/b",
            &"n".repeat(MAX_NAME_BYTES + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
