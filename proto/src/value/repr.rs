//! Python's `repr()` of a [`Value`].
//!
//! The server answers `__repr__`/`__str__` and shows `Namespace(x=10,
//! y='hello')` with it, and a CPython client prints what it returns, so it
//! follows CPython's rules: quote choice and escapes for `str`/`bytes`,
//! the shortest round-tripping float with CPython's exponent thresholds,
//! `(x,)` for one-tuples.

use std::fmt::Write;

use super::Value;

impl Value {
    /// Python's `repr()` of this value.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => str_repr(s, out),
            Value::Bytes(b) => bytes_repr(b, out),
            Value::List(items) => {
                out.push('[');
                write_items(items, out);
                out.push(']');
            }
            Value::Tuple(items) => {
                out.push('(');
                write_items(items, out);
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Value::Dict(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
            Value::Proxy(token) => {
                let _ = write!(
                    out,
                    "<{} object, typeid '{}' at 0x{}>",
                    proxy_class(&token.typeid),
                    token.typeid,
                    token.id
                );
            }
        }
    }
}

/// The class of CPython's SyncManager proxy for `typeid`, so a nested
/// proxy prints as Python prints it (`<ListProxy object, typeid 'list'
/// at 0x…>`); `Proxy` for a typeid SyncManager does not define.
fn proxy_class(typeid: &str) -> &'static str {
    match typeid {
        "list" => "ListProxy",
        "dict" => "DictProxy",
        "Value" => "ValueProxy",
        "Array" => "ArrayProxy",
        "Namespace" => "NamespaceProxy",
        "Lock" | "RLock" | "Semaphore" | "BoundedSemaphore" => "AcquirerProxy",
        "Condition" => "ConditionProxy",
        "Event" => "EventProxy",
        "Barrier" => "BarrierProxy",
        "Iterator" => "IteratorProxy",
        _ => "Proxy",
    }
}

fn write_items(items: &[Value], out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item.write_repr(out);
    }
}

/// CPython's `float.__repr__`: the shortest digits that round-trip, fixed
/// notation for decimal exponents in `-4..16`, else `d.ddde+XX`.
pub(crate) fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: `-1.2345e-7`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
}

/// An approximation of Python's `str.isprintable` per character: controls,
/// separators other than the space, surrogates and unassigned planes are
/// escaped.
fn is_printable(c: char) -> bool {
    let u = c as u32;
    !(c.is_control()
        || (0x7f..0xa0).contains(&u)
        || u == 0xad
        || (0x2028..=0x2029).contains(&u)
        || (0x200b..=0x200f).contains(&u)
        || (0xe000..=0xf8ff).contains(&u)
        || u >= 0xf0000
        || u == 0xfeff)
}

fn bytes_repr(b: &[u8], out: &mut String) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push('b');
    out.push(quote as char);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            q if q == quote => {
                out.push('\\');
                out.push(q as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote as char);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Map;

    #[test]
    fn floats_match_cpython() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789.123, "123456789.123"),
            (f64::INFINITY, "inf"),
            (0.0, "0.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn strings_and_bytes_quote_like_python() {
        assert_eq!(Value::from("hello").repr(), "'hello'");
        assert_eq!(Value::from("it's").repr(), "\"it's\"");
        assert_eq!(Value::from("a'\"b").repr(), "'a\\'\"b'");
        assert_eq!(Value::from("tab\there\n").repr(), "'tab\\there\\n'");
        assert_eq!(Value::from("\u{7}é").repr(), "'\\x07é'");
        assert_eq!(Value::Bytes(b"a\x00'".to_vec()).repr(), "b\"a\\x00'\"");
    }

    #[test]
    fn containers() {
        let one = Value::Tuple(vec![1.into()]);
        assert_eq!(one.repr(), "(1,)");
        let mut m = Map::new();
        m.insert(
            "x".into(),
            Value::List(vec![Value::None, true.into(), 2.5.into()]),
        );
        assert_eq!(Value::from(m).repr(), "{'x': [None, True, 2.5]}");
        assert_eq!(Value::Tuple(vec![]).repr(), "()");
    }
}
