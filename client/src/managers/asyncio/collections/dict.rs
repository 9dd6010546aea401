//! [`AsyncDictProxy`]: a shared `dict` for async code, the async
//! counterpart of [`DictProxy`](crate::managers::DictProxy), with the
//! same methods. What it answers as a whole comes back as `(key, value)`
//! pairs in insertion order.

use std::marker::PhantomData;

use mp_proto::methods::builtin::DictMethod;
use mp_proto::{ErrorKind, Value};
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::super::chunks::AsyncDictIter;
use super::super::proxy::{async_proxy_common, AsyncBaseProxy};
use crate::managers::error::ManagerError;
use crate::managers::proxies::arg::{wire_map, wire_pairs};
use crate::managers::proxies::chunks::{Chunking, CHUNK_BYTES};
use crate::managers::proxies::Arg;
use crate::managers::proxy::{from_wire, to_wire};

/// Whether `e` is the server's `KeyError` (a missing key).
fn key_error(e: &ManagerError) -> bool {
    matches!(e, ManagerError::Remote(r) if r.kind == ErrorKind::KeyError)
}

/// A shared `dict` of `K` to `V`, for async code.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use multiprocessing::managers::asyncio::AsyncSyncManager;
/// use multiprocessing::managers::Manager;
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let manager = AsyncSyncManager::connect(&address, b"key").await.unwrap();
///     let d = manager.dict::<String, i64>().await.unwrap();
///     d.set("a", 1).await.unwrap();
///     d.update([("b", 2), ("c", 3)]).await.unwrap();
///     assert_eq!(d.get("a").await.unwrap(), Some(1));
///     assert_eq!(d.get("zz").await.unwrap(), None);
///     assert_eq!(d.pop_or("zz", -1).await.unwrap(), -1);
///     let mut total = 0;
///     let mut pairs = d.iter(); // one round trip per ~1 MiB of pairs
///     while let Some(pair) = pairs.next().await {
///         total += pair.unwrap().1;
///     }
///     assert_eq!(total, 6);
/// });
/// # }
/// ```
pub struct AsyncDictProxy<K, V> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> (K, V)>,
}
async_proxy_common!(AsyncDictProxy<K, V> = ["dict"]);

#[method_list(LISTED)]
impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> AsyncDictProxy<K, V> {
    /// `d[key] = value`.
    pub async fn set(&self, key: impl Arg<K>, value: impl Arg<V>) -> Result<(), ManagerError> {
        let args = vec![to_wire(&key)?, to_wire(&value)?];
        self.base.call(DictMethod::SetItem, args).await.map(drop)
    }

    /// `d[key]`; a missing key is a `KeyError`.
    pub async fn get_item(&self, key: impl Arg<K>) -> Result<V, ManagerError> {
        let key = to_wire(&key)?;
        self.base.call_as(DictMethod::GetItem, vec![key]).await
    }

    /// `d[key]` if the key is there, `None` if not (told by the server's
    /// `KeyError`, never by the value).
    pub async fn get(&self, key: impl Arg<K>) -> Result<Option<V>, ManagerError> {
        match self.get_item(key).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if key_error(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `d.get(key, default)`.
    pub async fn get_or(&self, key: impl Arg<K>, default: impl Arg<V>) -> Result<V, ManagerError> {
        let args = vec![to_wire(&key)?, to_wire(&default)?];
        self.base.call_as(DictMethod::Get, args).await
    }

    /// `key in d`.
    pub async fn contains_key(&self, key: impl Arg<K>) -> Result<bool, ManagerError> {
        let key = to_wire(&key)?;
        self.base.call_as(DictMethod::Contains, vec![key]).await
    }

    /// `len(d)`.
    pub async fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(DictMethod::Len, vec![]).await
    }

    /// `len(d) == 0`.
    pub async fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len().await? == 0)
    }

    /// `del d[key]`; a missing key is a `KeyError`.
    pub async fn del(&self, key: impl Arg<K>) -> Result<(), ManagerError> {
        let key = to_wire(&key)?;
        self.base
            .call(DictMethod::DelItem, vec![key])
            .await
            .map(drop)
    }

    /// `d.pop(key)`; a missing key is a `KeyError`.
    pub async fn pop(&self, key: impl Arg<K>) -> Result<V, ManagerError> {
        let key = to_wire(&key)?;
        self.base.call_as(DictMethod::Pop, vec![key]).await
    }

    /// `d.pop(key, default)`: the removed value, or `default` for a
    /// missing key.
    pub async fn pop_or(&self, key: impl Arg<K>, default: impl Arg<V>) -> Result<V, ManagerError> {
        let args = vec![to_wire(&key)?, to_wire(&default)?];
        self.base.call_as(DictMethod::Pop, args).await
    }

    /// `d.pop(key)` as an `Option`.
    pub async fn remove(&self, key: impl Arg<K>) -> Result<Option<V>, ManagerError> {
        match self.pop(key).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if key_error(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `d.popitem()`: removes and returns the last pair inserted; an
    /// empty dict is a `KeyError`.
    pub async fn popitem(&self) -> Result<(K, V), ManagerError> {
        self.base.call_as(DictMethod::PopItem, vec![]).await
    }

    /// `d.setdefault(key, default)`.
    pub async fn setdefault(
        &self,
        key: impl Arg<K>,
        default: impl Arg<V>,
    ) -> Result<V, ManagerError> {
        let args = vec![to_wire(&key)?, to_wire(&default)?];
        self.base.call_as(DictMethod::SetDefault, args).await
    }

    /// `d.update(pairs)`: stores every pair, in order, as one operation.
    pub async fn update<A: Arg<K>, B: Arg<V>>(
        &self,
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<(), ManagerError> {
        let pairs = wire_pairs(pairs)?;
        self.base
            .call(DictMethod::Update, vec![pairs])
            .await
            .map(drop)
    }

    /// `d |= pairs`: [`update`](Self::update), returning this proxy.
    pub async fn ior<A: Arg<K>, B: Arg<V>>(
        &self,
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<&Self, ManagerError> {
        let pairs = wire_pairs(pairs)?;
        self.base.call(DictMethod::IOr, vec![pairs]).await?;
        Ok(self)
    }

    /// `d | other`: a new plain dict, as pairs in order; the shared dict
    /// is unchanged. An unhashable key is a conversion error.
    pub async fn union<A: Arg<K>, B: Arg<V>>(
        &self,
        other: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<(K, V)>, ManagerError> {
        let merged = self
            .base
            .call(DictMethod::Or, vec![wire_map(other)?])
            .await?;
        pairs(merged)
    }

    /// `list(d.keys())`.
    pub async fn keys(&self) -> Result<Vec<K>, ManagerError> {
        self.base.call_as(DictMethod::Keys, vec![]).await
    }

    /// `list(reversed(d))`: the keys, last inserted first.
    pub async fn reversed(&self) -> Result<Vec<K>, ManagerError> {
        self.base.call_as(DictMethod::Reversed, vec![]).await
    }

    /// `list(d.values())`.
    pub async fn values(&self) -> Result<Vec<V>, ManagerError> {
        self.base.call_as(DictMethod::Values, vec![]).await
    }

    /// `list(d.items())`.
    pub async fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        self.base.call_as(DictMethod::Items, vec![]).await
    }

    /// `d.clear()`.
    pub async fn clear(&self) -> Result<(), ManagerError> {
        self.base.call(DictMethod::Clear, vec![]).await.map(drop)
    }

    /// `d.copy()`: a plain copy, as pairs in insertion order.
    pub async fn copy(&self) -> Result<Vec<(K, V)>, ManagerError> {
        pairs(self.base.call(DictMethod::Copy, vec![]).await?)
    }

    /// A copy of the whole dict as pairs in insertion order (Python's
    /// `_getvalue()`).
    pub async fn get_value(&self) -> Result<Vec<(K, V)>, ManagerError> {
        pairs(self.base.get_value_raw().await?)
    }

    /// The `(key, value)` pairs, in chunks of about [`CHUNK_BYTES`]
    /// (1 MiB) from a snapshot the server takes at the first item: one
    /// round trip per chunk (see [`AsyncDictIter`]).
    pub fn iter(&self) -> AsyncDictIter<'_, K, V> {
        AsyncDictIter::new(&self.base, Chunking::bytes(CHUNK_BYTES))
    }

    /// [`iter`](Self::iter), asking for `chunk` pairs every round trip
    /// (at least one).
    pub fn iter_chunked(&self, chunk: usize) -> AsyncDictIter<'_, K, V> {
        AsyncDictIter::new(&self.base, Chunking::items(chunk))
    }
}

/// A dict the server answered, as pairs.
fn pairs<K: DeserializeOwned, V: DeserializeOwned>(
    value: Value,
) -> Result<Vec<(K, V)>, ManagerError> {
    match value {
        Value::Dict(map) => from_wire(Value::List(
            map.into_iter()
                .map(|(k, v)| Value::Tuple(vec![k, v]))
                .collect(),
        )),
        other => Err(ManagerError::Protocol(format!(
            "expected a dict, got {}",
            other.repr()
        ))),
    }
}
