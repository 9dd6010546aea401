//! [`AsyncValueProxy`], [`AsyncNamespaceProxy`] and [`AsyncArrayProxy`]:
//! a shared `Value`, `Namespace` and `Array` for async code, the async
//! counterparts of [`ValueProxy`](crate::managers::ValueProxy),
//! [`NamespaceProxy`](crate::managers::NamespaceProxy) and
//! [`ArrayProxy`](crate::managers::ArrayProxy), with the same methods.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;

use mp_proto::methods::builtin::{ArrayMethod, NamespaceMethod, ValueMethod};
use mp_proto::{ErrorKind, RemoteError, Value};
use mp_sys::lock;
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::super::chunks::AsyncListIter;
use super::super::proxy::{async_proxy_common, AsyncBaseProxy, AsyncProxyType};
use crate::managers::error::ManagerError;
use crate::managers::proxies::arg::wire_all;
use crate::managers::proxies::chunks::{Chunking, CHUNK_BYTES};
use crate::managers::proxies::{Arg, IntoSlice};
use crate::managers::proxy::{from_wire, to_wire};

/// A shared `Value` of `T`, for async code.
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
///     let v = manager.value::<f64>("d", 1.5).await.unwrap();
///     v.set(2.5).await.unwrap();
///     assert_eq!(v.get().await.unwrap(), 2.5);
/// });
/// # }
/// ```
pub struct AsyncValueProxy<T> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> T>,
}
async_proxy_common!(AsyncValueProxy<T> = ["Value"]);

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> AsyncValueProxy<T> {
    /// The value (`v.value`).
    pub async fn get(&self) -> Result<T, ManagerError> {
        self.base.call_as(ValueMethod::Get, vec![]).await
    }

    /// Replaces the value (`v.value = x`).
    pub async fn set(&self, value: impl Arg<T>) -> Result<(), ManagerError> {
        let value = to_wire(&value)?;
        self.base
            .call(ValueMethod::Set, vec![value])
            .await
            .map(drop)
    }

    /// The value (Python's `_getvalue()`).
    pub async fn get_value(&self) -> Result<T, ManagerError> {
        self.get().await
    }
}

/// A shared `Namespace`, for async code. A name starting with `_` stays
/// in this proxy and never reaches the server, as in Python.
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
///     let ns = manager.namespace().await.unwrap();
///     ns.set("x", 10).await.unwrap();
///     assert_eq!(ns.get::<i64>("x").await.unwrap(), 10);
///     ns.del("x").await.unwrap();
///     assert!(!ns.has("x").await.unwrap());
/// });
/// # }
/// ```
pub struct AsyncNamespaceProxy {
    base: AsyncBaseProxy,
    local: Mutex<HashMap<String, Value>>,
}

impl Clone for AsyncNamespaceProxy {
    /// A new reference; the copy starts without the local `_` names,
    /// which belong to one proxy object as in Python.
    fn clone(&self) -> Self {
        AsyncNamespaceProxy::from_base(self.base.clone())
    }
}

impl AsyncProxyType for AsyncNamespaceProxy {
    const TYPEIDS: &'static [&'static str] = &["Namespace"];
    fn from_base(base: AsyncBaseProxy) -> Self {
        AsyncNamespaceProxy {
            base,
            local: Mutex::new(HashMap::new()),
        }
    }
    fn base(&self) -> &AsyncBaseProxy {
        &self.base
    }
}

impl std::fmt::Debug for AsyncNamespaceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.base.fmt_debug("AsyncNamespaceProxy", f)
    }
}

/// `AttributeError: message`.
fn attribute_error(message: String) -> ManagerError {
    ManagerError::Remote(RemoteError::new(ErrorKind::AttributeError, message))
}

#[method_list(LISTED)]
impl AsyncNamespaceProxy {
    /// A copy of the referent (Python's `_getvalue()`).
    pub async fn get_value(&self) -> Result<Value, ManagerError> {
        self.base.get_value_raw().await
    }

    /// `ns.name`; a missing attribute is an `AttributeError`.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, ManagerError> {
        if name.starts_with('_') {
            let v = lock(&self.local).get(name).cloned().ok_or_else(|| {
                attribute_error(format!("'NamespaceProxy' object has no attribute '{name}'"))
            })?;
            return from_wire(v);
        }
        self.base
            .call_as(NamespaceMethod::GetAttribute, vec![Value::Str(name.into())])
            .await
    }

    /// `hasattr(ns, name)`: whether `name` is set.
    pub async fn has(&self, name: &str) -> Result<bool, ManagerError> {
        match self.get::<Value>(name).await {
            Ok(_) => Ok(true),
            Err(ManagerError::Remote(e)) if e.kind == ErrorKind::AttributeError => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A copy of every attribute the server holds, as `T` (a struct with
    /// the attributes' names as fields, or a map).
    pub async fn get_value_as<T: DeserializeOwned>(&self) -> Result<T, ManagerError> {
        self.base.get_value_as().await
    }

    /// `ns.name = value`, for any serializable value, given or borrowed.
    pub async fn set(&self, name: &str, value: impl Serialize) -> Result<(), ManagerError> {
        let v = to_wire(&value)?;
        if name.starts_with('_') {
            lock(&self.local).insert(name.to_owned(), v);
            return Ok(());
        }
        let args = vec![Value::Str(name.into()), v];
        self.base
            .call(NamespaceMethod::SetAttr, args)
            .await
            .map(drop)
    }

    /// `del ns.name`; a missing attribute is an `AttributeError`.
    pub async fn del(&self, name: &str) -> Result<(), ManagerError> {
        if name.starts_with('_') {
            return match lock(&self.local).remove(name) {
                Some(_) => Ok(()),
                None => Err(attribute_error(name.to_owned())),
            };
        }
        self.base
            .call(NamespaceMethod::DelAttr, vec![Value::Str(name.into())])
            .await
            .map(drop)
    }
}

/// A shared `Array` of `T`, for async code; items are checked against
/// the typecode by the server.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use multiprocessing::managers::asyncio::AsyncSyncManager;
/// use multiprocessing::managers::{IntoSlice, Manager};
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let manager = AsyncSyncManager::connect(&address, b"key").await.unwrap();
///     let a = manager.array::<i32>("i", [1, 2, 3, 4]).await.unwrap();
///     a.set(0, 10).await.unwrap();
///     a.set_slice(1..3, [20, 30]).await.unwrap();
///     assert_eq!(a.get_slice(..).await.unwrap(), [10, 20, 30, 4]);
///     assert_eq!(a.get_slice((..).with_step(-2)).await.unwrap(), [4, 20]);
/// });
/// # }
/// ```
pub struct AsyncArrayProxy<T> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> T>,
}
async_proxy_common!(AsyncArrayProxy<T> = ["Array"]);

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> AsyncArrayProxy<T> {
    /// `len(a)`.
    pub async fn len(&self) -> Result<usize, ManagerError> {
        self.base.call_as(ArrayMethod::Len, vec![]).await
    }

    /// `len(a) == 0`.
    pub async fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len().await? == 0)
    }

    /// `a[i]` (negative counts from the end).
    pub async fn get(&self, i: i64) -> Result<T, ManagerError> {
        self.base
            .call_as(ArrayMethod::GetItem, vec![Value::Int(i)])
            .await
    }

    /// `a[i] = value`; a value the typecode cannot hold is an error.
    pub async fn set(&self, i: i64, value: impl Arg<T>) -> Result<(), ManagerError> {
        let args = vec![Value::Int(i), to_wire(&value)?];
        self.base.call(ArrayMethod::SetItem, args).await.map(drop)
    }

    /// `a[start:stop:step]` as a new `Vec` (see [`IntoSlice`]).
    pub async fn get_slice(&self, slice: impl IntoSlice) -> Result<Vec<T>, ManagerError> {
        let s = slice.into_slice().to_value();
        self.base.call_as(ArrayMethod::GetItem, vec![s]).await
    }

    /// `a[start:stop:step] = items`: a plain slice may change the length;
    /// an extended slice needs exactly as many items as it covers.
    pub async fn set_slice<A: Arg<T>>(
        &self,
        slice: impl IntoSlice,
        items: impl IntoIterator<Item = A>,
    ) -> Result<(), ManagerError> {
        let args = vec![slice.into_slice().to_value(), wire_all(items)?];
        self.base.call(ArrayMethod::SetItem, args).await.map(drop)
    }

    /// The items in order, in chunks of about [`CHUNK_BYTES`] (1 MiB):
    /// one round trip per chunk (see [`AsyncListIter`]).
    pub fn iter(&self) -> AsyncListIter<'_, T> {
        AsyncListIter::new(
            &self.base,
            ArrayMethod::GetItem.name(),
            Chunking::bytes(CHUNK_BYTES),
        )
    }

    /// [`iter`](Self::iter), asking for `chunk` items every round trip
    /// (at least one).
    pub fn iter_chunked(&self, chunk: usize) -> AsyncListIter<'_, T> {
        AsyncListIter::new(
            &self.base,
            ArrayMethod::GetItem.name(),
            Chunking::items(chunk),
        )
    }

    /// A copy of the whole array (Python's `_getvalue()`).
    pub async fn get_value(&self) -> Result<Vec<T>, ManagerError> {
        self.base.get_value_as().await
    }
}
