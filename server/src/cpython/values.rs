//! The mapping between pickled values ([`mp_pickle::Value`]) and the
//! engine's [`Value`], in both directions.
//!
//! | Python (pickle)                               | [`Value`]                              | back to Python |
//! |-----------------------------------------------|----------------------------------------|----------------|
//! | `None`, `bool`, `int` (64 bits), `float`, `str`, `bytes` | the same variant           | the same |
//! | `tuple`, `list`, `dict`                       | `Tuple`, `List`, `Dict`                | the same |
//! | `slice` of ints or `None`                     | `("$slice", start, stop, step)` ([`mp_proto::slice`]) | `slice` |
//! | `Token`, a proxy (`RebuildProxy(...)`)        | `Proxy(token)`, the address rewritten to this server's | `RebuildProxy(<class of the typeid>, Token(.., <the address the client reached>, ..), 'pickle', {'exposed': ..})` |
//! | `range` (up to [`MAX_RANGE_ITEMS`] items)      | `List` of its ints, what `list(r)` gives (`m.list(range(10))`) | `list` |
//! | `set`, `bytearray`, an instance of a user's class, an exception | `["$pickle", <pickle bytes>]` (a list: unhashable, as in Python) | the object, as it came |
//! | `frozenset`, `int` beyond 64 bits, `complex`, a class by itself, any other slice | `("$pickle", <pickle bytes>)` (a tuple: hashable) | the object, as it came |
//!
//! So a Rust SDK client and a Python client share one dict or queue and
//! each sees its own language's types: the common types map one to one,
//! and what has no Rust form stays, to a Rust client, a tagged blob it can
//! store and pass on but not look into. The blob is written by this
//! codec ([`mp_pickle::dumps`], protocol 5) and read again by it before
//! it goes to a Python client, so a blob a Rust client forged passes the
//! same allow-list as anything a Python client sends: it cannot carry a
//! call either.
//!
//! A Python tuple or list that happens to start with `"$slice"` or
//! `"$pickle"` is itself kept as a blob, so that it comes back as it was
//! and is never mistaken for a slice or a blob.
//!
//! Blobs compare and hash by their bytes: two equal frozensets pickled in
//! different orders are different keys, and an instance is equal only to
//! a copy of itself (Python compares most instances by identity). A
//! proxy inside a blob (in a set, or in an instance's attributes) would
//! hold no reference and could name another server, so it is refused
//! (`TypeError`): store proxies in lists, dicts, tuples or directly.

use mp_pickle::{Address, Proxy, ProxyKind, Value as Py};
use mp_proto::slice::SLICE_TAG;
use mp_proto::value::Map;
use mp_proto::{ErrorKind, ObjectId, RemoteError, Token, Value};

/// The tag of a pickled blob.
pub const PICKLE_TAG: &str = "$pickle";

/// What the mapping needs to know about the conversation.
pub(crate) struct Side<'a> {
    /// The engine's address, which tokens stored on the server carry.
    pub(crate) server_address: &'a str,
    /// The address tokens handed to this client name: the one it reached
    /// the server at.
    pub(crate) client_address: &'a Address,
    /// The exposed methods of a typeid, for `AutoProxy`'s `exposed`.
    pub(crate) exposed: &'a (dyn Fn(&str) -> Option<Vec<String>> + Sync),
    /// Bounds for reading a blob back.
    pub(crate) limits: &'a mp_pickle::Limits,
}

fn type_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::TypeError, message)
}

/// Converts a value a Python client sent.
pub(crate) fn from_pickle(value: Py, side: &Side<'_>) -> Result<Value, RemoteError> {
    Ok(match value {
        Py::None => Value::None,
        Py::Bool(b) => Value::Bool(b),
        Py::Int(i) => Value::Int(i),
        Py::Float(f) => Value::Float(f),
        Py::Str(s) => Value::Str(s),
        Py::Bytes(b) => Value::Bytes(b),
        Py::Tuple(items) if !is_tagged(&items) => Value::Tuple(from_all(items, side)?),
        Py::List(items) if !is_tagged(&items) => Value::List(from_all(items, side)?),
        Py::Dict(pairs) => {
            let mut map = Map::with_capacity(pairs.len().min(256));
            for (k, v) in pairs {
                let k = from_pickle(k, side)?;
                if !k.is_hashable() {
                    return Err(type_error(format!("unhashable type: '{}'", k.type_name())));
                }
                map.insert(k, from_pickle(v, side)?);
            }
            Value::from(map)
        }
        Py::Slice(s) if is_int_slice(&s) => {
            let part = |v: Py| match v {
                Py::Int(i) => Value::Int(i),
                _ => Value::None,
            };
            Value::Tuple(vec![
                Value::Str(SLICE_TAG.to_owned()),
                part(s.start),
                part(s.stop),
                part(s.step),
            ])
        }
        Py::Range(range) => range_list(&range)?,
        Py::Token(token) => Value::Proxy(Box::new(token_in(*token, side)?)),
        Py::Proxy(proxy) => Value::Proxy(Box::new(token_in(proxy.token, side)?)),
        other => blob(other)?,
    })
}

fn from_all(items: Vec<Py>, side: &Side<'_>) -> Result<Vec<Value>, RemoteError> {
    items.into_iter().map(|v| from_pickle(v, side)).collect()
}

/// Whether a sequence starts with a tag of ours (and must be a blob).
fn is_tagged(items: &[Py]) -> bool {
    matches!(items.first(), Some(Py::Str(s)) if s == SLICE_TAG || s == PICKLE_TAG)
}

fn is_int_slice(s: &mp_pickle::Slice) -> bool {
    [&s.start, &s.stop, &s.step]
        .iter()
        .all(|v| matches!(v, Py::None | Py::Int(_)))
}

/// The most items a `range` expands to.
pub const MAX_RANGE_ITEMS: i128 = 1 << 20;

/// A `range` as the list of its ints: what `list(range(...))`, the
/// usual reason a range is sent (`m.list(range(10))`, `l.extend(r)`),
/// makes of it.
fn range_list(range: &mp_pickle::Range) -> Result<Value, RemoteError> {
    let small = |i: &mp_pickle::PyInt| match i {
        mp_pickle::PyInt::Small(i) => Some(i128::from(*i)),
        mp_pickle::PyInt::Big(_) => None,
    };
    let too_long = || {
        RemoteError::new(
            ErrorKind::MemoryError,
            format!("a range of more than {MAX_RANGE_ITEMS} items is not expanded"),
        )
    };
    let (Some(start), Some(stop), Some(step)) =
        (small(&range.start), small(&range.stop), small(&range.step))
    else {
        return Err(too_long());
    };
    if step == 0 {
        return Err(RemoteError::new(
            ErrorKind::ValueError,
            "range() arg 3 must not be zero",
        ));
    }
    let len = if step > 0 {
        (stop - start + step - 1).div_euclid(step).max(0)
    } else {
        (start - stop - step - 1).div_euclid(-step).max(0)
    };
    if len > MAX_RANGE_ITEMS {
        return Err(too_long());
    }
    // Every item lies between start and stop, both within i64.
    Ok(Value::List(
        (0..len)
            .map(|i| Value::Int((start + i * step) as i64))
            .collect(),
    ))
}

/// A token a client sent, as a token of this server. The address it
/// names is the one the client used to reach a server (CPython's clients
/// put their own there), which is not trusted: it is replaced by this
/// server's, so a stored proxy can never send another client elsewhere.
fn token_in(token: mp_pickle::Token, side: &Side<'_>) -> Result<Token, RemoteError> {
    let id = token
        .id
        .parse::<ObjectId>()
        .map_err(|_| type_error(format!("{:?} is not an object id of this server", token.id)))?;
    Ok(Token {
        typeid: token.typeid,
        address: side.server_address.to_owned(),
        id,
    })
}

/// Keeps a value with no counterpart as its own pickle.
fn blob(value: Py) -> Result<Value, RemoteError> {
    if let Some(what) = holds_proxy(&value) {
        return Err(type_error(format!(
            "a proxy inside a {} cannot be shared through this server: store it in a \
             list, dict or tuple, or by itself",
            what
        )));
    }
    let mutable = matches!(
        value,
        Py::Set(_) | Py::ByteArray(_) | Py::Instance(_) | Py::Exception(_) | Py::List(_)
    );
    let bytes = mp_pickle::dumps(&value, mp_pickle::Protocol::V5)
        .map_err(|e| type_error(format!("cannot keep this {}: {e}", value.type_name())))?;
    let items = vec![Value::Str(PICKLE_TAG.to_owned()), Value::Bytes(bytes)];
    Ok(if mutable {
        Value::List(items)
    } else {
        Value::Tuple(items)
    })
}

/// The type name of the first container of a proxy inside `value`, if any.
fn holds_proxy(value: &Py) -> Option<String> {
    fn any(items: &[Py]) -> bool {
        items.iter().any(contains_proxy)
    }
    fn contains_proxy(value: &Py) -> bool {
        match value {
            Py::Token(_) | Py::Proxy(_) => true,
            Py::Tuple(i) | Py::List(i) | Py::Set(i) | Py::FrozenSet(i) => any(i),
            Py::Dict(pairs) => pairs
                .iter()
                .any(|(k, v)| contains_proxy(k) || contains_proxy(v)),
            Py::Slice(s) => any(&[s.start.clone(), s.stop.clone(), s.step.clone()]),
            Py::Exception(e) => any(&e.args) || e.state.as_ref().is_some_and(contains_proxy),
            Py::Instance(i) => {
                let made = match &i.make {
                    mp_pickle::Make::NewObj(a) | mp_pickle::Make::Call(a) => any(a),
                    mp_pickle::Make::NewObjEx { args, kwargs } => {
                        any(args) || kwargs.iter().any(|(_, v)| contains_proxy(v))
                    }
                    mp_pickle::Make::Reconstructor { base_state, .. } => contains_proxy(base_state),
                };
                made || any(&i.list_items)
                    || i.dict_items
                        .iter()
                        .any(|(k, v)| contains_proxy(k) || contains_proxy(v))
                    || i.state.as_ref().is_some_and(contains_proxy)
            }
            _ => false,
        }
    }
    contains_proxy(value).then(|| value.type_name().to_owned())
}

/// Converts a value for a Python client.
pub(crate) fn to_pickle(value: &Value, side: &Side<'_>) -> Result<Py, RemoteError> {
    Ok(match value {
        Value::None => Py::None,
        Value::Bool(b) => Py::Bool(*b),
        Value::Int(i) => Py::Int(*i),
        Value::Float(f) => Py::Float(*f),
        Value::Str(s) => Py::Str(s.clone()),
        Value::Bytes(b) => Py::Bytes(b.clone()),
        Value::Tuple(items) | Value::List(items) => {
            if let Some(py) = tagged_out(items, side)? {
                return Ok(py);
            }
            let items = items
                .iter()
                .map(|v| to_pickle(v, side))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(value, Value::Tuple(_)) {
                Py::Tuple(items)
            } else {
                Py::List(items)
            }
        }
        Value::Dict(map) => Py::Dict(
            map.iter()
                .map(|(k, v)| Ok((to_pickle(k, side)?, to_pickle(v, side)?)))
                .collect::<Result<Vec<_>, RemoteError>>()?,
        ),
        Value::Proxy(token) => Py::Proxy(Box::new(proxy_out(token, side))),
    })
}

/// A slice or a blob, if `items` is one.
fn tagged_out(items: &[Value], side: &Side<'_>) -> Result<Option<Py>, RemoteError> {
    match items {
        [Value::Str(tag), Value::Bytes(bytes)] if tag == PICKLE_TAG => {
            let read = mp_pickle::read(bytes, side.limits).map_err(|e| {
                type_error(format!("a stored pickled value cannot be given back: {e}"))
            })?;
            Ok(Some(read.value))
        }
        [Value::Str(tag), start, stop, step] if tag == SLICE_TAG => {
            let part = |v: &Value| match v {
                Value::Int(i) => Py::Int(*i),
                _ => Py::None,
            };
            Ok(Some(Py::Slice(Box::new(mp_pickle::Slice {
                start: part(start),
                stop: part(stop),
                step: part(step),
            }))))
        }
        _ => Ok(None),
    }
}

/// The proxy class CPython's `SyncManager` registers for `typeid`.
pub(crate) fn proxy_kind(typeid: &str) -> ProxyKind {
    match typeid {
        "dict" => ProxyKind::DictProxy,
        "list" => ProxyKind::ListProxy,
        "Iterator" => ProxyKind::IteratorProxy,
        "Lock" | "RLock" | "Semaphore" | "BoundedSemaphore" => ProxyKind::AcquirerProxy,
        "Condition" => ProxyKind::ConditionProxy,
        "Event" => ProxyKind::EventProxy,
        "Barrier" => ProxyKind::BarrierProxy,
        "Namespace" => ProxyKind::NamespaceProxy,
        "Value" => ProxyKind::ValueProxy,
        "Array" => ProxyKind::ArrayProxy,
        _ => ProxyKind::AutoProxy,
    }
}

/// A token for this client: the address it reached the server at.
pub(crate) fn token_out(token: &Token, side: &Side<'_>) -> mp_pickle::Token {
    mp_pickle::Token {
        typeid: token.typeid.clone(),
        address: side.client_address.clone(),
        id: token.id.to_string(),
    }
}

fn proxy_out(token: &Token, side: &Side<'_>) -> Proxy {
    let func = proxy_kind(&token.typeid);
    // AutoProxy asks the server for the methods unless told them.
    let kwds = match (func, (side.exposed)(&token.typeid)) {
        (ProxyKind::AutoProxy, Some(names)) => vec![(
            "exposed".to_owned(),
            Py::Tuple(names.into_iter().map(Py::Str).collect()),
        )],
        _ => Vec::new(),
    };
    Proxy {
        func,
        token: token_out(token, side),
        serializer: "pickle".to_owned(),
        kwds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side_with<R>(f: impl FnOnce(&Side<'_>) -> R) -> R {
        let address = Address::Inet {
            host: "127.0.0.1".into(),
            port: 5000,
        };
        let exposed = |t: &str| (t == "Queue").then(|| vec!["get".to_owned(), "put".to_owned()]);
        let limits = mp_pickle::Limits::default();
        f(&Side {
            server_address: "0.0.0.0:5000",
            client_address: &address,
            exposed: &exposed,
            limits: &limits,
        })
    }

    fn round_trip(py: Py) -> (Value, Py) {
        side_with(|side| {
            let v = from_pickle(py, side).unwrap();
            let back = to_pickle(&v, side).unwrap();
            (v, back)
        })
    }

    #[test]
    fn common_types_map_one_to_one() {
        let py = Py::Dict(vec![
            (Py::Str("t".into()), Py::Tuple(vec![Py::Int(1), Py::None])),
            (
                Py::Int(2),
                Py::List(vec![Py::Bytes(b"x".to_vec()), Py::Float(0.5)]),
            ),
        ]);
        let (v, back) = round_trip(py.clone());
        assert_eq!(back, py);
        let Value::Dict(map) = v else { panic!() };
        assert!(matches!(map.get(&Value::Int(2)), Some(Value::List(_))));
    }

    #[test]
    fn values_without_a_rust_form_come_back_as_they_came() {
        for py in [
            Py::Set(vec![Py::Int(1)]),
            Py::FrozenSet(vec![Py::Int(1)]),
            Py::ByteArray(b"ab".to_vec()),
            Py::Complex { re: 1.0, im: 2.0 },
            Py::Tuple(vec![Py::Str("$slice".into()), Py::Int(1)]),
            Py::List(vec![Py::Str("$pickle".into()), Py::Bytes(vec![1])]),
        ] {
            let (v, back) = round_trip(py.clone());
            assert_eq!(back, py);
            let hashable = matches!(py, Py::FrozenSet(_) | Py::Complex { .. } | Py::Tuple(_));
            assert_eq!(v.is_hashable(), hashable, "{py:?}");
        }
    }

    #[test]
    fn ranges_become_lists_of_their_ints() {
        let r = |a, b, c| {
            Py::Range(Box::new(mp_pickle::Range {
                start: mp_pickle::PyInt::Small(a),
                stop: mp_pickle::PyInt::Small(b),
                step: mp_pickle::PyInt::Small(c),
            }))
        };
        let ints = |v: Vec<i64>| Value::List(v.into_iter().map(Value::Int).collect());
        side_with(|side| {
            assert_eq!(
                from_pickle(r(0, 4, 1), side).unwrap(),
                ints(vec![0, 1, 2, 3])
            );
            assert_eq!(from_pickle(r(5, 0, -2), side).unwrap(), ints(vec![5, 3, 1]));
            assert_eq!(from_pickle(r(3, 3, 1), side).unwrap(), ints(vec![]));
            let e = from_pickle(r(0, i64::MAX, 1), side).unwrap_err();
            assert_eq!(e.kind, ErrorKind::MemoryError);
        });
    }

    #[test]
    fn slices_of_ints_are_the_wire_slice() {
        let py = Py::Slice(Box::new(mp_pickle::Slice {
            start: Py::Int(1),
            stop: Py::None,
            step: Py::Int(-1),
        }));
        let (v, back) = round_trip(py.clone());
        assert_eq!(back, py);
        let s = mp_proto::slice::Slice::from_value(&v).unwrap().unwrap();
        assert_eq!(s, mp_proto::slice::Slice::new(Some(1), None, Some(-1)));
    }

    #[test]
    fn tokens_are_rewritten_to_this_server() {
        let token = mp_pickle::Token {
            typeid: "Queue".into(),
            address: Address::Inet {
                host: "evil.example".into(),
                port: 1,
            },
            id: "1f".into(),
        };
        let (v, back) = round_trip(Py::Token(Box::new(token)));
        let Value::Proxy(t) = v else { panic!() };
        assert_eq!(t.address, "0.0.0.0:5000");
        assert_eq!(t.id, ObjectId(0x1f));
        let Py::Proxy(p) = back else { panic!() };
        assert_eq!(p.func, ProxyKind::AutoProxy);
        assert_eq!(
            p.token.address,
            Address::Inet {
                host: "127.0.0.1".into(),
                port: 5000
            }
        );
        assert_eq!(p.kwds.len(), 1);
    }

    #[test]
    fn a_proxy_inside_a_blob_is_refused() {
        let token = mp_pickle::Token {
            typeid: "dict".into(),
            address: Address::Path("/x".into()),
            id: "1".into(),
        };
        let err = side_with(|side| {
            from_pickle(Py::FrozenSet(vec![Py::Token(Box::new(token))]), side).unwrap_err()
        });
        assert_eq!(err.kind, ErrorKind::TypeError);
    }

    #[test]
    fn a_forged_blob_meets_the_allow_list() {
        let evil = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.".to_vec();
        let v = Value::Tuple(vec![Value::Str(PICKLE_TAG.into()), Value::Bytes(evil)]);
        let err = side_with(|side| to_pickle(&v, side).unwrap_err());
        assert!(err.message.contains("os.system"), "{err}");
    }
}
