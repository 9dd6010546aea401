//! [`Namespace`]: attributes of any serde type, shared by threads
//! (Python's `multiprocessing.dummy.Namespace`, which is also what
//! `dummy.Manager().Namespace()` returns).
//!
//! Attributes are kept in serde's data model (as CBOR values), so that
//! `get::<T>` converts as the managed
//! [`NamespaceProxy`](crate::managers::NamespaceProxy) does: an attribute
//! set from `&10` reads back as any integer type, a `&str` as a
//! `String`. Its `Display` is Python's `repr`, without the names that
//! start with `_`, sorted.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use ciborium::Value as Cbor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ManagerError;

/// A namespace shared by threads (Python's `dummy.Namespace`): named
/// attributes of any serde type. Clones share it.
///
/// Its methods are [`managers::NamespaceProxy`](crate::managers::NamespaceProxy)'s.
/// One difference: the proxy keeps names starting with `_` in itself,
/// not in the shared object (Python's proxy rule), while a dummy
/// namespace is the object, so every clone sees them — they are only
/// left out of its `Display`, as in Python.
///
/// ```
/// use multiprocessing::dummy::Namespace;
///
/// let ns = Namespace::new();
/// ns.set("x", &10)?;
/// ns.set("y", "hello")?;
/// ns.set("_z", &12.3)?;
/// let other = ns.clone();
/// std::thread::spawn(move || other.set("x", &11)).join().unwrap()?;
/// assert_eq!(ns.get::<i64>("x")?, 11);
/// assert_eq!(ns.to_string(), "Namespace(x=11, y='hello')");
/// assert_eq!(ns.get::<f64>("_z")?, 12.3);
/// # Ok::<(), multiprocessing::dummy::managers::ManagerError>(())
/// ```
#[derive(Clone, Default)]
pub struct Namespace {
    attributes: Arc<Mutex<BTreeMap<String, Cbor>>>,
}

impl Namespace {
    /// An empty namespace (Python's `Namespace()`).
    pub fn new() -> Namespace {
        Namespace::default()
    }

    fn attributes(&self) -> MutexGuard<'_, BTreeMap<String, Cbor>> {
        mp_sys::lock(&self.attributes)
    }

    /// `ns.name`: the attribute as a `T`; `AttributeError` if there is
    /// none, `TypeError` if it does not convert to `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, ManagerError> {
        let value = self.attributes().get(name).cloned().ok_or_else(|| {
            ManagerError::AttributeError(format!("'Namespace' object has no attribute '{name}'"))
        })?;
        value.deserialized().map_err(|e| {
            ManagerError::TypeError(format!(
                "attribute '{name}' is not a {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// `ns.name = value`.
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), ManagerError> {
        let value = Cbor::serialized(value)
            .map_err(|e| ManagerError::TypeError(format!("cannot store '{name}': {e}")))?;
        self.attributes().insert(name.to_owned(), value);
        Ok(())
    }

    /// `del ns.name`; `AttributeError` if there is none.
    pub fn del(&self, name: &str) -> Result<(), ManagerError> {
        self.attributes()
            .remove(name)
            .map(drop)
            .ok_or_else(|| ManagerError::AttributeError(name.to_owned()))
    }
}

impl fmt::Display for Namespace {
    /// Python's `repr`: `Namespace(x=10, y='hello')`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attributes = self.attributes();
        f.write_str("Namespace(")?;
        let shown = attributes.iter().filter(|(name, _)| !name.starts_with('_'));
        for (i, (name, value)) in shown.enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}=")?;
            repr(value, f)?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dummy::{self}")
    }
}

/// Python's `repr()` of a value as serde gave it: serde's sequences show
/// as lists, its unit and `None` as `None`.
fn repr(value: &Cbor, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match value {
        Cbor::Integer(i) => write!(f, "{}", i128::from(*i)),
        Cbor::Float(x) => float_repr(*x, f),
        Cbor::Text(s) => str_repr(s, f),
        Cbor::Bytes(b) => {
            f.write_str("b'")?;
            for &byte in b {
                match byte {
                    b'\\' => f.write_str("\\\\")?,
                    b'\'' => f.write_str("\\'")?,
                    b'\n' => f.write_str("\\n")?,
                    b'\r' => f.write_str("\\r")?,
                    b'\t' => f.write_str("\\t")?,
                    0x20..=0x7e => f.write_char(char::from(byte))?,
                    _ => write!(f, "\\x{byte:02x}")?,
                }
            }
            f.write_str("'")
        }
        Cbor::Bool(true) => f.write_str("True"),
        Cbor::Bool(false) => f.write_str("False"),
        Cbor::Null => f.write_str("None"),
        Cbor::Tag(_, inner) => repr(inner, f),
        Cbor::Array(items) => {
            f.write_str("[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                repr(item, f)?;
            }
            f.write_str("]")
        }
        Cbor::Map(entries) => {
            f.write_str("{")?;
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                repr(k, f)?;
                f.write_str(": ")?;
                repr(v, f)?;
            }
            f.write_str("}")
        }
        // A kind this build of ciborium adds later: its debug form.
        other => write!(f, "{other:?}"),
    }
}

/// Python's float `repr`: the shortest round-trip digits, with `.0` on a
/// whole number, `inf`, `nan`.
fn float_repr(x: f64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else if x == x.trunc() && x.abs() < 1e16 {
        write!(f, "{x:.1}")
    } else {
        write!(f, "{x}")
    }
}

/// Python's `str` `repr`: single quotes unless the text has a single
/// quote and no double one.
fn str_repr(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    f.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c == quote => write!(f, "\\{c}")?,
            c if c.is_control() => write!(f, "\\x{:02x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char(quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repr_is_pythons() {
        let ns = Namespace::new();
        ns.set("s", "it's").unwrap();
        ns.set("f", &1.0).unwrap();
        ns.set("g", &0.1).unwrap();
        ns.set("n", &None::<i32>).unwrap();
        ns.set("l", &vec![1, 2]).unwrap();
        ns.set("b", &true).unwrap();
        ns.set("_hidden", &1).unwrap();
        assert_eq!(
            ns.to_string(),
            "Namespace(b=True, f=1.0, g=0.1, l=[1, 2], n=None, s=\"it's\")"
        );
    }

    #[test]
    fn attributes_convert_as_serde_does() {
        let ns = Namespace::new();
        ns.set("x", &10u8).unwrap();
        assert_eq!(ns.get::<i64>("x").unwrap(), 10);
        assert!(matches!(
            ns.get::<String>("x"),
            Err(ManagerError::TypeError(_))
        ));
        assert!(matches!(
            ns.get::<i64>("y"),
            Err(ManagerError::AttributeError(_))
        ));
        ns.del("x").unwrap();
        assert!(matches!(ns.del("x"), Err(ManagerError::AttributeError(_))));
    }
}
