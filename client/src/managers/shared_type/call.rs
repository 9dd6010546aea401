//! One call's arguments as a `#[shared]` method receives them: bound to
//! the method's parameter names and converted to their Rust types, with
//! the `TypeError` wording Python gives a function defined in Python
//! (`add() missing 1 required positional argument: 'y'`).
//!
//! The client sent them, so nothing here trusts them: a wrong count, an
//! unknown keyword or a value of the wrong type is an error for that call
//! only.

use mp_proto::message::Kwargs;
use mp_proto::value::from_value;
use mp_proto::{ErrorKind, RemoteError, Value};
use serde::de::DeserializeOwned;

/// The positional and keyword arguments of one call, with the name the
/// errors give the callee (`Maths.add`).
#[derive(Debug)]
pub struct Call {
    callee: String,
    positional: Vec<Value>,
    keywords: Kwargs,
}

/// A [`Call`] bound to a signature: one slot per parameter, `None` where
/// an optional parameter was left out.
#[derive(Debug)]
pub struct Bound {
    callee: String,
    names: &'static [&'static str],
    slots: Vec<Option<Value>>,
}

impl Call {
    /// The arguments of a call to `type_name.method`.
    pub fn new(type_name: &str, method: &str, positional: Vec<Value>, keywords: Kwargs) -> Self {
        Call {
            callee: format!("{type_name}.{method}"),
            positional,
            keywords,
        }
    }

    /// Binds to the parameters `names`, the first `required` of which
    /// have no default, as Python binds a call to `def f(self, *names)`.
    pub fn bind(
        self,
        names: &'static [&'static str],
        required: usize,
    ) -> Result<Bound, RemoteError> {
        let Call {
            callee,
            positional,
            keywords,
        } = self;
        if positional.len() > names.len() {
            // Python counts `self` in both numbers.
            let (takes, given) = (names.len() + 1, positional.len() + 1);
            let takes = if required == names.len() {
                format!("{takes}")
            } else {
                format!("from {} to {takes}", required + 1)
            };
            return Err(type_error(format!(
                "{callee}() takes {takes} positional argument{} but {given} were given",
                if names.is_empty() { "" } else { "s" }
            )));
        }
        let mut slots: Vec<Option<Value>> = positional.into_iter().map(Some).collect();
        slots.resize_with(names.len(), || None);
        for (name, value) in keywords {
            let Some(index) = names.iter().position(|n| *n == name) else {
                return Err(type_error(format!(
                    "{callee}() got an unexpected keyword argument '{name}'"
                )));
            };
            if slots[index].is_some() {
                return Err(type_error(format!(
                    "{callee}() got multiple values for argument '{name}'"
                )));
            }
            slots[index] = Some(value);
        }
        let missing: Vec<&str> = (0..required.min(names.len()))
            .filter(|&i| slots[i].is_none())
            .map(|i| names[i])
            .collect();
        if !missing.is_empty() {
            return Err(type_error(format!(
                "{callee}() missing {} required positional argument{}: {}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                python_list(&missing)
            )));
        }
        Ok(Bound {
            callee,
            names,
            slots,
        })
    }
}

impl Bound {
    /// The parameter at `index`, converted to `T`; a parameter left out
    /// converts from `None` (so an `Option` parameter becomes `None`).
    pub fn take<T: DeserializeOwned>(&mut self, index: usize) -> Result<T, RemoteError> {
        let value = self
            .slots
            .get_mut(index)
            .and_then(Option::take)
            .unwrap_or(Value::None);
        let given = value.type_name();
        from_value(value).map_err(|_| {
            type_error(format!(
                "{}() argument '{}' must be {}, not {given}",
                self.callee,
                self.names.get(index).copied().unwrap_or("?"),
                python_type_name(std::any::type_name::<T>())
            ))
        })
    }
}

fn type_error(message: String) -> RemoteError {
    RemoteError::new(ErrorKind::TypeError, message)
}

/// `'x'`, `'x' and 'y'`, `'x', 'y' and 'z'`: how Python lists missing
/// arguments.
fn python_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("'{one}'"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|n| format!("'{n}'")).collect();
            format!("{} and '{last}'", init.join(", "))
        }
    }
}

/// The Python name of the type a Rust parameter expects, for the
/// `must be int, not str` wording: the outer type decides.
fn python_type_name(rust: &str) -> String {
    let outer = rust.split('<').next().unwrap_or(rust);
    let last = outer.rsplit("::").next().unwrap_or(outer);
    let python = match last {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => "int",
        "f32" | "f64" => "float",
        "bool" => "bool",
        "String" | "str" | "char" => "str",
        "Vec" | "VecDeque" => "list",
        "HashMap" | "BTreeMap" | "IndexMap" => "dict",
        "HashSet" | "BTreeSet" => "set",
        "ByteBuf" | "Bytes" => "bytes",
        "Option" => {
            let inner = rust
                .get(outer.len() + 1..rust.len().saturating_sub(1))
                .unwrap_or("");
            return format!("{} or None", python_type_name(inner));
        }
        other if other.starts_with('(') => "tuple",
        other => other,
    };
    python.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(positional: Vec<Value>, keywords: &[(&str, Value)]) -> Call {
        let keywords = keywords
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Call::new("Maths", "add", positional, keywords)
    }

    const XY: &[&str] = &["x", "y"];

    #[test]
    fn binds_positional_and_keyword_arguments() {
        let mut b = call(vec![1.into()], &[("y", 2.into())])
            .bind(XY, 2)
            .unwrap();
        assert_eq!(b.take::<i64>(0).unwrap(), 1);
        assert_eq!(b.take::<i64>(1).unwrap(), 2);
    }

    #[test]
    fn counts_say_it_as_python_does() {
        let e = call(vec![1.into()], &[]).bind(XY, 2).unwrap_err();
        assert_eq!(
            e.message,
            "Maths.add() missing 1 required positional argument: 'y'"
        );
        let e = call(vec![], &[]).bind(XY, 2).unwrap_err();
        assert_eq!(
            e.message,
            "Maths.add() missing 2 required positional arguments: 'x' and 'y'"
        );
        let e = call(vec![1.into(), 2.into(), 3.into()], &[])
            .bind(XY, 2)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Maths.add() takes 3 positional arguments but 4 were given"
        );
        let e = call(vec![1.into(), 2.into(), 3.into()], &[])
            .bind(XY, 1)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Maths.add() takes from 2 to 3 positional arguments but 4 were given"
        );
        let e = call(vec![1.into()], &[("z", 1.into())])
            .bind(XY, 1)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Maths.add() got an unexpected keyword argument 'z'"
        );
        let e = call(vec![1.into()], &[("x", 1.into())])
            .bind(XY, 1)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Maths.add() got multiple values for argument 'x'"
        );
        assert!(call(vec![], &[]).bind(XY, 0).is_ok());
        assert_eq!(e.kind, ErrorKind::TypeError);
    }

    #[test]
    fn a_wrong_type_names_both_types() {
        let mut b = call(vec!["a".into(), 2.into()], &[]).bind(XY, 2).unwrap();
        let e = b.take::<i64>(0).unwrap_err();
        assert_eq!(e.message, "Maths.add() argument 'x' must be int, not str");
        assert_eq!(e.kind, ErrorKind::TypeError);
    }

    #[test]
    fn a_left_out_optional_parameter_is_none() {
        let mut b = call(vec![1.into()], &[]).bind(XY, 1).unwrap();
        assert_eq!(b.take::<Option<i64>>(1).unwrap(), None);
        let e = b.take::<String>(1).unwrap_err();
        assert_eq!(
            e.message,
            "Maths.add() argument 'y' must be str, not NoneType"
        );
    }

    #[test]
    fn python_names_of_rust_types() {
        assert_eq!(python_type_name("i64"), "int");
        assert_eq!(python_type_name("alloc::string::String"), "str");
        assert_eq!(python_type_name("alloc::vec::Vec<u8>"), "list");
        assert_eq!(
            python_type_name("core::option::Option<f64>"),
            "float or None"
        );
        assert_eq!(python_type_name("(i64, i64)"), "tuple");
        assert_eq!(python_type_name("my::Point"), "Point");
    }
}
