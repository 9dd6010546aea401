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
//!   twice or skipped. Each chunk is one consistent slice. It reads one
//!   slice ahead: as a chunk arrives the next is asked for, so the server
//!   builds it while this process converts and uses the last (with
//!   items of about a word, a pass runs at `get_value()`'s speed); at most
//!   two chunks are in this process or on the wire at once. So a change
//!   made while a chunk is used shows from the chunk after next — but an
//!   item appended before the end is still yielded: a short slice read
//!   ahead is checked by one more fetch before the iteration ends.
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
//! # Chunk sizes
//!
//! `iter()` sizes its chunks in bytes: the first asks for [`FIRST_CHUNK`]
//! items, and each next one for as many as should come to about
//! [`CHUNK_BYTES`] (1 MiB, in-memory size as `Value::estimated_bytes`
//! counts it) at the size the items have had so far, at most
//! [`MAX_CHUNK`]: a list of small integers comes tens of thousands at a time, one of
//! 100 KB strings 10 at a time, so what this process holds at once stays
//! near 1 MiB whatever the items. `iter_chunked(n)` asks for `n` items
//! every time instead.
//!
//! The server bounds each answer in bytes too: a dict chunk stops short
//! of its per-operation limit (`max-value-bytes`), and a list slice past
//! it (a `MemoryError`) is asked for again in halves, down to one item,
//! and never larger afterwards. Every item is a `Result`: after the first
//! error the iterator ends.

use std::marker::PhantomData;

use mp_proto::message::{Kwargs, Target};
use mp_proto::methods::builtin::{DictMethod, IteratorMethod};
use mp_proto::slice::Slice;
use mp_proto::{ErrorKind, Value};
use serde::de::DeserializeOwned;

use crate::managers::client::InFlight;
use crate::managers::error::ManagerError;
use crate::managers::proxy::BaseProxy;
use crate::managers::transfer::convert_answer;

/// How many items the first chunk of `iter()` asks for, before any
/// item's size is known.
pub const FIRST_CHUNK: usize = 1024;
/// About how many bytes each later chunk of `iter()` brings (1 MiB).
pub const CHUNK_BYTES: usize = 1 << 20;
/// The most items one chunk of `iter()` asks for.
pub const MAX_CHUNK: usize = 65_536;

/// How many items the next chunk asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunking {
    /// The next request's count.
    n: usize,
    /// Aim each chunk at this many bytes; `None`: keep `n`.
    target: Option<usize>,
    /// No larger than this: the server found a larger slice too big.
    ceiling: usize,
}

impl Chunking {
    /// `n` items every time (at least one).
    pub(crate) fn items(n: usize) -> Self {
        let n = n.max(1);
        Chunking {
            n,
            target: None,
            ceiling: n,
        }
    }

    /// About `target` bytes each, starting at [`FIRST_CHUNK`] items.
    pub(crate) fn bytes(target: usize) -> Self {
        Chunking {
            n: FIRST_CHUNK,
            target: Some(target.max(1)),
            ceiling: MAX_CHUNK,
        }
    }

    /// The count to ask for.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// A chunk came as `items` (its wire values): size the next one.
    pub(crate) fn after(&mut self, items: &[Value]) {
        if let Some(target) = self.target {
            if let Some(per_item) = item_bytes(items) {
                self.n = (target / per_item.max(1)).clamp(1, self.ceiling);
            }
        }
    }

    /// The server refused a chunk of [`n`](Self::n) items as too large:
    /// half as many from now on; `false` if it was one item already.
    pub(crate) fn halve(&mut self) -> bool {
        if self.n <= 1 {
            return false;
        }
        self.n /= 2;
        self.ceiling = self.n;
        true
    }
}

/// Items measured to size the next chunk: enough to tell small items
/// from large ones, few enough that measuring costs nothing next to the
/// chunk itself.
const SAMPLE: usize = 32;

/// The average size of `items` (`Value::estimated_bytes`), from up to
/// [`SAMPLE`] of them spread over the chunk; `None` for no items.
fn item_bytes(items: &[Value]) -> Option<usize> {
    let step = (items.len() / SAMPLE).max(1);
    let (count, sum) = items
        .iter()
        .step_by(step)
        .take(SAMPLE)
        .fold((0usize, 0usize), |(n, s), v| {
            (n + 1, s.saturating_add(v.estimated_bytes()))
        });
    (count > 0).then(|| sum / count)
}

/// The chunk being yielded (moved out item by item, never copied), and
/// whether another round trip may bring more; the blocking and the async
/// iterators' one buffer.
pub(crate) struct Buffer<T> {
    pub(crate) items: std::vec::IntoIter<T>,
    /// No more round trips: the referent has no more, or one failed.
    pub(crate) done: bool,
}

impl<T> Buffer<T> {
    pub(crate) fn new() -> Self {
        Buffer {
            items: Vec::new().into_iter(),
            done: false,
        }
    }

    /// The next item, fetching the next chunk with `fetch` when this one
    /// is used up. `fetch` gives the chunk and whether more may follow.
    fn next_with(
        &mut self,
        fetch: impl FnOnce() -> Result<(Vec<T>, bool), ManagerError>,
    ) -> Option<Result<T, ManagerError>> {
        if let Some(item) = self.items.next() {
            return Some(Ok(item));
        }
        if self.done {
            return None;
        }
        self.refill(fetch())
    }

    /// Takes a fetch's outcome: the chunk and whether more may follow,
    /// or the error to yield once before the end.
    pub(crate) fn refill(
        &mut self,
        fetched: Result<(Vec<T>, bool), ManagerError>,
    ) -> Option<Result<T, ManagerError>> {
        match fetched {
            // An empty fetch ends it too, whatever it says: no loop of
            // empty round trips.
            Ok((items, more)) => {
                self.done = !more || items.is_empty();
                self.items = items.into_iter();
                self.items.next().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
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
/// // 2 round trips (1024 items, then the rest), not 10,000 of one.
/// let sum = l.iter().sum::<Result<i64, _>>()?;
/// assert_eq!(sum, (0..10_000).sum::<i64>());
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
    chunk: Chunking,
    buffer: Buffer<T>,
    /// The next slice, asked for already.
    prefetch: Option<Prefetch>,
}

impl<'a, T: DeserializeOwned> ListIter<'a, T> {
    pub(crate) fn new(base: &'a BaseProxy, method: &'static str, chunk: Chunking) -> Self {
        ListIter {
            base,
            method,
            position: 0,
            chunk,
            buffer: Buffer::new(),
            prefetch: None,
        }
    }
}

/// The slice `l[position:position+n]` as an argument.
pub(crate) fn slice_arg(position: i64, n: usize) -> Value {
    let stop = position.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
    Slice::new(Some(position), Some(stop), None).to_value()
}

/// The request for the next slice, sent while the last one is used: the
/// server builds chunk k+1 while the caller converts and consumes chunk
/// k. It names the slice it asked for.
struct Prefetch {
    call: InFlight,
    position: i64,
    n: usize,
}

/// Reads the next slice `l[position:position+n]` (the one `prefetch`
/// asked for, if it matches), halving `n` while the server finds the
/// slice too large for one answer; whether more may follow. When more
/// may, the slice after it is requested before returning.
fn fetch_slice<T: DeserializeOwned>(
    base: &BaseProxy,
    method: &'static str,
    position: &mut i64,
    chunk: &mut Chunking,
    prefetch: &mut Option<Prefetch>,
) -> Result<(Vec<T>, bool), ManagerError> {
    loop {
        let n = chunk.n();
        let (answer, ahead) = match prefetch.take() {
            Some(p) if p.position == *position && p.n == n => {
                (p.call.wait().and_then(|r| r.into_value()), true)
            }
            _ => (base.call(method, vec![slice_arg(*position, n)]), false),
        };
        match answer {
            Ok(value) => {
                if let Value::List(items) = &value {
                    chunk.after(items);
                }
                let got = match &value {
                    Value::List(items) => items.len(),
                    _ => 0,
                };
                if ahead && got == 0 {
                    // The end, as it was when this slice was asked for:
                    // ask again now, for what was appended since.
                    continue;
                }
                *position = position.saturating_add(i64::try_from(got).unwrap_or(i64::MAX));
                // A short slice read ahead is the end only as it was: the
                // next fetch (not read ahead) confirms it.
                let more = got == n || ahead;
                if got == n {
                    // A failed send only means no prefetch: the next
                    // fetch asks again, and meets the error there.
                    let next = chunk.n();
                    *prefetch = base.current().ok().and_then(|(client, id)| {
                        let args = vec![slice_arg(*position, next)];
                        let call = client
                            .send_call(Target::Object(id), method, args, Kwargs::new())
                            .ok()?;
                        Some(Prefetch {
                            call,
                            position: *position,
                            n: next,
                        })
                    });
                }
                let items: Vec<T> = convert_answer(&base.client()?, value)?;
                return Ok((items, more));
            }
            Err(ManagerError::Remote(e)) if e.kind == ErrorKind::MemoryError && chunk.halve() => {}
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
            prefetch,
        } = self;
        buffer.next_with(|| fetch_slice(base, method, position, chunk, prefetch))
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
    chunk: Chunking,
    buffer: Buffer<(K, V)>,
    _marker: PhantomData<fn() -> (K, V)>,
}

impl<'a, K, V> DictIter<'a, K, V> {
    pub(crate) fn new(dict: &'a BaseProxy, chunk: Chunking) -> Self {
        DictIter {
            dict,
            snapshot: None,
            chunk,
            buffer: Buffer::new(),
            _marker: PhantomData,
        }
    }
}

/// Takes the next chunk of `snapshot`; whether more remain.
fn fetch_pairs<K: DeserializeOwned, V: DeserializeOwned>(
    dict: &BaseProxy,
    snapshot: &mut Option<BaseProxy>,
    chunk: &mut Chunking,
) -> Result<(Vec<(K, V)>, bool), ManagerError> {
    let it = match snapshot {
        Some(it) => it,
        None => {
            snapshot.insert(dict.call_returning::<BaseProxy>(DictMethod::IterItems.name(), vec![])?)
        }
    };
    let n = Value::Int(i64::try_from(chunk.n()).unwrap_or(i64::MAX));
    let answer = it.call(IteratorMethod::NextChunk, vec![n])?;
    if let Value::Tuple(parts) = &answer {
        if let Some(Value::List(pairs)) = parts.first() {
            chunk.after(pairs);
        }
    }
    let (pairs, left): (Vec<(K, V)>, u64) = convert_answer(&it.client()?, answer)?;
    if left == 0 {
        // Released now rather than when the iterator is dropped.
        *snapshot = None;
    }
    Ok((pairs, left > 0))
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
        let item = buffer.next_with(|| fetch_pairs(dict, snapshot, chunk));
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
            b.next_with(|| {
                calls += 1;
                Ok((vec![1, 2], calls < 2))
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
        let e = b.next_with(|| Err(ManagerError::Protocol("boom".into())));
        assert!(matches!(e, Some(Err(ManagerError::Protocol(_)))));
        assert!(b.next_with(|| panic!("fetched after an error")).is_none());
    }

    /// `n` strings of `len` bytes.
    fn strings(n: usize, len: usize) -> Vec<Value> {
        vec![Value::Str("x".repeat(len)); n]
    }

    #[test]
    fn chunks_by_bytes_aim_at_the_target_at_the_items_size() {
        let slot = std::mem::size_of::<Value>();
        let mut c = Chunking::bytes(1 << 20);
        assert_eq!(c.n(), FIRST_CHUNK);
        c.after(&vec![Value::Int(1); 1024]); // small items: many at once
        assert_eq!(c.n(), (1 << 20) / slot);
        c.after(&strings(3, 2 << 20)); // items of 2 MiB: one at a time
        assert_eq!(c.n(), 1);
        c.after(&strings(100, 100_000)); // about 100 KB each
        assert_eq!(c.n(), 10);
        c.after(&[Value::None]);
        assert_eq!(c.n(), (1 << 20) / slot);
        c.after(&[]); // nothing came: nothing learnt
        assert_eq!(c.n(), (1 << 20) / slot);
    }

    #[test]
    fn the_size_is_sampled_across_the_chunk() {
        // Small items first, large ones after: a sample of the first few
        // alone would take them all for small.
        let mut items = vec![Value::Int(0); 5000];
        items.extend(strings(5000, 1000));
        let per_item = item_bytes(&items).unwrap();
        assert!((400..700).contains(&per_item), "{per_item}");
        assert_eq!(item_bytes(&[]), None);
    }

    #[test]
    fn a_refused_chunk_halves_and_stays_below_the_refusal() {
        let mut c = Chunking::bytes(1 << 20);
        assert!(c.halve());
        assert_eq!(c.n(), FIRST_CHUNK / 2);
        c.after(&[Value::None]); // tiny items would ask for more: not past the refusal
        assert_eq!(c.n(), FIRST_CHUNK / 2);
        let mut one = Chunking::items(0);
        assert_eq!(one.n(), 1, "at least one item");
        assert!(!one.halve(), "one item cannot be halved");
        let mut fixed = Chunking::items(100);
        fixed.after(&strings(100, 1 << 20));
        assert_eq!(fixed.n(), 100, "a given count is kept");
    }

    #[test]
    fn an_empty_fetch_ends_the_iteration() {
        let mut b: Buffer<i32> = Buffer::new();
        assert!(b.next_with(|| Ok((vec![], true))).is_none());
        assert!(b.next_with(|| panic!("fetched after the end")).is_none());
    }
}
