//! [`ListProxy`]: a typed proxy of a shared `list` (Python's `ListProxy`
//! in `multiprocessing.managers`), with every method the server serves.
//!
//! Indexes and slices keep Python's meaning (negative from the end, steps,
//! extended-slice assignment); Rust ranges stand for slices
//! ([`IntoSlice`]). Each call is one round trip and one atomic operation
//! on the server; `+` and `*` give plain `Vec`s, `+=` and `*=` change the
//! shared list in place.

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use mp_proto::message::Kwargs;
use mp_proto::methods::builtin::ListMethod;
use mp_proto::Value;
use multiprocessing_macros::method_list;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::arg::{wire_all, Arg};
use super::chunks::{Chunking, ListIter, CHUNK_BYTES};
use super::slicing::IntoSlice;
use crate::managers::error::ManagerError;
use crate::managers::proxy::{proxy_common, to_wire, BaseProxy};

/// A shared `list` of `T`.
///
/// ```
/// use multiprocessing::managers::{Manager, Slice};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let l = manager.list_from::<i64>(0..10)?;
/// assert_eq!(l.get_slice(2..5)?, [2, 3, 4]);                  // l[2:5]
/// assert_eq!(l.get_slice(Slice::new(None, None, Some(-3)))?, [9, 6, 3, 0]); // l[::-3]
/// l.del_slice(..5)?;                                            // del l[:5]
/// l.iadd([20, 10])?.imul(2)?;                                   // l += [20, 10]; l *= 2
/// assert_eq!(l.len()?, 14);
/// l.sort_reverse()?;
/// assert_eq!(l.get(0)?, 20);
/// assert_eq!(l.index_in(&9, 5..)?, 5);                          // l.index(9, 5)
/// let total: i64 = l.iter().sum::<Result<i64, _>>()?;           // one round trip per ~1 MiB
/// assert_eq!(total, 2 * (5 + 6 + 7 + 8 + 9 + 20 + 10));
/// # Ok(())
/// # }
/// ```
pub struct ListProxy<T> {
    base: BaseProxy,
    _marker: PhantomData<fn() -> T>,
}
proxy_common!(ListProxy<T> = ["list"]);

/// The arguments of `list.index(item, start, stop)` for `item` within
/// `bounds` (negative from the end, as Python's; `..=-1` has no stop).
pub(crate) fn index_args<T>(
    item: &impl Arg<T>,
    bounds: impl RangeBounds<i64>,
) -> Result<Vec<Value>, ManagerError> {
    let start = match bounds.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let mut args = vec![to_wire(item)?, Value::Int(start)];
    let stop = match bounds.end_bound() {
        Bound::Excluded(&e) => Some(e),
        // Through the last item: no stop at all.
        Bound::Included(&-1) | Bound::Unbounded => None,
        Bound::Included(&e) => Some(e.saturating_add(1)),
    };
    args.extend(stop.map(Value::Int));
    Ok(args)
}

fn index(i: i64) -> Value {
    Value::Int(i)
}

#[method_list(LISTED)]
impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Wraps a reference to a `list`.
    pub fn from_base(base: BaseProxy) -> Self {
        ListProxy {
            base,
            _marker: PhantomData,
        }
    }

    fn call(&self, method: ListMethod, args: Vec<Value>) -> Result<(), ManagerError> {
        self.base.call(method, args).map(drop)
    }

    /// `l.append(item)`.
    pub fn append(&self, item: impl Arg<T>) -> Result<(), ManagerError> {
        self.call(ListMethod::Append, vec![to_wire(&item)?])
    }

    /// `l.extend(items)`, in one round trip.
    pub fn extend<A: Arg<T>>(
        &self,
        items: impl IntoIterator<Item = A>,
    ) -> Result<(), ManagerError> {
        self.call(ListMethod::Extend, vec![wire_all(items)?])
    }

    /// `l += items`: extends the shared list in place and returns this
    /// proxy, as Python's `+=` rebinds the name to the same proxy.
    pub fn iadd<A: Arg<T>>(
        &self,
        items: impl IntoIterator<Item = A>,
    ) -> Result<&Self, ManagerError> {
        self.call(ListMethod::IAdd, vec![wire_all(items)?])?;
        Ok(self)
    }

    /// `l *= n`: repeats the shared list's items in place (`n <= 0`
    /// empties it) and returns this proxy.
    pub fn imul(&self, n: i64) -> Result<&Self, ManagerError> {
        self.call(ListMethod::IMul, vec![Value::Int(n)])?;
        Ok(self)
    }

    /// `l + items`: a new plain `Vec`; the shared list is unchanged.
    pub fn concat<A: Arg<T>>(
        &self,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<T>, ManagerError> {
        self.base.call_as(ListMethod::Add, vec![wire_all(items)?])
    }

    /// `l * n`: a new plain `Vec` of the items `n` times (`n <= 0`:
    /// empty); the shared list is unchanged.
    pub fn repeat(&self, n: i64) -> Result<Vec<T>, ManagerError> {
        self.base.call_as(ListMethod::Mul, vec![Value::Int(n)])
    }

    /// `l[i]` (negative counts from the end); out of range is an
    /// `IndexError`.
    pub fn get(&self, i: i64) -> Result<T, ManagerError> {
        self.base.call_as(ListMethod::GetItem, vec![index(i)])
    }

    /// `l[i] = item`; out of range is an `IndexError`.
    pub fn set(&self, i: i64, item: impl Arg<T>) -> Result<(), ManagerError> {
        self.call(ListMethod::SetItem, vec![index(i), to_wire(&item)?])
    }

    /// `del l[i]`; out of range is an `IndexError`.
    pub fn del(&self, i: i64) -> Result<(), ManagerError> {
        self.call(ListMethod::DelItem, vec![index(i)])
    }

    /// `l[start:stop:step]` as a new `Vec`: `l.get_slice(2..5)`,
    /// `l.get_slice(-3..)`, `l.get_slice((..).with_step(-1))`. A step of
    /// zero is a `ValueError`.
    pub fn get_slice(&self, slice: impl IntoSlice) -> Result<Vec<T>, ManagerError> {
        let s = slice.into_slice().to_value();
        self.base.call_as(ListMethod::GetItem, vec![s])
    }

    /// `l[start:stop:step] = items`. A plain slice (no step, or step 1)
    /// may change the list's length; an extended slice needs exactly as
    /// many items as it covers (`ValueError: attempt to assign sequence of
    /// size 1 to extended slice of size 2`).
    pub fn set_slice<A: Arg<T>>(
        &self,
        slice: impl IntoSlice,
        items: impl IntoIterator<Item = A>,
    ) -> Result<(), ManagerError> {
        let s = slice.into_slice().to_value();
        self.call(ListMethod::SetItem, vec![s, wire_all(items)?])
    }

    /// `del l[start:stop:step]`.
    pub fn del_slice(&self, slice: impl IntoSlice) -> Result<(), ManagerError> {
        let s = slice.into_slice().to_value();
        self.call(ListMethod::DelItem, vec![s])
    }

    /// `l.insert(i, item)`: before position `i`, clamped to the list as
    /// Python clamps it.
    pub fn insert(&self, i: i64, item: impl Arg<T>) -> Result<(), ManagerError> {
        self.call(ListMethod::Insert, vec![index(i), to_wire(&item)?])
    }

    /// `l.pop(i)`: removes and returns the item at `i` (`-1`: the last);
    /// an empty list or a bad index is an `IndexError`.
    pub fn pop(&self, i: i64) -> Result<T, ManagerError> {
        self.base.call_as(ListMethod::Pop, vec![index(i)])
    }

    /// `l.remove(item)`: the first equal item; a missing item is a
    /// `ValueError`.
    pub fn remove(&self, item: impl Arg<T>) -> Result<(), ManagerError> {
        self.call(ListMethod::Remove, vec![to_wire(&item)?])
    }

    /// `l.index(item)`: the first position of an equal item; a missing
    /// item is a `ValueError`.
    pub fn index(&self, item: impl Arg<T>) -> Result<usize, ManagerError> {
        self.base.call_as(ListMethod::Index, vec![to_wire(&item)?])
    }

    /// `l.index(item, start, stop)`: the first position of an equal item
    /// within `bounds` (`2..`, `..-1`, `3..=5`; negative from the end, as
    /// Python's bounds); a missing item is a `ValueError`.
    pub fn index_in(
        &self,
        item: impl Arg<T>,
        bounds: impl RangeBounds<i64>,
    ) -> Result<usize, ManagerError> {
        self.base
            .call_as(ListMethod::Index, index_args(&item, bounds)?)
    }

    /// `l.count(item)`.
    pub fn count(&self, item: impl Arg<T>) -> Result<usize, ManagerError> {
        self.base.call_as(ListMethod::Count, vec![to_wire(&item)?])
    }

    /// `item in l`.
    pub fn contains(&self, item: impl Arg<T>) -> Result<bool, ManagerError> {
        self.base
            .call_as(ListMethod::Contains, vec![to_wire(&item)?])
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
        self.call(ListMethod::Reverse, vec![])
    }

    /// `list(reversed(l))`: a new `Vec`, last item first.
    pub fn reversed(&self) -> Result<Vec<T>, ManagerError> {
        self.base.call_as(ListMethod::Reversed, vec![])
    }

    fn sort_by(&self, reverse: bool) -> Result<(), ManagerError> {
        let mut kwargs = Kwargs::new();
        kwargs.insert("reverse".to_owned(), Value::Bool(reverse));
        self.base
            .call_kw(ListMethod::Sort, vec![], kwargs)
            .map(drop)
    }

    /// `l.sort()`, in place, by Python's `<` (stable). Items that Python
    /// cannot order (`1 < "a"`) are a `TypeError`. A key function cannot
    /// travel to the server: to sort by a key, sort a copy here.
    pub fn sort(&self) -> Result<(), ManagerError> {
        self.sort_by(false)
    }

    /// `l.sort(reverse=True)`: largest first, equal items keeping their
    /// order.
    pub fn sort_reverse(&self) -> Result<(), ManagerError> {
        self.sort_by(true)
    }

    /// `l.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.call(ListMethod::Clear, vec![])
    }

    /// `l.copy()`: the items as a plain `Vec` (the same as
    /// [`get_value`](Self::get_value)).
    pub fn copy(&self) -> Result<Vec<T>, ManagerError> {
        self.base.call_as(ListMethod::Copy, vec![])
    }

    /// A copy of the whole list (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<Vec<T>, ManagerError> {
        self.base.get_value_as()
    }

    /// The items in order, in chunks of about [`CHUNK_BYTES`] (1 MiB,
    /// whatever the items' size): one round trip per chunk, never the
    /// whole list at once (see [`ListIter`] for the chunk sizes and what
    /// it sees of concurrent changes).
    pub fn iter(&self) -> ListIter<'_, T> {
        ListIter::new(
            &self.base,
            ListMethod::GetItem.name(),
            Chunking::bytes(CHUNK_BYTES),
        )
    }

    /// [`iter`](Self::iter), asking for `chunk` items every round trip
    /// (at least one).
    pub fn iter_chunked(&self, chunk: usize) -> ListIter<'_, T> {
        ListIter::new(
            &self.base,
            ListMethod::GetItem.name(),
            Chunking::items(chunk),
        )
    }
}

impl<'a, T: Serialize + DeserializeOwned> IntoIterator for &'a ListProxy<T> {
    type Item = Result<T, ManagerError>;
    type IntoIter = ListIter<'a, T>;

    /// [`ListProxy::iter`].
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}
