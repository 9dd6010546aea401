//! Iterating a shared list, array or dict in chunks: one round trip per
//! chunk of items, never one per item, and never a copy of the whole
//! referent in this process.
//!
//! * [`ListIter`] (a list's or an array's items) reads the slices
//!   `l[i:i+n]`, walking by position as Python's list iterator does. It
//!   needs nothing from the server but slicing. Under concurrent changes
//!   it sees what Python's list iterator would: an item appended before
//!   the end is reached is yielded; an item inserted or deleted *before*
//!   the position reached shifts the rest, so one item may be yielded
//!   twice or skipped. Each chunk is one consistent slice.
//! * [`DictIter`] (a dict's `(key, value)` pairs) asks the server for a
//!   snapshot of the pairs (`dict._iter_items`, an `Iterator`
//!   object) and takes it `n` pairs at a time (`Iterator._next_chunk`).
//!   It yields the dict as it was when the first item was asked for, each
//!   pair once, whatever happens to the dict meanwhile — where Python
//!   raises `RuntimeError: dictionary changed size during iteration`. The
//!   snapshot lives on the server, charged to its memory budget, until
//!   the iteration ends or the iterator is dropped; taking it is one
//!   operation, so a dict too large to copy at once (`max-value-bytes`)
//!   is the `MemoryError` its `items()` would be.
//!
//! The chunk size is a count of items ([`DEFAULT_CHUNK`] unless given).
//! The server bounds each answer in bytes too: a dict chunk stops short
//! of its per-operation limit (`max-value-bytes`), and a list slice past
//! it (a `MemoryError`) is asked for again in halves, down to one item.
//! Every item is a `Result`: after the first error the iterator ends.

use std::collections::VecDeque;
use std::marker::PhantomData;

use mp_proto::methods::builtin::{DictMethod, IteratorMethod};
use mp_proto::slice::Slice;
use mp_proto::{ErrorKind, Value};
use serde::de::DeserializeOwned;

use crate::managers::error::ManagerError;
use crate::managers::proxy::BaseProxy;
use crate::managers::transfer::convert_answer;

/// How many items one round trip fetches unless told otherwise.
pub const DEFAULT_CHUNK: usize = 1024;

/// Items read ahead and not yet yielded.
struct Buffer<T> {
    items: VecDeque<T>,
    /// No more round trips: the referent has no more, or one failed.
    done: bool,
}

impl<T> Buffer<T> {
    fn new() -> Self {
        Buffer {
            items: VecDeque::new(),
            done: false,
        }
    }

    /// The next item, fetching more with `fetch` when the buffer is empty.
    /// `fetch` fills `items` and says whether more may follow.
    fn next_with(
        &mut self,
        fetch: impl FnOnce(&mut VecDeque<T>) -> Result<bool, ManagerError>,
    ) -> Option<Result<T, ManagerError>> {
        if let Some(item) = self.items.pop_front() {
            return Some(Ok(item));
        }
        if self.done {
            return None;
        }
        match fetch(&mut self.items) {
            // An empty fetch ends it too, whatever it says: no loop of
            // empty round trips.
            Ok(more) => self.done = !more || self.items.is_empty(),
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.items.pop_front().map(Ok)
    }
}

/// The items of a shared list or array, fetched `chunk` at a time by
/// slicing (see the [module](self) for the semantics under concurrent
/// changes). Made by [`ListProxy::iter`](super::ListProxy::iter) and
/// [`ArrayProxy::iter`](super::ArrayProxy::iter).
///
/// ```
/// use multiprocessing::managers::Manager;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let l = manager.list_from::<i64>(0..10_000)?;
/// // 10 round trips of 1024 items, not 10,000 of one.
/// let sum = l.iter().sum::<Result<i64, _>>()?;
/// assert_eq!(sum, (0..10_000).sum());
/// for x in l.iter_chunked(100).take(3) {
///     println!("{}", x?);
/// }
/// # Ok(())
/// # }
/// ```
pub struct ListIter<'a, T> {
    base: &'a BaseProxy,
    /// The referent's `__getitem__`.
    method: &'static str,
    /// The position of the next chunk.
    position: i64,
    chunk: usize,
    buffer: Buffer<T>,
}

impl<'a, T: DeserializeOwned> ListIter<'a, T> {
    pub(crate) fn new(base: &'a BaseProxy, method: &'static str, chunk: usize) -> Self {
        ListIter {
            base,
            method,
            position: 0,
            chunk: chunk.max(1),
            buffer: Buffer::new(),
        }
    }
}

/// Reads `l[position:position+chunk]`, halving `chunk` while the server
/// finds the slice too large for one answer; whether more may follow.
fn fetch_slice<T: DeserializeOwned>(
    base: &BaseProxy,
    method: &'static str,
    position: &mut i64,
    chunk: &mut usize,
    out: &mut VecDeque<T>,
) -> Result<bool, ManagerError> {
    loop {
        let n = i64::try_from(*chunk).unwrap_or(i64::MAX);
        let stop = position.saturating_add(n);
        let slice = Slice::new(Some(*position), Some(stop), None).to_value();
        match base.call(method, vec![slice]) {
            Ok(value) => {
                let items: Vec<T> = convert_answer(&base.client()?, value)?;
                let got = items.len();
                *position = position.saturating_add(i64::try_from(got).unwrap_or(i64::MAX));
                out.extend(items);
                return Ok(got == *chunk);
            }
            Err(ManagerError::Remote(e)) if e.kind == ErrorKind::MemoryError && *chunk > 1 => {
                *chunk /= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

impl<T: DeserializeOwned> Iterator for ListIter<'_, T> {
    type Item = Result<T, ManagerError>;

    fn next(&mut self) -> Option<Self::Item> {
        let ListIter {
            base,
            method,
            position,
            chunk,
            buffer,
        } = self;
        buffer.next_with(|out| fetch_slice(base, method, position, chunk, out))
    }
}

impl<T: DeserializeOwned> std::iter::FusedIterator for ListIter<'_, T> {}

/// The `(key, value)` pairs of a shared dict, from a snapshot on the
/// server fetched `chunk` pairs at a time (see the [module](self)). Made
/// by [`DictProxy::iter`](super::DictProxy::iter).
///
/// ```
/// use multiprocessing::managers::Manager;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let d = manager.dict_from::<i64, i64>((0..5000).map(|i| (i, i * i)))?;
/// let mut n = 0;
/// for pair in &d {
///     let (k, v) = pair?;
///     assert_eq!(v, k * k);
///     d.del(k)?; // safe: the iteration walks a snapshot
///     n += 1;
/// }
/// assert_eq!((n, d.len()?), (5000, 0));
/// # Ok(())
/// # }
/// ```
pub struct DictIter<'a, K, V> {
    dict: &'a BaseProxy,
    /// The server's snapshot, once made; dropped (released) at the end.
    snapshot: Option<BaseProxy>,
    chunk: usize,
    buffer: Buffer<(K, V)>,
    _marker: PhantomData<fn() -> (K, V)>,
}

impl<'a, K, V> DictIter<'a, K, V> {
    pub(crate) fn new(dict: &'a BaseProxy, chunk: usize) -> Self {
        DictIter {
            dict,
            snapshot: None,
            chunk: chunk.max(1),
            buffer: Buffer::new(),
            _marker: PhantomData,
        }
    }
}

/// Takes the next chunk of `snapshot`; whether more remain.
fn fetch_pairs<K: DeserializeOwned, V: DeserializeOwned>(
    dict: &BaseProxy,
    snapshot: &mut Option<BaseProxy>,
    chunk: usize,
    out: &mut VecDeque<(K, V)>,
) -> Result<bool, ManagerError> {
    let it = match snapshot {
        Some(it) => it,
        None => {
            snapshot.insert(dict.call_returning::<BaseProxy>(DictMethod::IterItems.name(), vec![])?)
        }
    };
    let n = Value::Int(i64::try_from(chunk).unwrap_or(i64::MAX));
    let (pairs, left): (Vec<(K, V)>, u64) = it.call_as(IteratorMethod::NextChunk, vec![n])?;
    out.extend(pairs);
    if left == 0 {
        // Released now rather than when the iterator is dropped.
        *snapshot = None;
    }
    Ok(left > 0)
}

impl<K: DeserializeOwned, V: DeserializeOwned> Iterator for DictIter<'_, K, V> {
    type Item = Result<(K, V), ManagerError>;

    fn next(&mut self) -> Option<Self::Item> {
        let DictIter {
            dict,
            snapshot,
            chunk,
            buffer,
            ..
        } = self;
        let item = buffer.next_with(|out| fetch_pairs(dict, snapshot, *chunk, out));
        if buffer.done {
            *snapshot = None;
        }
        item
    }
}

impl<K: DeserializeOwned, V: DeserializeOwned> std::iter::FusedIterator for DictIter<'_, K, V> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_yields_what_each_fetch_brings_then_stops() {
        let mut b = Buffer::new();
        let mut calls = 0;
        let mut next = |b: &mut Buffer<i32>| {
            b.next_with(|out| {
                calls += 1;
                out.extend([1, 2]);
                Ok(calls < 2)
            })
        };
        let got: Vec<_> = std::iter::from_fn(|| next(&mut b))
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [1, 2, 1, 2]);
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_failed_fetch_is_yielded_once_and_ends_the_iteration() {
        let mut b: Buffer<i32> = Buffer::new();
        let e = b.next_with(|_| Err(ManagerError::Protocol("boom".into())));
        assert!(matches!(e, Some(Err(ManagerError::Protocol(_)))));
        assert!(b.next_with(|_| panic!("fetched after an error")).is_none());
    }

    #[test]
    fn an_empty_fetch_ends_the_iteration() {
        let mut b: Buffer<i32> = Buffer::new();
        assert!(b.next_with(|_| Ok(true)).is_none());
        assert!(b.next_with(|_| panic!("fetched after the end")).is_none());
    }
}
