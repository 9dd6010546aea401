//! Shared ctypes chosen at run time by typecode (Python's
//! `Value('d', 0.0)`, `Array('i', 10)`), where the element type is not
//! known to the compiler.
//!
//! Typecodes are the `array` module's, with C's sizes on this platform
//! (`l`/`L` are 64-bit on Linux x86-64 and aarch64). Values travel as a
//! [`Scalar`]; assignment follows ctypes: integers are truncated to the
//! element's width, a float is refused by an integer type, and a `'c'`
//! element takes one byte.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::synchronize::{AnyLock, RLock};

use super::error::{IndexError, SharedCtypesError};
use super::raw::RawArray;

macro_rules! typecodes {
    ($($variant:ident = $code:literal : $ty:ty),* $(,)?) => {
        /// An element type named by its Python typecode.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum TypeCode {
            $(
                #[doc = concat!("`'", $code, "'`: `", stringify!($ty), "`.")]
                $variant,
            )*
        }

        impl TypeCode {
            /// The typecode letter.
            pub fn code(self) -> char {
                match self { $(TypeCode::$variant => $code,)* }
            }

            /// Size of one element in bytes.
            pub fn size(self) -> usize {
                match self { $(TypeCode::$variant => std::mem::size_of::<$ty>(),)* }
            }

            /// The typecode for a letter.
            pub fn from_char(c: char) -> Result<TypeCode, SharedCtypesError> {
                match c {
                    $($code => Ok(TypeCode::$variant),)*
                    other => Err(SharedCtypesError::TypeError(format!(
                        "bad typecode {other:?} (must be one of c b B h H i I l L q Q f d)"
                    ))),
                }
            }
        }
    };
}

typecodes! {
    Char = 'c': u8,
    Byte = 'b': i8,
    UByte = 'B': u8,
    Short = 'h': i16,
    UShort = 'H': u16,
    Int = 'i': i32,
    UInt = 'I': u32,
    Long = 'l': libc::c_long,
    ULong = 'L': libc::c_ulong,
    LongLong = 'q': i64,
    ULongLong = 'Q': u64,
    Float = 'f': f32,
    Double = 'd': f64,
}

impl FromStr for TypeCode {
    type Err = SharedCtypesError;
    fn from_str(s: &str) -> Result<TypeCode, SharedCtypesError> {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => TypeCode::from_char(c),
            _ => Err(SharedCtypesError::TypeError(format!("bad typecode {s:?}"))),
        }
    }
}

/// One element's value, whatever its typecode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// One byte of a `'c'` element.
    Char(u8),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::UInt(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v:?}"),
            Scalar::Char(b) => write!(f, "{:?}", *b as char),
        }
    }
}

fn encode(code: TypeCode, v: Scalar) -> Result<[u8; 8], SharedCtypesError> {
    let int = match v {
        Scalar::Int(i) => Some(i as i128),
        Scalar::UInt(u) => Some(u as i128),
        Scalar::Char(b) => Some(i128::from(b)),
        Scalar::Float(_) => None,
    };
    let mut out = [0u8; 8];
    let type_error = |what: &str| {
        SharedCtypesError::TypeError(format!("{what} expected for typecode '{}'", code.code()))
    };
    // Truncation to the element width is ctypes' rule for integers.
    let bytes: Vec<u8> = match code {
        TypeCode::Char => match v {
            Scalar::Char(b) => vec![b],
            Scalar::Int(i) if (0..=255).contains(&i) => vec![i as u8],
            Scalar::UInt(u) if u <= 255 => vec![u as u8],
            _ => return Err(type_error("one character bytes or an integer in 0..256")),
        },
        TypeCode::Float => match v {
            Scalar::Float(x) => (x as f32).to_ne_bytes().to_vec(),
            _ => (int.unwrap_or(0) as f32).to_ne_bytes().to_vec(),
        },
        TypeCode::Double => match v {
            Scalar::Float(x) => x.to_ne_bytes().to_vec(),
            _ => (int.unwrap_or(0) as f64).to_ne_bytes().to_vec(),
        },
        _ => {
            let i = int.ok_or_else(|| type_error("int"))?;
            (i as i64).to_ne_bytes()[..code.size()].to_vec()
        }
    };
    out[..bytes.len()].copy_from_slice(&bytes);
    Ok(out)
}

fn decode(code: TypeCode, b: &[u8]) -> Scalar {
    let mut w = [0u8; 8];
    w[..b.len()].copy_from_slice(b);
    match code {
        TypeCode::Char => Scalar::Char(w[0]),
        TypeCode::Byte => Scalar::Int(i64::from(w[0] as i8)),
        TypeCode::UByte => Scalar::UInt(u64::from(w[0])),
        TypeCode::Short => Scalar::Int(i64::from(i16::from_ne_bytes([w[0], w[1]]))),
        TypeCode::UShort => Scalar::UInt(u64::from(u16::from_ne_bytes([w[0], w[1]]))),
        TypeCode::Int => Scalar::Int(i64::from(i32::from_ne_bytes([w[0], w[1], w[2], w[3]]))),
        TypeCode::UInt => Scalar::UInt(u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))),
        TypeCode::Float => Scalar::Float(f64::from(f32::from_ne_bytes([w[0], w[1], w[2], w[3]]))),
        TypeCode::Double => Scalar::Float(f64::from_ne_bytes(w)),
        TypeCode::Long | TypeCode::LongLong => Scalar::Int(i64::from_ne_bytes(w)),
        TypeCode::ULong | TypeCode::ULongLong => Scalar::UInt(u64::from_ne_bytes(w)),
    }
}

/// Python's `lock` argument of `Value` and `Array`.
#[derive(Clone, Debug)]
pub enum LockChoice {
    /// `lock=True`: a new `RLock`.
    New,
    /// `lock=False`: no lock (a raw object).
    Raw,
    /// `lock=<lock>`: this lock.
    Use(AnyLock),
}

/// An array whose element type is a run-time [`TypeCode`], with or without
/// a lock (Python's `Array(typecode, ...)` / `RawArray(typecode, ...)`).
///
/// ```
/// use multiprocessing::sharedctypes::{DynArray, LockChoice, Scalar};
///
/// let a = DynArray::new("h", 3, LockChoice::New)?;
/// a.set(0, Scalar::Int(70000))?; // truncated to 16 bits, as ctypes does
/// assert_eq!(a.get(0)?, Scalar::Int(70000 - 65536));
/// assert!(a.set(1, Scalar::Float(1.5)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DynArray {
    typecode: TypeCode,
    bytes: RawArray<u8>,
    lock: Option<AnyLock>,
}

impl DynArray {
    /// `len` zeroed elements of `typecode`.
    pub fn new(
        typecode: &str,
        len: usize,
        lock: LockChoice,
    ) -> Result<DynArray, SharedCtypesError> {
        let typecode: TypeCode = typecode.parse()?;
        let size = typecode
            .size()
            .checked_mul(len)
            .ok_or(SharedCtypesError::TooLarge)?;
        let lock = match lock {
            LockChoice::New => Some(AnyLock::from(RLock::new()?)),
            LockChoice::Raw => None,
            LockChoice::Use(l) => Some(l),
        };
        Ok(DynArray {
            typecode,
            bytes: RawArray::new(size)?,
            lock,
        })
    }

    /// Elements of `typecode` initialised from `items`.
    pub fn from_scalars(
        typecode: &str,
        items: &[Scalar],
        lock: LockChoice,
    ) -> Result<DynArray, SharedCtypesError> {
        let a = Self::new(typecode, items.len(), lock)?;
        for (i, v) in items.iter().enumerate() {
            a.set(i, *v)?;
        }
        Ok(a)
    }

    /// The element typecode.
    pub fn typecode(&self) -> TypeCode {
        self.typecode
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.typecode.size()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lock, if the array is synchronized.
    pub fn get_lock(&self) -> Option<&AnyLock> {
        self.lock.as_ref()
    }

    fn guard(&self) -> Option<crate::synchronize::AnyLockGuard<'_>> {
        self.lock.as_ref().map(AnyLock::lock)
    }

    /// Element `index` (under the lock, if any).
    pub fn get(&self, index: usize) -> Result<Scalar, SharedCtypesError> {
        let size = self.typecode.size();
        if index >= self.len() {
            return Err(IndexError {
                index,
                len: self.len(),
            }
            .into());
        }
        let mut buf = [0u8; 8];
        let _g = self.guard();
        self.bytes.read(index * size, &mut buf[..size])?;
        Ok(decode(self.typecode, &buf[..size]))
    }

    /// Stores `value` into element `index` (under the lock, if any).
    pub fn set(&self, index: usize, value: Scalar) -> Result<(), SharedCtypesError> {
        let size = self.typecode.size();
        if index >= self.len() {
            return Err(IndexError {
                index,
                len: self.len(),
            }
            .into());
        }
        let enc = encode(self.typecode, value)?;
        let _g = self.guard();
        self.bytes.write(index * size, &enc[..size])?;
        Ok(())
    }

    /// The bytes up to the first NUL of a `'c'` array (Python's `.value`).
    pub fn value(&self) -> Result<Vec<u8>, SharedCtypesError> {
        self.chars()?;
        let _g = self.guard();
        Ok(self.bytes.value())
    }

    /// Stores bytes and a NUL if there is room in a `'c'` array.
    pub fn set_value(&self, bytes: &[u8]) -> Result<(), SharedCtypesError> {
        self.chars()?;
        let _g = self.guard();
        self.bytes.set_value(bytes)
    }

    /// Every byte of a `'c'` array (Python's `.raw`).
    pub fn raw(&self) -> Result<Vec<u8>, SharedCtypesError> {
        self.chars()?;
        let _g = self.guard();
        Ok(self.bytes.raw())
    }

    fn chars(&self) -> Result<(), SharedCtypesError> {
        if self.typecode != TypeCode::Char {
            return Err(SharedCtypesError::TypeError(format!(
                "value and raw belong to 'c' arrays, not '{}'",
                self.typecode.code()
            )));
        }
        Ok(())
    }

    /// Every element (under the lock, if any).
    pub fn to_vec(&self) -> Vec<Scalar> {
        let size = self.typecode.size();
        let raw = {
            let _g = self.guard();
            self.bytes.to_vec()
        };
        raw.chunks_exact(size)
            .map(|c| decode(self.typecode, c))
            .collect()
    }
}

/// One element of a run-time [`TypeCode`] (Python's `Value(typecode, v)`).
///
/// ```
/// use multiprocessing::sharedctypes::{DynValue, LockChoice, Scalar};
///
/// let n = DynValue::new("i", Scalar::Int(7), LockChoice::New)?;
/// n.set(Scalar::Int(49))?;
/// assert_eq!(n.get()?, Scalar::Int(49));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DynValue(DynArray);

impl DynValue {
    /// A value of `typecode` holding `value`.
    pub fn new(
        typecode: &str,
        value: Scalar,
        lock: LockChoice,
    ) -> Result<DynValue, SharedCtypesError> {
        let a = DynArray::new(typecode, 1, lock)?;
        a.set(0, value)?;
        Ok(DynValue(a))
    }

    /// The value (Python's `.value`).
    pub fn get(&self) -> Result<Scalar, SharedCtypesError> {
        self.0.get(0)
    }

    /// Stores a value.
    pub fn set(&self, value: Scalar) -> Result<(), SharedCtypesError> {
        self.0.set(0, value)
    }

    /// The typecode.
    pub fn typecode(&self) -> TypeCode {
        self.0.typecode()
    }

    /// The lock, if synchronized.
    pub fn get_lock(&self) -> Option<&AnyLock> {
        self.0.get_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typecode_round_trips_and_truncates_like_ctypes() {
        for c in "cbBhHiIlLqQfd".chars() {
            let code = TypeCode::from_char(c).unwrap();
            assert_eq!(code.code(), c);
            let a = DynArray::new(&c.to_string(), 2, LockChoice::Raw).unwrap();
            let v = match code {
                TypeCode::Char => Scalar::Char(b'x'),
                TypeCode::Float | TypeCode::Double => Scalar::Float(0.5),
                TypeCode::Byte
                | TypeCode::Short
                | TypeCode::Int
                | TypeCode::Long
                | TypeCode::LongLong => Scalar::Int(-3),
                _ => Scalar::UInt(3),
            };
            a.set(1, v).unwrap();
            assert_eq!(a.get(1).unwrap(), v, "typecode {c}");
            assert!(a.get(2).is_err());
        }
        let b = DynValue::new("B", Scalar::Int(257), LockChoice::Raw).unwrap();
        assert_eq!(b.get().unwrap(), Scalar::UInt(1));
        assert!(DynValue::new("i", Scalar::Float(1.0), LockChoice::Raw).is_err());
        assert!(DynValue::new("c", Scalar::Int(300), LockChoice::Raw).is_err());
        assert!("x".parse::<TypeCode>().is_err());
        assert!("ii".parse::<TypeCode>().is_err());
        assert_eq!(TypeCode::Long.size(), 8);
    }

    #[test]
    fn char_arrays_have_value_and_raw() {
        let s = DynArray::new("c", 5, LockChoice::New).unwrap();
        s.set_value(b"hi").unwrap();
        assert_eq!(s.value().unwrap(), b"hi");
        assert_eq!(s.raw().unwrap(), b"hi\0\0\0");
        assert!(s.set_value(b"toolong").is_err());
        assert!(DynArray::new("i", 1, LockChoice::Raw)
            .unwrap()
            .value()
            .is_err());
    }
}
