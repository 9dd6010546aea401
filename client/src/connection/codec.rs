//! How `Connection::send` / `recv` turn values into message bytes: CBOR
//! (ciborium), the project's codec, with a fast path for byte buffers.
//!
//! Python pickles; we cannot, so our `send`/`recv` payloads are CBOR and
//! only interoperate with peers of this crate (`send_bytes`/`recv_bytes`
//! interoperate with CPython). serde hands a `Vec<u8>` to a serializer one
//! byte at a time; for `Vec<u8>`, `[u8]` and `&[u8]` we recognise the type
//! instead and write a CBOR byte string: a head of 1–9 bytes and the bytes
//! themselves, untouched, so `send(&vec)` costs what `send_bytes` does.
//! Byte buffers nested inside other values should use `serde_bytes`.
//!
//! A value holding file descriptors ([`SharedFd`](crate::reduction::SharedFd)s,
//! e.g. a `Connection`) goes out wrapped as `tag(FD_TAG, [count, value])`,
//! the descriptors attached to its first bytes; the receiver takes `count`
//! descriptors from those that arrived, oldest first.

use std::mem::ManuallyDrop;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ConnectionError;

/// CBOR major type 2 (byte string), in the top three bits of a head.
const MAJOR_BYTES: u8 = 2 << 5;

/// A CBOR byte-string head: the major type and the length in the shortest
/// form.
pub(crate) struct Head {
    bytes: [u8; 9],
    len: usize,
}

impl Head {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Encodes the head of a byte string of `n` bytes.
pub(crate) fn bytes_head(n: usize) -> Head {
    let n = n as u64;
    let mut bytes = [0u8; 9];
    let len = if n < 24 {
        bytes[0] = MAJOR_BYTES | n as u8;
        1
    } else if n <= u64::from(u8::MAX) {
        bytes[0] = MAJOR_BYTES | 24;
        bytes[1] = n as u8;
        2
    } else if n <= u64::from(u16::MAX) {
        bytes[0] = MAJOR_BYTES | 25;
        bytes[1..3].copy_from_slice(&(n as u16).to_be_bytes());
        3
    } else if n <= u64::from(u32::MAX) {
        bytes[0] = MAJOR_BYTES | 26;
        bytes[1..5].copy_from_slice(&(n as u32).to_be_bytes());
        5
    } else {
        bytes[0] = MAJOR_BYTES | 27;
        bytes[1..9].copy_from_slice(&n.to_be_bytes());
        9
    };
    Head { bytes, len }
}

/// Parses a definite byte-string head at the start of `buf`: the head's
/// length and the string's. `None` when `buf` starts with anything else or
/// is too short.
pub(crate) fn parse_bytes_head(buf: &[u8]) -> Option<(usize, u64)> {
    let first = *buf.first()?;
    if first & 0xe0 != MAJOR_BYTES {
        return None;
    }
    let extra = match first & 0x1f {
        n @ 0..=23 => return Some((1, u64::from(n))),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let arg = buf.get(1..1 + extra)?;
    let mut eight = [0u8; 8];
    eight[8 - extra..].copy_from_slice(arg);
    Some((1 + extra, u64::from_be_bytes(eight)))
}

/// The bytes of `value` when its type is a byte buffer we send as is.
pub(crate) fn as_bytes<T: ?Sized>(value: &T) -> Option<&[u8]> {
    let id = typeid::of::<T>();
    if id == typeid::of::<Vec<u8>>() {
        // SAFETY: T is Vec<u8> (type ids equal up to lifetimes, and Vec<u8>
        // has none), so the reference has the same type and layout.
        let v: &Vec<u8> = unsafe { &*(value as *const T as *const Vec<u8>) };
        Some(v)
    } else if id == typeid::of::<&[u8]>() {
        // SAFETY: T is &'a [u8] for some 'a that outlives `value`'s borrow.
        let v: &&[u8] = unsafe { &*(value as *const T as *const &[u8]) };
        Some(v)
    } else if id == typeid::of::<[u8]>() {
        // SAFETY: T is [u8], so &T is a slice reference of the same layout
        // (pointer and length); transmute_copy reads exactly that.
        let v: &[u8] = unsafe { std::mem::transmute_copy::<&T, &[u8]>(&value) };
        Some(v)
    } else {
        None
    }
}

/// Whether `recv::<T>` may take the byte-buffer fast path.
pub(crate) fn wants_bytes<T>() -> bool {
    typeid::of::<T>() == typeid::of::<Vec<u8>>()
}

/// Hands a received byte buffer out as `T`, which [`wants_bytes`] said is
/// `Vec<u8>`.
pub(crate) fn bytes_as<T>(data: Vec<u8>) -> Option<T> {
    if !wants_bytes::<T>() {
        return None;
    }
    let data = ManuallyDrop::new(data);
    // SAFETY: T is Vec<u8> (checked just above); the value is moved out of
    // the ManuallyDrop exactly once.
    Some(unsafe { std::mem::transmute_copy::<Vec<u8>, T>(&data) })
}

/// CBOR tag (unassigned, "mpfd") wrapping a value sent with descriptors.
const FD_TAG: [u8; 4] = *b"mpfd";
/// A tag head with a 4-byte tag number.
const TAG32: u8 = (6 << 5) | 26;
/// A definite array of two items.
const ARRAY2: u8 = (4 << 5) | 2;

/// The bytes before the value of a message carrying `count` descriptors.
pub(crate) fn envelope_head(count: usize) -> Vec<u8> {
    let mut head = vec![TAG32];
    head.extend_from_slice(&FD_TAG);
    head.push(ARRAY2);
    match u8::try_from(count) {
        Ok(n) if n < 24 => head.push(n),
        Ok(n) => head.extend_from_slice(&[24, n]),
        // Callers send at most `MAX_FDS` (253) descriptors.
        Err(_) => head.extend_from_slice(&[25, (count >> 8) as u8, count as u8]),
    }
    head
}

/// For a message from [`envelope_head`]: the head's length and how many
/// descriptors the message carries. `None` for any other message.
pub(crate) fn parse_envelope(payload: &[u8]) -> Option<(usize, usize)> {
    let (head, rest) = payload.split_at_checked(6)?;
    if head[0] != TAG32 || head[1..5] != FD_TAG || head[5] != ARRAY2 {
        return None;
    }
    match *rest {
        [n @ 0..=23, ..] => Some((7, usize::from(n))),
        [24, n, ..] => Some((8, usize::from(n))),
        [25, hi, lo, ..] => Some((9, usize::from(u16::from_be_bytes([hi, lo])))),
        _ => None,
    }
}

/// Encodes any other value as CBOR.
#[cfg(test)]
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ConnectionError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends the CBOR encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), ConnectionError> {
    ciborium::into_writer(value, out).map_err(|e| ConnectionError::Encode(e.to_string()))
}

/// The decoder's scratch space for short strings and identifiers
/// (ciborium's own default).
const SCRATCH: usize = 4096;

/// Decodes a CBOR message as `T`; trailing bytes are an error.
#[cfg(test)]
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ConnectionError> {
    decode_with(payload, &mut Vec::new())
}

/// [`decode`] with a scratch buffer kept by the caller, so a small message
/// does not pay for zeroing a fresh one.
pub(crate) fn decode_with<T: DeserializeOwned>(
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<T, ConnectionError> {
    if scratch.len() < SCRATCH {
        scratch.resize(SCRATCH, 0);
    }
    let mut reader = payload;
    let value = ciborium::de::from_reader_with_buffer(&mut reader, scratch)
        .map_err(|e| ConnectionError::Decode(e.to_string()))?;
    if !reader.is_empty() {
        return Err(ConnectionError::Decode(format!(
            "{} bytes left over after the value",
            reader.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        for count in [0, 1, 23, 24, 253, 300] {
            let mut message = envelope_head(count);
            let head = message.len();
            message.extend_from_slice(&encode(&"x").unwrap());
            assert_eq!(parse_envelope(&message), Some((head, count)));
            let whole: ciborium::Value = ciborium::from_reader(&message[..]).unwrap();
            assert!(whole.is_tag(), "{whole:?}");
        }
        assert_eq!(parse_envelope(&encode(&("mpfd", 1)).unwrap()), None);
        assert_eq!(parse_envelope(&envelope_head(300)[..7]), None);
    }

    #[test]
    fn heads_match_ciborium() {
        for n in [0usize, 23, 24, 255, 256, 65535, 65536, 1 << 20] {
            let data = vec![9u8; n];
            let ours = [bytes_head(n).as_bytes(), &data].concat();
            let mut theirs = Vec::new();
            ciborium::into_writer(&serde_bytes::Bytes::new(&data), &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{n}");
            assert_eq!(parse_bytes_head(&ours), Some((bytes_head(n).len, n as u64)));
            let back: serde_bytes::ByteBuf = decode(&ours).unwrap();
            assert_eq!(back.into_vec(), data);
        }
    }

    #[test]
    fn byte_types_are_recognised() {
        let v = vec![1u8, 2, 3];
        assert_eq!(as_bytes(&v), Some(&[1u8, 2, 3][..]));
        assert_eq!(as_bytes(&v[..]), Some(&[1u8, 2, 3][..]));
        assert_eq!(as_bytes(&&v[..]), Some(&[1u8, 2, 3][..]));
        assert_eq!(as_bytes(&vec![1u16]), None);
        assert_eq!(as_bytes("abc"), None);
        assert!(wants_bytes::<Vec<u8>>());
        assert!(!wants_bytes::<Vec<i8>>());
        assert_eq!(bytes_as::<Vec<u8>>(vec![4, 5]), Some(vec![4, 5]));
        assert_eq!(bytes_as::<String>(vec![4, 5]), None);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut two = encode(&1u32).unwrap();
        two.extend(encode(&2u32).unwrap());
        assert!(matches!(
            decode::<u32>(&two),
            Err(ConnectionError::Decode(_))
        ));
    }

    #[test]
    fn other_heads_are_not_bytes() {
        assert_eq!(parse_bytes_head(&[]), None);
        assert_eq!(parse_bytes_head(&[0x5f]), None); // indefinite
        assert_eq!(parse_bytes_head(&[0x59, 1]), None); // short
        assert_eq!(parse_bytes_head(&encode("text").unwrap()), None);
    }
}
