//! Anonymous shared memory for the primitives and shared ctypes (the part
//! of Python's `multiprocessing.heap` this crate needs).
//!
//! Each object gets its own `memfd` mapped `MAP_SHARED`: a forked child
//! inherits the mapping, and a child started by spawn or forkserver receives
//! the descriptor beside the serialized value ([`SharedFd`]) and maps it
//! again. The kernel keeps the memory alive while any process maps it or
//! holds the descriptor, so no process can free memory another still uses.
//! The cost is one descriptor per object, as for a `Connection`.

use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use mp_sys::mapping::{self, Mapping};

use crate::reduction::SharedFd;

/// A `MAP_SHARED` mapping of a whole sealed memfd.
#[derive(Debug)]
pub(crate) struct Region {
    /// Kept open so the region can be handed to another process.
    fd: SharedFd,
    /// The mapping: the memfd's whole size.
    map: Mapping,
}

impl Region {
    /// A new zero-filled region of `len` bytes (rounded up to a page).
    pub(crate) fn new(len: usize) -> io::Result<Arc<Region>> {
        let len = len.max(1);
        // Sealed at its size: a process that shrank the file would make
        // every other mapping of it fault with SIGBUS.
        let fd: OwnedFd = mapping::create_sealed(c"mp-shared", len)?;
        // Allocate every page now, as CPython's zero-filling does: the
        // memory is committed where the object is made, and later mappings
        // (forked children) find the pages and can map them in bulk.
        let map = Mapping::map(&fd, len, true)?;
        Ok(Arc::new(Region {
            fd: SharedFd::new(fd),
            map,
        }))
    }

    /// Maps a region received from another process; its size is the file's.
    /// Only a memfd sealed as [`Region::new`] seals it is accepted, so that
    /// nobody can shrink it under our mapping.
    pub(crate) fn from_fd(fd: SharedFd) -> io::Result<Arc<Region>> {
        let len = mapping::sealed_len(&fd)?;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared region descriptor is empty",
            ));
        }
        let map = Mapping::map(&fd, len, false)?;
        Ok(Arc::new(Region { fd, map }))
    }

    /// Size of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The descriptor, for serialization.
    pub(crate) fn fd(&self) -> &SharedFd {
        &self.fd
    }

    /// Pointer to a `T` at `offset`, or `None` if it would not fit or would
    /// be misaligned (a corrupt handle from another process).
    pub(crate) fn checked<T>(&self, offset: usize) -> Option<NonNull<T>> {
        self.map.checked(offset)
    }

    /// Pointer to `count` `T`s at `offset`, with the same checks.
    pub(crate) fn checked_slice<T>(&self, offset: usize, count: usize) -> Option<NonNull<T>> {
        self.map.checked_slice(offset, count)
    }

    /// Maps the pages of `offset..offset + len` in this process now (see
    /// [`Mapping::populate`]): a forked child's first bulk write of a
    /// large array would otherwise spend most of its time faulting.
    pub(crate) fn populate(&self, offset: usize, len: usize) {
        self.map.populate(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reduction::{FdSink, FdSource};

    #[test]
    fn a_second_mapping_of_the_descriptor_sees_the_same_bytes() {
        let a = Region::new(100).unwrap();
        let p = a.checked::<u64>(8).unwrap();
        // SAFETY: in bounds and aligned, no other access.
        unsafe { p.as_ptr().write(0xDEAD_BEEF) };
        let b = Region::from_fd(a.fd().try_clone().unwrap()).unwrap();
        assert_ne!(a.map.as_ptr(), b.map.as_ptr());
        // SAFETY: as above.
        assert_eq!(
            unsafe { b.checked::<u64>(8).unwrap().as_ptr().read() },
            0xDEAD_BEEF
        );
        // (Bounds and alignment are `mp_sys::mapping`'s, tested there.)
        // SAFETY: trying to resize our own memfd.
        assert_ne!(
            unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(a.fd()), 0) },
            0,
            "size is sealed"
        );
    }

    #[test]
    fn the_descriptor_travels_through_fd_sink_and_source() {
        let a = Region::new(64).unwrap();
        let (bytes, fds) = FdSink::collect(|| {
            let mut out = Vec::new();
            ciborium::into_writer(a.fd(), &mut out).unwrap();
            out
        });
        let fd: SharedFd = FdSource::provide(fds, || ciborium::from_reader(&bytes[..])).unwrap();
        let b = Region::from_fd(fd).unwrap();
        assert_eq!(b.len(), a.len());
    }
}
