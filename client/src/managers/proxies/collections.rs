//! [`DictProxy`] and [`ListProxy`]: typed proxies of a shared `dict` and
//! `list` (Python's `DictProxy` and `ListProxy` in
//! `multiprocessing.managers`).

use std::marker::PhantomData;

use mp_proto::methods::builtin::{DictMethod, ListMethod};
use mp_proto::{ErrorKind, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::managers::error::ManagerError;
use crate::managers::proxy::{proxy_common, to_wire, BaseProxy};
use crate::managers::transfer::convert_answer;

/// A shared `dict` mapping `K` to `V`.
pub struct DictProxy<K, V> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> (K, V)>,
}
proxy_common!(DictProxy<K, V>);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// Wraps a reference to a `dict`.
    pub fn from_base(base: BaseProxy) -> Self {
        DictProxy {
            base,
            _marker: PhantomData,
        }
    }

    /// `d[key] = value`.
    pub fn set(&self, key: &K, value: &V) -> Result<(), ManagerError> {
        self.base
            .call(DictMethod::SetItem, vec![to_wire(key)?, to_wire(value)?])
            .map(drop)
    }

    /// `d[key]`; a missing key is a `KeyError`.
    pub fn get_item(&self, key: &K) -> Result<V, ManagerError> {
        self.base.call_as(DictMethod::GetItem, vec![to_wire(key)?])
    }

    /// `d.get(key)`: `None` for a missing key.
    pub fn get(&self, key: &K) -> Result<Option<V>, ManagerError> {
        match self.get_item(key) {
            Ok(v) => Ok(Some(v)),
            Err(ManagerError::Remote(e)) if e.kind == ErrorKind::KeyError => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `key in d`.
    pub fn contains_key(&self, key: &K) -> Result<bool, ManagerError> {
        self.base.call_as(DictMethod::Contains, vec![to_wire(key)?])
    }

    /// `len(d)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(DictMethod::Len, vec![])
    }

    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `d.pop(key)`: the removed value, `None` if it was missing (a key
    /// stored with the value `None` gives `Some` of it: the missing key is
    /// told by the server's `KeyError`, never by the value).
    pub fn remove(&self, key: &K) -> Result<Option<V>, ManagerError> {
        match self.base.call(DictMethod::Pop, vec![to_wire(key)?]) {
            Ok(v) => convert_answer(&self.base.client()?, v).map(Some),
            Err(ManagerError::Remote(e)) if e.kind == ErrorKind::KeyError => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `d.setdefault(key, default)`: the value now under `key`.
    pub fn setdefault(&self, key: &K, default: &V) -> Result<V, ManagerError> {
        self.base.call_as(
            DictMethod::SetDefault,
            vec![to_wire(key)?, to_wire(default)?],
        )
    }

    /// `list(d.keys())`.
    pub fn keys(&self) -> Result<Vec<K>, ManagerError> {
        self.base.call_as(DictMethod::Keys, vec![])
    }

    /// `list(d.values())`.
    pub fn values(&self) -> Result<Vec<V>, ManagerError> {
        self.base.call_as(DictMethod::Values, vec![])
    }

    /// `list(d.items())`.
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        self.base.call_as(DictMethod::Items, vec![])
    }

    /// `d.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.base.call(DictMethod::Clear, vec![]).map(drop)
    }

    /// A copy of the whole dict as key/value pairs in insertion order
    /// (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<Vec<(K, V)>, ManagerError> {
        let pairs = match self.base.get_value_raw()? {
            Value::Dict(map) => map
                .iter()
                .map(|(k, v)| Value::Tuple(vec![k.clone(), v.clone()]))
                .collect(),
            other => {
                return Err(ManagerError::Protocol(format!(
                    "expected a dict, got {}",
                    other.repr()
                )))
            }
        };
        convert_answer(&self.base.client()?, Value::List(pairs))
    }
}

/// A shared `list` of `T`.
pub struct ListProxy<T> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> T>,
}
proxy_common!(ListProxy<T>);

fn index(i: i64) -> Value {
    Value::Int(i)
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Wraps a reference to a `list`.
    pub fn from_base(base: BaseProxy) -> Self {
        ListProxy {
            base,
            _marker: PhantomData,
        }
    }

    /// `l.append(item)`.
    pub fn append(&self, item: &T) -> Result<(), ManagerError> {
        self.base
            .call(ListMethod::Append, vec![to_wire(item)?])
            .map(drop)
    }

    /// `l.extend(items)`.
    pub fn extend<'a, I>(&self, items: I) -> Result<(), ManagerError>
    where
        I: IntoIterator<Item = &'a T>,
        T: 'a,
    {
        let items = items
            .into_iter()
            .map(to_wire)
            .collect::<Result<Vec<_>, _>>()?;
        self.base
            .call(ListMethod::Extend, vec![Value::List(items)])
            .map(drop)
    }

    /// `l[i]` (negative counts from the end); out of range is an
    /// `IndexError`.
    pub fn get(&self, i: i64) -> Result<T, ManagerError> {
        self.base.call_as(ListMethod::GetItem, vec![index(i)])
    }

    /// `l[i] = item`.
    pub fn set(&self, i: i64, item: &T) -> Result<(), ManagerError> {
        self.base
            .call(ListMethod::SetItem, vec![index(i), to_wire(item)?])
            .map(drop)
    }

    /// `l.insert(i, item)`.
    pub fn insert(&self, i: i64, item: &T) -> Result<(), ManagerError> {
        self.base
            .call(ListMethod::Insert, vec![index(i), to_wire(item)?])
            .map(drop)
    }

    /// `l.pop(i)`.
    pub fn pop(&self, i: i64) -> Result<T, ManagerError> {
        self.base.call_as(ListMethod::Pop, vec![index(i)])
    }

    /// `l.remove(item)`: a missing item is a `ValueError`.
    pub fn remove(&self, item: &T) -> Result<(), ManagerError> {
        self.base
            .call(ListMethod::Remove, vec![to_wire(item)?])
            .map(drop)
    }

    /// `l.index(item)`.
    pub fn index(&self, item: &T) -> Result<usize, ManagerError> {
        self.base.call_as(ListMethod::Index, vec![to_wire(item)?])
    }

    /// `l.count(item)`.
    pub fn count(&self, item: &T) -> Result<usize, ManagerError> {
        self.base.call_as(ListMethod::Count, vec![to_wire(item)?])
    }

    /// `item in l`.
    pub fn contains(&self, item: &T) -> Result<bool, ManagerError> {
        self.base
            .call_as(ListMethod::Contains, vec![to_wire(item)?])
    }

    /// `len(l)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(ListMethod::Len, vec![])
    }

    /// `len(l) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `l.reverse()`, in place.
    pub fn reverse(&self) -> Result<(), ManagerError> {
        self.base.call(ListMethod::Reverse, vec![]).map(drop)
    }

    /// `l.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.base.call(ListMethod::Clear, vec![]).map(drop)
    }

    /// A copy of the whole list (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<Vec<T>, ManagerError> {
        self.base.get_value_as()
    }
}
