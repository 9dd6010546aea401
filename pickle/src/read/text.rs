//! Protocol 0's text arguments: decimal ints, floats, memo indices and
//! `raw-unicode-escape` strs.

use crate::error::UnpicklingError;
use crate::int::PyInt;

/// Python's `str.strip()` for ASCII whitespace, as `int()` and `float()`
/// apply it.
fn trim(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &text[start..end]
}

/// A decimal int (`INT`, `LONG`), bounded by `max_bytes`.
pub(super) fn int(op: &str, text: &[u8], max_bytes: usize) -> Result<PyInt, UnpicklingError> {
    match PyInt::parse_decimal(trim(text), max_bytes) {
        Some(Ok(v)) => Ok(v),
        Some(Err(bytes)) => Err(UnpicklingError::IntTooLarge {
            bytes,
            limit: max_bytes,
        }),
        None => Err(UnpicklingError::malformed(format!(
            "invalid literal for {op}: {:?}",
            String::from_utf8_lossy(text)
        ))),
    }
}

/// A memo index (`PUT`, `GET`).
pub(super) fn index(op: &str, text: &[u8]) -> Result<u64, UnpicklingError> {
    std::str::from_utf8(trim(text))
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            UnpicklingError::malformed(format!(
                "invalid memo index for {op}: {:?}",
                String::from_utf8_lossy(text)
            ))
        })
}

/// A float (`FLOAT`): Python's `repr(float)` text.
pub(super) fn float(text: &[u8]) -> Result<f64, UnpicklingError> {
    std::str::from_utf8(trim(text))
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| {
            UnpicklingError::malformed(format!(
                "could not convert string to float: {:?}",
                String::from_utf8_lossy(text)
            ))
        })
}

/// Decodes Python's `raw-unicode-escape` (`UNICODE`): bytes are Latin-1
/// characters, except that `\uXXXX` and `\UXXXXXXXX` after an odd number
/// of backslashes are code points.
pub(super) fn raw_unicode_escape(bytes: &[u8]) -> Result<String, UnpicklingError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&c| c == b'\\').count();
        let after = i + run;
        let digits = match bytes.get(after) {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => 0,
        };
        if run % 2 == 0 || digits == 0 {
            out.extend(std::iter::repeat('\\').take(run));
            i = after;
            continue;
        }
        // the last backslash starts the escape
        out.extend(std::iter::repeat('\\').take(run - 1));
        let hex = bytes
            .get(after + 1..after + 1 + digits)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| {
                UnpicklingError::malformed(
                    "'rawunicodeescape' codec can't decode bytes: truncated \\uXXXX escape",
                )
            })?;
        let code = u32::from_str_radix(hex, 16)
            .map_err(|_| UnpicklingError::malformed("invalid \\U escape"))?;
        let c = char::from_u32(code).ok_or_else(|| {
            UnpicklingError::malformed(format!(
                "str with code point {code:#x} (a lone surrogate or past U+10FFFF) is not supported"
            ))
        })?;
        out.push(c);
        i = after + 1 + digits;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_unicode_escape_follows_python() {
        assert_eq!(raw_unicode_escape(b"abc").unwrap(), "abc");
        assert_eq!(raw_unicode_escape(b"\\u00e9t\\U0001f600").unwrap(), "ét😀");
        assert_eq!(raw_unicode_escape(b"\xe9").unwrap(), "é");
        // an even run of backslashes is literal
        assert_eq!(raw_unicode_escape(b"\\\\u0041").unwrap(), "\\\\u0041");
        assert_eq!(raw_unicode_escape(b"\\\\\\u0041").unwrap(), "\\\\A");
        assert_eq!(raw_unicode_escape(b"a\\b").unwrap(), "a\\b");
        assert!(raw_unicode_escape(b"\\u00").is_err());
        assert!(raw_unicode_escape(b"\\ud800").is_err());
    }

    #[test]
    fn numbers_parse_like_python() {
        assert_eq!(int("INT", b"-12", 128).unwrap(), PyInt::Small(-12));
        assert!(int("INT", b"1x", 128).is_err());
        assert_eq!(float(b"1.5").unwrap(), 1.5);
        assert!(float(b"inf").unwrap().is_infinite());
        assert!(float(b"x").is_err());
        assert_eq!(index("GET", b"7").unwrap(), 7);
        assert!(index("GET", b"-1").is_err());
    }
}
