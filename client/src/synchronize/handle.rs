//! A typed pointer to a primitive's state in a shared region, and its
//! serialized form (the region's descriptor plus an offset).
//!
//! Every state struct is made only of atomics and starts with a `kind`
//! word, so an all-zero region is a valid state and a descriptor that
//! arrives from another process is checked to hold the kind expected before
//! it is used.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::reduction::SharedFd;
use crate::shared_memory::region::Region;

use super::error::SyncError;

/// A state struct that may live in a shared region.
///
/// # Safety
///
/// The type must be `#[repr(C)]`, made only of atomics and padding nobody
/// reads or writes (so any bit pattern,
/// including all zeros, is valid and every access is synchronised), and its
/// first field must be the `kind` word returned by [`State::kind_word`].
pub(crate) unsafe trait State: Sized {
    /// Tag stored in the first word; tells a Lock from a Semaphore.
    const KIND: u32;
    /// Python's name of the primitive, for error messages.
    const NAME: &'static str;
    /// The kind word.
    fn kind_word(&self) -> &AtomicU32;
}

/// A reference-counted handle to a `S` in a shared region.
pub(crate) struct Handle<S> {
    /// Keeps the mapping alive.
    region: Arc<Region>,
    /// Offset of the state in the region, for serialization.
    offset: usize,
    /// Where the state is mapped in this process.
    ptr: NonNull<S>,
    _state: PhantomData<S>,
}

// SAFETY: S is made of atomics (State contract); the region is Send+Sync.
unsafe impl<S: State> Send for Handle<S> {}
// SAFETY: as above.
unsafe impl<S: State> Sync for Handle<S> {}

impl<S: State> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle {
            region: Arc::clone(&self.region),
            offset: self.offset,
            ptr: self.ptr,
            _state: PhantomData,
        }
    }
}

impl<S: State> Handle<S> {
    /// A fresh state in a region of its own.
    pub(crate) fn create() -> Result<Self, SyncError> {
        let region = Region::new(std::mem::size_of::<S>())?;
        Self::create_at(region, 0)
    }

    /// A fresh state at `offset` of a zeroed region (for primitives that
    /// share one region, such as a Barrier's parts).
    pub(crate) fn create_at(region: Arc<Region>, offset: usize) -> Result<Self, SyncError> {
        let h = Self::attach_unchecked(region, offset)?;
        h.get().kind_word().store(S::KIND, Ordering::Release);
        Ok(h)
    }

    /// Attaches to an existing state, checking its kind.
    pub(crate) fn attach(region: Arc<Region>, offset: usize) -> Result<Self, SyncError> {
        let h = Self::attach_unchecked(region, offset)?;
        if h.get().kind_word().load(Ordering::Acquire) != S::KIND {
            return Err(SyncError::WrongKind(S::NAME));
        }
        Ok(h)
    }

    fn attach_unchecked(region: Arc<Region>, offset: usize) -> Result<Self, SyncError> {
        let ptr = region
            .checked::<S>(offset)
            .ok_or(SyncError::WrongKind(S::NAME))?;
        Ok(Handle {
            region,
            offset,
            ptr,
            _state: PhantomData,
        })
    }

    /// The shared state.
    #[inline]
    pub(crate) fn get(&self) -> &S {
        // SAFETY: checked in bounds and aligned at construction; the region
        // lives as long as self; S is all atomics, valid for any bytes.
        unsafe { self.ptr.as_ref() }
    }

    /// The region, for composites that place more objects in it.
    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }
}

impl<S> fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("offset", &self.offset)
            .field("len", &self.region.len())
            .finish()
    }
}

/// The serialized form: the region's descriptor and the state's offset.
#[derive(Serialize, Deserialize)]
#[serde(rename = "SharedState")]
struct Wire {
    fd: SharedFd,
    offset: u64,
}

/// Borrowing twin of [`Wire`] so serializing does not clone the handle.
#[derive(Serialize)]
#[serde(rename = "SharedState")]
struct WireRef<'a> {
    fd: &'a SharedFd,
    offset: u64,
}

impl<S: State> Serialize for Handle<S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        WireRef {
            fd: self.region.fd(),
            offset: self.offset as u64,
        }
        .serialize(serializer)
    }
}

impl<'de, S: State> Deserialize<'de> for Handle<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let offset = usize::try_from(wire.offset).map_err(de::Error::custom)?;
        let region = Region::from_fd(wire.fd).map_err(de::Error::custom)?;
        Handle::attach(region, offset).map_err(de::Error::custom)
    }
}
