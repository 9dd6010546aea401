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
//! Encoding may be given a limit ([`encode_into_limited`]): the writer
//! refuses to grow the message past it, so an answer too large to send is
//! never built in full.
//!
//! Errors say what was wrong in words ("expected an integer request id,
//! found a text string"), and carry the Python exception a peer should
//! see ([`CodecError::kind`]): `OverflowError` for an int beyond 64 bits,
//! `TypeError` for an unhashable dict key, `ProtocolError` for the rest.

use std::collections::TryReserveError;
use std::convert::Infallible;

use cbor4ii::core::dec::{self, Read};
use cbor4ii::core::enc;
use cbor4ii::core::utils::SliceReader;

use crate::error::ErrorKind;

/// The reader every [`Wire`] type decodes from: a slice of one frame.
pub type Reader<'a> = SliceReader<'a>;
/// What a write can fail with: running out of memory, or the limit.
pub type WriteError = enc::Error<WriteFailure>;

/// CPython's message when an int does not fit a C `long`
/// (`PyLong_AsLong`): what a value beyond 64 bits gets.
pub const INT_TOO_LARGE: &str = "Python int too large to convert to C long";

/// The writer every [`Wire`] type encodes into: a growing buffer that
/// refuses to grow past a limit.
#[derive(Debug)]
pub struct Writer {
    buf: Vec<u8>,
    /// The most `buf` may hold.
    limit: usize,
}

impl Writer {
    /// Appends to `buf`, which may grow by at most `room` more bytes.
    pub fn new(buf: Vec<u8>, room: usize) -> Writer {
        let limit = buf.len().saturating_add(room);
        Writer { buf, limit }
    }

    /// The bytes written so far (and those `buf` held before).
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// Why a [`Writer`] refused bytes.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    /// Memory ran out.
    #[error("out of memory: {0}")]
    OutOfMemory(#[from] TryReserveError),
    /// The message would pass the writer's limit.
    #[error("the message would be larger than the limit")]
    Limit,
}

impl enc::Write for Writer {
    type Error = WriteFailure;

    #[inline]
    fn push(&mut self, input: &[u8]) -> Result<(), WriteFailure> {
        // `buf.len() <= limit` always holds, so this cannot underflow.
        if input.len() > self.limit - self.buf.len() {
            return Err(WriteFailure::Limit);
        }
        self.buf.try_reserve(input.len())?;
        self.buf.extend_from_slice(input);
        Ok(())
    }
}

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
    #[error("malformed message: {} after the item", bytes(*.0))]
    Trailing(usize),
    /// A well-formed integer beyond the 64 bits a value holds (Python's
    /// `OverflowError`); the message is CPython's ([`INT_TOO_LARGE`]).
    #[error("{0}")]
    Overflow(String),
    /// A well-formed value of a type that cannot be where it is, such as
    /// an unhashable dict key (Python's `TypeError`).
    #[error("{0}")]
    Type(String),
    /// The message could not be written (out of memory).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The decoded values would take more memory than the limit the
    /// message was read under ([`decode_within`]); decoding stopped there.
    #[error(
        "the request's values would take more than {limit} bytes of memory, \
         over this server's limit (--max-value-bytes)"
    )]
    DecodedTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The message would have been larger than the limit it was written
    /// under ([`encode_into_limited`]); nothing past the limit was built.
    #[error("the message would be larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl CodecError {
    /// A decode error saying what was wrong.
    pub fn malformed(what: impl Into<String>) -> Self {
        CodecError::Decode(what.into())
    }

    /// The Python exception a peer whose message failed this way should
    /// get.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CodecError::Decode(_) | CodecError::Trailing(_) => ErrorKind::ProtocolError,
            CodecError::Overflow(_) => ErrorKind::OverflowError,
            CodecError::Type(_) => ErrorKind::TypeError,
            CodecError::Encode(_) | CodecError::DecodedTooLarge { .. } => ErrorKind::MemoryError,
            CodecError::TooLarge { .. } => ErrorKind::LimitExceeded,
        }
    }
}

/// `cbor4ii`'s errors, said in words. The reader is a slice, which cannot
/// fail to read (`Infallible`).
impl From<dec::Error<Infallible>> for CodecError {
    fn from(e: dec::Error<Infallible>) -> Self {
        use dec::Error as E;
        let name = |n: &&str| expected_for(n);
        CodecError::Decode(match e {
            E::Read(never) => match never {},
            E::Mismatch { name: n, found } => mismatch(n, found),
            E::Unsupported { name: n, found } => {
                format!("{} with unsupported marker 0x{found:02x}", name(n))
            }
            E::Eof { name: n, .. } => format!("the message ends inside {}", name(n)),
            E::RequireLength { name: n, .. } => {
                format!("expected {} of definite length", name(n))
            }
            E::RequireBorrowed { name: n } => {
                format!("{} must be of definite length here", name(n))
            }
            E::RequireUtf8 { .. } => "a text string is not valid UTF-8".into(),
            E::LengthOverflow { name: n, .. } => format!("{} is too long", name(n)),
            E::CastOverflow { name: n } | E::ArithmeticOverflow { name: n, .. } => {
                if is_i64(n) {
                    return CodecError::Overflow(INT_TOO_LARGE.into());
                }
                format!("an integer out of range for {}", name(n))
            }
            E::DepthOverflow { .. } => "nested too deeply".into(),
            _ => "not valid CBOR".into(),
        })
    }
}

impl From<WriteError> for CodecError {
    fn from(e: WriteError) -> Self {
        match e {
            enc::Error::Write(e) => CodecError::Encode(e.to_string()),
            _ => CodecError::Encode("the encoder failed".into()),
        }
    }
}

/// Whether `cbor4ii`'s type name is one of `i64`'s (`+i64`, `-i64`).
fn is_i64(name: &str) -> bool {
    name.trim_start_matches(['+', '-']) == "i64"
}

/// "expected X, found Y" for an item of the wrong type, with `name` as
/// `cbor4ii` names what it wanted and `found` the item's first byte.
fn mismatch(name: &str, found: u8) -> String {
    let expected = expected_for(name);
    // A number's own major type but too wide for the one wanted (a u32
    // field holding a 64-bit value), or a malformed length marker.
    let same_major = match name.trim_start_matches('+') {
        "u8" | "u16" | "u32" | "u64" => found >> 5 == 0,
        n if n.starts_with('-') => found >> 5 == 1,
        _ => false,
    };
    if same_major {
        format!("expected {expected}, found an integer out of its range")
    } else {
        format!("expected {expected}, found {}", describe_item(found))
    }
}

/// What `cbor4ii`'s type name `name` stands for, in words.
fn expected_for(name: &str) -> &'static str {
    match name {
        "u8" | "+i8" => "an integer below 2^8",
        "u16" | "+i16" => "an integer below 2^16",
        "u32" | "+i32" => "an integer below 2^32",
        "u64" | "+i64" => "a non-negative integer",
        n if n.starts_with('-') => "a negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "u128" => "an integer",
        "str" => "a text string",
        "bytes" => "a byte string",
        "array" => "an array",
        "map" => "a map",
        "bool" => "true or false",
        "f16" | "f32" | "f64" => "a float",
        "tag" => "a tagged item",
        "break" => "the end of an indefinite-length item",
        "option" | "maybe" => "a value or null",
        "simple" => "a simple value",
        _ => "an item of another type",
    }
}

/// "1 byte", "3 bytes".
pub(crate) fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// "an array of 3 items" or "an indefinite-length array", for messages.
pub(crate) fn array_of(len: Option<usize>) -> String {
    match len {
        Some(1) => "an array of 1 item".into(),
        Some(n) => format!("an array of {n} items"),
        None => "an indefinite-length array".into(),
    }
}

/// What the CBOR item starting with `byte` is, in words.
pub fn describe_item(byte: u8) -> &'static str {
    match byte >> 5 {
        0 => "a non-negative integer",
        1 => "a negative integer",
        2 => "a byte string",
        3 => "a text string",
        4 => "an array",
        5 => "a map",
        6 => "a tagged item",
        _ => match byte {
            0xf4 | 0xf5 => "a boolean",
            0xf6 => "null",
            0xf7 => "undefined",
            0xf9..=0xfb => "a float",
            0xff => "a break (the end of an indefinite-length item)",
            _ => "a simple value",
        },
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
    encode_into_limited(message, out, usize::MAX)
}

/// Appends a message as one CBOR item to `out`, unless it would take more
/// than `max` bytes: then `out` is left as it was and the error is
/// [`CodecError::TooLarge`]. Encoding stops at the limit, so an oversized
/// message costs at most `max` bytes, never its full size.
pub fn encode_into_limited<T: Wire>(
    message: &T,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), CodecError> {
    let at = out.len();
    let mut writer = Writer::new(std::mem::take(out), max);
    let result = message.write(&mut writer);
    *out = writer.into_inner();
    result.map_err(|e| {
        out.truncate(at);
        match e {
            enc::Error::Write(WriteFailure::Limit) => CodecError::TooLarge { limit: max },
            other => CodecError::from(other),
        }
    })
}

/// Appends a message to `out` as one whole frame: its header
/// ([`frame::encode_header`](crate::frame::encode_header): 4 bytes, or
/// CPython's 12-byte long form past 2 GiB) and its CBOR payload of at most
/// `max` bytes. On error `out` is left as it was. Both sides frame every
/// message they send through this one function.
pub fn encode_frame_into<T: Wire>(
    message: &T,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), CodecError> {
    const SHORT: usize = 4;
    let at = out.len();
    out.extend_from_slice(&[0; SHORT]);
    if let Err(e) = encode_into_limited(message, out, max) {
        out.truncate(at);
        return Err(e);
    }
    let len = out.len() - at - SHORT;
    let header = crate::frame::encode_header(len as u64);
    let header = header.as_bytes();
    if header.len() == SHORT {
        out[at..at + SHORT].copy_from_slice(header);
    } else {
        // Rare (a payload past 2 GiB): move the payload up once.
        out.splice(at..at + SHORT, header.iter().copied());
    }
    Ok(())
}

/// Decodes one CBOR item that must fill `bytes` exactly.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut reader = SliceReader::new(bytes);
    let value = T::read(&mut reader)?;
    match remaining(&mut reader) {
        0 => Ok(value),
        n => Err(CodecError::Trailing(n)),
    }
}

thread_local! {
    /// What the [`decode_within`] running on this thread may still decode,
    /// with its limit; `None` outside one.
    static DECODE_BUDGET: std::cell::Cell<Option<(usize, usize)>> =
        const { std::cell::Cell::new(None) };
}

/// Decodes like [`decode`], but stops with [`CodecError::DecodedTooLarge`]
/// once the decoded values would take more than `max` bytes of memory.
///
/// A frame's size does not bound what it decodes to: a one-byte CBOR item
/// becomes a value slot of 32 bytes, and growing vectors can double that,
/// so a frame of many tiny items decodes to up to ~64 times its size. Each
/// value is charged its slot, a string or byte string its length too,
/// before the next is read: the same estimate the server's store checks
/// use, so what decodes within `max` can be stored under the same limit.
/// Vectors growing while they decode may hold up to twice that.
pub fn decode_within<T: Wire>(bytes: &[u8], max: usize) -> Result<T, CodecError> {
    let outer = DECODE_BUDGET.replace(Some((max, max)));
    let result = decode(bytes);
    DECODE_BUDGET.set(outer);
    result
}

/// Charges `bytes` of decoded memory to the running [`decode_within`].
#[inline]
pub(crate) fn charge_decoded(bytes: usize) -> Result<(), CodecError> {
    match DECODE_BUDGET.get() {
        None => Ok(()),
        Some((left, limit)) => match left.checked_sub(bytes) {
            Some(left) => {
                DECODE_BUDGET.set(Some((left, limit)));
                Ok(())
            }
            None => Err(CodecError::DecodedTooLarge { limit }),
        },
    }
}

/// How many bytes are left unread.
fn remaining(r: &mut Reader<'_>) -> usize {
    match r.fill(usize::MAX) {
        Ok(rest) => rest.as_ref().len(),
        Err(never) => match never {},
    }
}

/// The next byte without consuming it: the item's major type and marker.
pub(crate) fn peek(r: &mut Reader<'_>) -> Result<u8, CodecError> {
    match r.fill(1) {
        Ok(next) => next.as_ref().first().copied(),
        Err(never) => match never {},
    }
    .ok_or_else(|| CodecError::malformed("the message ends where an item was expected"))
}

/// Checks that the next item is of CBOR major type `major` (see
/// `cbor4ii::core::major`), or says "expected `what`, found …".
pub(crate) fn expect_major(r: &mut Reader<'_>, major: u8, what: &str) -> Result<(), CodecError> {
    let byte = peek(r)?;
    if dec::if_major(byte) == major {
        Ok(())
    } else {
        Err(CodecError::malformed(format!(
            "expected {what}, found {}",
            describe_item(byte)
        )))
    }
}

/// Reads the header of a definite-length array and checks its length.
pub(crate) fn read_array_header(
    r: &mut Reader<'_>,
    len: usize,
    what: &str,
) -> Result<(), CodecError> {
    let byte = peek(r)?;
    if dec::if_major(byte) != cbor4ii::core::major::ARRAY {
        return Err(CodecError::malformed(format!(
            "expected {what} ({}), found {}",
            array_of(Some(len)),
            describe_item(byte)
        )));
    }
    match cbor4ii::core::types::Array::len(r)? {
        Some(n) if n == len => Ok(()),
        found => Err(CodecError::malformed(format!(
            "expected {what} ({}), found {}",
            array_of(Some(len)),
            array_of(found)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Kwargs, Request, Target};
    use crate::value::Value;

    fn request(args: Vec<Value>) -> Request {
        Request {
            id: 9,
            target: Target::Server,
            method: "m".into(),
            args,
            kwargs: Kwargs::new(),
            thread: 1,
        }
    }

    /// Says the error, and checks it is words, not Rust's debug text.
    fn said(e: CodecError) -> String {
        let text = e.to_string();
        for debug in ["Mismatch", "name:", "Some(", "None", "{", "Len", "Eof"] {
            assert!(!text.contains(debug), "debug text in {text:?}");
        }
        text
    }

    #[test]
    fn errors_say_what_was_wrong_in_words() {
        // ["x", ...]: a text string where the request id belongs.
        let mut bytes = vec![0x86, 0x61, b'x'];
        bytes.extend_from_slice(&[0xf6, 0x61, b'm', 0x80, 0xa0, 0x01]);
        let e = decode::<Request>(&bytes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProtocolError);
        assert_eq!(
            said(e),
            "malformed message: expected an integer request id, found a text string"
        );
        // A map where the request belongs.
        let e = decode::<Request>(&[0xa0]).unwrap_err();
        assert_eq!(
            said(e),
            "malformed message: expected a request (an array of 6 items), found a map"
        );
        // A short array.
        let e = decode::<Request>(&[0x83, 0x01, 0x02, 0x03]).unwrap_err();
        assert_eq!(
            said(e),
            "malformed message: expected a request (an array of 6 items), found an array of 3 items"
        );
        // The method name a number; a keyword name a number.
        let mut bytes = encode(&request(vec![])).unwrap();
        bytes[3] = 0x05;
        let e = said(decode::<Request>(&bytes).unwrap_err());
        assert!(
            e.contains("expected a method name (a text string), found"),
            "{e}"
        );
        let bytes = [0x86, 0x01, 0xf6, 0x61, b'm', 0x80, 0xa1, 0x01, 0x02, 0x01];
        let e = said(decode::<Request>(&bytes).unwrap_err());
        assert!(e.contains("expected a keyword argument name"), "{e}");
        // Cut short inside a text string; invalid UTF-8; a stray break.
        let e = said(decode::<Value>(&[0x65, b'a']).unwrap_err());
        assert!(e.contains("ends inside a text string"), "{e}");
        let e = said(decode::<Value>(&[0x61, 0xff]).unwrap_err());
        assert!(e.contains("not valid UTF-8"), "{e}");
        let e = said(decode::<Value>(&[0xff]).unwrap_err());
        assert!(
            e.contains("unsupported CBOR item starting with 0xff"),
            "{e}"
        );
        let e = said(decode::<Value>(&[]).unwrap_err());
        assert!(e.contains("ends where an item was expected"), "{e}");
        let e = said(decode::<Value>(&[0x01, 0x02]).unwrap_err());
        assert!(e.contains("1 byte after the item"), "{e}");
    }

    #[test]
    fn ints_beyond_64_bits_are_overflow_errors() {
        // 2^63 and -2^63-1 as plain CBOR integers.
        for bytes in [
            [0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0],
            [0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let e = decode::<Value>(&bytes).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::OverflowError);
            assert_eq!(said(e), INT_TOO_LARGE);
        }
        // In a request's arguments, too.
        let mut bytes = encode(&request(vec![Value::Int(0)])).unwrap();
        let at = bytes.iter().position(|&b| b == 0x81).unwrap() + 1;
        bytes.splice(
            at..at + 1,
            [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        let e = decode::<Request>(&bytes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OverflowError);
        // i64's own bounds are fine.
        let v: Value = decode(&[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(v, Value::Int(i64::MIN));
    }

    #[test]
    fn a_frame_is_its_header_then_its_payload_and_a_refused_one_leaves_nothing() {
        let message = request(vec![Value::Str("x".repeat(100))]);
        let payload = encode(&message).unwrap();
        let mut out = b"kept".to_vec();
        encode_frame_into(&message, &mut out, usize::MAX).unwrap();
        let (header, len) = crate::frame::decode_header(&out[4..], u64::MAX)
            .unwrap()
            .unwrap();
        assert_eq!((header, len), (4, payload.len()));
        assert_eq!(&out[8..], &payload[..]);
        assert!(matches!(
            encode_frame_into(&message, &mut out, payload.len() - 1),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(out.len(), 8 + payload.len(), "a refused frame left bytes");
    }

    #[test]
    fn a_limited_encoding_stops_at_its_limit_and_leaves_the_buffer() {
        let value = Value::Str("x".repeat(1000));
        let full = encode(&value).unwrap();
        let mut out = b"kept".to_vec();
        let e = encode_into_limited(&value, &mut out, full.len() - 1).unwrap_err();
        assert!(matches!(e, CodecError::TooLarge { limit } if limit == full.len() - 1));
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert_eq!(out, b"kept");
        encode_into_limited(&value, &mut out, full.len()).unwrap();
        assert_eq!(&out[4..], full);
        // A list of many small items stops as soon as it passes.
        let list = Value::List(vec![Value::Int(1); 10_000]);
        let mut out = Vec::new();
        assert!(encode_into_limited(&list, &mut out, 100).is_err());
        assert!(out.capacity() < 10_000, "built {} bytes", out.capacity());
    }

    #[test]
    fn every_item_has_a_name() {
        for byte in 0..=255u8 {
            assert!(!describe_item(byte).is_empty());
        }
        assert_eq!(describe_item(0x61), "a text string");
        assert_eq!(describe_item(0xf6), "null");
    }

    #[test]
    fn decoding_within_a_budget_stops_a_frame_of_tiny_items() {
        let request = Request {
            id: 5,
            target: Target::Server,
            method: "extend".into(),
            args: vec![Value::List(vec![Value::Int(0); 100_000])],
            kwargs: Default::default(),
            thread: 0,
        };
        let bytes = encode(&request).unwrap();
        // About 100 kB of frame, 3.2 MB of values.
        assert!(bytes.len() < 110_000);
        let e = decode_within::<Request>(&bytes, 1 << 20).unwrap_err();
        assert!(matches!(e, CodecError::DecodedTooLarge { limit } if limit == 1 << 20));
        assert_eq!(e.kind(), ErrorKind::MemoryError);
        assert_eq!(decode_within::<Request>(&bytes, 16 << 20).unwrap(), request);
        // Outside a budget nothing is charged, and a budget does not leak.
        assert_eq!(decode::<Request>(&bytes).unwrap(), request);
    }
}
