//! [`ValueProxy`], [`NamespaceProxy`] and [`ArrayProxy`]: typed proxies
//! of a shared `Value`, `Namespace` and `Array` (Python's `ValueProxy`,
//! `NamespaceProxy` and `ArrayProxy`).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};

use mp_proto::methods::builtin::{ArrayMethod, NamespaceMethod, ValueMethod};
use mp_proto::Value;
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::arg::{wire_all, Arg};
use super::chunks::{Chunking, ListIter, CHUNK_BYTES};
use super::slicing::IntoSlice;
use crate::managers::error::ManagerError;
use crate::managers::proxy::{from_wire, proxy_common, to_wire, BaseProxy};

/// A shared single value of type `T` (`manager.Value(typecode, value)`).
///
/// ```
/// use multiprocessing::managers::Manager;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let v = manager.value::<f64>("d", 1.5)?;
/// v.set(2.5)?;
/// assert_eq!(v.get()?, 2.5);
/// let s = manager.value::<String>("u", "hello")?;
/// s.set("world")?;
/// assert_eq!(s.get()?, "world");
/// # Ok(())
/// # }
/// ```
pub struct ValueProxy<T> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> T>,
}
proxy_common!(ValueProxy<T> = ["Value"]);

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// Wraps a reference to a `Value`.
    pub fn from_base(base: BaseProxy) -> Self {
        ValueProxy {
            base,
            _marker: PhantomData,
        }
    }

    /// The value (`v.value`).
    pub fn get(&self) -> Result<T, ManagerError> {
        self.base.call_as(ValueMethod::Get, vec![])
    }

    /// Replaces the value (`v.value = x`).
    pub fn set(&self, value: impl Arg<T>) -> Result<(), ManagerError> {
        self.base
            .call(ValueMethod::Set, vec![to_wire(&value)?])
            .map(drop)
    }

    /// The value (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<T, ManagerError> {
        self.get()
    }
}

/// A shared namespace of named attributes. A name starting with `_` stays
/// in this proxy and never reaches the server, as in Python.
///
/// Attributes have no one type: each [`get`](Self::get) names the type it
/// reads, each [`set`](Self::set) takes any serializable value.
///
/// ```
/// use multiprocessing::managers::Manager;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let ns = manager.namespace()?;
/// ns.set("x", 10)?;
/// ns.set("name", "hello")?;
/// assert_eq!(ns.get::<i64>("x")?, 10);
/// assert!(ns.has("name")?);
/// ns.del("name")?;
/// assert!(!ns.has("name")?);
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Attrs { x: i64 }
/// assert_eq!(ns.get_value_as::<Attrs>()?, Attrs { x: 10 });
/// # Ok(())
/// # }
/// ```
pub struct NamespaceProxy {
    base: BaseProxy,
    local: Mutex<HashMap<String, Value>>,
}
proxy_common!(@fmt NamespaceProxy []);

impl Clone for NamespaceProxy {
    /// A new reference; the copy starts without the local `_` names,
    /// which belong to one proxy object as in Python.
    fn clone(&self) -> Self {
        NamespaceProxy::from_base(self.base.clone())
    }
}

impl crate::managers::proxy::ProxyType for NamespaceProxy {
    const TYPEIDS: &'static [&'static str] = &["Namespace"];
    fn from_parts(base: BaseProxy, _exposed: Vec<String>) -> Self {
        NamespaceProxy::from_base(base)
    }
}

impl serde::Serialize for NamespaceProxy {
    /// The reference only: local `_` names stay with this proxy.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.base.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for NamespaceProxy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BaseProxy::deserialize(d).map(NamespaceProxy::from_base)
    }
}

#[method_list(LISTED)]
impl NamespaceProxy {
    /// A copy of the referent (Python's `_getvalue()`). The server raises
    /// `TypeError` for a referent with no copyable value, as pickling one
    /// does in CPython.
    pub fn get_value(&self) -> Result<mp_proto::Value, ManagerError> {
        self.base.get_value_raw()
    }

    /// Wraps a reference to a `Namespace`.
    pub fn from_base(base: BaseProxy) -> Self {
        NamespaceProxy {
            base,
            local: Mutex::new(HashMap::new()),
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `ns.name`; a missing attribute is an `AttributeError`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, ManagerError> {
        if name.starts_with('_') {
            let v = self.local().get(name).cloned().ok_or_else(|| {
                ManagerError::Remote(mp_proto::RemoteError::new(
                    mp_proto::ErrorKind::AttributeError,
                    format!("'NamespaceProxy' object has no attribute '{name}'"),
                ))
            })?;
            return from_wire(v);
        }
        self.base.call_as(
            NamespaceMethod::GetAttribute,
            vec![Value::Str(name.to_owned())],
        )
    }

    /// `hasattr(ns, name)`: whether `name` is set.
    pub fn has(&self, name: &str) -> Result<bool, ManagerError> {
        match self.get::<Value>(name) {
            Ok(_) => Ok(true),
            Err(ManagerError::Remote(e)) if e.kind == mp_proto::ErrorKind::AttributeError => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A copy of every attribute the server holds, as `T`: a struct with
    /// the attributes' names as fields, or a map (Python's `_getvalue()`,
    /// typed).
    pub fn get_value_as<T: DeserializeOwned>(&self) -> Result<T, ManagerError> {
        self.base.get_value_as()
    }

    /// `ns.name = value`, for any serializable value, given or borrowed.
    pub fn set(&self, name: &str, value: impl Serialize) -> Result<(), ManagerError> {
        let v = to_wire(&value)?;
        if name.starts_with('_') {
            self.local().insert(name.to_owned(), v);
            return Ok(());
        }
        self.base
            .call(
                NamespaceMethod::SetAttr,
                vec![Value::Str(name.to_owned()), v],
            )
            .map(drop)
    }

    /// `del ns.name`; a missing attribute is an `AttributeError`.
    pub fn del(&self, name: &str) -> Result<(), ManagerError> {
        if name.starts_with('_') {
            return match self.local().remove(name) {
                Some(_) => Ok(()),
                None => Err(ManagerError::Remote(mp_proto::RemoteError::new(
                    mp_proto::ErrorKind::AttributeError,
                    name.to_owned(),
                ))),
            };
        }
        self.base
            .call(NamespaceMethod::DelAttr, vec![Value::Str(name.to_owned())])
            .map(drop)
    }
}

/// A shared fixed-length array of `T` (`Array(typecode, sequence)`).
///
/// Items are checked against the typecode by the server, as
/// `array.array` checks them: an integer out of range is an
/// `OverflowError`, a wrong type a `TypeError`.
///
/// ```
/// use multiprocessing::managers::{IntoSlice, Manager};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let a = manager.array::<i32>("i", [1, 2, 3, 4])?;
/// a.set(0, 10)?;
/// a.set_slice(1..3, [20, 30])?;
/// assert_eq!(a.get_slice(..)?, [10, 20, 30, 4]);
/// assert_eq!(a.get_slice((..).with_step(-2))?, [4, 20]);
/// assert_eq!(a.iter().collect::<Result<Vec<_>, _>>()?, [10, 20, 30, 4]);
/// # Ok(())
/// # }
/// ```
pub struct ArrayProxy<T> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> T>,
}
proxy_common!(ArrayProxy<T> = ["Array"]);

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// Wraps a reference to an `Array`.
    pub fn from_base(base: BaseProxy) -> Self {
        ArrayProxy {
            base,
            _marker: PhantomData,
        }
    }

    /// `len(a)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(ArrayMethod::Len, vec![])
    }

    /// `len(a) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `a[i]` (negative counts from the end).
    pub fn get(&self, i: i64) -> Result<T, ManagerError> {
        self.base.call_as(ArrayMethod::GetItem, vec![Value::Int(i)])
    }

    /// `a[i] = value`; a value the typecode cannot hold is an error.
    pub fn set(&self, i: i64, value: impl Arg<T>) -> Result<(), ManagerError> {
        self.base
            .call(ArrayMethod::SetItem, vec![Value::Int(i), to_wire(&value)?])
            .map(drop)
    }

    /// `a[start:stop:step]` as a new `Vec` (see [`IntoSlice`]).
    pub fn get_slice(&self, slice: impl IntoSlice) -> Result<Vec<T>, ManagerError> {
        let s = slice.into_slice().to_value();
        self.base.call_as(ArrayMethod::GetItem, vec![s])
    }

    /// `a[start:stop:step] = items`: a plain slice may change the length,
    /// as with `array.array`; an extended slice needs exactly as many
    /// items as it covers (`ValueError`).
    pub fn set_slice<A: Arg<T>>(
        &self,
        slice: impl IntoSlice,
        items: impl IntoIterator<Item = A>,
    ) -> Result<(), ManagerError> {
        let s = slice.into_slice().to_value();
        self.base
            .call(ArrayMethod::SetItem, vec![s, wire_all(items)?])
            .map(drop)
    }

    /// The items in order, in chunks of about [`CHUNK_BYTES`] (1 MiB):
    /// one round trip per chunk (see [`ListIter`]).
    pub fn iter(&self) -> ListIter<'_, T> {
        ListIter::new(
            &self.base,
            ArrayMethod::GetItem.name(),
            Chunking::bytes(CHUNK_BYTES),
        )
    }

    /// [`iter`](Self::iter), asking for `chunk` items every round trip
    /// (at least one).
    pub fn iter_chunked(&self, chunk: usize) -> ListIter<'_, T> {
        ListIter::new(
            &self.base,
            ArrayMethod::GetItem.name(),
            Chunking::items(chunk),
        )
    }

    /// A copy of the whole array (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<Vec<T>, ManagerError> {
        self.base.get_value_as()
    }
}

impl<'a, T: Serialize + DeserializeOwned> IntoIterator for &'a ArrayProxy<T> {
    type Item = Result<T, ManagerError>;
    type IntoIter = ListIter<'a, T>;

    /// [`ArrayProxy::iter`].
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}
