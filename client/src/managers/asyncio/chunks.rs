//! Iterating a shared list, array or dict from async code in chunks:
//! [`AsyncListIter`] and [`AsyncDictIter`], the async counterparts of
//! [`ListIter`](crate::managers::ListIter) and
//! [`DictIter`](crate::managers::DictIter), with the same round trips,
//! chunk sizes and semantics under concurrent changes (see
//! [`managers::proxies::chunks`](crate::managers::proxies::chunks)): a
//! list is read by slices of about 1 MiB with one slice read ahead, a
//! dict from a snapshot the server takes at the first item
//! (`dict._iter_items`, then `Iterator._next_chunk`).
//!
//! They are async iterators in tokio's manner
//! (`tokio::fs::ReadDir::next_entry`): `while let Some(item) =
//! it.next().await`, with no `Stream` dependency. To use one as a
//! `futures::Stream`, wrap it: `futures::stream::unfold(it, |mut it|
//! async move { it.next().await.map(|x| (x, it)) })`.
//!
//! # Cancellation
//!
//! `next()` is cancellation safe: a dropped `next()` yields nothing and
//! skips nothing. A list's asks for the same slice again; a dict's keeps
//! its call (taking the snapshot, or the next chunk, which the server
//! hands out once) and the next `next()` takes up its answer.

use std::marker::PhantomData;

use mp_proto::methods::builtin::{DictMethod, IteratorMethod};
use mp_proto::{ErrorKind, Value};
use serde::de::DeserializeOwned;

use super::proxy::{AsyncBaseProxy, InFlight};
use crate::managers::error::ManagerError;
use crate::managers::proxies::chunks::{slice_arg, Buffer, Chunking};
use crate::managers::proxy::from_wire;

/// The items of a shared list or array, fetched a chunk at a time by
/// slicing, one slice read ahead (see the [module](self)). Made by
/// [`AsyncListProxy::iter`](super::AsyncListProxy::iter) and
/// [`AsyncArrayProxy::iter`](super::AsyncArrayProxy::iter).
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
///     let l = manager.list::<i64>().await.unwrap();
///     l.extend(0..10_000).await.unwrap();
///     // 2 round trips (1024 items, then the rest), not 10,000 of one.
///     let mut items = l.iter();
///     let mut sum = 0;
///     while let Some(x) = items.next().await {
///         sum += x.unwrap();
///     }
///     assert_eq!(sum, (0..10_000).sum::<i64>());
/// });
/// # }
/// ```
pub struct AsyncListIter<'a, T> {
    base: &'a AsyncBaseProxy,
    /// The referent's `__getitem__`.
    method: &'static str,
    /// The position of the next chunk.
    position: i64,
    chunk: Chunking,
    buffer: Buffer<T>,
    /// The next slice, asked for already.
    prefetch: Option<Prefetch>,
}

/// The request for the next slice, sent while the last one is used. It
/// names the slice it asked for.
struct Prefetch {
    call: InFlight,
    position: i64,
    n: usize,
}

impl<'a, T: DeserializeOwned> AsyncListIter<'a, T> {
    pub(super) fn new(base: &'a AsyncBaseProxy, method: &'static str, chunk: Chunking) -> Self {
        AsyncListIter {
            base,
            method,
            position: 0,
            chunk,
            buffer: Buffer::new(),
            prefetch: None,
        }
    }

    /// The next item; `None` at the end. After an error, the iteration
    /// ends. Cancellation safe.
    pub async fn next(&mut self) -> Option<Result<T, ManagerError>> {
        if let Some(item) = self.buffer.items.next() {
            return Some(Ok(item));
        }
        if self.buffer.done {
            return None;
        }
        let fetched = self.fetch().await;
        self.buffer.refill(fetched)
    }

    /// Reads the next slice `l[position:position+n]` (the one read ahead,
    /// if it matches), halving `n` while the server finds the slice too
    /// large for one answer; whether more may follow. When more may, the
    /// slice after it is asked for before returning. Nothing changes
    /// before the answer is in, so a dropped fetch is asked for again.
    async fn fetch(&mut self) -> Result<(Vec<T>, bool), ManagerError> {
        loop {
            let n = self.chunk.n();
            let (answer, ahead) = match self.prefetch.take() {
                Some(mut p) if p.position == self.position && p.n == n => {
                    (p.call.answer().await.and_then(|r| r.into_value()), true)
                }
                _ => {
                    let args = vec![slice_arg(self.position, n)];
                    (self.base.call(self.method, args).await, false)
                }
            };
            match answer {
                Ok(value) => {
                    let got = match &value {
                        Value::List(items) => {
                            self.chunk.after(items);
                            items.len()
                        }
                        _ => 0,
                    };
                    if ahead && got == 0 {
                        // The end, as it was when this slice was asked
                        // for: ask again now, for what was appended since.
                        continue;
                    }
                    self.position = self
                        .position
                        .saturating_add(i64::try_from(got).unwrap_or(i64::MAX));
                    // A short slice read ahead is the end only as it was:
                    // the next fetch (not read ahead) confirms it.
                    let more = got == n || ahead;
                    if got == n {
                        // Not sent (a reconnection under way, a lost
                        // connection): the next fetch asks the ordinary way.
                        let next = self.chunk.n();
                        let args = vec![slice_arg(self.position, next)];
                        self.prefetch =
                            self.base.send_now(self.method, args).map(|call| Prefetch {
                                call,
                                position: self.position,
                                n: next,
                            });
                    }
                    let items: Vec<T> = from_wire(value)?;
                    return Ok((items, more));
                }
                Err(ManagerError::Remote(e))
                    if e.kind == ErrorKind::MemoryError && self.chunk.halve() => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The `(key, value)` pairs of a shared dict, from a snapshot on the
/// server fetched a chunk at a time (see the [module](self)). Made by
/// [`AsyncDictProxy::iter`](super::AsyncDictProxy::iter).
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
///     let d = manager.dict::<i64, i64>().await.unwrap();
///     d.update((0..5000).map(|i| (i, i * i))).await.unwrap();
///     let mut pairs = d.iter();
///     let mut n = 0;
///     while let Some(pair) = pairs.next().await {
///         let (k, v) = pair.unwrap();
///         assert_eq!(v, k * k);
///         d.del(k).await.unwrap(); // safe: the iteration walks a snapshot
///         n += 1;
///     }
///     assert_eq!((n, d.len().await.unwrap()), (5000, 0));
/// });
/// # }
/// ```
pub struct AsyncDictIter<'a, K, V> {
    dict: &'a AsyncBaseProxy,
    /// The server's snapshot, once made; dropped (released) at the end.
    snapshot: Option<AsyncBaseProxy>,
    /// The call taking the snapshot, or the next chunk, while it is in
    /// flight: kept across a dropped `next()`, whose answer the next
    /// `next()` takes up.
    in_flight: Option<InFlight>,
    chunk: Chunking,
    buffer: Buffer<(K, V)>,
    _marker: PhantomData<fn() -> (K, V)>,
}

impl<'a, K: DeserializeOwned, V: DeserializeOwned> AsyncDictIter<'a, K, V> {
    pub(super) fn new(dict: &'a AsyncBaseProxy, chunk: Chunking) -> Self {
        AsyncDictIter {
            dict,
            snapshot: None,
            in_flight: None,
            chunk,
            buffer: Buffer::new(),
            _marker: PhantomData,
        }
    }

    /// The next pair; `None` at the end. After an error, the iteration
    /// ends. Cancellation safe.
    pub async fn next(&mut self) -> Option<Result<(K, V), ManagerError>> {
        if let Some(item) = self.buffer.items.next() {
            return Some(Ok(item));
        }
        if self.buffer.done {
            return None;
        }
        let fetched = self.fetch().await;
        let item = self.buffer.refill(fetched);
        if self.buffer.done {
            // Released now rather than when the iterator is dropped.
            self.snapshot = None;
        }
        item
    }

    /// Takes the next chunk of the snapshot (taking the snapshot first);
    /// whether more remain. Each call it makes stays in `in_flight` until
    /// its answer is in, so a dropped fetch loses no pair and no
    /// reference: the next one awaits the same call.
    async fn fetch(&mut self) -> Result<(Vec<(K, V)>, bool), ManagerError> {
        let snapshot = match &self.snapshot {
            Some(it) => it,
            None => {
                let call = match &mut self.in_flight {
                    Some(call) => call,
                    None => {
                        let call = self.dict.send(DictMethod::IterItems.name(), vec![]).await?;
                        self.in_flight.insert(call)
                    }
                };
                let answer = call.answer().await;
                self.in_flight = None;
                let token = answer?.into_proxy()?.token;
                let it = AsyncBaseProxy::from_owned(self.dict.client().clone(), token);
                self.snapshot.insert(it)
            }
        };
        let call = match &mut self.in_flight {
            Some(call) => call,
            None => {
                let n = Value::Int(i64::try_from(self.chunk.n()).unwrap_or(i64::MAX));
                let call = snapshot
                    .send(IteratorMethod::NextChunk.name(), vec![n])
                    .await?;
                self.in_flight.insert(call)
            }
        };
        let answer = call.answer().await;
        self.in_flight = None;
        let answer = answer?.into_value()?;
        if let Value::Tuple(parts) = &answer {
            if let Some(Value::List(pairs)) = parts.first() {
                self.chunk.after(pairs);
            }
        }
        let (pairs, left): (Vec<(K, V)>, u64) = from_wire(answer)?;
        Ok((pairs, left > 0))
    }
}
