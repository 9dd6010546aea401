//! The CBOR form of a [`Value`] and a [`Token`], and the plain serde form.
//!
//! # Format
//!
//! Every variant maps to CBOR's own type (null, bool, integer, float, text,
//! bytes, array, map) except the two CBOR lacks:
//!
//! ```text
//! tuple   tag 0x6d700001 (TAG_TUPLE) over an array of items
//! proxy   tag 0x6d700002 (TAG_PROXY) over [typeid, address, id]
//! ```
//!
//! Decoding checks what the server relies on: integers fit in 64 bits
//! (a bignum, tag 2 or 3, is read when it fits; a larger int is Python's
//! `OverflowError`), dict keys are hashable (else `TypeError`), tags are
//! known.
//!
//! The serde impls are the plain form for text formats (JSON output of the
//! CLI, configuration): a tuple is a sequence and a proxy a map of its
//! token's fields.

use std::fmt;

use cbor4ii::core::{dec, enc, major, marker, types};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};

use super::{Map, ObjectId, Token, Value};
use crate::codec::{
    charge_decoded, expect_major, peek, read_array_header, read_map, read_vec, write_array_header,
    write_slice, CodecError, Reader, Wire, WriteError, Writer, CAUTIOUS_CAPACITY, INT_TOO_LARGE,
};

/// The CBOR tag of a tuple ("mp" then 1).
pub const TAG_TUPLE: u64 = 0x6d70_0001;
/// The CBOR tag of a proxy reference ("mp" then 2).
pub const TAG_PROXY: u64 = 0x6d70_0002;

impl Wire for Value {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        use enc::Encode;
        match self {
            Value::None => types::Null.encode(w),
            Value::Bool(b) => b.encode(w),
            Value::Int(i) => i.encode(w),
            Value::Float(f) => f.encode(w),
            Value::Str(s) => s.as_str().encode(w),
            Value::Bytes(b) => types::Bytes(b.as_slice()).encode(w),
            Value::List(items) => write_slice(items, w),
            Value::Tuple(items) => {
                types::Tag(TAG_TUPLE, types::Nothing).encode(w)?;
                write_slice(items, w)
            }
            Value::Dict(map) => {
                types::Map::bounded(map.len(), w)?;
                map.iter().try_for_each(|(k, v)| {
                    k.write(w)?;
                    v.write(w)
                })
            }
            Value::Proxy(token) => {
                types::Tag(TAG_PROXY, types::Nothing).encode(w)?;
                token.write(w)
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        use dec::Decode;
        let byte = peek(r)?;
        charge_decoded(std::mem::size_of::<Value>())?;
        Ok(match dec::if_major(byte) {
            // Beyond 64 bits is `OverflowError` (see the `From` in codec).
            major::UNSIGNED | major::NEGATIVE => Value::Int(i64::decode(r)?),
            major::BYTES => {
                let bytes = types::Bytes::<Vec<u8>>::decode(r)?.0;
                charge_decoded(bytes.len())?;
                Value::Bytes(bytes)
            }
            major::STRING => {
                let text = String::decode(r)?;
                charge_decoded(text.len())?;
                Value::Str(text)
            }
            major::ARRAY => Value::List(read_vec(r)?),
            major::MAP => {
                let mut map = Map::new();
                read_map(r, |k: Value, v: Value| {
                    if let Some(name) = unhashable(&k) {
                        return Err(CodecError::Type(format!("unhashable type: '{name}'")));
                    }
                    map.insert(k, v);
                    Ok(())
                })?;
                Value::Dict(Box::new(map))
            }
            major::TAG => match types::Tag::tag(r)? {
                TAG_TUPLE => Value::Tuple(read_vec(r)?),
                TAG_PROXY => Value::Proxy(Box::new(Token::read(r)?)),
                TAG_BIGNUM => Value::Int(read_bignum(r, false)?),
                TAG_NEGATIVE_BIGNUM => Value::Int(read_bignum(r, true)?),
                other => return Err(CodecError::malformed(format!("unknown CBOR tag {other}"))),
            },
            _ => match byte {
                marker::FALSE | marker::TRUE => Value::Bool(bool::decode(r)?),
                marker::NULL | marker::UNDEFINED => {
                    dec::Read::advance(r, 1);
                    Value::None
                }
                marker::F64 => Value::Float(f64::decode(r)?),
                marker::F32 => Value::Float(f64::from(f32::decode(r)?)),
                marker::F16 => Value::Float(read_f16(r)?),
                other => {
                    return Err(CodecError::malformed(format!(
                        "unsupported CBOR item starting with 0x{other:02x}"
                    )))
                }
            },
        })
    }
}

/// CBOR's tag of a non-negative bignum (RFC 8949 §3.4.3): a byte string
/// holding the magnitude, big-endian.
const TAG_BIGNUM: u64 = 2;
/// CBOR's tag of a negative bignum: `-1 - n` for the magnitude `n`.
const TAG_NEGATIVE_BIGNUM: u64 = 3;

/// Reads the byte string of a bignum (tag 2, or 3 when `negative`), which
/// other encoders use for ints beyond 64 bits. One that fits an `i64` is
/// that int; a larger one is Python's `OverflowError`, as for a plain
/// integer beyond 64 bits.
fn read_bignum(r: &mut Reader<'_>, negative: bool) -> Result<i64, CodecError> {
    use dec::Decode;
    expect_major(r, major::BYTES, "a byte string under a bignum tag")?;
    let bytes = types::Bytes::<Vec<u8>>::decode(r)?.0;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = &bytes[start..];
    let too_large = || CodecError::Overflow(INT_TOO_LARGE.into());
    if digits.len() > 8 {
        return Err(too_large());
    }
    let mut be = [0u8; 8];
    be[8 - digits.len()..].copy_from_slice(digits);
    let magnitude = i64::try_from(u64::from_be_bytes(be)).map_err(|_| too_large())?;
    // -1 - i64::MAX is i64::MIN: every magnitude that fits has a negative.
    Ok(if negative { -1 - magnitude } else { magnitude })
}

/// The type that makes `key` unhashable, as Python names it in
/// "unhashable type: 'list'", or `None` when it can be a dict key.
fn unhashable(key: &Value) -> Option<&'static str> {
    match key {
        Value::List(_) | Value::Dict(_) => Some(key.type_name()),
        Value::Tuple(items) => items.iter().find_map(unhashable),
        _ => None,
    }
}

/// Reads a half-precision float (other CBOR encoders shorten floats).
fn read_f16(r: &mut Reader<'_>) -> Result<f64, CodecError> {
    let bytes = match dec::Read::fill(r, 3) {
        Ok(b) => b.as_ref().to_vec(),
        Err(never) => match never {},
    };
    let [_, hi, lo] = bytes[..] else {
        return Err(CodecError::malformed("the message ends inside a float"));
    };
    dec::Read::advance(r, 3);
    let half = u16::from_be_bytes([hi, lo]);
    let sign = if half & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((half >> 10) & 0x1f);
    let mant = f64::from(half & 0x3ff);
    Ok(sign
        * match exp {
            0 => mant * 2f64.powi(-24),
            31 if mant == 0.0 => f64::INFINITY,
            31 => f64::NAN,
            e => (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
        })
}

impl Wire for Token {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        write_array_header(w, 3)?;
        self.typeid.write(w)?;
        self.address.write(w)?;
        self.id.0.write(w)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        read_array_header(r, 3, "a proxy token")?;
        Ok(Token {
            typeid: String::read(r)?,
            address: String::read(r)?,
            id: ObjectId(u64::read(r)?),
        })
    }
}

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
            // A tuple as serde's tuple, so `to_value` gives a tuple back
            // (a dict key stays hashable); JSON and CBOR write both as
            // arrays.
            Value::Tuple(items) => {
                let mut seq = serializer.serialize_tuple(items.len())?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Dict(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map.iter() {
                    out.serialize_entry(k, v)?;
                }
                out.end()
            }
            Value::Proxy(token) => token.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Builds a [`Value`] from any self-describing serde format.
struct ValueVisitor;

fn fit<E: de::Error, T: TryInto<i64> + fmt::Display + Copy>(v: T) -> Result<Value, E> {
    v.try_into()
        .map(Value::Int)
        .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value (null, bool, int, float, str, bytes, list or dict)")
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
        fit(v)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        fit(v)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        fit(v)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    fn round(v: &Value) -> Value {
        decode(&encode(v).unwrap()).unwrap()
    }

    fn decode_value(bytes: &[u8]) -> Result<Value, String> {
        decode(bytes).map_err(|e| e.to_string())
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
            i64::MAX.into(),
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
        let back = round(&value);
        assert_eq!(back, value);
        // Equality is lenient across numbers; the repr is not.
        assert_eq!(back.repr(), value.repr());
    }

    #[test]
    fn plain_cbor_from_other_encoders_is_readable() {
        // [1, "a", h'00', 1.5 as f16, 1.5 as f32, undefined] written by hand.
        let bytes = [
            0x86, 0x01, 0x61, b'a', 0x41, 0x00, 0xf9, 0x3e, 0x00, 0xfa, 0x3f, 0xc0, 0x00, 0x00,
            0xf7,
        ];
        assert_eq!(
            decode_value(&bytes).unwrap(),
            Value::List(vec![
                1.into(),
                "a".into(),
                Value::Bytes(vec![0]),
                1.5.into(),
                1.5.into(),
                Value::None
            ])
        );
        // An indefinite-length array and map.
        assert_eq!(
            decode_value(&[0x9f, 0x01, 0xff]).unwrap(),
            Value::List(vec![1.into()])
        );
        assert_eq!(
            decode_value(&[0xbf, 0x01, 0x02, 0xff]).unwrap().repr(),
            "{1: 2}"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        // u64::MAX
        assert!(decode_value(&[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // {[]: 1}: an unhashable key
        assert!(decode_value(&[0xa1, 0x80, 0x01])
            .unwrap_err()
            .contains("unhashable"));
        // tag 1 (epoch time) over 0: unknown here
        assert!(decode_value(&[0xc1, 0x00]).is_err());
        // an array claiming 2^32 items with none present allocates nothing big
        assert!(decode_value(&[0x9a, 0xff, 0xff, 0xff, 0xff]).is_err());
        // byte and text strings claiming 2^64-1 bytes with none present
        let huge = [0xff; 8];
        assert!(decode_value(&[[0x5b].as_slice(), &huge].concat()).is_err());
        assert!(decode_value(&[[0x7b].as_slice(), &huge].concat()).is_err());
        // a map claiming 2^32 entries
        assert!(decode_value(&[0xba, 0xff, 0xff, 0xff, 0xff]).is_err());
        // invalid UTF-8 in a text string
        assert!(decode_value(&[0x61, 0xff]).is_err());
        // deep nesting hits the depth limit instead of the stack
        assert!(decode_value(&vec![0x81; 100_000]).is_err());
        let deep_tuples: Vec<u8> = std::iter::repeat([0xda, 0x6d, 0x70, 0x00, 0x01, 0x81])
            .take(10_000)
            .flatten()
            .collect();
        assert!(decode_value(&deep_tuples).is_err());
        // a break where an item belongs
        assert!(decode_value(&[0xff]).is_err());
        assert!(decode_value(&[]).is_err());
    }

    #[test]
    fn bignums_are_ints_when_they_fit_and_overflow_when_not() {
        // tag 2 over h'01' is 1; tag 3 over h'00ff' is -256.
        assert_eq!(decode_value(&[0xc2, 0x41, 0x01]).unwrap(), Value::Int(1));
        assert_eq!(
            decode_value(&[0xc3, 0x42, 0x00, 0xff]).unwrap(),
            Value::Int(-256)
        );
        // i64::MAX and i64::MIN, with leading zeros.
        let mut max = vec![0xc2, 0x49, 0x00, 0x7f];
        max.extend([0xff; 7]);
        assert_eq!(decode_value(&max).unwrap(), Value::Int(i64::MAX));
        let mut min = vec![0xc3, 0x48, 0x7f];
        min.extend([0xff; 7]);
        assert_eq!(decode_value(&min).unwrap(), Value::Int(i64::MIN));
        // 2^63, -2^63-1 and 2^64 do not fit.
        for bytes in [
            vec![0xc2, 0x48, 0x80, 0, 0, 0, 0, 0, 0, 0],
            vec![0xc3, 0x48, 0x80, 0, 0, 0, 0, 0, 0, 0],
            vec![0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let e = decode::<Value>(&bytes).unwrap_err();
            assert!(matches!(e, CodecError::Overflow(_)), "{e:?}");
            assert_eq!(e.to_string(), INT_TOO_LARGE);
        }
        // A bignum tag over something other than bytes.
        let e = decode_value(&[0xc2, 0x01]).unwrap_err();
        assert!(
            e.contains("expected a byte string under a bignum tag, found a non-negative integer"),
            "{e}"
        );
    }

    #[test]
    fn an_unhashable_key_is_a_type_error_named_as_python_names_it() {
        let e = decode::<Value>(&[0xa1, 0x80, 0x01]).unwrap_err();
        assert!(matches!(e, CodecError::Type(_)), "{e:?}");
        assert_eq!(e.to_string(), "unhashable type: 'list'");
        // A tuple holding a dict: the dict is what Python names.
        let tuple_of_dict = [0xa1, 0xda, 0x6d, 0x70, 0x00, 0x01, 0x81, 0xa0, 0x01];
        assert_eq!(
            decode_value(&tuple_of_dict).unwrap_err(),
            "unhashable type: 'dict'"
        );
    }

    #[test]
    fn the_plain_serde_form_is_json_friendly() {
        let token = Token {
            typeid: "dict".into(),
            address: "h:1".into(),
            id: ObjectId(2),
        };
        let v = Value::Tuple(vec![1.into(), "x".into(), token.into()]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"[1,"x",{"typeid":"dict","address":"h:1","id":2}]"#
        );
        let back: Value = serde_json::from_str(r#"{"a": [1, 2.5, null]}"#).unwrap();
        assert_eq!(back.repr(), "{'a': [1, 2.5, None]}");
    }

    #[test]
    fn a_tuple_serializes_as_a_tuple() {
        // A tuple key sent through serde (a proxy's arguments) must stay
        // a tuple, or it would arrive as an unhashable list.
        let t = Value::Tuple(vec![1.into(), "a".into()]);
        assert_eq!(crate::value::to_value(&t).unwrap(), t);
        let mut map = crate::value::Map::new();
        map.insert(t.clone(), Value::None);
        let d = Value::from(map);
        assert_eq!(crate::value::to_value(&d).unwrap(), d);
    }
}
