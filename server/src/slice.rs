//! Subscripts applied to a sequence: a position or a slice resolved
//! against its length, slice assignment and deletion, as Python's `list`
//! does them. The slice itself and its wire form are
//! [`mp_proto::slice`].

use mp_proto::{RemoteError, Value};

pub use mp_proto::slice::{Resolved, Slice, SLICE_TAG};

use crate::args::int_arg;
use crate::errors::{index_error, type_error, value_error};

/// A list subscript: one position or a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// `l[i]` (possibly negative).
    At(i64),
    /// `l[a:b:c]`.
    Slice(Slice),
}

impl Index {
    /// Reads a subscript for a sequence called `what` (`"list"`): an
    /// integer or a slice, else Python's `TypeError`.
    pub fn from_value(value: &Value, what: &str) -> Result<Index, RemoteError> {
        if let Some(slice) = Slice::from_value(value) {
            return slice.map(Index::Slice);
        }
        value.as_int().map(Index::At).ok_or_else(|| {
            type_error(format!(
                "{what} indices must be integers or slices, not {}",
                value.type_name()
            ))
        })
    }
}

/// Resolves a possibly negative position against `len`, or Python's
/// `IndexError: {what} index out of range`.
pub fn position(index: i64, len: usize, what: &str) -> Result<usize, RemoteError> {
    let ilen = i64::try_from(len).unwrap_or(i64::MAX);
    let i = if index < 0 {
        index.saturating_add(ilen)
    } else {
        index
    };
    if (0..ilen).contains(&i) {
        // In 0..len, so the cast is lossless.
        Ok(i as usize)
    } else {
        Err(index_error(format!("{what} index out of range")))
    }
}

/// Clamps an insertion point the way `list.insert` does.
pub fn insertion_point(index: i64, len: usize) -> usize {
    let ilen = i64::try_from(len).unwrap_or(i64::MAX);
    let i = if index < 0 {
        (index.saturating_add(ilen)).max(0)
    } else {
        index.min(ilen)
    };
    i as usize
}

/// Reads an optional integer bound (`index(x, start, stop)`).
pub fn opt_int(value: Option<&Value>) -> Result<Option<i64>, RemoteError> {
    match value {
        None | Some(Value::None) => Ok(None),
        Some(v) => int_arg(v).map(Some),
    }
}

/// Replaces the positions `slice` covers in `items` with `new`, as Python's
/// slice assignment does: a plain slice may change the length, an extended
/// one must match it.
pub fn assign<T>(items: &mut Vec<T>, slice: &Slice, new: Vec<T>) -> Result<(), RemoteError> {
    let r = slice.indices(items.len())?;
    if r.step == 1 {
        // Positions are in 0..=len; stop may precede start (empty range).
        let start = r.start as usize;
        let stop = (r.stop.max(r.start)) as usize;
        items.splice(start..stop, new);
        return Ok(());
    }
    if new.len() != r.len {
        return Err(value_error(format!(
            "attempt to assign sequence of size {} to extended slice of size {}",
            new.len(),
            r.len
        )));
    }
    let positions: Vec<usize> = r.positions().collect();
    for (pos, item) in positions.into_iter().zip(new) {
        items[pos] = item;
    }
    Ok(())
}

/// Deletes the positions `slice` covers; returns what was removed.
pub fn delete<T>(items: &mut Vec<T>, slice: &Slice) -> Result<Vec<T>, RemoteError> {
    let r = slice.indices(items.len())?;
    if r.len == 0 {
        return Ok(Vec::new());
    }
    if r.step == 1 {
        return Ok(items.drain(r.start as usize..r.stop as usize).collect());
    }
    let mut doomed = vec![false; items.len()];
    for pos in r.positions() {
        doomed[pos] = true;
    }
    let mut removed = Vec::with_capacity(r.len);
    let mut kept = Vec::with_capacity(items.len() - r.len);
    for (item, gone) in items.drain(..).zip(doomed) {
        if gone {
            removed.push(item);
        } else {
            kept.push(item);
        }
    }
    *items = kept;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(start: Option<i64>, stop: Option<i64>, step: Option<i64>, len: usize) -> Vec<usize> {
        let r = Slice::new(start, stop, step).indices(len).unwrap();
        r.positions().collect()
    }

    #[test]
    fn indices_match_python() {
        // Values checked against CPython's list(range(n))[a:b:c].
        assert_eq!(idx(None, None, None, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(idx(Some(1), Some(3), None, 5), vec![1, 2]);
        assert_eq!(idx(None, None, Some(-1), 5), vec![4, 3, 2, 1, 0]);
        assert_eq!(idx(Some(-2), None, None, 5), vec![3, 4]);
        assert_eq!(idx(None, None, Some(2), 5), vec![0, 2, 4]);
        assert_eq!(idx(Some(10), Some(20), None, 5), Vec::<usize>::new());
        assert_eq!(idx(Some(-10), Some(2), None, 5), vec![0, 1]);
        assert_eq!(idx(Some(3), Some(0), Some(-2), 5), vec![3, 1]);
        assert!(Slice::new(None, None, Some(0)).indices(3).is_err());
    }

    #[test]
    fn wire_form_round_trips() {
        let s = Slice::new(Some(1), None, Some(-1));
        assert_eq!(Slice::from_value(&s.to_value()).unwrap().unwrap(), s);
        assert!(Slice::from_value(&Value::Int(3)).is_none());
        assert_eq!(
            Index::from_value(&Value::Int(-1), "list").unwrap(),
            Index::At(-1)
        );
        assert!(Index::from_value(&"x".into(), "list").is_err());
    }

    #[test]
    fn assignment_and_deletion() {
        let mut v = vec![0, 1, 2, 3, 4];
        assign(&mut v, &Slice::new(Some(1), Some(3), None), vec![9]).unwrap();
        assert_eq!(v, vec![0, 9, 3, 4]);
        assign(&mut v, &Slice::new(None, None, Some(2)), vec![7, 7]).unwrap();
        assert_eq!(v, vec![7, 9, 7, 4]);
        assert!(assign(&mut v, &Slice::new(None, None, Some(2)), vec![1]).is_err());
        let gone = delete(&mut v, &Slice::new(None, None, Some(-2))).unwrap();
        assert_eq!(gone, vec![9, 4]);
        assert_eq!(v, vec![7, 7]);
        assert_eq!(position(-1, 2, "list").unwrap(), 1);
        assert!(position(2, 2, "list").is_err());
        assert_eq!(insertion_point(-10, 3), 0);
        assert_eq!(insertion_point(10, 3), 3);
    }
}
