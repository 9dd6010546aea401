//! `SharedMemory`: a named block of shared memory.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mp_sys::mapping::Mapping;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::resource_tracker::{self, ResourceType, MAX_NAME};

use super::error::SharedMemoryError;

/// A named block of shared memory (Python's
/// `multiprocessing.shared_memory.SharedMemory`).
///
/// Created with a size ([`SharedMemory::create`]) or attached by name
/// ([`SharedMemory::attach`]); the mapping is closed on drop, and the name
/// stays until [`SharedMemory::unlink`] (by any process) or until the
/// resource tracker removes what a crashed program left.
///
/// The bytes are reachable as slices ([`buf`](SharedMemory::buf),
/// [`buf_mut`](SharedMemory::buf_mut)) or by copies at an offset
/// ([`read_at`](SharedMemory::read_at), [`write_at`](SharedMemory::write_at)).
/// Other processes may change them at any time: coordinate with a
/// [`Lock`](crate::synchronize::Lock) as you would in Python.
///
/// Serialized, a block is its name: the receiver attaches to it.
///
/// ```
/// use multiprocessing::shared_memory::SharedMemory;
///
/// let mut a = SharedMemory::create(16)?;
/// a.buf_mut()[..5].copy_from_slice(b"hello");
/// let b = SharedMemory::attach(a.name())?;
/// assert_eq!(&b.buf()[..5], b"hello");
/// a.unlink()?;
/// assert!(SharedMemory::attach(a.name()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedMemory {
    /// Name without the leading slash, as Python reports it.
    name: String,
    /// The mapping; its length is Python's `size`. Access to the bytes
    /// goes through `&self`/`&mut self` slices or copies.
    map: Mapping,
    /// Kept so the block can be resized or re-mapped; closed on drop.
    _fd: OwnedFd,
}

fn c_name(name: &str) -> Result<CString, SharedMemoryError> {
    if name.is_empty() || name.len() > MAX_NAME - 1 || name.contains(['/', '\0', '\n', ':']) {
        return Err(SharedMemoryError::ValueError(format!(
            "invalid shared memory name {name:?}: 1 to {} characters, no '/', ':', newline or NUL",
            MAX_NAME - 1
        )));
    }
    CString::new(format!("/{name}"))
        .map_err(|_| SharedMemoryError::ValueError(format!("invalid name {name:?}")))
}

/// Checks that `name` can name a block (what [`SharedMemory::attach`]
/// would accept), without touching the system: for a manager server
/// told names by its clients.
#[cfg(feature = "server")]
pub(crate) fn check_name(name: &str) -> Result<(), SharedMemoryError> {
    c_name(name).map(drop)
}

impl SharedMemory {
    /// Creates a block of `size` bytes under a fresh random name
    /// (`psm_` and hex digits, as CPython does).
    pub fn create(size: usize) -> Result<SharedMemory, SharedMemoryError> {
        loop {
            let suffix =
                getrandom::u64().map_err(|e| SharedMemoryError::Os(io::Error::other(e)))?;
            let name = format!("psm_{suffix:016x}");
            match Self::create_named(&name, size) {
                Err(SharedMemoryError::FileExists(_)) => continue,
                other => return other,
            }
        }
    }

    /// Creates a block of `size` bytes named `name`.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::FileExists`] if the name is taken;
    /// [`SharedMemoryError::ValueError`] for a zero size or a bad name.
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory, SharedMemoryError> {
        if size == 0 {
            return Err(SharedMemoryError::ValueError(
                "'size' must be a positive number different from zero".into(),
            ));
        }
        let cname = c_name(name)?;
        let len = libc::off_t::try_from(size)
            .map_err(|_| SharedMemoryError::ValueError(format!("size {size} too large")))?;
        // SAFETY: cname is NUL-terminated.
        let raw = unsafe {
            libc::shm_open(
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600,
            )
        };
        if raw < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EEXIST) => SharedMemoryError::FileExists(name.into()),
                _ => err.into(),
            });
        }
        // SAFETY: shm_open returned a fresh descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let unlink_on_error = |e: SharedMemoryError| {
            // SAFETY: cname is NUL-terminated; we created this name.
            unsafe { libc::shm_unlink(cname.as_ptr()) };
            e
        };
        // SAFETY: fd is valid.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
            return Err(unlink_on_error(io::Error::last_os_error().into()));
        }
        let shm = Self::map(name, fd, size).map_err(unlink_on_error)?;
        resource_tracker::register(name, ResourceType::SharedMemory)
            .map_err(|e| unlink_on_error(e.into()))?;
        Ok(shm)
    }

    /// Attaches to an existing block by name; its size is the block's.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::FileNotFound`] if no block has that name.
    pub fn attach(name: &str) -> Result<SharedMemory, SharedMemoryError> {
        let cname = c_name(name)?;
        // SAFETY: cname is NUL-terminated.
        let raw = unsafe { libc::shm_open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
        if raw < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENOENT) => SharedMemoryError::FileNotFound(name.into()),
                _ => err.into(),
            });
        }
        // SAFETY: shm_open returned a fresh descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd valid, st a valid out-pointer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        let size = usize::try_from(st.st_size).unwrap_or(0);
        if size == 0 {
            return Err(SharedMemoryError::ValueError(format!(
                "shared memory block {name:?} is empty"
            )));
        }
        Self::map(name, fd, size)
    }

    fn map(name: &str, fd: OwnedFd, size: usize) -> Result<SharedMemory, SharedMemoryError> {
        Ok(SharedMemory {
            name: name.into(),
            map: Mapping::map(&fd, size, false)?,
            _fd: fd,
        })
    }

    /// The block's name (no leading slash).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.map.len()
    }

    /// The bytes (Python's `buf`). Another process may change them while
    /// the slice lives; synchronize with a lock.
    pub fn buf(&self) -> &[u8] {
        // SAFETY: the mapping is `size` readable bytes until drop.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// The bytes, writable.
    pub fn buf_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in buf; `&mut self` makes this the only slice from
        // this handle.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr(), self.map.len()) }
    }

    /// Copies `out.len()` bytes from `offset`.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<(), SharedMemoryError> {
        self.check(offset, out.len())?;
        // SAFETY: the range is inside the mapping; `out` is outside it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` to `offset`. Takes `&self`: the bytes are shared with
    /// other processes anyway, so exclusivity here would protect nothing.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), SharedMemoryError> {
        self.check(offset, data.len())?;
        // SAFETY: the range is inside the mapping; memmove tolerates a
        // source borrowed from another handle of the same block.
        unsafe { std::ptr::copy(data.as_ptr(), self.map.as_ptr().add(offset), data.len()) };
        Ok(())
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), SharedMemoryError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.map.len() => Ok(()),
            _ => Err(SharedMemoryError::ValueError(format!(
                "range {offset}+{len} outside a block of {} bytes",
                self.map.len()
            ))),
        }
    }

    /// Removes the name so no new process can attach; the memory lives on
    /// until every mapping is closed. Call it once, from any one process.
    pub fn unlink(&self) -> Result<(), SharedMemoryError> {
        Self::unlink_by_name(&self.name)
    }

    /// Removes a block's name without attaching to it.
    pub fn unlink_by_name(name: &str) -> Result<(), SharedMemoryError> {
        let cname = c_name(name)?;
        // SAFETY: cname is NUL-terminated.
        if unsafe { libc::shm_unlink(cname.as_ptr()) } != 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENOENT) => SharedMemoryError::FileNotFound(name.into()),
                _ => err.into(),
            });
        }
        // The name is gone whatever the tracker hears; a tracker that
        // still lists it finds nothing to remove and stays quiet.
        let _ = resource_tracker::unregister(name, ResourceType::SharedMemory);
        Ok(())
    }

    /// Closes this process's mapping (Python's `close()`; dropping does the
    /// same).
    pub fn close(self) {
        drop(self)
    }

    /// Pointer to the first byte, for code that manages access itself.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.map.len())
            .finish()
    }
}

impl Serialize for SharedMemory {
    /// A block travels as its name (as CPython pickles it).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct("SharedMemory", &self.name)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "SharedMemory")]
        struct Name(String);
        let Name(name) = Name::deserialize(deserializer)?;
        SharedMemory::attach(&name).map_err(de::Error::custom)
    }
}
