//! Async proxies of SyncManager's containers: [`AsyncDictProxy`],
//! [`AsyncListProxy`], [`AsyncValueProxy`], [`AsyncNamespaceProxy`] and
//! [`AsyncArrayProxy`], the async counterparts of the sync proxies of the
//! same names. None of their calls waits on the server; a dropped future
//! forgets its answer, but a call already sent still happens.

use std::marker::PhantomData;

use mp_proto::methods::builtin::{
    ArrayMethod, DictMethod, ListMethod, NamespaceMethod, ValueMethod,
};
use mp_proto::{ErrorKind, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::proxy::{async_proxy_common, AsyncBaseProxy};
use crate::managers::error::ManagerError;
use crate::managers::proxies::Arg;
use crate::managers::proxy::to_wire;

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
///     assert_eq!(d.get("a").await.unwrap(), Some(1));
///     assert_eq!(d.get("b").await.unwrap(), None);
/// });
/// # }
/// ```
pub struct AsyncDictProxy<K, V> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> (K, V)>,
}
async_proxy_common!(AsyncDictProxy<K, V> = ["dict"]);

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

    /// `d[key]` if the key is there, `None` if not.
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

    /// `d.pop(key)` as an `Option`.
    pub async fn remove(&self, key: impl Arg<K>) -> Result<Option<V>, ManagerError> {
        match self.pop(key).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if key_error(&e) => Ok(None),
            Err(e) => Err(e),
        }
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

    /// `d.keys()`.
    pub async fn keys(&self) -> Result<Vec<K>, ManagerError> {
        self.base.call_as(DictMethod::Keys, vec![]).await
    }

    /// `d.values()`.
    pub async fn values(&self) -> Result<Vec<V>, ManagerError> {
        self.base.call_as(DictMethod::Values, vec![]).await
    }

    /// `d.items()`.
    pub async fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        self.base.call_as(DictMethod::Items, vec![]).await
    }

    /// `d.clear()`.
    pub async fn clear(&self) -> Result<(), ManagerError> {
        self.base.call(DictMethod::Clear, vec![]).await.map(drop)
    }
}

/// A shared `list` of `T`, for async code.
pub struct AsyncListProxy<T> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> T>,
}
async_proxy_common!(AsyncListProxy<T> = ["list"]);

impl<T: Serialize + DeserializeOwned> AsyncListProxy<T> {
    /// `l.append(item)`.
    pub async fn append(&self, item: impl Arg<T>) -> Result<(), ManagerError> {
        let item = to_wire(&item)?;
        self.base
            .call(ListMethod::Append, vec![item])
            .await
            .map(drop)
    }

    /// `l.extend(items)`.
    pub async fn extend<A: Arg<T>>(
        &self,
        items: impl IntoIterator<Item = A>,
    ) -> Result<(), ManagerError> {
        let items = items
            .into_iter()
            .map(|i| to_wire(&i))
            .collect::<Result<Vec<_>, _>>()?;
        self.base
            .call(ListMethod::Extend, vec![Value::List(items)])
            .await
            .map(drop)
    }

    /// `l[i]` (negative from the end); out of range is an `IndexError`.
    pub async fn get(&self, i: i64) -> Result<T, ManagerError> {
        self.base
            .call_as(ListMethod::GetItem, vec![Value::Int(i)])
            .await
    }

    /// `l[i] = item`.
    pub async fn set(&self, i: i64, item: impl Arg<T>) -> Result<(), ManagerError> {
        let args = vec![Value::Int(i), to_wire(&item)?];
        self.base.call(ListMethod::SetItem, args).await.map(drop)
    }

    /// `l.insert(i, item)`.
    pub async fn insert(&self, i: i64, item: impl Arg<T>) -> Result<(), ManagerError> {
        let args = vec![Value::Int(i), to_wire(&item)?];
        self.base.call(ListMethod::Insert, args).await.map(drop)
    }

    /// `l.pop(i)`.
    pub async fn pop(&self, i: i64) -> Result<T, ManagerError> {
        self.base
            .call_as(ListMethod::Pop, vec![Value::Int(i)])
            .await
    }

    /// `l.remove(item)`: the first equal item (`ValueError` if none).
    pub async fn remove(&self, item: impl Arg<T>) -> Result<(), ManagerError> {
        let item = to_wire(&item)?;
        self.base
            .call(ListMethod::Remove, vec![item])
            .await
            .map(drop)
    }

    /// `l.index(item)`.
    pub async fn index(&self, item: impl Arg<T>) -> Result<usize, ManagerError> {
        let item = to_wire(&item)?;
        self.base.call_as(ListMethod::Index, vec![item]).await
    }

    /// `l.count(item)`.
    pub async fn count(&self, item: impl Arg<T>) -> Result<usize, ManagerError> {
        let item = to_wire(&item)?;
        self.base.call_as(ListMethod::Count, vec![item]).await
    }

    /// `item in l`.
    pub async fn contains(&self, item: impl Arg<T>) -> Result<bool, ManagerError> {
        let item = to_wire(&item)?;
        self.base.call_as(ListMethod::Contains, vec![item]).await
    }

    /// `len(l)`.
    pub async fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(ListMethod::Len, vec![]).await
    }

    /// `len(l) == 0`.
    pub async fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len().await? == 0)
    }

    /// `l.clear()`.
    pub async fn clear(&self) -> Result<(), ManagerError> {
        self.base.call(ListMethod::Clear, vec![]).await.map(drop)
    }

    /// `l.copy()`: every item.
    pub async fn copy(&self) -> Result<Vec<T>, ManagerError> {
        self.base.call_as(ListMethod::Copy, vec![]).await
    }
}

/// A shared `Value` of `T`, for async code.
pub struct AsyncValueProxy<T> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> T>,
}
async_proxy_common!(AsyncValueProxy<T> = ["Value"]);

impl<T: Serialize + DeserializeOwned> AsyncValueProxy<T> {
    /// The value.
    pub async fn get(&self) -> Result<T, ManagerError> {
        self.base.call_as(ValueMethod::Get, vec![]).await
    }

    /// Replaces the value.
    pub async fn set(&self, value: impl Arg<T>) -> Result<(), ManagerError> {
        let value = to_wire(&value)?;
        self.base
            .call(ValueMethod::Set, vec![value])
            .await
            .map(drop)
    }
}

/// A shared `Namespace`, for async code.
pub struct AsyncNamespaceProxy {
    base: AsyncBaseProxy,
}
async_proxy_common!(AsyncNamespaceProxy = ["Namespace"]);

impl AsyncNamespaceProxy {
    /// `ns.name`; a missing attribute is an `AttributeError`.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, ManagerError> {
        self.base
            .call_as(NamespaceMethod::GetAttribute, vec![Value::Str(name.into())])
            .await
    }

    /// `ns.name = value`.
    pub async fn set(&self, name: &str, value: impl Serialize) -> Result<(), ManagerError> {
        let args = vec![Value::Str(name.into()), to_wire(&value)?];
        self.base
            .call(NamespaceMethod::SetAttr, args)
            .await
            .map(drop)
    }

    /// `del ns.name`.
    pub async fn del(&self, name: &str) -> Result<(), ManagerError> {
        self.base
            .call(NamespaceMethod::DelAttr, vec![Value::Str(name.into())])
            .await
            .map(drop)
    }
}

/// A shared `Array` of `T`, for async code.
pub struct AsyncArrayProxy<T> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> T>,
}
async_proxy_common!(AsyncArrayProxy<T> = ["Array"]);

impl<T: Serialize + DeserializeOwned> AsyncArrayProxy<T> {
    /// `len(a)`.
    pub async fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(ArrayMethod::Len, vec![]).await
    }

    /// `len(a) == 0`.
    pub async fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len().await? == 0)
    }

    /// `a[i]`.
    pub async fn get(&self, i: i64) -> Result<T, ManagerError> {
        self.base
            .call_as(ArrayMethod::GetItem, vec![Value::Int(i)])
            .await
    }

    /// `a[i] = value`.
    pub async fn set(&self, i: i64, value: impl Arg<T>) -> Result<(), ManagerError> {
        let args = vec![Value::Int(i), to_wire(&value)?];
        self.base.call(ArrayMethod::SetItem, args).await.map(drop)
    }
}
