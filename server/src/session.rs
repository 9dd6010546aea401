//! Sessions: one per client connection, owning references and locks.
//!
//! A session owns the references its client was given — by `create`, by
//! `incref`, by a method returning a new object, and one for every proxy
//! token inside a returned value (so the client never has to `incref` what
//! it receives, and a popped token cannot die in flight). `decref` only
//! drops references the session owns, so one client cannot free another's
//! objects.
//!
//! When a session ends — a clean close, a client killed with SIGKILL, a cut
//! socket, a protocol error — [`Engine::end_session`](crate::Engine::end_session)
//! first cancels its waiting calls (their futures are dropped, and a waiter
//! dropped after being granted something gives it back), then asks every
//! object the session acquired something from to release it
//! ([`SharedObject::release_session`](crate::SharedObject::release_session)),
//! then drops its references. Nothing a dead client held stays held.
//!
//! This is stronger than CPython's manager, where a killed client leaks
//! its references forever and a lock it held stays locked, deadlocking
//! every other client that wants it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use mp_proto::ObjectId;

use crate::lock;
use crate::object::SessionId;

/// One client connection's state.
pub struct Session {
    id: SessionId,
    /// Who is connected (`127.0.0.1:50312`), for logs and `status`.
    peer: String,
    /// When it connected.
    started: Instant,
    /// References owned, by object.
    refs: Mutex<HashMap<ObjectId, u64>>,
    /// Objects to notify when the session ends (locks it acquired).
    owning: Mutex<HashSet<ObjectId>>,
    /// Off for a session that never ends, whose `owning` would otherwise
    /// grow by every object it ever acquired from.
    tracking: AtomicBool,
}

impl Session {
    /// A new session.
    pub fn new(id: SessionId, peer: impl Into<String>) -> Session {
        Session {
            id,
            peer: peer.into(),
            started: Instant::now(),
            refs: Mutex::new(HashMap::new()),
            owning: Mutex::new(HashSet::new()),
            tracking: AtomicBool::new(true),
        }
    }

    /// Its id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Its peer's address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// When it started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// How many references it owns in all.
    pub fn reference_count(&self) -> u64 {
        lock(&self.refs).values().sum()
    }

    /// Records one more reference to `id` (already counted in the table).
    pub(crate) fn add_ref(&self, id: ObjectId) {
        *lock(&self.refs).entry(id).or_insert(0) += 1;
    }

    /// Gives up one reference to `id`; `false` if it owns none.
    pub(crate) fn take_ref(&self, id: ObjectId) -> bool {
        let mut refs = lock(&self.refs);
        match refs.get_mut(&id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                refs.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Makes [`track`](Self::track) a no-op: for a session that never
    /// ends, so has nothing to release.
    pub(crate) fn stop_tracking(&self) {
        self.tracking.store(false, Ordering::Relaxed);
    }

    /// Asks for `release_session` on `id` when this session ends.
    pub(crate) fn track(&self, id: ObjectId) {
        if !self.tracking.load(Ordering::Relaxed) {
            return;
        }
        let mut owning = lock(&self.owning);
        if !owning.contains(&id) {
            owning.insert(id);
        }
    }

    /// Takes everything the session owns, for teardown.
    pub(crate) fn drain(&self) -> (Vec<ObjectId>, Vec<(ObjectId, u64)>) {
        let owning = std::mem::take(&mut *lock(&self.owning));
        let refs = std::mem::take(&mut *lock(&self.refs));
        (owning.into_iter().collect(), refs.into_iter().collect())
    }
}
