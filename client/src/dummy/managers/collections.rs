//! [`DictProxy`] and [`ListProxy`] of a [`dummy` manager](super): a
//! plain insertion-ordered dict and a list behind a mutex, shared by the
//! threads holding a clone.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::ManagerError;

/// The entries and the next insertion number: a key keeps its place
/// when its value is replaced, and goes last when re-inserted after a
/// removal, as in a Python dict.
struct Dict<K, V> {
    entries: HashMap<K, (u64, V)>,
    next: u64,
}

impl<K: Hash + Eq, V> Dict<K, V> {
    fn insert(&mut self, key: K, value: V) {
        match self.entries.get_mut(&key) {
            Some(slot) => slot.1 = value,
            None => {
                self.entries.insert(key, (self.next, value));
                self.next += 1;
            }
        }
    }

    /// The entries in insertion order.
    fn ordered(&self) -> Vec<(&K, &V)> {
        let mut all: Vec<(u64, &K, &V)> =
            self.entries.iter().map(|(k, (n, v))| (*n, k, v)).collect();
        all.sort_unstable_by_key(|(n, _, _)| *n);
        all.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}

/// A `dict` shared by threads (what `dummy.Manager().dict()` returns in
/// Python: a plain dict). Clones share it. Keys keep their insertion
/// order.
///
/// Its methods are [`managers::DictProxy`](crate::managers::DictProxy)'s,
/// and return `Result` as those do, so code moves between the two by its
/// `use` line; a call fails only where Python's dict raises.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let d = m.dict::<String, i64>()?;
/// let writer = {
///     let d = d.clone();
///     std::thread::spawn(move || d.set("answer", 42))
/// };
/// writer.join().unwrap()?;
/// assert_eq!(d.get("answer")?, Some(42));
/// assert_eq!(d.to_string(), r#"{"answer": 42}"#);
/// # Ok::<(), multiprocessing::dummy::managers::ManagerError>(())
/// ```
pub struct DictProxy<K, V> {
    inner: Arc<Mutex<Dict<K, V>>>,
}

impl<K, V> Clone for DictProxy<K, V> {
    fn clone(&self) -> Self {
        DictProxy {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Hash + Eq, V> DictProxy<K, V> {
    /// A new empty dict.
    pub(super) fn new() -> Self {
        DictProxy {
            inner: Arc::new(Mutex::new(Dict {
                entries: HashMap::new(),
                next: 0,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, Dict<K, V>> {
        mp_sys::lock(&self.inner)
    }

    /// `d[key] = value`.
    pub fn set(&self, key: impl Into<K>, value: impl Into<V>) -> Result<(), ManagerError> {
        self.state().insert(key.into(), value.into());
        Ok(())
    }

    /// `d[key]`; a missing key is a `KeyError`.
    pub fn get_item<Q>(&self, key: &Q) -> Result<V, ManagerError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get(key)?
            .ok_or_else(|| ManagerError::KeyError("key not in dict".into()))
    }

    /// `d.get(key)`: `None` for a missing key.
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, ManagerError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        Ok(self.state().entries.get(key).map(|(_, v)| v.clone()))
    }

    /// `key in d`.
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool, ManagerError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.state().entries.contains_key(key))
    }

    /// `len(d)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        Ok(self.state().entries.len())
    }

    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.state().entries.is_empty())
    }

    /// `d.pop(key, None)`: the removed value, `None` if it was missing.
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>, ManagerError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.state().entries.remove(key).map(|(_, v)| v))
    }

    /// `d.setdefault(key, default)`: the value now under `key`.
    pub fn setdefault(&self, key: impl Into<K>, default: impl Into<V>) -> Result<V, ManagerError>
    where
        V: Clone,
    {
        let mut d = self.state();
        let key = key.into();
        if let Some((_, v)) = d.entries.get(&key) {
            return Ok(v.clone());
        }
        let value = default.into();
        d.insert(key, value.clone());
        Ok(value)
    }

    /// `list(d.keys())`, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>, ManagerError>
    where
        K: Clone,
    {
        Ok(self
            .state()
            .ordered()
            .into_iter()
            .map(|(k, _)| k.clone())
            .collect())
    }

    /// `list(d.values())`, in insertion order.
    pub fn values(&self) -> Result<Vec<V>, ManagerError>
    where
        V: Clone,
    {
        Ok(self
            .state()
            .ordered()
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect())
    }

    /// `list(d.items())`, in insertion order.
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError>
    where
        K: Clone,
        V: Clone,
    {
        Ok(self
            .state()
            .ordered()
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    /// `d.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.state().entries.clear();
        Ok(())
    }

    /// A copy of the whole dict as key/value pairs in insertion order
    /// (what the managed flavour's `_getvalue()` gives).
    pub fn get_value(&self) -> Result<Vec<(K, V)>, ManagerError>
    where
        K: Clone,
        V: Clone,
    {
        self.items()
    }
}

impl<K: Hash + Eq + fmt::Debug, V: fmt::Debug> fmt::Display for DictProxy<K, V> {
    /// `{key: value, …}` in insertion order, each by its `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.state();
        f.write_str("{")?;
        for (i, (k, v)) in d.ordered().into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k:?}: {v:?}")?;
        }
        f.write_str("}")
    }
}

impl<K: Hash + Eq + fmt::Debug, V: fmt::Debug> fmt::Debug for DictProxy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dummy::DictProxy({self})")
    }
}

/// Python's index rule: `-1` is the last item; `None` outside `0..len`.
pub(super) fn position(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if index < 0 { index + len } else { index };
    usize::try_from(at).ok().filter(|&i| (i as i64) < len)
}

/// A `list` shared by threads (what `dummy.Manager().list()` returns in
/// Python: a plain list). Clones share it.
///
/// Its methods are [`managers::ListProxy`](crate::managers::ListProxy)'s;
/// indices follow Python (negative from the end) and a call fails only
/// where Python's list raises.
///
/// ```
/// use multiprocessing::dummy::managers::Manager;
///
/// let m = Manager()?;
/// let l = m.list_from(&[3, 1, 2])?;
/// l.append(4)?;
/// assert_eq!(l.get(-1)?, 4);
/// assert_eq!(l.pop(0)?, 3);
/// l.reverse()?;
/// assert_eq!(l.get_value()?, vec![4, 2, 1]);
/// assert_eq!(l.to_string(), "[4, 2, 1]");
/// # Ok::<(), multiprocessing::dummy::managers::ManagerError>(())
/// ```
pub struct ListProxy<T> {
    inner: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for ListProxy<T> {
    fn clone(&self) -> Self {
        ListProxy {
            inner: Arc::clone(&self.inner),
        }
    }
}

fn out_of_range() -> ManagerError {
    ManagerError::IndexError("list index out of range".into())
}

impl<T> ListProxy<T> {
    /// A list holding `items`.
    pub(super) fn from_vec(items: Vec<T>) -> Self {
        ListProxy {
            inner: Arc::new(Mutex::new(items)),
        }
    }

    fn items(&self) -> MutexGuard<'_, Vec<T>> {
        mp_sys::lock(&self.inner)
    }

    /// `l.append(item)`.
    pub fn append(&self, item: impl Into<T>) -> Result<(), ManagerError> {
        self.items().push(item.into());
        Ok(())
    }

    /// `l.extend(items)`.
    pub fn extend<I>(&self, items: I) -> Result<(), ManagerError>
    where
        I: IntoIterator,
        I::Item: Into<T>,
    {
        let items: Vec<T> = items.into_iter().map(Into::into).collect();
        self.items().extend(items);
        Ok(())
    }

    /// `l[i]` (negative counts from the end).
    pub fn get(&self, i: i64) -> Result<T, ManagerError>
    where
        T: Clone,
    {
        let l = self.items();
        position(i, l.len())
            .map(|at| l[at].clone())
            .ok_or_else(out_of_range)
    }

    /// `l[i] = item`.
    pub fn set(&self, i: i64, item: impl Into<T>) -> Result<(), ManagerError> {
        let mut l = self.items();
        let at = position(i, l.len())
            .ok_or_else(|| ManagerError::IndexError("list assignment index out of range".into()))?;
        l[at] = item.into();
        Ok(())
    }

    /// `l.insert(i, item)`: an index past either end inserts at that
    /// end, as in Python.
    pub fn insert(&self, i: i64, item: impl Into<T>) -> Result<(), ManagerError> {
        let mut l = self.items();
        let len = i64::try_from(l.len()).unwrap_or(i64::MAX);
        let at = if i < 0 { (i + len).max(0) } else { i.min(len) };
        l.insert(usize::try_from(at).unwrap_or(0), item.into());
        Ok(())
    }

    /// `l.pop(i)`: removes and returns item `i` (`-1`: the last).
    pub fn pop(&self, i: i64) -> Result<T, ManagerError> {
        let mut l = self.items();
        if l.is_empty() {
            return Err(ManagerError::IndexError("pop from empty list".into()));
        }
        let at = position(i, l.len())
            .ok_or_else(|| ManagerError::IndexError("pop index out of range".into()))?;
        Ok(l.remove(at))
    }

    /// `l.remove(item)`: removes the first equal item; `ValueError` if
    /// there is none.
    pub fn remove<Q: ?Sized>(&self, item: &Q) -> Result<(), ManagerError>
    where
        T: PartialEq<Q>,
    {
        let mut l = self.items();
        let at = l
            .iter()
            .position(|x| x == item)
            .ok_or_else(|| ManagerError::ValueError("list.remove(x): x not in list".into()))?;
        l.remove(at);
        Ok(())
    }

    /// `l.index(item)`: where the first equal item is; `ValueError` if
    /// there is none.
    pub fn index<Q: ?Sized>(&self, item: &Q) -> Result<usize, ManagerError>
    where
        T: PartialEq<Q>,
    {
        self.items()
            .iter()
            .position(|x| x == item)
            .ok_or_else(|| ManagerError::ValueError("item is not in list".into()))
    }

    /// `l.count(item)`.
    pub fn count<Q: ?Sized>(&self, item: &Q) -> Result<usize, ManagerError>
    where
        T: PartialEq<Q>,
    {
        Ok(self.items().iter().filter(|x| *x == item).count())
    }

    /// `item in l`.
    pub fn contains<Q: ?Sized>(&self, item: &Q) -> Result<bool, ManagerError>
    where
        T: PartialEq<Q>,
    {
        Ok(self.items().iter().any(|x| x == item))
    }

    /// `len(l)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        Ok(self.items().len())
    }

    /// `len(l) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.items().is_empty())
    }

    /// `l.reverse()`.
    pub fn reverse(&self) -> Result<(), ManagerError> {
        self.items().reverse();
        Ok(())
    }

    /// `l.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.items().clear();
        Ok(())
    }

    /// A copy of the whole list.
    pub fn get_value(&self) -> Result<Vec<T>, ManagerError>
    where
        T: Clone,
    {
        Ok(self.items().clone())
    }
}

impl<T: fmt::Debug> fmt::Display for ListProxy<T> {
    /// `[item, …]`, each by its `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.items();
        f.write_str("[")?;
        for (i, item) in l.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item:?}")?;
        }
        f.write_str("]")
    }
}

impl<T: fmt::Debug> fmt::Debug for ListProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dummy::ListProxy({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_python() {
        assert_eq!(position(0, 3), Some(0));
        assert_eq!(position(-1, 3), Some(2));
        assert_eq!(position(-3, 3), Some(0));
        assert_eq!(position(-4, 3), None);
        assert_eq!(position(3, 3), None);
        assert_eq!(position(i64::MIN, 3), None);
        assert_eq!(position(0, 0), None);
    }

    #[test]
    fn a_dict_keeps_insertion_order_as_python_does() {
        let d = DictProxy::<String, i32>::new();
        d.set("b", 1).unwrap();
        d.set("a", 2).unwrap();
        d.set("b", 3).unwrap(); // replaced in place
        assert_eq!(d.keys().unwrap(), vec!["b", "a"]);
        assert_eq!(d.remove("b").unwrap(), Some(3));
        d.set("b", 4).unwrap(); // re-inserted: last
        assert_eq!(
            d.items().unwrap(),
            vec![("a".to_string(), 2), ("b".to_string(), 4)]
        );
        assert_eq!(d.setdefault("a", 9).unwrap(), 2);
        assert_eq!(d.setdefault("c", 9).unwrap(), 9);
        assert_eq!(d.values().unwrap(), vec![2, 4, 9]);
        assert!(matches!(d.get_item("z"), Err(ManagerError::KeyError(_))));
    }

    #[test]
    fn list_errors_are_pythons() {
        let l = ListProxy::from_vec(vec![1, 2, 3]);
        assert!(matches!(l.get(3), Err(ManagerError::IndexError(_))));
        assert!(matches!(l.set(-4, 0), Err(ManagerError::IndexError(_))));
        assert!(matches!(l.remove(&7), Err(ManagerError::ValueError(_))));
        assert!(matches!(l.index(&7), Err(ManagerError::ValueError(_))));
        l.insert(100, 4).unwrap();
        l.insert(-100, 0).unwrap();
        assert_eq!(l.get_value().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(l.pop(-1).unwrap(), 4);
        l.clear().unwrap();
        assert!(
            matches!(l.pop(-1), Err(ManagerError::IndexError(m)) if m == "pop from empty list")
        );
    }
}
