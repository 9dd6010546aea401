//! [`Arg`]: what a typed proxy's method accepts where it stores or looks
//! up a `T` — the `T` itself, a reference to it, or a borrowed form that
//! serializes the same way (`&str` for a `String`, `&[T]` for a
//! `Vec<T>`), as `std`'s collections take `K: Borrow<Q>`.
//!
//! A proxy sends its arguments to the server as values, so what matters
//! is not that an argument *is* a `T` but that it serializes exactly as a
//! `T` would: that is the one promise an `Arg<T>` makes.

use mp_proto::value::Map;
use mp_proto::Value;
use serde::Serialize;

use crate::managers::error::ManagerError;
use crate::managers::proxy::to_wire;
use crate::managers::PyObject;

/// A value that serializes exactly as a `T` does, so a proxy of `T`s
/// accepts it wherever it takes a `T`: `q.put("hello")` on a
/// `QueueProxy<String>`, `d.set("a", 1)` and `d.get("a")` on a
/// `DictProxy<String, i64>`, `l.extend(&v)` on a `ListProxy<T>`.
///
/// Implemented for:
///
/// * `T` and `&T`, for every serializable `T` (so callers that pass
///   `&value` keep compiling);
/// * `&str` for `String` (like `String: Borrow<str>`);
/// * `&[T]` for `Vec<T>`;
/// * for [`PyObject`] (the dynamic value), the scalars and strings it
///   holds: `bool`, the integers up to 64 bits, `f32`, `f64`, `char`,
///   `&str`, `String` and `&String`.
///
/// Implement it for a type of your own that serializes as another — for
/// example a borrowed view of an owned key — as `Borrow` is implemented:
/// the promise is that both produce the same value on the server (a
/// different one would store or look up something else).
///
/// ```
/// use multiprocessing::managers::{Arg, Manager};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = Manager()?;
/// let q = manager.queue::<String>()?;
/// q.put("hello")?;                 // a &str for a String
/// q.put(String::from("world"))?;   // the value itself
/// q.put(&"again".to_string())?;    // a reference
/// assert_eq!(q.get()?, "hello");
///
/// let d = manager.dict::<String, i64>()?;
/// d.set("a", 1)?;
/// assert_eq!(d.get("a")?, Some(1));
///
/// // A function generic over what a proxy of `String`s accepts.
/// fn shout<A: Arg<String>>(d: &multiprocessing::managers::DictProxy<String, i64>, key: A)
///     -> Result<(), multiprocessing::managers::ManagerError> {
///     d.set(key, 100)
/// }
/// shout(&d, "b")?;
/// assert_eq!(d.get_item("b")?, 100);
/// # Ok(())
/// # }
/// ```
pub trait Arg<T: ?Sized>: Serialize {}

impl<T: Serialize> Arg<T> for T {}

impl<T: Serialize + ?Sized> Arg<T> for &T {}

impl Arg<String> for &str {}

impl<T: Serialize> Arg<Vec<T>> for &[T] {}

/// `items` as one list argument, each sent as a `T`.
pub(crate) fn wire_all<T, A: Arg<T>>(
    items: impl IntoIterator<Item = A>,
) -> Result<Value, ManagerError> {
    items
        .into_iter()
        .map(|a| to_wire(&a))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::List)
}

/// `pairs` as one list of `(key, value)` tuples, each part sent as a `K`
/// or a `V` (what `dict.update` takes).
pub(crate) fn wire_pairs<K, V, A: Arg<K>, B: Arg<V>>(
    pairs: impl IntoIterator<Item = (A, B)>,
) -> Result<Value, ManagerError> {
    pairs
        .into_iter()
        .map(|(k, v)| Ok(Value::Tuple(vec![to_wire(&k)?, to_wire(&v)?])))
        .collect::<Result<Vec<_>, ManagerError>>()
        .map(Value::List)
}

/// `pairs` as one dict argument (what `d | other` takes); an unhashable
/// key is a conversion error, as Python could not build the dict either.
pub(crate) fn wire_map<K, V, A: Arg<K>, B: Arg<V>>(
    pairs: impl IntoIterator<Item = (A, B)>,
) -> Result<Value, ManagerError> {
    let mut map = Map::new();
    for (k, v) in pairs {
        let k = to_wire(&k)?;
        if !k.is_hashable() {
            return Err(ManagerError::Conversion(format!(
                "unhashable type: '{}'",
                k.type_name()
            )));
        }
        map.insert(k, to_wire(&v)?);
    }
    Ok(Value::from(map))
}

/// The Python scalars and strings, for a [`PyObject`] slot.
macro_rules! py_object_args {
    ($($t:ty),* $(,)?) => {
        $( impl Arg<PyObject> for $t {} )*
    };
}

py_object_args!(
    bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, char, &str, String,
    &String,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// What `a` sends, for a slot of `T`.
    fn sent<T: ?Sized, A: Arg<T>>(a: A) -> PyObject {
        to_wire(&a).unwrap()
    }

    #[test]
    fn a_borrowed_form_sends_what_the_owned_value_sends() {
        let owned = String::from("k");
        assert_eq!(sent::<String, _>("k"), sent::<String, _>(owned.clone()));
        assert_eq!(sent::<String, _>(&owned), PyObject::from("k"));
        let v = vec![1i64, 2];
        assert_eq!(sent::<Vec<i64>, _>(&v[..]), sent::<Vec<i64>, _>(v.clone()));
        assert_eq!(sent::<Vec<i64>, _>(&v), sent::<Vec<i64>, _>(v));
        assert_eq!(sent::<i64, _>(&7), PyObject::Int(7));
    }

    #[test]
    fn python_scalars_fill_a_py_object_slot() {
        assert_eq!(sent::<PyObject, _>(1), PyObject::Int(1));
        assert_eq!(sent::<PyObject, _>(2.5), PyObject::Float(2.5));
        assert_eq!(sent::<PyObject, _>("a"), PyObject::from("a"));
        assert_eq!(sent::<PyObject, _>('x'), PyObject::from("x"));
        assert_eq!(sent::<PyObject, _>(true), PyObject::Bool(true));
        let t = PyObject::Tuple(vec![1.into(), "a".into()]);
        assert_eq!(sent::<PyObject, _>(&t), t, "a tuple stays a tuple");
        assert!(
            to_wire(&u64::MAX).is_err(),
            "past i64 is an error, not a wrap"
        );
    }
}
