//! [`DictProxy`]: a typed proxy of a shared `dict` (Python's `DictProxy`
//! in `multiprocessing.managers`), with every method the server serves.
//!
//! Keys and values are sent as arguments by value or borrow ([`Arg`]):
//! `d.set("a", 1)` and `d.get("a")` on a `DictProxy<String, i64>`. A dict
//! keeps insertion order and Python's key equality (`1`, `1.0` and `True`
//! are one key); what it answers as a whole (`items`, `copy`, `|`) comes
//! back as `(key, value)` pairs in that order.

use std::marker::PhantomData;

use mp_proto::methods::builtin::DictMethod;
use mp_proto::{ErrorKind, Value};
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::arg::{wire_map, wire_pairs, Arg};
use super::chunks::{Chunking, DictIter, CHUNK_BYTES};
use crate::managers::error::ManagerError;
use crate::managers::proxy::{proxy_common, to_wire, BaseProxy};
use crate::managers::transfer::convert_answer;

/// A shared `dict` mapping `K` to `V`.
///
/// ```
/// use multiprocessing::managers::Manager;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let d = manager.dict::<String, i64>()?;
/// d.set("a", 1)?;
/// d.update([("b", 2), ("c", 3)])?;
/// assert_eq!(d.get("a")?, Some(1));
/// assert_eq!(d.get_or("zz", 0)?, 0);
/// assert_eq!(d.pop_or("zz", -1)?, -1);
/// assert_eq!(d.setdefault("d", 4)?, 4);
/// assert_eq!(d.popitem()?, ("d".to_string(), 4));
/// let merged = d.union([("a", 10)])?;                    // d | {"a": 10}
/// assert_eq!(merged[0], ("a".to_string(), 10));
/// let mut total = 0;
/// for pair in &d {                                       // one round trip per ~1 MiB of pairs
///     let (_key, value) = pair?;
///     total += value;
/// }
/// assert_eq!(total, 6);
/// # Ok(())
/// # }
/// ```
pub struct DictProxy<K, V> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> (K, V)>,
}
proxy_common!(DictProxy<K, V> = ["dict"]);

/// Whether `e` is the server's `KeyError`.
fn key_error(e: &ManagerError) -> bool {
    matches!(e, ManagerError::Remote(r) if r.kind == ErrorKind::KeyError)
}

#[method_list(LISTED)]
impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// Wraps a reference to a `dict`.
    pub fn from_base(base: BaseProxy) -> Self {
        DictProxy {
            base,
            _marker: PhantomData,
        }
    }

    /// `d[key] = value`.
    pub fn set(&self, key: impl Arg<K>, value: impl Arg<V>) -> Result<(), ManagerError> {
        self.base
            .call(DictMethod::SetItem, vec![to_wire(&key)?, to_wire(&value)?])
            .map(drop)
    }

    /// `d[key]`; a missing key is a `KeyError`.
    pub fn get_item(&self, key: impl Arg<K>) -> Result<V, ManagerError> {
        self.base.call_as(DictMethod::GetItem, vec![to_wire(&key)?])
    }

    /// `d[key]` if the key is there, `None` if not (a key stored with the
    /// value `None` gives `Some` of it: a missing key is told by the
    /// server's `KeyError`, never by the value).
    pub fn get(&self, key: impl Arg<K>) -> Result<Option<V>, ManagerError> {
        match self.get_item(key) {
            Ok(v) => Ok(Some(v)),
            Err(e) if key_error(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `d.get(key, default)`: the value, or `default` for a missing key.
    pub fn get_or(&self, key: impl Arg<K>, default: impl Arg<V>) -> Result<V, ManagerError> {
        self.base
            .call_as(DictMethod::Get, vec![to_wire(&key)?, to_wire(&default)?])
    }

    /// `key in d`.
    pub fn contains_key(&self, key: impl Arg<K>) -> Result<bool, ManagerError> {
        self.base
            .call_as(DictMethod::Contains, vec![to_wire(&key)?])
    }

    /// `len(d)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(DictMethod::Len, vec![])
    }

    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `del d[key]`; a missing key is a `KeyError`.
    pub fn del(&self, key: impl Arg<K>) -> Result<(), ManagerError> {
        self.base
            .call(DictMethod::DelItem, vec![to_wire(&key)?])
            .map(drop)
    }

    /// `d.pop(key)`: removes and returns the value; a missing key is a
    /// `KeyError`.
    pub fn pop(&self, key: impl Arg<K>) -> Result<V, ManagerError> {
        self.base.call_as(DictMethod::Pop, vec![to_wire(&key)?])
    }

    /// `d.pop(key, default)`: the removed value, or `default` for a
    /// missing key.
    pub fn pop_or(&self, key: impl Arg<K>, default: impl Arg<V>) -> Result<V, ManagerError> {
        self.base
            .call_as(DictMethod::Pop, vec![to_wire(&key)?, to_wire(&default)?])
    }

    /// `d.pop(key)` as an `Option`: the removed value, `None` if the key
    /// was missing (told by the server's `KeyError`, as in
    /// [`get`](Self::get)).
    pub fn remove(&self, key: impl Arg<K>) -> Result<Option<V>, ManagerError> {
        match self.pop(key) {
            Ok(v) => Ok(Some(v)),
            Err(e) if key_error(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `d.popitem()`: removes and returns the last pair inserted; an
    /// empty dict is a `KeyError` (`'popitem(): dictionary is empty'`).
    pub fn popitem(&self) -> Result<(K, V), ManagerError> {
        self.base.call_as(DictMethod::PopItem, vec![])
    }

    /// `d.setdefault(key, default)`: the value under `key`, storing
    /// `default` there first if the key was missing.
    pub fn setdefault(&self, key: impl Arg<K>, default: impl Arg<V>) -> Result<V, ManagerError> {
        self.base.call_as(
            DictMethod::SetDefault,
            vec![to_wire(&key)?, to_wire(&default)?],
        )
    }

    /// `d.update(pairs)`: stores every pair, in order, as one operation
    /// (all or none). Takes any iterator of pairs: an array of tuples, a
    /// `HashMap` or `&HashMap`, another proxy's [`items`](Self::items).
    pub fn update<A: Arg<K>, B: Arg<V>>(
        &self,
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<(), ManagerError> {
        self.base
            .call(DictMethod::Update, vec![wire_pairs(pairs)?])
            .map(drop)
    }

    /// `d |= pairs`: [`update`](Self::update), returning this proxy, as
    /// Python's `|=` rebinds the name to the same proxy.
    pub fn ior<A: Arg<K>, B: Arg<V>>(
        &self,
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<&Self, ManagerError> {
        self.base
            .call(DictMethod::IOr, vec![wire_pairs(pairs)?])
            .map(drop)?;
        Ok(self)
    }

    /// `d | other`: a new plain dict, as pairs in order — `d`'s pairs,
    /// then `other`'s new keys, a key in both taking `other`'s value. The
    /// shared dict is unchanged. An unhashable key (a list) is a
    /// conversion error, as Python could not build `other` either.
    pub fn union<A: Arg<K>, B: Arg<V>>(
        &self,
        other: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<(K, V)>, ManagerError> {
        let merged = self.base.call(DictMethod::Or, vec![wire_map(other)?])?;
        self.pairs(merged)
    }

    /// `list(d.keys())`.
    pub fn keys(&self) -> Result<Vec<K>, ManagerError> {
        self.base.call_as(DictMethod::Keys, vec![])
    }

    /// `list(reversed(d))`: the keys, last inserted first.
    pub fn reversed(&self) -> Result<Vec<K>, ManagerError> {
        self.base.call_as(DictMethod::Reversed, vec![])
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

    /// `d.copy()`: a plain copy, as pairs in insertion order (collect it
    /// into a map if you want one).
    pub fn copy(&self) -> Result<Vec<(K, V)>, ManagerError> {
        let copy = self.base.call(DictMethod::Copy, vec![])?;
        self.pairs(copy)
    }

    /// A copy of the whole dict as key/value pairs in insertion order
    /// (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<Vec<(K, V)>, ManagerError> {
        let value = self.base.get_value_raw()?;
        self.pairs(value)
    }

    /// A dict the server answered, as pairs.
    fn pairs(&self, value: Value) -> Result<Vec<(K, V)>, ManagerError> {
        let pairs = match value {
            Value::Dict(map) => map
                .into_iter()
                .map(|(k, v)| Value::Tuple(vec![k, v]))
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

    /// The `(key, value)` pairs, in chunks of about [`CHUNK_BYTES`]
    /// (1 MiB) from a snapshot the server takes at the first item: one
    /// round trip per chunk, never the whole dict at once here, and
    /// changes made meanwhile are not seen (see [`DictIter`]).
    pub fn iter(&self) -> DictIter<'_, K, V> {
        DictIter::new(&self.base, Chunking::bytes(CHUNK_BYTES))
    }

    /// [`iter`](Self::iter), asking for `chunk` pairs every round trip
    /// (at least one).
    pub fn iter_chunked(&self, chunk: usize) -> DictIter<'_, K, V> {
        DictIter::new(&self.base, Chunking::items(chunk))
    }
}

impl<'a, K, V> IntoIterator for &'a DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    type Item = Result<(K, V), ManagerError>;
    type IntoIter = DictIter<'a, K, V>;

    /// [`DictProxy::iter`].
    fn into_iter(self) -> DictIter<'a, K, V> {
        self.iter()
    }
}
