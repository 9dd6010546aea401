//! Python's `slice` on the wire: `l[1:3]`, `del l[::2]`, `a[-2:]`.
//!
//! A [`Value`] has no slice variant, so a slice travels as a tagged tuple,
//! `("$slice", start, stop, step)` with `None` for an omitted bound; a list
//! index is never legitimately a tuple, so the form cannot be mistaken for
//! a real argument. Clients build it with [`Slice::to_value`]; a CPython
//! codec maps `builtins.slice` to the same form. [`Slice::indices`] is
//! Python's `slice.indices(len)`, which both sides need (the server to
//! apply a slice, a client to size what it will get back).

use crate::{ErrorKind, RemoteError, Value};

/// The tag that marks a tuple as a slice.
pub const SLICE_TAG: &str = "$slice";

/// `slice(start, stop, step)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    /// First index, or from the start.
    pub start: Option<i64>,
    /// One past the last index, or to the end.
    pub stop: Option<i64>,
    /// Stride, or 1.
    pub step: Option<i64>,
}

/// A slice resolved against a length: the positions it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The first position.
    pub start: i64,
    /// Where it stops (exclusive).
    pub stop: i64,
    /// The stride, never zero.
    pub step: i64,
    /// How many positions it covers.
    pub len: usize,
}

impl Resolved {
    /// The positions covered, in slice order.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        // Every position of a resolved slice lies in 0..len of the list, so
        // the casts are lossless.
        (0..self.len).map(move |i| (self.start + i as i64 * self.step) as usize)
    }
}

impl Slice {
    /// `slice(start, stop, step)`.
    pub fn new(start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Self {
        Slice { start, stop, step }
    }

    /// The wire form: `("$slice", start, stop, step)`.
    pub fn to_value(&self) -> Value {
        let bound = |b: Option<i64>| b.map_or(Value::None, Value::Int);
        Value::Tuple(vec![
            Value::Str(SLICE_TAG.to_owned()),
            bound(self.start),
            bound(self.stop),
            bound(self.step),
        ])
    }

    /// Reads the wire form; `None` if `value` is not a slice.
    pub fn from_value(value: &Value) -> Option<Result<Slice, RemoteError>> {
        let Value::Tuple(items) = value else {
            return None;
        };
        match items.as_slice() {
            [Value::Str(tag), start, stop, step] if tag == SLICE_TAG => {
                let bound = |v: &Value| match v {
                    Value::None => Ok(None),
                    other => other.as_int().map(Some).ok_or_else(|| {
                        RemoteError::new(
                            ErrorKind::TypeError,
                            "slice indices must be integers or None or have an __index__ method",
                        )
                    }),
                };
                Some((|| {
                    Ok(Slice::new(bound(start)?, bound(stop)?, bound(step)?))
                })())
            }
            _ => None,
        }
    }

    /// Python's `slice.indices(len)`: clamps the bounds to `0..len`.
    pub fn indices(&self, len: usize) -> Result<Resolved, RemoteError> {
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        // Python clamps a step below -sys.maxsize to -sys.maxsize, which
        // also keeps `-step` below from overflowing.
        let step = self.step.unwrap_or(1).max(-i64::MAX);
        if step == 0 {
            return Err(RemoteError::new(
                ErrorKind::ValueError,
                "slice step cannot be zero",
            ));
        }
        let (lower, upper) = if step < 0 { (-1, len - 1) } else { (0, len) };
        let clamp = |bound: Option<i64>, default: i64| match bound {
            None => default,
            Some(b) if b < 0 => (b.saturating_add(len)).max(lower),
            Some(b) => b.min(upper),
        };
        let start = clamp(self.start, if step < 0 { upper } else { lower });
        let stop = clamp(self.stop, if step < 0 { lower } else { upper });
        let count = if step < 0 {
            if stop < start {
                (start - stop - 1) / (-step) + 1
            } else {
                0
            }
        } else if start < stop {
            (stop - start - 1) / step + 1
        } else {
            0
        };
        Ok(Resolved {
            start,
            stop,
            step,
            len: usize::try_from(count).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_negative_step_is_clamped_as_python_does() {
        // CPython: list(range(5))[::-2**63] == [4]
        let r = Slice::new(None, None, Some(i64::MIN)).indices(5).unwrap();
        assert_eq!(r.positions().collect::<Vec<_>>(), vec![4]);
        let r = Slice::new(Some(i64::MIN), Some(i64::MAX), Some(i64::MAX))
            .indices(5)
            .unwrap();
        assert_eq!(r.positions().collect::<Vec<_>>(), vec![0]);
    }
}
