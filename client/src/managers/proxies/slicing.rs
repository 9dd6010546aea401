//! [`IntoSlice`]: Rust ranges as Python slices, for the slicing methods
//! of [`ListProxy`](super::ListProxy) and [`ArrayProxy`](super::ArrayProxy).
//!
//! `l.get_slice(2..5)` is Python's `l[2:5]`, `..` is `l[:]`, `-3..` is
//! `l[-3:]`; a step needs a [`Slice`] (`Slice::new(start, stop, step)`)
//! or [`IntoSlice::with_step`] (`(..).with_step(-1)` is `l[::-1]`).
//! Bounds keep Python's meaning, negative ones counting from the end, and
//! are resolved by the server against the list as it is when the call
//! arrives. A slice running down from a bound to a lower one (`l[8:2:-2]`)
//! is best written `Slice::new(Some(8), Some(2), Some(-2))`: clippy denies
//! `8..2`, an empty range to Rust.

use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

use mp_proto::slice::Slice;

/// What a slicing method accepts: a [`Slice`], or a Rust range of `i64`,
/// `i32`, `isize` or `usize` (an unsuffixed literal range such as `2..5`
/// is an `i32` one).
///
/// An inclusive range ends one past its last index, as Python needs:
/// `..=-1` (through the last item) is `l[:]`, `..=-2` is `l[:-1]`. A
/// `usize` bound past `i64::MAX` is clamped to it (no list is longer).
///
/// ```
/// use multiprocessing::managers::{IntoSlice, Slice};
///
/// assert_eq!((2..5).into_slice(), Slice::new(Some(2), Some(5), None));
/// assert_eq!((-3..).into_slice(), Slice::new(Some(-3), None, None));
/// assert_eq!((..=-2).into_slice(), Slice::new(None, Some(-1), None));
/// assert_eq!((..).with_step(-1), Slice::new(None, None, Some(-1)));
/// ```
pub trait IntoSlice {
    /// The Python slice this stands for.
    fn into_slice(self) -> Slice;

    /// The same bounds with a step (`l[start:stop:step]`).
    fn with_step(self, step: i64) -> Slice
    where
        Self: Sized,
    {
        Slice {
            step: Some(step),
            ..self.into_slice()
        }
    }
}

impl IntoSlice for Slice {
    fn into_slice(self) -> Slice {
        self
    }
}

/// A bound as Python's integer.
trait Bound: Copy {
    fn to_i64(self) -> i64;
}

impl Bound for i64 {
    fn to_i64(self) -> i64 {
        self
    }
}

impl Bound for i32 {
    fn to_i64(self) -> i64 {
        self.into()
    }
}

impl Bound for isize {
    fn to_i64(self) -> i64 {
        // isize is at most 64 bits on every supported target.
        i64::try_from(self).unwrap_or(if self < 0 { i64::MIN } else { i64::MAX })
    }
}

impl Bound for usize {
    fn to_i64(self) -> i64 {
        i64::try_from(self).unwrap_or(i64::MAX)
    }
}

/// The exclusive stop of an inclusive range ending at `last`: `None` for
/// `-1` (through the end), as `l[:0]` would be empty.
fn after(last: i64) -> Option<i64> {
    match last {
        -1 => None,
        _ => last.checked_add(1),
    }
}

macro_rules! range_slices {
    ($($t:ty),*) => {$(
        impl IntoSlice for Range<$t> {
            fn into_slice(self) -> Slice {
                Slice::new(Some(self.start.to_i64()), Some(self.end.to_i64()), None)
            }
        }
        impl IntoSlice for RangeFrom<$t> {
            fn into_slice(self) -> Slice {
                Slice::new(Some(self.start.to_i64()), None, None)
            }
        }
        impl IntoSlice for RangeTo<$t> {
            fn into_slice(self) -> Slice {
                Slice::new(None, Some(self.end.to_i64()), None)
            }
        }
        impl IntoSlice for RangeInclusive<$t> {
            fn into_slice(self) -> Slice {
                Slice::new(Some(self.start().to_i64()), after(self.end().to_i64()), None)
            }
        }
        impl IntoSlice for RangeToInclusive<$t> {
            fn into_slice(self) -> Slice {
                Slice::new(None, after(self.end.to_i64()), None)
            }
        }
    )*};
}

range_slices!(i64, i32, isize, usize);

impl IntoSlice for RangeFull {
    fn into_slice(self) -> Slice {
        Slice::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Slice {
        Slice::new(start, stop, step)
    }

    #[test]
    fn ranges_are_python_slices() {
        assert_eq!((2..5).into_slice(), s(Some(2), Some(5), None));
        assert_eq!((2i64..).into_slice(), s(Some(2), None, None));
        assert_eq!((..5usize).into_slice(), s(None, Some(5), None));
        assert_eq!((..).into_slice(), s(None, None, None));
        assert_eq!((-3..-1).into_slice(), s(Some(-3), Some(-1), None));
        let n: usize = 7;
        assert_eq!((n..n + 2).into_slice(), s(Some(7), Some(9), None));
        assert_eq!((1isize..3).into_slice(), s(Some(1), Some(3), None));
    }

    #[test]
    fn an_inclusive_end_is_one_past_it_except_through_the_last() {
        assert_eq!((1..=3).into_slice(), s(Some(1), Some(4), None));
        assert_eq!((..=0).into_slice(), s(None, Some(1), None));
        assert_eq!((..=-2).into_slice(), s(None, Some(-1), None));
        // `..=-1` runs through the last item: l[:], not the empty l[:0].
        assert_eq!((..=-1).into_slice(), s(None, None, None));
        assert_eq!((-3..=-1).into_slice(), s(Some(-3), None, None));
        assert_eq!((0..=i64::MAX).into_slice(), s(Some(0), None, None));
    }

    #[test]
    fn a_step_is_kept_with_the_bounds() {
        assert_eq!((..).with_step(-1), s(None, None, Some(-1)));
        assert_eq!((1..8).with_step(3), s(Some(1), Some(8), Some(3)));
        assert_eq!(
            s(Some(1), None, Some(2)).into_slice(),
            s(Some(1), None, Some(2))
        );
    }

    #[test]
    fn a_usize_past_i64_is_clamped() {
        assert_eq!((usize::MAX..).into_slice(), s(Some(i64::MAX), None, None));
        assert_eq!((..usize::MAX).into_slice(), s(None, Some(i64::MAX), None));
    }
}
