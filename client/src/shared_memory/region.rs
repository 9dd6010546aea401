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
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::reduction::SharedFd;

/// Seals every region carries: its size is fixed for good.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A `MAP_SHARED` mapping of a whole memfd.
#[derive(Debug)]
pub(crate) struct Region {
    /// Kept open so the region can be handed to another process.
    fd: SharedFd,
    /// Start of the mapping; page aligned.
    ptr: NonNull<u8>,
    /// Mapping length in bytes (the memfd's size).
    len: usize,
}

// SAFETY: the mapping is plain shared memory, valid until Drop; every
// access through it goes through atomics or raw-pointer copies whose
// synchronisation is the caller's business, as for any shared memory.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// A new zero-filled region of `len` bytes (rounded up to a page).
    pub(crate) fn new(len: usize) -> io::Result<Arc<Region>> {
        let len = len.max(1);
        // SAFETY: the name is a NUL-terminated literal.
        let raw = unsafe {
            libc::memfd_create(
                c"mp-shared".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a fresh descriptor we now own.
        let fd: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) };
        let size = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "region too large"))?;
        // SAFETY: fd is a valid memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Seal the size: a process that shrank the file would make every
        // other mapping of it fault with SIGBUS. Receivers check the seal.
        // SAFETY: fd is a valid memfd created with MFD_ALLOW_SEALING.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Allocate every page now, as CPython's zero-filling does: the
        // memory is committed where the object is made, and later mappings
        // (forked children) find the pages and can map them in bulk.
        Self::map(SharedFd::new(fd), len, libc::MAP_POPULATE).map(Arc::new)
    }

    /// Maps a region received from another process; its size is the file's.
    /// Only a memfd sealed as [`Region::new`] seals it is accepted, so that
    /// nobody can shrink it under our mapping.
    pub(crate) fn from_fd(fd: SharedFd) -> io::Result<Arc<Region>> {
        // SAFETY: F_GET_SEALS only reads the descriptor's seals.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & SEALS != SEALS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "descriptor is not a sealed shared region",
            ));
        }
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a valid descriptor and st a valid out-pointer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let len = usize::try_from(st.st_size).unwrap_or(0);
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared region descriptor is empty",
            ));
        }
        Self::map(fd, len, 0).map(Arc::new)
    }

    fn map(fd: SharedFd, len: usize, flags: libc::c_int) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping of a descriptor we hold; the kernel
        // picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | flags,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Region { fd, ptr, len })
    }

    /// Size of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The descriptor, for serialization.
    pub(crate) fn fd(&self) -> &SharedFd {
        &self.fd
    }

    /// Pointer to a `T` at `offset`, or `None` if it would not fit or would
    /// be misaligned (a corrupt handle from another process).
    pub(crate) fn checked<T>(&self, offset: usize) -> Option<NonNull<T>> {
        let size = std::mem::size_of::<T>();
        let end = offset.checked_add(size)?;
        if end > self.len || offset % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: offset + size is within the mapping.
        Some(unsafe { self.ptr.add(offset) }.cast())
    }

    /// Pointer to `count` `T`s at `offset`, with the same checks.
    pub(crate) fn checked_slice<T>(&self, offset: usize, count: usize) -> Option<NonNull<T>> {
        let bytes = std::mem::size_of::<T>().checked_mul(count)?;
        let end = offset.checked_add(bytes)?;
        if end > self.len || offset % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: offset + bytes is within the mapping.
        Some(unsafe { self.ptr.add(offset) }.cast())
    }
}

impl Region {
    /// Maps the pages of `offset..offset + len` in this process now
    /// rather than one page fault per 4 KiB on first touch. A forked child
    /// inherits the memory but not these page-table entries, so its first
    /// bulk write of a large array would otherwise spend most of its time
    /// faulting (measured here: 3.5 ms of faults to write 8 MB that
    /// `memcpy` writes in 0.7 ms).
    ///
    /// It reads one byte every 64 KiB: the kernel answers each read fault
    /// on shared memory by mapping the whole 64 KiB around it
    /// ("fault-around"), which measured cheaper than `MADV_POPULATE_READ`
    /// or `_WRITE`. Pages are mapped writable, as shared memory needs no
    /// dirty tracking. A kernel tuned otherwise just faults more later.
    pub(crate) fn populate(&self, offset: usize, len: usize) {
        const STRIDE: usize = 64 * 1024;
        let end = offset.saturating_add(len).min(self.len);
        let mut at = offset;
        while at < end {
            // SAFETY: `at` is inside the mapping; a volatile byte read has
            // no effect but the fault.
            unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(at)) };
            at += STRIDE;
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe our mapping, and no reference into it
        // outlives the last Arc (every handle holds one).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
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
        assert_ne!(a.ptr, b.ptr);
        // SAFETY: as above.
        assert_eq!(
            unsafe { b.checked::<u64>(8).unwrap().as_ptr().read() },
            0xDEAD_BEEF
        );
        assert!(a.checked::<u64>(a.len() - 4).is_none());
        assert!(a.checked::<u64>(3).is_none());
        assert!(a.checked_slice::<u64>(0, usize::MAX).is_none());
        // SAFETY: trying to resize our own memfd.
        assert_ne!(
            unsafe { libc::ftruncate(a.fd().as_raw_fd(), 0) },
            0,
            "size is sealed"
        );
    }

    #[test]
    fn an_unsealed_descriptor_is_refused() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(4096).unwrap();
        let err = Region::from_fd(SharedFd::new(OwnedFd::from(file))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
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
