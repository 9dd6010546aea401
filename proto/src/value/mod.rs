//! [`Value`]: the dynamic value shared objects store and calls carry.
//!
//! It is the data half of a Python object as a manager sees it: `None`,
//! `bool`, `int`, `float`, `str`, `bytes`, `list`, `tuple`, `dict`
//! (insertion-ordered) and a reference to another shared object
//! ([`Token`]), so that shared objects nest. Nothing in a `Value` is code.
//!
//! Equality and hashing follow Python's rules for the types it models:
//! `1 == 1.0 == True` and they hash alike, so they are the same dict key;
//! `[1] != (1,)`; dicts compare without regard to order. Lists and dicts
//! are unhashable: [`Value::is_hashable`] says whether a value may be a key.
//!
//! Typed code converts at the edge with [`to_value`] and [`from_value`].
//!
//! # Layout
//!
//! * `ser`: any `Serialize` type → `Value`.
//! * `de`: `Value` → any `Deserialize` type.
//! * `wire`: the CBOR form of a `Value` on the wire.
//! * `repr`: Python's `repr()` of a value, for `__repr__` and `Namespace`.
//! * `size`: the bytes a value takes in memory
//!   ([`Value::estimated_bytes`]), what a server's memory limits count.

mod de;
mod repr;
mod ser;
mod size;
mod wire;

use std::fmt;
use std::hash::{Hash, Hasher};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use de::from_value;
pub use ser::to_value;
pub use size::{dict_bytes, heap_block, sequence_bytes};

/// An insertion-ordered dict of values, Python's `dict`.
pub type Map = IndexMap<Value, Value>;

/// A dynamic, Python-like value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Python's `None`.
    #[default]
    None,
    /// `bool`.
    Bool(bool),
    /// `int`, within 64 bits.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `list`: mutable, unhashable.
    List(Vec<Value>),
    /// `tuple`: immutable, hashable when its items are.
    Tuple(Vec<Value>),
    /// `dict`, in insertion order. Boxed to keep `Value` small.
    Dict(Box<Map>),
    /// A reference to another shared object.
    Proxy(Box<Token>),
}

/// Names a shared object on a server: what a proxy holds.
///
/// Python's `multiprocessing.managers.Token`. In a [`Value`] it is the
/// [`Value::Proxy`] variant; [`to_value`] makes one from a `Token` field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Token {
    /// The registered type of the object (`"dict"`, `"Queue"`, …).
    pub typeid: String,
    /// Where the owning server listens (`host:port` or a socket path).
    pub address: String,
    /// The object's id on that server.
    pub id: ObjectId,
}

/// The fields of a [`Token`] as serde sees them, behind a marker newtype.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Token")]
struct TokenFields {
    typeid: String,
    address: String,
    id: ObjectId,
}

impl Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = TokenFields {
            typeid: self.typeid.clone(),
            address: self.address.clone(),
            id: self.id,
        };
        serializer.serialize_newtype_struct(ser::TOKEN_NEWTYPE, &fields)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TokenVisitor;
        impl<'de> serde::de::Visitor<'de> for TokenVisitor {
            type Value = Token;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a proxy token")
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Token, D::Error> {
                let TokenFields {
                    typeid,
                    address,
                    id,
                } = TokenFields::deserialize(d)?;
                Ok(Token {
                    typeid,
                    address,
                    id,
                })
            }
        }
        deserializer.deserialize_newtype_struct(ser::TOKEN_NEWTYPE, TokenVisitor)
    }
}

/// A shared object's id on its server. Shown in hex, as CPython shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectId(pub u64);

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl std::str::FromStr for ObjectId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(ObjectId)
    }
}

impl Value {
    /// Python's type name of this value (`"int"`, `"dict"`, …), for error
    /// messages such as `unhashable type: 'list'`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Proxy(_) => "proxy",
        }
    }

    /// Whether this value can be a dict key: not a list or dict, nor a
    /// tuple containing one.
    pub fn is_hashable(&self) -> bool {
        match self {
            Value::List(_) | Value::Dict(_) => false,
            Value::Tuple(items) => items.iter().all(Value::is_hashable),
            _ => true,
        }
    }

    /// Python's truth value: empty containers, zero and `None` are false.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::List(v) | Value::Tuple(v) => !v.is_empty(),
            Value::Dict(m) => !m.is_empty(),
            Value::Proxy(_) => true,
        }
    }

    /// The value as an integer, if it is one (`bool` counts, as in Python).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            other => other.as_int().map(|i| i as f64),
        }
    }

    /// The value as text, if it is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Every proxy token inside this value, depth first: the references a
    /// container holds while the value is stored in it.
    pub fn tokens(&self) -> Vec<&Token> {
        let mut out = Vec::new();
        self.collect_tokens(&mut out);
        out
    }

    fn collect_tokens<'a>(&'a self, out: &mut Vec<&'a Token>) {
        match self {
            Value::Proxy(token) => out.push(token),
            Value::List(items) | Value::Tuple(items) => {
                items.iter().for_each(|v| v.collect_tokens(out))
            }
            Value::Dict(map) => map.iter().for_each(|(k, v)| {
                k.collect_tokens(out);
                v.collect_tokens(out);
            }),
            _ => {}
        }
    }

    /// An integral float as the int it equals, so `1.0` and `1` are one key.
    fn integral(f: f64) -> Option<i64> {
        // 2^63 itself is out of range; every float below it in magnitude
        // that has no fraction is an exact i64.
        (f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f))
            .then_some(f as i64)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) => true,
            (Str(a), Str(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => a == b,
            (Dict(a), Dict(b)) => a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v)),
            (Proxy(a), Proxy(b)) => a == b,
            (Float(a), Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Float(f), n) | (n, Float(f)) => match n.as_int() {
                Some(i) => Value::integral(*f) == Some(i),
                Option::None => false,
            },
            (a, b) => match (a.as_int(), b.as_int()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }
}

/// Reflexive because NaN is made equal to itself: a key once inserted can
/// always be found again, as Python finds it by identity.
impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Numbers that compare equal must hash equal: hash every integral
        // number as the int it is.
        match self {
            Value::None => 0u8.hash(state),
            Value::Bool(_) | Value::Int(_) => {
                1u8.hash(state);
                self.as_int().hash(state);
            }
            Value::Float(f) => match Value::integral(*f) {
                Some(i) => {
                    1u8.hash(state);
                    Some(i).hash(state);
                }
                Option::None => {
                    2u8.hash(state);
                    let bits = if f.is_nan() {
                        f64::NAN.to_bits()
                    } else {
                        f.to_bits()
                    };
                    bits.hash(state);
                }
            },
            Value::Str(s) => {
                3u8.hash(state);
                s.hash(state);
            }
            Value::Bytes(b) => {
                4u8.hash(state);
                b.hash(state);
            }
            Value::List(items) => {
                5u8.hash(state);
                items.hash(state);
            }
            Value::Tuple(items) => {
                6u8.hash(state);
                items.hash(state);
            }
            Value::Dict(map) => {
                // Order-independent, as equality is: hash only the size.
                7u8.hash(state);
                map.len().hash(state);
            }
            Value::Proxy(token) => {
                8u8.hash(state);
                token.hash(state);
            }
        }
    }
}

impl fmt::Display for Value {
    /// Python's `str()`: strings bare, everything else as `repr()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => f.write_str(&other.repr()),
        }
    }
}

macro_rules! from_scalar {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v $(as $cast)?)
            }
        }
    )*};
}

from_scalar!(
    bool => Bool,
    i8 => Int as i64, i16 => Int as i64, i32 => Int as i64, i64 => Int,
    u8 => Int as i64, u16 => Int as i64, u32 => Int as i64,
    f32 => Float as f64, f64 => Float,
    String => Str, Vec<u8> => Bytes,
);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Self {
        Value::Dict(Box::new(v))
    }
}

impl From<Token> for Value {
    fn from(v: Token) -> Self {
        Value::Proxy(Box::new(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::None, Into::into)
    }
}

/// Why a conversion between a Rust type and a [`Value`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl serde::ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash(v: &Value) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn numbers_that_are_equal_are_one_key() {
        let one = [Value::Int(1), Value::Float(1.0), Value::Bool(true)];
        for a in &one {
            for b in &one {
                assert_eq!(a, b);
                assert_eq!(hash(a), hash(b));
            }
        }
        assert_ne!(Value::Int(1), Value::Float(1.5));
        assert_ne!(Value::Int(0), Value::None);
    }

    #[test]
    fn lists_and_tuples_differ_and_dicts_ignore_order() {
        assert_ne!(Value::List(vec![1.into()]), Value::Tuple(vec![1.into()]));
        let mut a = Map::new();
        a.insert("x".into(), 1.into());
        a.insert("y".into(), 2.into());
        let mut b = Map::new();
        b.insert("y".into(), 2.into());
        b.insert("x".into(), 1.into());
        assert_eq!(Value::from(a.clone()), Value::from(b.clone()));
        assert_eq!(hash(&a.into()), hash(&b.into()));
    }

    #[test]
    fn hashability_follows_python() {
        assert!(Value::Tuple(vec![1.into(), "a".into()]).is_hashable());
        assert!(!Value::Tuple(vec![Value::List(vec![])]).is_hashable());
        assert!(!Value::List(vec![]).is_hashable());
        assert!(!Value::from(Map::new()).is_hashable());
    }

    #[test]
    fn nan_is_found_again() {
        let mut m = Map::new();
        m.insert(Value::Float(f64::NAN), 1.into());
        assert_eq!(m.get(&Value::Float(f64::NAN)), Some(&Value::Int(1)));
    }

    #[test]
    fn object_ids_are_hex() {
        assert_eq!(ObjectId(255).to_string(), "ff");
        assert_eq!("ff".parse::<ObjectId>().unwrap(), ObjectId(255));
    }
}
