//! Who owns a CPython client's references.
//!
//! CPython's client makes an object on one connection and increfs and
//! decrefs it on others, each closed after one call, so its references
//! cannot belong to a connection. They belong to an owner session:
//!
//! * a client on the Unix socket: one per client process, found by the
//!   socket's peer credentials (`SO_PEERCRED`). The server watches the
//!   process (a pidfd) and, when it exits however it went, ends its
//!   owner session, dropping its references exactly as for an SDK client
//!   that disconnects.
//! * any other client (TCP, TLS): the server cannot see its process, so
//!   one owner session holds the references of them all and they live
//!   until given back (`decref`), as on CPython's own server. A TCP client
//!   that dies holding references leaks them, as it would there; the
//!   memory limits bound what that can cost.
//!
//! Each owner counts as one session in `status`.
//!
//! # What a `Lock` or `Semaphore` holds
//!
//! A `threading.Lock` or semaphore has no owner: any thread may release
//! it, and it stays acquired when the thread that acquired it is gone.
//! CPython's own tests count on both (a child process acquires a manager
//! `Lock` and exits; its parent releases it). So what CPython clients
//! acquire from a `Lock`, `Semaphore` or `BoundedSemaphore`, or through a
//! `Condition` built on a `Lock`, is held by one session that never ends
//! (`unowned`), not by the connection: any CPython client may release it,
//! and a client that leaves keeps it acquired, as on CPython's server. An
//! `RLock` (and a `Condition` on one) keeps its owner, the connection,
//! which is the client thread (one connection per thread), and is
//! released when that connection ends. SDK clients keep the stricter
//! rules of [`crate::objects::semaphore`].

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock};

use crate::engine::Engine;
use crate::lock;
use crate::object::SharedObject;
use crate::objects::condition::ConditionObject;
use crate::objects::semaphore::{SemKind, SemaphoreObject};
use crate::session::Session;

/// The owner sessions of the CPython clients of one server.
#[derive(Default)]
pub(crate) struct Owners {
    shared: OnceLock<Arc<Session>>,
    unowned: OnceLock<Arc<Session>>,
    by_pid: Arc<Mutex<HashMap<i32, Arc<Session>>>>,
}

impl Owners {
    /// The owner of the references made through connection `fd`;
    /// `local`: it is a Unix socket, whose peer process can be known.
    pub(crate) fn owner(
        &self,
        engine: &Arc<Engine>,
        fd: Option<RawFd>,
        local: bool,
    ) -> Arc<Session> {
        if let Some(pid) = fd.filter(|_| local).and_then(peer_pid) {
            if let Some(session) = self.for_process(engine, pid) {
                return session;
            }
        }
        Arc::clone(
            self.shared
                .get_or_init(|| engine.open_session("CPython clients (TCP)")),
        )
    }

    /// The session that holds what CPython clients acquire from objects
    /// with no owner in Python (see the module's docs); it never ends.
    pub(crate) fn unowned(&self, engine: &Arc<Engine>) -> Arc<Session> {
        Arc::clone(self.unowned.get_or_init(|| {
            let session = engine.open_session("CPython clients' locks and semaphores");
            session.stop_tracking();
            session
        }))
    }

    /// The owner session of process `pid`, made and watched on first use;
    /// `None` if the process cannot be watched.
    fn for_process(&self, engine: &Arc<Engine>, pid: i32) -> Option<Arc<Session>> {
        let mut map = lock(&self.by_pid);
        if let Some(session) = map.get(&pid) {
            return Some(Arc::clone(session));
        }
        let pidfd = pidfd_open(pid)?;
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which alone owns
        // it from here: it stays open, as the same descriptor, until the
        // `AsyncFd` drops it.
        let watched = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
        }
        .ok()?;
        let session = engine.open_session(format!("CPython process {pid}"));
        map.insert(pid, Arc::clone(&session));
        let by_pid = Arc::clone(&self.by_pid);
        let engine = Arc::clone(engine);
        let owned = Arc::clone(&session);
        tokio::spawn(async move {
            // A pidfd turns readable when its process exits.
            let _ = watched.readable().await;
            lock(&by_pid).remove(&pid);
            tracing::debug!(
                pid,
                references = owned.reference_count(),
                "a CPython client process exited"
            );
            engine.end_session(&owned);
        });
        Some(session)
    }
}

/// Whether what a CPython client acquires from `object` has no owner in
/// Python: a `Lock`, `Semaphore` or `BoundedSemaphore`, or a `Condition`
/// on a `Lock`.
pub(crate) fn acquires_unowned(object: &dyn SharedObject) -> bool {
    let unowned = |kind| !matches!(kind, SemKind::RLock);
    let any = object.as_any();
    if let Some(sem) = any.downcast_ref::<SemaphoreObject>() {
        return unowned(sem.kind());
    }
    any.downcast_ref::<ConditionObject>()
        .is_some_and(|c| unowned(c.lock_kind()))
}

/// The process at the other end of Unix socket `fd`.
fn peer_pid(fd: RawFd) -> Option<i32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are live and `len` is `cred`'s size; the
    // kernel writes at most that much.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid)
}

/// A pidfd for `pid`, if the kernel has them and the process lives.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: `pidfd_open(pid, 0)` takes no pointers; it returns a new
    // descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by no one
    // else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
