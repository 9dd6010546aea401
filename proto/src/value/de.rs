//! [`Value`] → any `Deserialize` type: [`from_value`].
//!
//! The inverse of [`to_value`](super::to_value), and lenient where Python
//! would be: a `bytes` value reads as a sequence of `u8`, a tuple or a list
//! reads as either, an int reads as a float.

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::{Map, Token, Value, ValueError};

/// Converts a [`Value`] into any deserializable type.
///
/// ```
/// use mp_proto::value::{from_value, Value};
/// let pair: (i32, String) = from_value(Value::Tuple(vec![1.into(), "a".into()])).unwrap();
/// assert_eq!(pair, (1, "a".to_string()));
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    T::deserialize(value)
}

impl<'de> IntoDeserializer<'de, ValueError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

fn token_fields(token: Token) -> Map {
    let mut map = Map::with_capacity(3);
    map.insert("typeid".into(), Value::Str(token.typeid));
    map.insert("address".into(), Value::Str(token.address));
    map.insert("id".into(), Value::Int(token.id.0 as i64));
    map
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::List(items) | Value::Tuple(items) => visit_all(items.into_iter(), visitor),
            Value::Dict(map) => visit_all_pairs(map.into_iter(), visitor),
            Value::Proxy(token) => visit_all_pairs(token_fields(*token).into_iter(), visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bytes(bytes) => {
                visit_all(bytes.into_iter().map(|b| Value::Int(i64::from(b))), visitor)
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(variant) => visitor.visit_enum(variant.into_deserializer()),
            Value::Dict(map) if map.len() == 1 => {
                let (variant, value) = map
                    .into_iter()
                    .next()
                    .ok_or_else(|| ValueError("an enum needs one entry".into()))?;
                visitor.visit_enum(EnumAccess { variant, value })
            }
            other => Err(ValueError(format!(
                "expected an enum (a variant name or a one-entry dict), found {}",
                other.type_name()
            ))),
        }
    }

    fn is_human_readable(&self) -> bool {
        true
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple_struct map struct identifier ignored_any
    }
}

/// Visits `items` as a sequence and fails if the visitor left any: a
/// 3-tuple read as a pair is an error, never a silent truncation.
fn visit_all<'de, I, V>(items: I, visitor: V) -> Result<V::Value, ValueError>
where
    I: Iterator<Item = Value>,
    V: Visitor<'de>,
{
    let mut seq = de::value::SeqDeserializer::new(items);
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

/// [`visit_all`] for the entries of a map.
fn visit_all_pairs<'de, I, V>(pairs: I, visitor: V) -> Result<V::Value, ValueError>
where
    I: Iterator<Item = (Value, Value)>,
    V: Visitor<'de>,
{
    let mut map = de::value::MapDeserializer::new(pairs);
    let value = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(value)
}

/// A data-carrying enum variant, `{variant: value}`.
struct EnumAccess {
    variant: Value,
    value: Value,
}

impl<'de> de::EnumAccess<'de> for EnumAccess {
    type Error = ValueError;
    type Variant = Value;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Value), ValueError> {
        Ok((seed.deserialize(self.variant)?, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for Value {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        match self {
            Value::None => Ok(()),
            other => Err(ValueError(format!(
                "a unit variant carries no data, found {}",
                other.type_name()
            ))),
        }
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{to_value, ObjectId};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        name: String,
        tags: Vec<String>,
        shape: Shape,
        maybe: Option<u16>,
        raw: serde_bytes::ByteBuf,
        pair: (bool, char),
        table: BTreeMap<String, i64>,
    }

    fn round_trip<T>(value: T)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let v = to_value(&value).unwrap();
        let back: T = from_value(v).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn typed_values_round_trip() {
        for shape in [
            Shape::Empty,
            Shape::Circle(1.5),
            Shape::Rect { w: 2, h: 3 },
            Shape::Pair(-1, 1),
        ] {
            round_trip(Record {
                name: "n".into(),
                tags: vec!["a".into(), "b".into()],
                shape,
                maybe: Some(7),
                raw: serde_bytes::ByteBuf::from(vec![0, 255]),
                pair: (true, 'x'),
                table: [("k".to_string(), -3)].into_iter().collect(),
            });
        }
        round_trip(Option::<String>::None);
        round_trip(u64::MAX >> 1);
    }

    #[test]
    fn shapes_are_pythonic() {
        let v = to_value(&Shape::Rect { w: 1, h: 2 }).unwrap();
        assert_eq!(v.repr(), "{'Rect': {'w': 1, 'h': 2}}");
        assert_eq!(to_value(&Shape::Empty).unwrap(), Value::from("Empty"));
        assert_eq!(to_value(&()).unwrap(), Value::None);
    }

    #[test]
    fn tokens_become_proxies_and_back() {
        let token = Token {
            typeid: "dict".into(),
            address: "127.0.0.1:5000".into(),
            id: ObjectId(0xabc),
        };
        let v = to_value(&vec![token.clone()]).unwrap();
        assert_eq!(v, Value::List(vec![Value::Proxy(Box::new(token.clone()))]));
        let back: Vec<Token> = from_value(v).unwrap();
        assert_eq!(back, vec![token]);
    }

    #[test]
    fn out_of_range_and_unhashable_are_errors() {
        assert!(to_value(&u64::MAX).is_err());
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1], 2);
        assert!(to_value(&bad).unwrap_err().0.contains("unhashable"));
        assert!(from_value::<u8>(Value::Int(300)).is_err());
        assert!(from_value::<String>(Value::Int(1)).is_err());
    }

    #[test]
    fn bytes_read_as_a_vec_of_u8() {
        let v: Vec<u8> = from_value(Value::Bytes(vec![1, 2])).unwrap();
        assert_eq!(v, vec![1, 2]);
    }

    #[test]
    fn extra_elements_are_an_error_not_dropped() {
        let three = Value::Tuple(vec![1.into(), 2.into(), 3.into()]);
        let err = from_value::<(i64, i64)>(three.clone()).unwrap_err();
        assert!(err.0.contains("invalid length 3"), "{err}");
        assert!(from_value::<(i64, i64, i64)>(three).is_ok());
        assert!(from_value::<[u8; 1]>(Value::Bytes(vec![1, 2])).is_err());
        let too_few = Value::List(vec![1.into()]);
        assert!(from_value::<(i64, i64)>(too_few).is_err());
    }
}
