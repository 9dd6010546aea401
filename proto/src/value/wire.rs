//! The CBOR form of a [`Value`].
//!
//! Every variant maps to CBOR's own type (null, bool, integer, float, text,
//! bytes, array, map) except the two CBOR lacks, which are tagged arrays
//! and maps: a `tuple` is tag [`TAG_TUPLE`] over an array, a proxy
//! reference tag [`TAG_PROXY`] over the token's map. Decoding checks what
//! the server relies on: integers fit in 64 bits, dict keys are hashable,
//! tags are known. Preallocation never trusts a length from the peer.

use std::fmt;

use ciborium::tag::Required;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{Map, Token, Value};

/// The CBOR tag of a tuple ("mp" then 1).
pub const TAG_TUPLE: u64 = 0x6d70_0001;
/// The CBOR tag of a proxy reference ("mp" then 2).
pub const TAG_PROXY: u64 = 0x6d70_0002;

/// Preallocate at most this many items whatever a length prefix claims.
const CAUTIOUS_CAPACITY: usize = 1024;

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::None => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Tuple(items) => Required::<_, TAG_TUPLE>(items).serialize(serializer),
            Value::Dict(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map.iter() {
                    out.serialize_entry(k, v)?;
                }
                out.end()
            }
            Value::Proxy(token) => Required::<_, TAG_PROXY>(token).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value (null, bool, int, float, str, bytes, list, tuple, dict or proxy)")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(CAUTIOUS_CAPACITY));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::with_capacity(access.size_hint().unwrap_or(0).min(CAUTIOUS_CAPACITY));
        while let Some(key) = access.next_key::<Value>()? {
            if !key.is_hashable() {
                return Err(de::Error::custom(format!(
                    "unhashable type: '{}' cannot be a dict key",
                    key.type_name()
                )));
            }
            let value = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Dict(Box::new(map)))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, access: A) -> Result<Value, A::Error> {
        use de::VariantAccess;
        // ciborium presents a tagged item as the variant "@@TAGGED@@" whose
        // data is the pair (tag, item).
        let (name, data): (String, _) = access.variant()?;
        if name != "@@TAGGED@@" {
            return Err(de::Error::custom(format!("unexpected variant {name:?}")));
        }
        data.tuple_variant(2, TaggedVisitor)
    }
}

/// Reads `(tag, item)` and builds the tagged variant.
struct TaggedVisitor;

impl<'de> Visitor<'de> for TaggedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tuple or a proxy token")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let tag: u64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("a tag without a number"))?;
        let missing = || de::Error::custom("a tag without an item");
        match tag {
            TAG_TUPLE => {
                let items: Vec<Value> = seq.next_element()?.ok_or_else(missing)?;
                Ok(Value::Tuple(items))
            }
            TAG_PROXY => {
                let token: Token = seq.next_element()?.ok_or_else(missing)?;
                Ok(Value::Proxy(Box::new(token)))
            }
            other => Err(de::Error::custom(format!("unknown CBOR tag {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ObjectId;

    fn cbor(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    fn decode(bytes: &[u8]) -> Result<Value, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }

    #[test]
    fn every_variant_round_trips() {
        let mut map = Map::new();
        map.insert(
            Value::Tuple(vec![1.into(), "k".into()]),
            Value::Bytes(vec![0, 1]),
        );
        map.insert(Value::None, Value::Float(2.5));
        let value = Value::List(vec![
            Value::None,
            true.into(),
            (-5).into(),
            i64::MIN.into(),
            "s".into(),
            Value::Tuple(vec![]),
            map.into(),
            Token {
                typeid: "list".into(),
                address: "/tmp/s".into(),
                id: ObjectId(7),
            }
            .into(),
        ]);
        let back = decode(&cbor(&value)).unwrap();
        assert_eq!(back, value);
        // Equality is lenient across numbers; the repr is not.
        assert_eq!(back.repr(), value.repr());
    }

    #[test]
    fn plain_cbor_is_readable() {
        // [1, "a", h'00'] written by hand.
        let bytes = [0x83, 0x01, 0x61, b'a', 0x41, 0x00];
        assert_eq!(
            decode(&bytes).unwrap(),
            Value::List(vec![1.into(), "a".into(), Value::Bytes(vec![0])])
        );
    }

    #[test]
    fn bad_input_is_refused() {
        // u64::MAX
        assert!(decode(&[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // {[]: 1}: an unhashable key
        assert!(decode(&[0xa1, 0x80, 0x01])
            .unwrap_err()
            .contains("unhashable"));
        // tag 1 (epoch time) over 0: unknown here
        assert!(decode(&[0xc1, 0x00]).is_err());
        // an array claiming 2^32 items with none present allocates nothing big
        assert!(decode(&[0x9a, 0xff, 0xff, 0xff, 0xff]).is_err());
        // byte and text strings claiming 2^64-1 bytes with none present
        let huge = [0xff; 8];
        assert!(decode(&[[0x5b].as_slice(), &huge].concat()).is_err());
        assert!(decode(&[[0x7b].as_slice(), &huge].concat()).is_err());
        // a map claiming 2^32 entries
        assert!(decode(&[0xba, 0xff, 0xff, 0xff, 0xff]).is_err());
        // deep nesting hits the recursion limit instead of the stack
        let deep = vec![0x81; 100_000];
        assert!(decode(&deep).is_err());
    }
}
