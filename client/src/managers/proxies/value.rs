//! [`ValueProxy`] and [`NamespaceProxy`]: typed proxies of a shared
//! `Value` and `Namespace` (Python's `ValueProxy` and `NamespaceProxy`).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};

use mp_proto::methods::builtin::{ArrayMethod, NamespaceMethod, ValueMethod};
use mp_proto::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::managers::error::ManagerError;
use crate::managers::proxy::{from_wire, proxy_common, to_wire, BaseProxy};

/// A shared single value of type `T`.
pub struct ValueProxy<T> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> T>,
}
proxy_common!(ValueProxy<T>);

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
    pub fn set(&self, value: &T) -> Result<(), ManagerError> {
        self.base
            .call(ValueMethod::Set, vec![to_wire(value)?])
            .map(drop)
    }

    /// The value (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<T, ManagerError> {
        self.get()
    }
}

/// A shared namespace of named attributes. A name starting with `_` stays
/// in this proxy and never reaches the server, as in Python.
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

    /// `ns.name = value`.
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), ManagerError> {
        let v = to_wire(value)?;
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
pub struct ArrayProxy<T> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> T>,
}
proxy_common!(ArrayProxy<T>);

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
    pub fn set(&self, i: i64, value: &T) -> Result<(), ManagerError> {
        self.base
            .call(ArrayMethod::SetItem, vec![Value::Int(i), to_wire(value)?])
            .map(drop)
    }

    /// A copy of the whole array (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<Vec<T>, ManagerError> {
        self.base.get_value_as()
    }
}
