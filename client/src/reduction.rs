//! Carrying file descriptors inside serialized values (Python's
//! `multiprocessing.reduction`).
//!
//! A `Connection`, a lock in shared memory or a `SharedMemory` block is, at
//! bottom, a file descriptor. When such a value is handed to a child started
//! with `spawn` or `forkserver`, or sent over a Unix-socket `Connection`, the
//! descriptor cannot travel as bytes: it must go beside them, by
//! `SCM_RIGHTS` or by inheritance. [`SharedFd`] is the piece that makes this
//! transparent to serde:
//!
//! * serializing a `SharedFd` inside [`FdSink::collect`] duplicates the
//!   descriptor into the sink and writes only its index;
//! * deserializing inside [`FdSource::provide`] takes the descriptor at that
//!   index back out.
//!
//! Serializing or deserializing a `SharedFd` outside those scopes is an
//! error, not a silent number: a descriptor means nothing in another process
//! unless the transport carries it.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde::{de, ser, Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    /// Descriptors collected while a value is serialized for transfer.
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// Descriptors received beside a value, taken as it is deserialized.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// A file descriptor that can be part of a serialized value.
///
/// It owns its descriptor; cloning is by [`SharedFd::try_clone`] (a `dup`).
#[derive(Debug)]
pub struct SharedFd(OwnedFd);

impl SharedFd {
    /// Wraps an owned descriptor.
    pub fn new(fd: OwnedFd) -> Self {
        SharedFd(fd)
    }

    /// Duplicates the descriptor (`dup` with close-on-exec).
    pub fn try_clone(&self) -> std::io::Result<Self> {
        self.0.try_clone().map(SharedFd)
    }

    /// Gives up the wrapper and returns the descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.0
    }
}

impl AsFd for SharedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl From<OwnedFd> for SharedFd {
    fn from(fd: OwnedFd) -> Self {
        SharedFd(fd)
    }
}

impl Serialize for SharedFd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = OUTGOING.with(|cell| {
            let mut slot = cell.borrow_mut();
            let sink = slot.as_mut().ok_or_else(|| {
                ser::Error::custom(
                    "a file descriptor can only be serialized for a transport that carries it \
                     (a child process or a Unix-socket Connection)",
                )
            })?;
            let dup = self.0.try_clone().map_err(ser::Error::custom)?;
            sink.push(dup);
            Ok::<_, S::Error>(sink.len() - 1)
        })?;
        serializer.serialize_newtype_struct("SharedFd", &(index as u64))
    }
}

impl<'de> Deserialize<'de> for SharedFd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "SharedFd")]
        struct Index(u64);
        let Index(index) = Index::deserialize(deserializer)?;
        INCOMING.with(|cell| {
            let mut slot = cell.borrow_mut();
            let source = slot.as_mut().ok_or_else(|| {
                de::Error::custom("a file descriptor arrived without a transport that carries it")
            })?;
            let entry = usize::try_from(index)
                .ok()
                .and_then(|i| source.get_mut(i))
                .ok_or_else(|| {
                    de::Error::custom(format!("file descriptor index {index} was not sent"))
                })?;
            entry.take().map(SharedFd).ok_or_else(|| {
                de::Error::custom(format!("file descriptor index {index} used twice"))
            })
        })
    }
}

/// Collects the descriptors of the [`SharedFd`]s serialized in a scope.
pub struct FdSink;

impl FdSink {
    /// Runs `f` (which serializes a value) and returns its result with the
    /// descriptors, in index order, that must travel beside the bytes.
    ///
    /// Scopes do not nest: an inner scope's descriptors are its own.
    pub fn collect<T>(f: impl FnOnce() -> T) -> (T, Vec<OwnedFd>) {
        let previous = OUTGOING.with(|cell| cell.borrow_mut().replace(Vec::new()));
        let out = f();
        let fds = OUTGOING.with(|cell| {
            let mut slot = cell.borrow_mut();
            let fds = slot.take().unwrap_or_default();
            *slot = previous;
            fds
        });
        (out, fds)
    }
}

/// Provides received descriptors to the [`SharedFd`]s deserialized in a
/// scope.
pub struct FdSource;

impl FdSource {
    /// Runs `f` (which deserializes a value) with `fds` available by index.
    /// Descriptors that no `SharedFd` claimed are closed when the scope ends.
    pub fn provide<T>(fds: Vec<OwnedFd>, f: impl FnOnce() -> T) -> T {
        let table = fds.into_iter().map(Some).collect();
        let previous = INCOMING.with(|cell| cell.borrow_mut().replace(table));
        let out = f();
        INCOMING.with(|cell| *cell.borrow_mut() = previous);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[derive(Serialize, Deserialize)]
    struct Holder {
        name: String,
        fd: SharedFd,
    }

    #[test]
    fn round_trip_moves_the_descriptor() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let holder = Holder {
            name: "x".into(),
            fd: SharedFd::new(OwnedFd::from(a)),
        };
        let (bytes, fds) = FdSink::collect(|| serde_json_like(&holder));
        assert_eq!(fds.len(), 1);
        drop(holder);
        let back: Holder = FdSource::provide(fds, || from_bytes(&bytes)).unwrap();
        assert_eq!(back.name, "x");
        let mut sock = UnixStream::from(back.fd.into_inner());
        sock.write_all(b"hi").unwrap();
        let mut buf = [0; 2];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn outside_a_scope_is_an_error() {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = SharedFd::new(OwnedFd::from(a));
        let mut out = Vec::new();
        assert!(ciborium::into_writer(&fd, &mut out).is_err());
        let bytes = FdSink::collect(|| serde_json_like(&fd)).0;
        assert!(from_bytes::<SharedFd>(&bytes).is_err());
    }

    #[test]
    fn an_index_cannot_be_claimed_twice() {
        let (a, _b) = UnixStream::pair().unwrap();
        let pair = (SharedFd::new(OwnedFd::from(a)), ());
        let (bytes, fds) = FdSink::collect(|| serde_json_like(&pair.0));
        let twice = [bytes.clone(), bytes].concat();
        let result: Result<(SharedFd, SharedFd), _> = FdSource::provide(fds, || {
            let mut reader = &twice[..];
            let first: SharedFd = ciborium::from_reader(&mut reader).map_err(|e| e.to_string())?;
            let second: SharedFd = ciborium::from_reader(&mut reader).map_err(|e| e.to_string())?;
            Ok::<_, String>((first, second))
        });
        assert!(result.unwrap_err().contains("used twice"));
    }

    fn serde_json_like<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn from_bytes<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}
