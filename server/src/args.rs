//! Binding a call's positional and keyword arguments to a Python-style
//! signature, and converting them, with Python's `TypeError` messages.
//!
//! Every method of a shared object receives [`Args`]: what the client sent,
//! untrusted. [`Args::bind`] applies a signature (`put(item, block=True,
//! timeout=None)`) the way CPython does — too many, too few, unknown or
//! duplicated keywords are a `TypeError` naming the method — and the
//! `*_arg` functions convert one bound value (`timeout` to a `Duration`, an
//! index to an `i64`) or say why not.

use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::{RemoteError, Value};
use serde::de::DeserializeOwned;

use crate::errors::{type_error, value_error};

/// The arguments of one call, as the client sent them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    /// Positional arguments.
    pub positional: Vec<Value>,
    /// Keyword arguments, in the order given.
    pub keywords: Kwargs,
}

impl Args {
    /// Arguments from their two parts.
    pub fn new(positional: Vec<Value>, keywords: Kwargs) -> Self {
        Args {
            positional,
            keywords,
        }
    }

    /// Positional arguments only.
    pub fn positional(positional: Vec<Value>) -> Self {
        Args {
            positional,
            keywords: Kwargs::new(),
        }
    }

    /// Whether no argument at all was given.
    pub fn is_empty(&self) -> bool {
        self.positional.is_empty() && self.keywords.is_empty()
    }

    /// Binds to the signature `method(names…)` whose first `required`
    /// parameters have no default; returns each parameter's value, `None`
    /// where the caller left it out.
    ///
    /// ```
    /// use mp_server::args::Args;
    /// let args = Args::positional(vec![1.into()]);
    /// let [item, block] = args.bind("put", ["item", "block"], 1).unwrap();
    /// assert_eq!(item, Some(1.into()));
    /// assert_eq!(block, None);
    /// ```
    pub fn bind<const N: usize>(
        self,
        method: &str,
        names: [&str; N],
        required: usize,
    ) -> Result<[Option<Value>; N], RemoteError> {
        let given = self.positional.len() + self.keywords.len();
        if self.positional.len() > N {
            return Err(type_error(too_many(method, N, required, given)));
        }
        let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
        for (slot, value) in out.iter_mut().zip(self.positional) {
            *slot = Some(value);
        }
        for (name, value) in self.keywords {
            let Some(index) = names.iter().position(|n| *n == name) else {
                return Err(type_error(format!(
                    "{method}() got an unexpected keyword argument '{name}'"
                )));
            };
            if out[index].is_some() {
                return Err(type_error(format!(
                    "{method}() got multiple values for argument '{name}'"
                )));
            }
            out[index] = Some(value);
        }
        if let Some(missing) = (0..required.min(N)).find(|&i| out[i].is_none()) {
            return Err(type_error(format!(
                "{method}() missing required argument '{}' (pos {})",
                names[missing],
                missing + 1
            )));
        }
        Ok(out)
    }

    /// Checks that no argument was given (`len()`, `clear()`, …).
    pub fn none(self, method: &str) -> Result<(), RemoteError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(type_error(format!(
                "{method}() takes no arguments ({} given)",
                self.positional.len() + self.keywords.len()
            )))
        }
    }

    /// Converts the positional arguments, as a tuple, into `T` with serde:
    /// the quickest way for an embedder's method to take typed arguments.
    ///
    /// ```
    /// use mp_server::args::Args;
    /// let args = Args::positional(vec![2.into(), 3.5.into()]);
    /// let (x, y): (i64, f64) = args.parse("add").unwrap();
    /// assert_eq!((x, y), (2, 3.5));
    /// ```
    pub fn parse<T: DeserializeOwned>(self, method: &str) -> Result<T, RemoteError> {
        if !self.keywords.is_empty() {
            return Err(type_error(format!("{method}() takes no keyword arguments")));
        }
        let given = self.positional.len();
        let mut expected = None;
        let parsed = T::deserialize(Positional {
            values: self.positional,
            expected: &mut expected,
        });
        match (parsed, expected) {
            (Err(_), Some(n)) => Err(type_error(format!(
                "{method}() takes {n} positional argument{} but {given} {} given",
                plural(n),
                if given == 1 { "was" } else { "were" }
            ))),
            (parsed, _) => {
                parsed.map_err(|e| type_error(format!("{method}(): bad arguments: {e}")))
            }
        }
    }
}

/// The positional arguments as one tuple, for [`Args::parse`]: a tuple
/// type learns of a wrong count before any element is converted, and
/// records the count it wanted so the error can say it Python's way.
struct Positional<'a> {
    values: Vec<Value>,
    expected: &'a mut Option<usize>,
}

impl<'de> serde::Deserializer<'de> for Positional<'_> {
    type Error = mp_proto::value::ValueError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        Value::Tuple(self.values).deserialize_any(v)
    }

    fn deserialize_tuple<V: serde::de::Visitor<'de>>(
        self,
        len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        if self.values.len() != len {
            *self.expected = Some(len);
            return Err(serde::de::Error::invalid_length(self.values.len(), &v));
        }
        Value::Tuple(self.values).deserialize_tuple(len, v)
    }

    fn deserialize_seq<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        Value::Tuple(self.values).deserialize_seq(v)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct tuple_struct map struct enum
        identifier ignored_any
    }
}

fn too_many(method: &str, n: usize, required: usize, given: usize) -> String {
    if required == n {
        format!(
            "{method}() takes exactly {n} argument{} ({given} given)",
            plural(n)
        )
    } else {
        format!(
            "{method}() takes at most {n} argument{} ({given} given)",
            plural(n)
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// An integer argument, as Python's `__index__` takes it (bools count).
pub fn int_arg(value: &Value) -> Result<i64, RemoteError> {
    value.as_int().ok_or_else(|| {
        type_error(format!(
            "'{}' object cannot be interpreted as an integer",
            value.type_name()
        ))
    })
}

/// A flag argument: Python's truth value, `default` when left out.
pub fn bool_arg(value: Option<&Value>, default: bool) -> bool {
    value.map_or(default, Value::is_truthy)
}

/// A text argument.
pub fn str_arg<'a>(value: &'a Value, what: &str) -> Result<&'a str, RemoteError> {
    value
        .as_str()
        .ok_or_else(|| type_error(format!("{what} must be str, not {}", value.type_name())))
}

/// Timeouts above this are treated as "forever" (Python's `TIMEOUT_MAX`
/// is of the same order), so no deadline computation can overflow.
const FOREVER_SECS: f64 = 1e9;

/// A lock-style `timeout`: `None` or absent waits forever, a negative
/// value means zero (the rule of `multiprocessing.synchronize`).
pub fn lock_timeout(value: Option<&Value>) -> Result<Option<Duration>, RemoteError> {
    match value {
        None | Some(Value::None) => Ok(None),
        Some(v) => {
            let secs = number(v, "timeout")?;
            Ok(duration(secs.max(0.0)))
        }
    }
}

/// A queue-style `timeout`: `None` or absent waits forever, a negative
/// value is a `ValueError` (the rule of Python's `queue.Queue`).
pub fn queue_timeout(value: Option<&Value>) -> Result<Option<Duration>, RemoteError> {
    match value {
        None | Some(Value::None) => Ok(None),
        Some(v) => {
            let secs = number(v, "timeout")?;
            if secs < 0.0 {
                return Err(value_error("'timeout' must be a non-negative number"));
            }
            Ok(duration(secs))
        }
    }
}

fn number(value: &Value, what: &str) -> Result<f64, RemoteError> {
    match value.as_float() {
        Some(f) if f.is_nan() => Err(value_error(format!("{what} must not be NaN"))),
        Some(f) => Ok(f),
        None => Err(type_error(format!(
            "{what} must be a number, not {}",
            value.type_name()
        ))),
    }
}

fn duration(secs: f64) -> Option<Duration> {
    if secs >= FOREVER_SECS {
        None
    } else {
        Some(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(pairs: &[(&str, Value)]) -> Kwargs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn binding_follows_python() {
        let args = Args::new(vec![1.into()], kw(&[("timeout", 2.into())]));
        let [item, block, timeout] = args.bind("put", ["item", "block", "timeout"], 1).unwrap();
        assert_eq!(item, Some(1.into()));
        assert_eq!(block, None);
        assert_eq!(timeout, Some(2.into()));

        let err = Args::positional(vec![1.into(), 2.into()])
            .bind("f", ["x"], 1)
            .unwrap_err();
        assert_eq!(err.message, "f() takes exactly 1 argument (2 given)");
        let err = Args::new(vec![], kw(&[("y", 1.into())]))
            .bind("f", ["x"], 0)
            .unwrap_err();
        assert_eq!(err.message, "f() got an unexpected keyword argument 'y'");
        let err = Args::new(vec![1.into()], kw(&[("x", 1.into())]))
            .bind("f", ["x"], 0)
            .unwrap_err();
        assert!(err.message.contains("multiple values"));
        let err = Args::default().bind("f", ["x"], 1).unwrap_err();
        assert!(err.message.contains("missing required argument 'x'"));
        assert!(Args::positional(vec![1.into()]).none("len").is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(lock_timeout(None).unwrap(), None);
        assert_eq!(
            lock_timeout(Some(&Value::Float(-3.0))).unwrap(),
            Some(Duration::ZERO)
        );
        assert!(queue_timeout(Some(&Value::Int(-1))).is_err());
        assert_eq!(
            queue_timeout(Some(&Value::Float(0.5))).unwrap(),
            Some(Duration::from_millis(500))
        );
        assert!(lock_timeout(Some(&"x".into())).is_err());
        assert!(lock_timeout(Some(&Value::Float(f64::NAN))).is_err());
        assert_eq!(
            lock_timeout(Some(&Value::Float(f64::INFINITY))).unwrap(),
            None
        );
    }

    #[test]
    fn parse_refuses_a_wrong_count_in_pythons_words() {
        let three = Args::positional(vec![1.into(), 2.into(), 3.into()]);
        let err = three.parse::<(i64, i64)>("add").unwrap_err();
        assert_eq!(err.kind, mp_proto::ErrorKind::TypeError);
        assert_eq!(
            err.message,
            "add() takes 2 positional arguments but 3 were given"
        );
        let one = Args::positional(vec![1.into()]);
        let err = one.parse::<(i64, i64)>("add").unwrap_err();
        assert_eq!(
            err.message,
            "add() takes 2 positional arguments but 1 was given"
        );
        let err = Args::positional(vec!["x".into(), 2.into()])
            .parse::<(i64, i64)>("add")
            .unwrap_err();
        assert!(err.message.starts_with("add(): bad arguments"), "{err}");
        let nested = Args::positional(vec![Value::Tuple(vec![1.into(), 2.into(), 3.into()])]);
        assert!(nested.parse::<((i64, i64),)>("f").is_err());
        let many: Vec<i64> = Args::positional(vec![1.into(), 2.into()])
            .parse("f")
            .unwrap();
        assert_eq!(many, [1, 2]);
    }
}
