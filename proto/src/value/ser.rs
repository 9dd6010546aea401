//! Any `Serialize` type → [`Value`]: [`to_value`].
//!
//! The mapping is the one a Python user would expect to see on the other
//! side: structs and maps become dicts, sequences lists, tuples tuples,
//! unit and `None` become `None`, a unit enum variant its name, and a data
//! variant a one-entry dict `{variant: data}`. A [`Token`] becomes a proxy
//! reference. Integers outside `i64` are an error, not a silent wrap.

use serde::ser::{self, Serialize};

use super::{Map, Token, Value, ValueError};

/// The newtype name a [`Token`] serializes under, so that [`to_value`]
/// recognizes it and makes a proxy reference instead of a dict.
pub(crate) const TOKEN_NEWTYPE: &str = "$mp_proto::Token";

/// Converts any serializable value into a [`Value`].
///
/// ```
/// use mp_proto::value::{to_value, Value};
/// assert_eq!(to_value(&(1, "a")).unwrap(), Value::Tuple(vec![1.into(), "a".into()]));
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(ValueSerializer)
}

/// The serde `Serializer` whose output is a [`Value`].
pub struct ValueSerializer;

fn int<T: TryInto<i64> + std::fmt::Display + Copy>(v: T) -> Result<Value, ValueError> {
    v.try_into()
        .map(Value::Int)
        .map_err(|_| ValueError(format!("integer {v} does not fit in 64 bits")))
}

fn key(value: Value) -> Result<Value, ValueError> {
    if value.is_hashable() {
        Ok(value)
    } else {
        Err(ValueError(format!(
            "unhashable type: '{}' cannot be a dict key",
            value.type_name()
        )))
    }
}

fn single(name: &'static str, value: Value) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(Value::Str(name.to_owned()), value);
    Value::Dict(Box::new(map))
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::None)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::None)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::Str(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        let inner = value.serialize(self)?;
        if name == TOKEN_NEWTYPE {
            let token: Token = super::from_value(inner)?;
            return Ok(Value::Proxy(Box::new(token)));
        }
        Ok(inner)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        Ok(single(variant, value.serialize(self)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(len, SeqKind::List))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(Some(len), SeqKind::Tuple))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(Some(len), SeqKind::Tuple))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(Some(len), SeqKind::Variant(variant)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder::new(len, None))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder::new(Some(len), None))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder::new(Some(len), Some(variant)))
    }
}

/// What a sequence being built becomes.
enum SeqKind {
    List,
    Tuple,
    /// A tuple variant: `{variant: (items…)}`.
    Variant(&'static str),
}

/// Collects the items of a sequence, tuple or tuple variant.
pub struct SeqBuilder {
    items: Vec<Value>,
    kind: SeqKind,
}

impl SeqBuilder {
    fn new(len: Option<usize>, kind: SeqKind) -> Self {
        // A hint from a Serialize impl is not trusted beyond a modest size.
        let items = Vec::with_capacity(len.unwrap_or(0).min(4096));
        SeqBuilder { items, kind }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn finish(self) -> Value {
        match self.kind {
            SeqKind::List => Value::List(self.items),
            SeqKind::Tuple => Value::Tuple(self.items),
            SeqKind::Variant(name) => single(name, Value::Tuple(self.items)),
        }
    }
}

macro_rules! seq_impl {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for SeqBuilder {
            type Ok = Value;
            type Error = ValueError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
                self.push(value)
            }
            fn end(self) -> Result<Value, ValueError> {
                Ok(self.finish())
            }
        }
    };
}

seq_impl!(SerializeSeq, serialize_element);
seq_impl!(SerializeTuple, serialize_element);
seq_impl!(SerializeTupleStruct, serialize_field);
seq_impl!(SerializeTupleVariant, serialize_field);

/// Collects the entries of a map, struct or struct variant.
pub struct MapBuilder {
    map: Map,
    pending_key: Option<Value>,
    variant: Option<&'static str>,
}

impl MapBuilder {
    fn new(len: Option<usize>, variant: Option<&'static str>) -> Self {
        MapBuilder {
            map: Map::with_capacity(len.unwrap_or(0).min(4096)),
            pending_key: None,
            variant,
        }
    }

    fn finish(self) -> Value {
        let dict = Value::Dict(Box::new(self.map));
        match self.variant {
            Some(name) => single(name, dict),
            None => dict,
        }
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        let value = value.serialize(ValueSerializer)?;
        self.map.insert(Value::Str(name.to_owned()), value);
        Ok(())
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), ValueError> {
        self.pending_key = Some(key(k.serialize(ValueSerializer)?)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        let k = self
            .pending_key
            .take()
            .ok_or_else(|| ValueError("a map value was serialized before its key".into()))?;
        self.map.insert(k, v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        self.field(name, v)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        self.field(name, v)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}
