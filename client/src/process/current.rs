//! Process-wide state: who this process is, its parent, the children it
//! started, and the functions Python exposes over them
//! (`current_process`, `parent_process`, `active_children`, `cpu_count`).
//! Python keeps the same in module globals of `multiprocessing.process`.

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use super::start::forkserver::ForkServerClient;
use super::sys;
use super::Process;

/// An authentication key: the secret HMAC key of
/// `multiprocessing.connection`'s handshake.
///
/// The main process draws 32 random bytes at start; every child inherits its
/// parent's key unless [`Process::set_authkey`] gave it another. `Debug`
/// does not print the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(Arc<[u8]>);

impl AuthKey {
    /// Wraps key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        AuthKey(bytes.into().into())
    }

    /// 32 fresh random bytes, as Python's `os.urandom(32)`.
    ///
    /// # Panics
    ///
    /// If the OS has no random source to read (Python's `os.urandom`
    /// raises then): a key that is not random would be worse than none.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut key) {
            panic!("the OS random source failed: {e}");
        }
        AuthKey(Arc::from(&key[..]))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for AuthKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for AuthKey {
    fn from(bytes: &[u8]) -> Self {
        AuthKey(Arc::from(bytes))
    }
}

impl From<Vec<u8>> for AuthKey {
    fn from(bytes: Vec<u8>) -> Self {
        AuthKey(bytes.into())
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey(<{} bytes>)", self.0.len())
    }
}

/// Everything this process knows about the process tree around it.
pub(crate) struct ProcessTable {
    /// The handle `current_process()` returns.
    pub(crate) current: Process,
    /// The handle `parent_process()` returns (`None` in the main process).
    pub(crate) parent: Option<Process>,
    /// Started children not yet known to have finished (Python's
    /// `_children`); they are polled and dropped by `active_children()`
    /// and at every start, so none is left a zombie.
    pub(crate) children: Vec<Process>,
    /// Numbers the children made here (`Process-<ours>:<n>`).
    pub(crate) counter: u32,
    /// The connection to the forkserver, once started.
    pub(crate) forkserver: Option<ForkServerClient>,
    /// A pidfd of this process, passed to re-executed children so their
    /// `parent_process()` can watch us; opened on first need.
    pub(crate) self_pidfd: Option<OwnedFd>,
}

impl ProcessTable {
    fn main() -> Self {
        ProcessTable {
            current: Process::current_main(AuthKey::random()),
            parent: None,
            children: Vec::new(),
            counter: 0,
            forkserver: None,
            self_pidfd: None,
        }
    }

    /// Drops the children that have finished, reaping them.
    pub(crate) fn cleanup(&mut self) {
        self.children.retain(|child| child.poll_for_cleanup());
    }
}

static TABLE: LazyLock<Mutex<ProcessTable>> = LazyLock::new(|| Mutex::new(ProcessTable::main()));

/// Set by [`crate::init`]; a program whose `main` does not call it cannot
/// be re-executed as a child.
pub(crate) static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Locks the process table. Lock order: the table before any process's own
/// state, never the other way.
pub(crate) fn table() -> MutexGuard<'static, ProcessTable> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) use crate::process_name::{current_name, lock_current_name, set_current_name};

/// A pidfd of this process for a child to watch, opened once.
pub(crate) fn self_pidfd(table: &mut ProcessTable) -> Result<&OwnedFd, std::io::Error> {
    if table.self_pidfd.is_none() {
        table.self_pidfd = Some(sys::pidfd_open(std::process::id() as libc::pid_t)?);
    }
    table
        .self_pidfd
        .as_ref()
        .ok_or_else(|| std::io::Error::other("pidfd missing"))
}

/// The [`Process`] object of the current process (Python's
/// `current_process()`).
///
/// In the main process it is named `MainProcess`; in a child it is the
/// object its parent started, with the same name, daemon flag and authkey.
pub fn current_process() -> Process {
    table().current.clone()
}

/// The parent of the current process, or `None` in the main process
/// (Python's `parent_process()`).
///
/// Its `is_alive()` and `join()` watch the parent's real lifetime.
pub fn parent_process() -> Option<Process> {
    table().parent.clone()
}

/// The children of the current process that are still running (Python's
/// `active_children()`). Calling it reaps the ones that finished.
pub fn active_children() -> Vec<Process> {
    let mut t = table();
    t.cleanup();
    t.children.clone()
}

/// Could not tell how many CPUs there are (where Python's `cpu_count()`
/// raises).
#[derive(Debug, thiserror::Error)]
#[error("cannot determine the number of cpus")]
pub struct CpuCountError;

/// The number of CPUs in the system (Python's `cpu_count()`), which is
/// not necessarily how many this process may use: see
/// [`std::thread::available_parallelism`] for that.
pub fn cpu_count() -> Result<usize, CpuCountError> {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(CpuCountError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authkey_debug_hides_the_bytes() {
        let key = AuthKey::new(b"secret".to_vec());
        assert!(!format!("{key:?}").contains("secret"));
        assert_eq!(AuthKey::random().as_bytes().len(), 32);
        assert_ne!(AuthKey::random(), AuthKey::random());
    }

    #[test]
    fn the_main_process_has_a_name_and_a_key() {
        let me = current_process();
        assert_eq!(me.name(), "MainProcess");
        assert_eq!(me.authkey().as_bytes().len(), 32);
        assert!(parent_process().is_none());
        assert!(cpu_count().unwrap() >= 1);
    }
}
