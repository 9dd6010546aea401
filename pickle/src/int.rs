//! Python's `int`: 64 bits inline, larger values as two's-complement bytes.
//!
//! Pickle carries ints that do not fit 32 bits as the minimal
//! two's-complement little-endian bytes of the value (`LONG1`, `LONG4`;
//! `0` is zero bytes). [`BigInt`] keeps exactly those bytes, so a value
//! the reader took in is written back bit for bit, and nothing here does
//! arithmetic beyond what `repr` and protocol 0's decimal text need.
//! The reader bounds their length ([`crate::Limits::max_int_bytes`]).

use std::fmt;

/// An int outside `i64`, as the minimal two's-complement little-endian
/// bytes of its value (what pickle's `LONG1` and `LONG4` carry).
///
/// Always more than 8 bytes: a value that fits `i64` is a
/// [`PyInt::Small`] (and [`crate::Value::Int`]), never a `BigInt`, so
/// every int has one form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BigInt {
    le: Vec<u8>,
}

/// A Python `int` of any size this crate carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PyInt {
    /// Within `i64`.
    Small(i64),
    /// Outside `i64`.
    Big(BigInt),
}

impl BigInt {
    /// The minimal two's-complement little-endian bytes of the value.
    pub fn as_le_bytes(&self) -> &[u8] {
        &self.le
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.le.last().is_some_and(|b| b & 0x80 != 0)
    }

    /// Python's `int.bit_length()`: the bits of the magnitude.
    pub fn bit_length(&self) -> u64 {
        let (_, limbs) = magnitude(&self.le);
        match limbs.last() {
            Some(&top) => (limbs.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros()),
            None => 0,
        }
    }
}

impl PyInt {
    /// The int whose two's-complement little-endian bytes are `bytes`
    /// (any length; empty is zero), in its one canonical form.
    pub fn from_le_bytes(bytes: &[u8]) -> PyInt {
        let mut le = bytes.to_vec();
        minimize(&mut le);
        if le.len() <= 8 {
            let fill = if le.last().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut buf = [fill; 8];
            buf[..le.len()].copy_from_slice(&le);
            PyInt::Small(i64::from_le_bytes(buf))
        } else {
            PyInt::Big(BigInt { le })
        }
    }

    /// The minimal two's-complement little-endian bytes (pickle's
    /// `encode_long`): empty for zero.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            PyInt::Small(v) => {
                let mut le = v.to_le_bytes().to_vec();
                minimize(&mut le);
                le
            }
            PyInt::Big(b) => b.le.clone(),
        }
    }

    /// Parses optional sign and decimal digits (protocol 0's `INT` and
    /// `LONG` text), refusing more than `max_bytes` of two's complement.
    /// `None` when the text is not such a number; `Err(bytes)` with the
    /// (estimated) size when it is too large.
    pub(crate) fn parse_decimal(text: &[u8], max_bytes: usize) -> Option<Result<PyInt, u64>> {
        let (negative, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // log10(256) < 2.41: more digits than this cannot fit `max_bytes`;
        // refuse before the quadratic conversion below.
        let digit_bound = max_bytes.saturating_mul(241) / 100 + 2;
        if digits.len() > digit_bound {
            return Some(Err(digits.len() as u64 * 416 / 1000 + 1));
        }
        let mut limbs: Vec<u32> = Vec::new();
        for &d in digits {
            let mut carry = u64::from(d - b'0');
            for limb in limbs.iter_mut() {
                let v = u64::from(*limb) * 10 + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry != 0 {
                limbs.push(carry as u32);
            }
        }
        let mut le: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        le.push(0); // room for the sign bit
        if negative {
            negate(&mut le);
        }
        minimize(&mut le);
        if le.len() > max_bytes {
            return Some(Err(le.len() as u64));
        }
        Some(Ok(PyInt::from_le_bytes(&le)))
    }
}

impl From<i64> for PyInt {
    fn from(v: i64) -> Self {
        PyInt::Small(v)
    }
}

/// Drops redundant sign-extension bytes from the high end.
fn minimize(le: &mut Vec<u8>) {
    while let [.., next, top] = le.as_slice() {
        let redundant = (*top == 0 && next & 0x80 == 0) || (*top == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        le.pop();
    }
    if le.as_slice() == [0] {
        le.clear();
    }
}

/// Two's-complement negation in place (the caller leaves room for the
/// sign so that the result does not overflow).
fn negate(le: &mut [u8]) {
    let mut carry = true;
    for b in le.iter_mut() {
        let (v, c) = (!*b).overflowing_add(u8::from(carry));
        *b = v;
        carry = c;
    }
}

/// The sign and the magnitude as 32-bit limbs, least significant first,
/// without high zero limbs.
fn magnitude(le: &[u8]) -> (bool, Vec<u32>) {
    let negative = le.last().is_some_and(|b| b & 0x80 != 0);
    let mut bytes = le.to_vec();
    if negative {
        bytes.push(0xff);
        negate(&mut bytes);
    }
    let mut limbs: Vec<u32> = bytes
        .chunks(4)
        .map(|c| {
            let mut buf = [0u8; 4];
            buf[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(buf)
        })
        .collect();
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    (negative, limbs)
}

impl fmt::Display for BigInt {
    /// Decimal, as Python's `repr(int)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (negative, mut limbs) = magnitude(&self.le);
        let mut chunks: Vec<u32> = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            chunks.push(rem as u32);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        let mut out = String::new();
        if negative {
            out.push('-');
        }
        let mut it = chunks.iter().rev();
        match it.next() {
            Some(first) => out.push_str(&first.to_string()),
            None => out.push('0'),
        }
        for c in it {
            out.push_str(&format!("{c:09}"));
        }
        f.write_str(&out)
    }
}

impl fmt::Display for PyInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyInt::Small(v) => write!(f, "{v}"),
            PyInt::Big(b) => b.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_long_matches_python() {
        // pickle.encode_long values from pickle.py's docstring
        let cases: &[(i64, &[u8])] = &[
            (0, b""),
            (255, b"\xff\x00"),
            (32767, b"\xff\x7f"),
            (-256, b"\x00\xff"),
            (-32768, b"\x00\x80"),
            (-128, b"\x80"),
            (127, b"\x7f"),
        ];
        for &(v, bytes) in cases {
            assert_eq!(PyInt::Small(v).to_le_bytes(), bytes, "{v}");
            assert_eq!(PyInt::from_le_bytes(bytes), PyInt::Small(v), "{v}");
        }
        assert_eq!(PyInt::from_le_bytes(b"\xff\xff\xff"), PyInt::Small(-1));
        assert_eq!(PyInt::from_le_bytes(b"\x05\x00\x00"), PyInt::Small(5));
    }

    #[test]
    fn big_values_keep_their_bytes_and_print_in_decimal() {
        // 2**64 and -2**63-1
        let two_64 = PyInt::from_le_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(two_64.to_string(), "18446744073709551616");
        let below = PyInt::from_le_bytes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]);
        assert_eq!(below.to_string(), "-9223372036854775809");
        let PyInt::Big(b) = &below else {
            panic!("not big")
        };
        assert!(b.is_negative());
        assert_eq!(b.bit_length(), 64);
        assert_eq!(
            PyInt::from_le_bytes(&i64::MIN.to_le_bytes()),
            PyInt::Small(i64::MIN)
        );
    }

    #[test]
    fn decimal_text_parses_within_the_bound() {
        let big = "-123456789012345678901234567890";
        let v = PyInt::parse_decimal(big.as_bytes(), 128).unwrap().unwrap();
        assert_eq!(v.to_string(), big);
        assert_eq!(
            PyInt::parse_decimal(b"42", 128).unwrap().unwrap(),
            PyInt::Small(42)
        );
        assert!(PyInt::parse_decimal(b"4x2", 128).is_none());
        assert!(PyInt::parse_decimal(b"", 128).is_none());
        assert!(PyInt::parse_decimal(&[b'9'; 400], 128).unwrap().is_err());
        assert!(PyInt::parse_decimal(&[b'9'; 20], 8).unwrap().is_err());
    }
}
