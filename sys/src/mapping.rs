//! Shared memory both sides map: a sealed `memfd` ([`create_sealed`],
//! [`sealed_len`]) and a `MAP_SHARED` mapping of a whole descriptor
//! ([`Mapping`]).
//!
//! Python's counterparts are `multiprocessing.heap` (anonymous arenas) and
//! `shared_memory` (`shm_open`). Every user here — the local primitives
//! and shared ctypes, `SharedMemory` blocks, the shared-memory channel —
//! maps memory that another process can also reach. A process that shrank
//! the file under the others' mappings would make their next access fault
//! with `SIGBUS`, so a memfd is sealed at its size when it is made, and a
//! descriptor received from elsewhere is mapped only if it carries those
//! seals.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// The seals every memfd made here carries: its size is fixed for good.
pub const SIZE_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A new zero-filled memfd of `len` bytes named `name` (shown in
/// `/proc/<pid>/fd`), close-on-exec and sealed at its size.
pub fn create_sealed(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create with a NUL-terminated name; the result is
    // checked before use.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = u64::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "region too large"))?;
    File::from(fd.try_clone()?).set_len(size)?;
    // SAFETY: fcntl(2) on a descriptor we own, with an int argument.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SIZE_SEALS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The size of a descriptor received from another process, if it is a
/// memfd sealed as [`create_sealed`] seals it; `InvalidData` otherwise
/// (an ordinary file, or a memfd whose size may still change).
pub fn sealed_len(fd: &impl AsRawFd) -> io::Result<usize> {
    // SAFETY: F_GET_SEALS only reads the descriptor's seals.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & SIZE_SEALS != SIZE_SEALS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptor is not a sealed shared region",
        ));
    }
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a valid descriptor and `st` a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(st.st_size).unwrap_or(0))
}

/// A `MAP_SHARED`, read-write mapping of the first `len` bytes of a
/// descriptor; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    /// Start of the mapping; page aligned.
    ptr: NonNull<u8>,
    /// Length in bytes.
    len: usize,
}

// SAFETY: the mapping is plain shared memory, valid until Drop; every
// access through it goes through atomics or raw-pointer copies whose
// synchronisation is the user's protocol, as for memory shared with
// another process.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0. `populate` asks the kernel
    /// to map every page now (`MAP_POPULATE`) rather than on first touch.
    /// The caller checks that the file is at least `len` bytes long and
    /// cannot shrink (sealed, or a file no one else can resize), so that
    /// an access within `len` never faults.
    pub fn map(fd: &impl AsRawFd, len: usize, populate: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map zero bytes",
            ));
        }
        let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a fresh shared mapping of a descriptor the caller holds;
        // the kernel picks the address, and the result is checked against
        // MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The first byte.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A pointer to a `T` at `offset`, or `None` if it would not fit or
    /// would be misaligned (a corrupt offset from another process).
    #[inline]
    pub fn checked<T>(&self, offset: usize) -> Option<NonNull<T>> {
        self.checked_slice::<T>(offset, 1)
    }

    /// A pointer to `count` `T`s at `offset`, with the same checks.
    #[inline]
    pub fn checked_slice<T>(&self, offset: usize, count: usize) -> Option<NonNull<T>> {
        let bytes = std::mem::size_of::<T>().checked_mul(count)?;
        let end = offset.checked_add(bytes)?;
        if end > self.len || offset % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: offset + bytes is within the mapping, so the pointer
        // stays inside the same allocation.
        Some(unsafe { self.ptr.add(offset) }.cast())
    }

    /// Maps the pages of `offset..offset + len` in this process now rather
    /// than one page fault per 4 KiB on first touch. A forked child
    /// inherits the memory but not these page-table entries, so its first
    /// bulk write of a large array would otherwise spend most of its time
    /// faulting (measured here: 3.5 ms of faults to write 8 MB that
    /// `memcpy` writes in 0.7 ms).
    ///
    /// It reads one byte every 64 KiB: the kernel answers each read fault
    /// on shared memory by mapping the whole 64 KiB around it
    /// ("fault-around"), which measured cheaper than `MADV_POPULATE_READ`
    /// or `_WRITE`. A kernel tuned otherwise just faults more later.
    pub fn populate(&self, offset: usize, len: usize) {
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

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe exactly the mapping `map` made, and no
        // reference into it outlives `self` (its users hold the mapping
        // alive, through an `Arc` where it is shared).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_mapping_of_a_sealed_memfd_sees_the_same_bytes() {
        let fd = create_sealed(c"test", 100).unwrap();
        let a = Mapping::map(&fd, 100, true).unwrap();
        let len = sealed_len(&fd).unwrap();
        assert_eq!(len, 100);
        let b = Mapping::map(&fd, len, false).unwrap();
        let p = a.checked::<u64>(8).unwrap();
        // SAFETY: in bounds and aligned, no other access.
        unsafe { p.as_ptr().write(0xDEAD_BEEF) };
        assert_ne!(a.as_ptr(), b.as_ptr());
        // SAFETY: as above.
        assert_eq!(
            unsafe { b.checked::<u64>(8).unwrap().as_ptr().read() },
            0xDEAD_BEEF
        );
        assert!(a.checked::<u64>(a.len() - 4).is_none());
        assert!(a.checked::<u64>(3).is_none());
        assert!(a.checked_slice::<u64>(0, usize::MAX).is_none());
        let file = File::from(fd);
        assert!(file.set_len(0).is_err(), "shrunk a sealed memfd");
        assert!(file.set_len(1 << 20).is_err(), "grew a sealed memfd");
    }

    #[test]
    fn an_unsealed_descriptor_is_refused() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(4096).unwrap();
        let err = sealed_len(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn zero_bytes_are_not_mapped() {
        let fd = create_sealed(c"test", 1).unwrap();
        assert!(Mapping::map(&fd, 0, false).is_err());
    }
}
