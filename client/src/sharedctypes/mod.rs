//! Plain-old-data in shared memory (Python's `multiprocessing.sharedctypes`).
//!
//! | Python | here |
//! | --- | --- |
//! | `RawValue(c_double, x)` | [`RawValue::<f64>::new(x)`](RawValue::new) |
//! | `RawArray(c_int, 10)` / `RawArray('i', seq)` | [`RawArray::<i32>::new(10)`](RawArray::new) / [`RawArray::from_slice`] |
//! | `Value('i', 7)` (lock=True) | [`Value::<i32>::new(7)`](Value::new) |
//! | `Value(..., lock=lock)` | [`Value::new_with_lock`] |
//! | `Array('c', b'hi', lock=lock)` | [`Array::<u8>::from_slice_with_lock`], with `value()`/`raw()` |
//! | `Array(Point, [...])` (a `Structure`) | `Array::<Point>::from_slice` for a `#[repr(C)]` `Pod` struct |
//! | `get_lock()`, `get_obj()` | [`Synchronized::get_lock`], [`Synchronized::get_obj`] |
//! | `copy(obj)`, `synchronized(obj, lock)` | [`copy`] ([`RawValue::copy`]), [`synchronized`] |
//! | a typecode chosen at run time | [`DynValue`], [`DynArray`] with [`TypeCode`] and [`Scalar`] |
//!
//! Element types are any [`bytemuck::Pod`] type: the primitive numbers and
//! `#[repr(C)]` structs of them, the counterpart of a ctypes `Structure`.
//! The derive needs no dependency of your own:
//!
//! ```
//! use multiprocessing::sharedctypes::{Array, Pod, Zeroable};
//!
//! #[repr(C)]
//! #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
//! #[bytemuck(crate = "multiprocessing::sharedctypes::bytemuck")]
//! struct Point {
//!     x: f64,
//!     y: f64,
//! }
//!
//! let a = Array::from_slice(&[Point { x: 1.0, y: 2.0 }])?;
//! a.lock()[0].x = 3.0;
//! assert_eq!(a.get(0)?, Point { x: 3.0, y: 2.0 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//! `Pod` guarantees that whatever
//! bytes another process left are a valid value and that no pointer (which
//! would mean nothing in another address space) is inside.
//!
//! Each object is a `memfd` of its own (see [`crate::synchronize`] for how
//! such handles travel to children); whole-array reads and writes are one
//! `memcpy`, and the guards of [`Value::lock`] and [`Array::lock`] give the
//! memory in place.

mod error;
mod raw;
mod synchronized;
mod typecode;

pub use bytemuck::{self, Pod, Zeroable};
pub use error::{IndexError, SharedCtypesError};
pub use raw::{RawArray, RawValue};
pub use synchronized::{copy, synchronized, Array, ArrayGuard, Synchronized, Value, ValueGuard};
pub use typecode::{DynArray, DynValue, LockChoice, Scalar, TypeCode};
