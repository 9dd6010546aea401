//! [`AsyncListProxy`]: a shared `list` for async code, the async
//! counterpart of [`ListProxy`](crate::managers::ListProxy), with the
//! same methods: indexes and slices keep Python's meaning, Rust ranges
//! stand for slices ([`IntoSlice`]).

use std::marker::PhantomData;
use std::ops::RangeBounds;

use mp_proto::message::Kwargs;
use mp_proto::methods::builtin::ListMethod;
use mp_proto::Value;
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::super::chunks::AsyncListIter;
use super::super::proxy::{async_proxy_common, AsyncBaseProxy};
use crate::managers::error::ManagerError;
use crate::managers::proxies::arg::wire_all;
use crate::managers::proxies::chunks::{Chunking, CHUNK_BYTES};
use crate::managers::proxies::list::index_args;
use crate::managers::proxies::{Arg, IntoSlice};
use crate::managers::proxy::to_wire;

/// A shared `list` of `T`, for async code.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use multiprocessing::managers::asyncio::AsyncSyncManager;
/// use multiprocessing::managers::{Manager, Slice};
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let manager = AsyncSyncManager::connect(&address, b"key").await.unwrap();
///     let l = manager.list::<i64>().await.unwrap();
///     l.extend(0..10).await.unwrap();
///     assert_eq!(l.get_slice(2..5).await.unwrap(), [2, 3, 4]); // l[2:5]
///     let back = Slice::new(None, None, Some(-3));
///     assert_eq!(l.get_slice(back).await.unwrap(), [9, 6, 3, 0]); // l[::-3]
///     l.del_slice(..5).await.unwrap(); // del l[:5]
///     l.iadd([20, 10]).await.unwrap().imul(2).await.unwrap(); // l += [20, 10]; l *= 2
///     assert_eq!(l.len().await.unwrap(), 14);
///     let mut items = l.iter(); // one round trip per ~1 MiB
///     let mut total = 0;
///     while let Some(x) = items.next().await {
///         total += x.unwrap();
///     }
///     assert_eq!(total, 2 * (5 + 6 + 7 + 8 + 9 + 20 + 10));
/// });
/// # }
/// ```
pub struct AsyncListProxy<T> {
    base: AsyncBaseProxy,
    _marker: PhantomData<fn() -> T>,
}
async_proxy_common!(AsyncListProxy<T> = ["list"]);

fn index(i: i64) -> Value {
    Value::Int(i)
}

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> AsyncListProxy<T> {
    /// `l.append(item)`.
    pub async fn append(&self, item: impl Arg<T>) -> Result<(), ManagerError> {
        let item = to_wire(&item)?;
        self.unit(ListMethod::Append, vec![item]).await
    }

    /// `l.extend(items)`, in one round trip.
    pub async fn extend<A: Arg<T>>(
        &self,
        items: impl IntoIterator<Item = A>,
    ) -> Result<(), ManagerError> {
        let items = wire_all(items)?;
        self.unit(ListMethod::Extend, vec![items]).await
    }

    /// `l += items`: extends the shared list in place and returns this
    /// proxy.
    pub async fn iadd<A: Arg<T>>(
        &self,
        items: impl IntoIterator<Item = A>,
    ) -> Result<&Self, ManagerError> {
        let items = wire_all(items)?;
        self.unit(ListMethod::IAdd, vec![items]).await?;
        Ok(self)
    }

    /// `l *= n`: repeats the items in place (`n <= 0` empties it) and
    /// returns this proxy.
    pub async fn imul(&self, n: i64) -> Result<&Self, ManagerError> {
        self.unit(ListMethod::IMul, vec![Value::Int(n)]).await?;
        Ok(self)
    }

    /// `l + items`: a new plain `Vec`; the shared list is unchanged.
    pub async fn concat<A: Arg<T>>(
        &self,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<T>, ManagerError> {
        let items = wire_all(items)?;
        self.base.call_as(ListMethod::Add, vec![items]).await
    }

    /// `l * n`: a new plain `Vec` of the items `n` times.
    pub async fn repeat(&self, n: i64) -> Result<Vec<T>, ManagerError> {
        self.base
            .call_as(ListMethod::Mul, vec![Value::Int(n)])
            .await
    }

    /// `l[i]` (negative from the end); out of range is an `IndexError`.
    pub async fn get(&self, i: i64) -> Result<T, ManagerError> {
        self.base.call_as(ListMethod::GetItem, vec![index(i)]).await
    }

    /// `l[i] = item`; out of range is an `IndexError`.
    pub async fn set(&self, i: i64, item: impl Arg<T>) -> Result<(), ManagerError> {
        let args = vec![index(i), to_wire(&item)?];
        self.unit(ListMethod::SetItem, args).await
    }

    /// `del l[i]`; out of range is an `IndexError`.
    pub async fn del(&self, i: i64) -> Result<(), ManagerError> {
        self.unit(ListMethod::DelItem, vec![index(i)]).await
    }

    /// `l[start:stop:step]` as a new `Vec` (see [`IntoSlice`]); a step of
    /// zero is a `ValueError`.
    pub async fn get_slice(&self, slice: impl IntoSlice) -> Result<Vec<T>, ManagerError> {
        let s = slice.into_slice().to_value();
        self.base.call_as(ListMethod::GetItem, vec![s]).await
    }

    /// `l[start:stop:step] = items`: a plain slice may change the
    /// length; an extended slice needs exactly as many items as it
    /// covers (`ValueError`).
    pub async fn set_slice<A: Arg<T>>(
        &self,
        slice: impl IntoSlice,
        items: impl IntoIterator<Item = A>,
    ) -> Result<(), ManagerError> {
        let args = vec![slice.into_slice().to_value(), wire_all(items)?];
        self.unit(ListMethod::SetItem, args).await
    }

    /// `del l[start:stop:step]`.
    pub async fn del_slice(&self, slice: impl IntoSlice) -> Result<(), ManagerError> {
        let s = slice.into_slice().to_value();
        self.unit(ListMethod::DelItem, vec![s]).await
    }

    /// `l.insert(i, item)`, clamped to the list as Python clamps it.
    pub async fn insert(&self, i: i64, item: impl Arg<T>) -> Result<(), ManagerError> {
        let args = vec![index(i), to_wire(&item)?];
        self.unit(ListMethod::Insert, args).await
    }

    /// `l.pop(i)` (`-1`: the last); an empty list or a bad index is an
    /// `IndexError`.
    pub async fn pop(&self, i: i64) -> Result<T, ManagerError> {
        self.base.call_as(ListMethod::Pop, vec![index(i)]).await
    }

    /// `l.remove(item)`: the first equal item (`ValueError` if none).
    pub async fn remove(&self, item: impl Arg<T>) -> Result<(), ManagerError> {
        let item = to_wire(&item)?;
        self.unit(ListMethod::Remove, vec![item]).await
    }

    /// `l.index(item)` (`ValueError` if missing).
    pub async fn index(&self, item: impl Arg<T>) -> Result<usize, ManagerError> {
        let item = to_wire(&item)?;
        self.base.call_as(ListMethod::Index, vec![item]).await
    }

    /// `l.index(item, start, stop)`: the first position of an equal item
    /// within `bounds`, as [`ListProxy::index_in`](crate::managers::ListProxy::index_in).
    pub async fn index_in(
        &self,
        item: impl Arg<T>,
        bounds: impl RangeBounds<i64>,
    ) -> Result<usize, ManagerError> {
        self.base
            .call_as(ListMethod::Index, index_args(&item, bounds)?)
            .await
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

    /// `l.reverse()`, in place.
    pub async fn reverse(&self) -> Result<(), ManagerError> {
        self.unit(ListMethod::Reverse, vec![]).await
    }

    /// `list(reversed(l))`: a new `Vec`, last item first.
    pub async fn reversed(&self) -> Result<Vec<T>, ManagerError> {
        self.base.call_as(ListMethod::Reversed, vec![]).await
    }

    /// `l.sort()`, in place, by Python's `<` (stable); items Python
    /// cannot order are a `TypeError`.
    pub async fn sort(&self) -> Result<(), ManagerError> {
        self.sort_by(false).await
    }

    /// `l.sort(reverse=True)`.
    pub async fn sort_reverse(&self) -> Result<(), ManagerError> {
        self.sort_by(true).await
    }

    /// `l.clear()`.
    pub async fn clear(&self) -> Result<(), ManagerError> {
        self.unit(ListMethod::Clear, vec![]).await
    }

    /// `l.copy()`: every item.
    pub async fn copy(&self) -> Result<Vec<T>, ManagerError> {
        self.base.call_as(ListMethod::Copy, vec![]).await
    }

    /// A copy of the whole list (Python's `_getvalue()`).
    pub async fn get_value(&self) -> Result<Vec<T>, ManagerError> {
        self.base.get_value_as().await
    }

    /// The items in order, in chunks of about [`CHUNK_BYTES`] (1 MiB),
    /// one slice read ahead (see [`AsyncListIter`]).
    pub fn iter(&self) -> AsyncListIter<'_, T> {
        AsyncListIter::new(
            &self.base,
            ListMethod::GetItem.name(),
            Chunking::bytes(CHUNK_BYTES),
        )
    }

    /// [`iter`](Self::iter), asking for `chunk` items every round trip
    /// (at least one).
    pub fn iter_chunked(&self, chunk: usize) -> AsyncListIter<'_, T> {
        AsyncListIter::new(
            &self.base,
            ListMethod::GetItem.name(),
            Chunking::items(chunk),
        )
    }
}

impl<T: Serialize + DeserializeOwned> AsyncListProxy<T> {
    async fn unit(&self, method: ListMethod, args: Vec<Value>) -> Result<(), ManagerError> {
        self.base.call(method, args).await.map(drop)
    }

    async fn sort_by(&self, reverse: bool) -> Result<(), ManagerError> {
        let mut kwargs = Kwargs::new();
        kwargs.insert("reverse".to_owned(), Value::Bool(reverse));
        self.base
            .call_kw(ListMethod::Sort, vec![], kwargs)
            .await
            .map(drop)
    }
}
