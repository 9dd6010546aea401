//! Python's ordering of values (`<`), for `list.sort`, and its
//! `TypeError` when two values cannot be ordered.
//!
//! Numbers order numerically across `bool`/`int`/`float`; `str`, `bytes`,
//! `list` and `tuple` order among their own kind (sequences
//! lexicographically); anything else, or a mix, raises
//! `'<' not supported between instances of 'X' and 'Y'` as CPython does.

use std::cmp::Ordering;

use mp_proto::{RemoteError, Value};

use crate::errors::type_error;

/// Orders `a` and `b` as Python's `<` would, or says why it cannot.
pub fn py_cmp(a: &Value, b: &Value) -> Result<Ordering, RemoteError> {
    use Value::*;
    match (a, b) {
        (Str(x), Str(y)) => Ok(x.cmp(y)),
        (Bytes(x), Bytes(y)) => Ok(x.cmp(y)),
        (List(x), List(y)) | (Tuple(x), Tuple(y)) => seq_cmp(x, y),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => Ok(num_cmp(x, y)),
            _ => Err(type_error(format!(
                "'<' not supported between instances of '{}' and '{}'",
                a.type_name(),
                b.type_name()
            ))),
        },
    }
}

enum Num {
    Int(i64),
    Float(f64),
}

fn number(v: &Value) -> Option<Num> {
    match v {
        Value::Float(f) => Some(Num::Float(*f)),
        other => other.as_int().map(Num::Int),
    }
}

fn num_cmp(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        // NaN compares unordered in Python; treating it as equal keeps the
        // sort total, which is what Python's sort effectively does too.
        (Num::Int(x), Num::Float(y)) => (x as f64).partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Float(x), Num::Int(y)) => x.partial_cmp(&(y as f64)).unwrap_or(Ordering::Equal),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

fn seq_cmp(a: &[Value], b: &[Value]) -> Result<Ordering, RemoteError> {
    for (x, y) in a.iter().zip(b) {
        if x == y {
            continue;
        }
        return py_cmp(x, y);
    }
    Ok(a.len().cmp(&b.len()))
}

/// Sorts `items` by Python's `<` (stably), `reverse` as `list.sort` takes
/// it; the first unorderable pair's `TypeError` is returned after the sort.
pub fn sort_by_key<T>(
    items: &mut [T],
    key: impl Fn(&T) -> &Value,
    reverse: bool,
) -> Result<(), RemoteError> {
    let mut error = None;
    items.sort_by(|a, b| match py_cmp(key(a), key(b)) {
        Ok(o) if reverse => o.reverse(),
        Ok(o) => o,
        Err(e) => {
            error.get_or_insert(e);
            Ordering::Equal
        }
    });
    error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_follows_python() {
        assert_eq!(py_cmp(&1.into(), &1.5.into()).unwrap(), Ordering::Less);
        assert_eq!(py_cmp(&true.into(), &0.into()).unwrap(), Ordering::Greater);
        assert_eq!(py_cmp(&"a".into(), &"b".into()).unwrap(), Ordering::Less);
        let l = |v: Vec<Value>| Value::List(v);
        assert_eq!(
            py_cmp(&l(vec![1.into(), 2.into()]), &l(vec![1.into()])).unwrap(),
            Ordering::Greater
        );
        let err = py_cmp(&Value::None, &1.into()).unwrap_err();
        assert_eq!(
            err.message,
            "'<' not supported between instances of 'NoneType' and 'int'"
        );
        let mut v: Vec<Value> = vec![3.into(), 1.into(), 2.into()];
        sort_by_key(&mut v, |x| x, true).unwrap();
        assert_eq!(v, vec![3.into(), 2.into(), 1.into()]);
        let mut bad: Vec<Value> = vec![3.into(), "x".into()];
        assert!(sort_by_key(&mut bad, |x| x, false).is_err());
    }
}
