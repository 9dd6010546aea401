//! `ShareableList`: a fixed-length list of small values in one named block
//! (Python's `multiprocessing.shared_memory.ShareableList`).
//!
//! # Format
//!
//! CPython's, byte for byte, so that either side can attach to a list the
//! other made (all integers native-endian, `n` items):
//!
//! ```text
//! 0                  i64 n
//! 8                  i64 allocated_offsets[n + 1]   (offsets[0] = 0)
//! 8(n+2)             data: item i at 8(n+2) + offsets[i]
//! 8(n+2)+offsets[n]  8-byte struct formats, one per item, NUL-padded:
//!                    "q" int, "d" float, "xxxxxxx?" bool, "xxxxxx?x" None,
//!                    "<k>s" str or bytes of k bytes
//! ... + 8n           i8 back-transform code per item:
//!                    0 int/float/bool, 1 str, 2 bytes, 3 None
//! ```
//!
//! A str or bytes slot holds a multiple of 8 bytes (at least one more byte
//! than the initial value, rounded up) and values are stored NUL-padded,
//! so trailing NULs do not survive a round trip (as in CPython).

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::block::SharedMemory;
use super::error::SharedMemoryError;

/// One element of a [`ShareableList`].
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A 64-bit signed integer (`q`).
    Int(i64),
    /// A float (`d`).
    Float(f64),
    /// A bool.
    Bool(bool),
    /// UTF-8 text.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Python's `None`.
    None,
}

const ALIGN: usize = 8;

fn slot_len(item: &Item) -> usize {
    match item {
        Item::Str(s) => ALIGN * (s.len() / ALIGN + 1),
        Item::Bytes(b) => ALIGN * (b.len() / ALIGN + 1),
        _ => ALIGN,
    }
}

fn format_of(item: &Item, slot: usize) -> String {
    match item {
        Item::Int(_) => "q".into(),
        Item::Float(_) => "d".into(),
        Item::Bool(_) => "xxxxxxx?".into(),
        Item::None => "xxxxxx?x".into(),
        Item::Str(_) | Item::Bytes(_) => format!("{slot}s"),
    }
}

fn code_of(item: &Item) -> i8 {
    match item {
        Item::Str(_) => 1,
        Item::Bytes(_) => 2,
        Item::None => 3,
        _ => 0,
    }
}

/// A fixed-length list of ints, floats, bools, strings, bytes and `None`
/// in one [`SharedMemory`] block, attachable by name from this crate or
/// from CPython.
///
/// Items may be replaced by items of any type; a string or bytes must fit
/// the slot the list was created with.
///
/// ```
/// use multiprocessing::shared_memory::{Item, ShareableList};
///
/// let l = ShareableList::new(&[Item::Int(1), Item::Str("howdy".into()), Item::None])?;
/// let other = ShareableList::attach(l.shm().name())?;
/// other.set(1, Item::Str("hi".into()))?;
/// assert_eq!(l.get(1)?, Item::Str("hi".into()));
/// assert_eq!(l.format()?, "q8sxxxxxx?x");
/// l.shm().unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ShareableList {
    shm: SharedMemory,
    /// Item count, read once (the list cannot change length).
    len: usize,
    /// `allocated_offsets`, read once (slots never move).
    offsets: Vec<usize>,
}

impl ShareableList {
    /// Creates a list holding `items` in a new block with a random name.
    pub fn new(items: &[Item]) -> Result<ShareableList, SharedMemoryError> {
        Self::create(None, items)
    }

    /// Creates a list holding `items` in a new block named `name`.
    pub fn new_named(name: &str, items: &[Item]) -> Result<ShareableList, SharedMemoryError> {
        Self::create(Some(name), items)
    }

    fn create(name: Option<&str>, items: &[Item]) -> Result<ShareableList, SharedMemoryError> {
        let n = items.len();
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        for item in items {
            let last = offsets.last().copied().unwrap_or(0);
            offsets.push(last + slot_len(item));
        }
        let data_len = offsets.last().copied().unwrap_or(0);
        let size = ALIGN * (n + 2) + data_len + ALIGN * n + n;
        let shm = match name {
            Some(name) => SharedMemory::create_named(name, size)?,
            None => SharedMemory::create(size)?,
        };
        shm.write_at(0, &(n as i64).to_ne_bytes())?;
        for (i, off) in offsets.iter().enumerate() {
            shm.write_at(ALIGN * (1 + i), &(*off as i64).to_ne_bytes())?;
        }
        let list = ShareableList {
            shm,
            len: n,
            offsets,
        };
        for (i, item) in items.iter().enumerate() {
            let slot = list.slot(i);
            list.store(i, item, &format_of(item, slot))?;
        }
        Ok(list)
    }

    /// Attaches to an existing list by its block's name.
    pub fn attach(name: &str) -> Result<ShareableList, SharedMemoryError> {
        let shm = SharedMemory::attach(name)?;
        let corrupt =
            |what: &str| SharedMemoryError::Corrupt(format!("ShareableList {name:?}: {what}"));
        let mut word = [0u8; 8];
        shm.read_at(0, &mut word)?;
        let n =
            usize::try_from(i64::from_ne_bytes(word)).map_err(|_| corrupt("negative length"))?;
        let header = n
            .checked_mul(2 * ALIGN + 1)
            .and_then(|x| x.checked_add(2 * ALIGN))
            .filter(|&h| h <= shm.size())
            .ok_or_else(|| corrupt("length larger than the block"))?;
        let mut offsets = Vec::with_capacity(n + 1);
        for i in 0..=n {
            shm.read_at(ALIGN * (1 + i), &mut word)?;
            let off = usize::try_from(i64::from_ne_bytes(word))
                .map_err(|_| corrupt("negative offset"))?;
            if offsets.last().is_some_and(|&prev| off < prev) || off > shm.size() - header {
                return Err(corrupt("offsets out of order or past the block"));
            }
            offsets.push(off);
        }
        Ok(ShareableList {
            shm,
            len: n,
            offsets,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block holding the list (its `name`, `unlink`, ...).
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    fn data_start(&self) -> usize {
        ALIGN * (self.len + 2)
    }

    fn formats_start(&self) -> usize {
        self.data_start() + self.offsets[self.len]
    }

    fn codes_start(&self) -> usize {
        self.formats_start() + ALIGN * self.len
    }

    fn slot(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    fn check(&self, index: usize) -> Result<(), SharedMemoryError> {
        if index >= self.len {
            return Err(SharedMemoryError::IndexError {
                index,
                len: self.len,
            });
        }
        Ok(())
    }

    fn packing_format(&self, index: usize) -> Result<String, SharedMemoryError> {
        let mut f = [0u8; 8];
        self.shm
            .read_at(self.formats_start() + ALIGN * index, &mut f)?;
        let end = f.iter().position(|&b| b == 0).unwrap_or(8);
        String::from_utf8(f[..end].to_vec())
            .map_err(|_| SharedMemoryError::Corrupt(format!("item {index}: format is not text")))
    }

    /// The item at `index`.
    pub fn get(&self, index: usize) -> Result<Item, SharedMemoryError> {
        self.check(index)?;
        let fmt = self.packing_format(index)?;
        let mut code = [0u8; 1];
        self.shm.read_at(self.codes_start() + index, &mut code)?;
        let at = self.data_start() + self.offsets[index];
        let mut word = [0u8; 8];
        let corrupt = || SharedMemoryError::Corrupt(format!("item {index}: format {fmt:?}"));
        match (fmt.as_str(), code[0] as i8) {
            (_, 3) => Ok(Item::None),
            ("q", 0) => {
                self.shm.read_at(at, &mut word)?;
                Ok(Item::Int(i64::from_ne_bytes(word)))
            }
            ("d", 0) => {
                self.shm.read_at(at, &mut word)?;
                Ok(Item::Float(f64::from_ne_bytes(word)))
            }
            ("xxxxxxx?", 0) => {
                self.shm.read_at(at, &mut word)?;
                Ok(Item::Bool(word[7] != 0))
            }
            (s, c @ (1 | 2)) if s.ends_with('s') => {
                let k: usize = s[..s.len() - 1].parse().map_err(|_| corrupt())?;
                if k > self.slot(index) {
                    return Err(corrupt());
                }
                let mut bytes = vec![0u8; k];
                self.shm.read_at(at, &mut bytes)?;
                while bytes.last() == Some(&0) {
                    bytes.pop();
                }
                if c == 1 {
                    String::from_utf8(bytes)
                        .map(Item::Str)
                        .map_err(|_| SharedMemoryError::Corrupt(format!("item {index}: not UTF-8")))
                } else {
                    Ok(Item::Bytes(bytes))
                }
            }
            _ => Err(corrupt()),
        }
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::ValueError`] if a str or bytes is longer than
    /// the slot (Python's "exceeds available storage").
    pub fn set(&self, index: usize, item: Item) -> Result<(), SharedMemoryError> {
        self.check(index)?;
        let slot = self.slot(index);
        let fmt = match &item {
            Item::Str(_) | Item::Bytes(_) => {
                let len = match &item {
                    Item::Str(s) => s.len(),
                    Item::Bytes(b) => b.len(),
                    _ => 0,
                };
                if len > slot {
                    return Err(SharedMemoryError::ValueError(
                        "bytes/str item exceeds available storage".into(),
                    ));
                }
                let current = self.packing_format(index)?;
                if current.ends_with('s') {
                    current
                } else {
                    format!("{slot}s")
                }
            }
            other => format_of(other, slot),
        };
        self.store(index, &item, &fmt)
    }

    fn store(&self, index: usize, item: &Item, fmt: &str) -> Result<(), SharedMemoryError> {
        let mut f = [0u8; 8];
        let fb = fmt.as_bytes();
        if fb.len() > 8 {
            return Err(SharedMemoryError::ValueError(format!(
                "format {fmt:?} too long"
            )));
        }
        f[..fb.len()].copy_from_slice(fb);
        self.shm
            .write_at(self.formats_start() + ALIGN * index, &f)?;
        self.shm
            .write_at(self.codes_start() + index, &[code_of(item) as u8])?;
        let at = self.data_start() + self.offsets[index];
        match item {
            Item::Int(v) => self.shm.write_at(at, &v.to_ne_bytes()),
            Item::Float(v) => self.shm.write_at(at, &v.to_ne_bytes()),
            Item::Bool(b) => self.shm.write_at(at, &[0, 0, 0, 0, 0, 0, 0, u8::from(*b)]),
            Item::None => self.shm.write_at(at, &[0; 8]),
            Item::Str(_) | Item::Bytes(_) => {
                let k: usize = fmt[..fmt.len() - 1]
                    .parse()
                    .map_err(|_| SharedMemoryError::Corrupt(format!("format {fmt:?}")))?;
                let src = match item {
                    Item::Str(s) => s.as_bytes(),
                    Item::Bytes(b) => b.as_slice(),
                    _ => &[],
                };
                let mut padded = vec![0u8; k.min(self.slot(index))];
                let n = src.len().min(padded.len());
                padded[..n].copy_from_slice(&src[..n]);
                self.shm.write_at(at, &padded)
            }
        }
    }

    /// Every item.
    pub fn to_vec(&self) -> Result<Vec<Item>, SharedMemoryError> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// The struct format of all items (Python's `format`).
    pub fn format(&self) -> Result<String, SharedMemoryError> {
        (0..self.len).map(|i| self.packing_format(i)).collect()
    }

    /// How many items equal `value` (Python's `count`).
    pub fn count(&self, value: &Item) -> Result<usize, SharedMemoryError> {
        Ok(self.to_vec()?.iter().filter(|i| *i == value).count())
    }

    /// Position of the first item equal to `value` (Python's `index`;
    /// `None` where Python raises `ValueError`).
    pub fn index(&self, value: &Item) -> Result<Option<usize>, SharedMemoryError> {
        Ok(self.to_vec()?.iter().position(|i| i == value))
    }
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList")
            .field("name", &self.shm.name())
            .field("items", &self.to_vec().ok())
            .finish()
    }
}

impl Serialize for ShareableList {
    /// A list travels as its block's name.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct("ShareableList", self.shm.name())
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "ShareableList")]
        struct Name(String);
        let Name(name) = Name::deserialize(deserializer)?;
        ShareableList::attach(&name).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_cpython_for_a_mixed_list() {
        let items = [
            Item::Int(-7),
            Item::Float(2.5),
            Item::Bool(true),
            Item::Str("eight ch".into()),
            Item::Bytes(b"ab".to_vec()),
            Item::None,
        ];
        let l = ShareableList::new(&items).unwrap();
        assert_eq!(l.to_vec().unwrap(), items);
        assert_eq!(l.format().unwrap(), "qdxxxxxxx?16s8sxxxxxx?x");
        // 8 * (6 + 2) header + data 8+8+8+16+8+8 + formats 48 + codes 6.
        assert_eq!(l.shm().size(), 64 + 56 + 48 + 6);
        assert!(l.set(4, Item::Str("too long for 8".into())).is_err());
        l.set(0, Item::Str("fits".into())).unwrap();
        l.set(3, Item::Int(3)).unwrap();
        l.set(3, Item::Str("sixteen bytes!!!".into())).unwrap();
        assert_eq!(l.get(0).unwrap(), Item::Str("fits".into()));
        assert_eq!(l.get(3).unwrap(), Item::Str("sixteen bytes!!!".into()));
        assert!(matches!(
            l.get(6),
            Err(SharedMemoryError::IndexError { .. })
        ));
        assert_eq!(l.index(&Item::None).unwrap(), Some(5));
        assert_eq!(l.count(&Item::Bool(true)).unwrap(), 1);
        l.shm().unlink().unwrap();
    }

    fn item() -> impl proptest::strategy::Strategy<Value = Item> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i64>().prop_map(Item::Int),
            any::<f64>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(Item::Float),
            any::<bool>().prop_map(Item::Bool),
            "[a-zA-Z0-9 é]{0,20}".prop_map(Item::Str),
            proptest::collection::vec(1u8..=255, 0..20).prop_map(Item::Bytes),
            Just(Item::None),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

        #[test]
        fn any_list_round_trips(items in proptest::collection::vec(item(), 0..8)) {
            let l = ShareableList::new(&items).unwrap();
            let back = ShareableList::attach(l.shm().name()).unwrap().to_vec();
            l.shm().unlink().unwrap();
            proptest::prop_assert_eq!(back.unwrap(), items);
        }

        #[test]
        fn garbage_contents_are_errors_not_panics(
            n in 0i64..5,
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 16..200),
        ) {
            let shm = SharedMemory::create(bytes.len()).unwrap();
            shm.write_at(0, &bytes).unwrap();
            // A plausible length and offsets, so that the parse reaches the
            // random formats, codes and data.
            shm.write_at(0, &n.to_ne_bytes()).unwrap();
            for i in 0..=n {
                let _ = shm.write_at(8 * (1 + i as usize), &(8 * i).to_ne_bytes());
            }
            if let Ok(l) = ShareableList::attach(shm.name()) {
                for i in 0..l.len() {
                    let _ = l.get(i);
                }
                let _ = l.format();
            }
            shm.unlink().unwrap();
        }
    }

    #[test]
    fn a_block_that_is_not_a_list_is_refused() {
        let shm = SharedMemory::create(16).unwrap();
        shm.write_at(0, &(1_000_000i64).to_ne_bytes()).unwrap();
        assert!(matches!(
            ShareableList::attach(shm.name()),
            Err(SharedMemoryError::Corrupt(_))
        ));
        shm.unlink().unwrap();
    }
}
