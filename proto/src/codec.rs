//! The CBOR codec of every message: [`Wire`], [`encode`], [`decode`].
//!
//! Our messages have fixed shapes, so each type writes and reads itself
//! with `cbor4ii`'s low-level encoder and decoder instead of going through
//! serde: no field names on the wire or matched on the hot path, and a
//! typical request decodes in under 200 ns (serde over ciborium took
//! 760 ns on the same machine; `mp-bench proto` measures it).
//!
//! Decoding is from a slice (a whole frame), with nesting bounded at 256
//! levels and no length from the input trusted for preallocation beyond a
//! small bound, so a frame's size bounds what decoding it can cost.

use std::collections::TryReserveError;
use std::fmt::Debug;

use cbor4ii::core::dec::{self, Read};
use cbor4ii::core::enc;
use cbor4ii::core::utils::{BufWriter, SliceReader};

/// The writer every [`Wire`] type encodes into.
pub type Writer = BufWriter;
/// The reader every [`Wire`] type decodes from: a slice of one frame.
pub type Reader<'a> = SliceReader<'a>;
/// What a write can fail with (only running out of memory).
pub type WriteError = enc::Error<TryReserveError>;

/// A message or part of one with a CBOR form.
pub trait Wire: Sized {
    /// Appends the CBOR form of `self`.
    fn write(&self, w: &mut Writer) -> Result<(), WriteError>;
    /// Reads one item from `r`.
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError>;
}

/// A message that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid CBOR item of the expected shape.
    #[error("malformed message: {0}")]
    Decode(String),
    /// Bytes were left after the message.
    #[error("malformed message: {0} trailing bytes after the item")]
    Trailing(usize),
    /// The message could not be written (out of memory).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

impl CodecError {
    /// A decode error saying what was wrong.
    pub fn malformed(what: impl Into<String>) -> Self {
        CodecError::Decode(what.into())
    }
}

impl<E: Debug> From<dec::Error<E>> for CodecError {
    fn from(e: dec::Error<E>) -> Self {
        CodecError::Decode(format!("{e:?}"))
    }
}

impl From<WriteError> for CodecError {
    fn from(e: WriteError) -> Self {
        CodecError::Encode(format!("{e:?}"))
    }
}

/// Encodes a message as one CBOR item.
pub fn encode<T: Wire>(message: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Appends a message as one CBOR item to `out` (reusing its buffer).
pub fn encode_into<T: Wire>(message: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let mut writer = BufWriter::new(std::mem::take(out));
    let result = message.write(&mut writer);
    *out = writer.into_inner();
    Ok(result?)
}

/// Decodes one CBOR item that must fill `bytes` exactly.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut reader = SliceReader::new(bytes);
    let value = T::read(&mut reader)?;
    match remaining(&mut reader)? {
        0 => Ok(value),
        n => Err(CodecError::Trailing(n)),
    }
}

/// How many bytes are left unread.
fn remaining(r: &mut Reader<'_>) -> Result<usize, CodecError> {
    Ok(r.fill(usize::MAX)
        .map_err(|e| CodecError::Decode(format!("{e:?}")))?
        .as_ref()
        .len())
}

/// The next byte without consuming it: the item's major type and marker.
pub(crate) fn peek(r: &mut Reader<'_>) -> Result<u8, CodecError> {
    r.fill(1)
        .map_err(|e| CodecError::Decode(format!("{e:?}")))?
        .as_ref()
        .first()
        .copied()
        .ok_or_else(|| CodecError::malformed("unexpected end of message"))
}

/// Reads the header of a definite-length array and checks its length.
pub(crate) fn read_array_header(
    r: &mut Reader<'_>,
    len: usize,
    what: &str,
) -> Result<(), CodecError> {
    match cbor4ii::core::types::Array::len(r)? {
        Some(n) if n == len => Ok(()),
        found => Err(CodecError::malformed(format!(
            "{what}: expected an array of {len}, found {found:?}"
        ))),
    }
}

/// Writes the header of a definite-length array.
pub(crate) fn write_array_header(w: &mut Writer, len: usize) -> Result<(), WriteError> {
    cbor4ii::core::types::Array::bounded(len, w)
}

/// Reads a definite or indefinite array of `T`.
pub(crate) fn read_vec<T: Wire>(r: &mut Reader<'_>) -> Result<Vec<T>, CodecError> {
    with_depth(r, |r| {
        let mut items = Vec::new();
        match cbor4ii::core::types::Array::len(r)? {
            Some(len) => {
                items.reserve(len.min(CAUTIOUS_CAPACITY));
                for _ in 0..len {
                    items.push(T::read(r)?);
                }
            }
            None => {
                while !dec::is_break(r)? {
                    items.push(T::read(r)?);
                }
            }
        }
        Ok(items)
    })
}

/// Writes a slice as a definite array.
pub(crate) fn write_slice<T: Wire>(items: &[T], w: &mut Writer) -> Result<(), WriteError> {
    write_array_header(w, items.len())?;
    items.iter().try_for_each(|item| item.write(w))
}

/// Reads the entries of a definite or indefinite map, calling `entry` on
/// each.
pub(crate) fn read_map<K: Wire, V: Wire>(
    r: &mut Reader<'_>,
    mut entry: impl FnMut(K, V) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    with_depth(r, |r| {
        match cbor4ii::core::types::Map::len(r)? {
            Some(len) => {
                for _ in 0..len {
                    let k = K::read(r)?;
                    entry(k, V::read(r)?)?;
                }
            }
            None => {
                while !dec::is_break(r)? {
                    let k = K::read(r)?;
                    entry(k, V::read(r)?)?;
                }
            }
        }
        Ok(())
    })
}

/// Preallocate at most this many items whatever a length prefix claims.
pub(crate) const CAUTIOUS_CAPACITY: usize = 256;

/// Runs `f` one nesting level deeper, failing past the reader's limit.
pub(crate) fn with_depth<T>(
    r: &mut Reader<'_>,
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    if !r.step_in() {
        return Err(CodecError::malformed("nested too deeply"));
    }
    let out = f(r);
    r.step_out();
    out
}

macro_rules! wire_via_cbor4ii {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
                enc::Encode::encode(self, w)
            }
            fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok(<$t as dec::Decode<'_>>::decode(r)?)
            }
        }
    )*};
}

wire_via_cbor4ii!(u32, u64, i64, String, bool);

impl<T: Wire> Wire for Option<T> {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        match self {
            Some(v) => v.write(w),
            None => enc::Encode::encode(&cbor4ii::core::types::Null, w),
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        use cbor4ii::core::marker::{NULL, UNDEFINED};
        if matches!(peek(r)?, NULL | UNDEFINED) {
            r.advance(1);
            Ok(None)
        } else {
            T::read(r).map(Some)
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn write(&self, w: &mut Writer) -> Result<(), WriteError> {
        write_slice(self, w)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        read_vec(r)
    }
}
