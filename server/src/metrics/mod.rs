//! Server metrics: what an operator watches on a long-running `mpserver`.
//!
//! CPython's `multiprocessing.managers.Server` has no metrics (its
//! `debug_info` and `number_of_objects` are the nearest thing); this module
//! counts what a manager does so that `mpserver serve --metrics-listen ADDR`
//! can serve it in the Prometheus text format ([`crate::scrape`]).
//!
//! # Cost on the call path
//!
//! Every counter is an `AtomicU64` bumped with a relaxed `fetch_add`; no
//! lock is taken on the call path. Calls are counted per typeid and method
//! in a map built once from the registry when the engine starts, so a call
//! looks its counter up by two string hashes and never inserts: the label
//! set is bounded by the registry (an unexposed method name counts as
//! `(other)`, so a client cannot grow it). Object counts by typeid are read
//! from the object table at scrape time only.
//!
//! # Layout
//!
//! * this file: the counters and the one-line hooks the engine and the
//!   serve loop call;
//! * [`histogram`]: the call-latency histogram.
//!
//! Reading them out is [`crate::scrape`], a layer above the engine: the
//! counters know nothing of the engine, so the engine can own them.

pub mod histogram;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indexmap::IndexMap;
use mp_proto::auth::AuthenticationError;
use mp_proto::frame::FrameError;
use mp_proto::message::Outcome;
use mp_proto::ErrorKind;

use crate::registry::TypeSpec;
use histogram::Histogram;
use mp_proto::methods::builtin::{CommonMethod, ServerMethod};

/// Methods answered for every object even when not exposed.
pub(crate) fn always<'a>() -> impl Iterator<Item = &'a str> {
    CommonMethod::ALL.iter().map(|m| -> &'a str { m.name() })
}

/// Error kinds with a counter of their own; any other name counts as
/// `other`, so an embedder's exception names cannot grow the label set:
/// every kind the protocol names, from its one list.
pub(crate) const ERROR_KINDS: &[&str] = ErrorKind::NAMES;

/// The label for a method or error kind outside the known set.
pub(crate) const OTHER: &str = "(other)";

/// Why a handshake (or the hello after it) ended without a session, for
/// `mpserver_handshake_failures_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// The peer did not finish in time.
    Timeout = 0,
    /// The peer closed the connection or the socket failed.
    Closed = 1,
    /// The peer sent something that is not the handshake or the hello.
    Protocol = 2,
    /// The TLS handshake failed (no ClientHello, no common version, a
    /// refused client certificate).
    Tls = 3,
    /// Closed before its handshake: too many connections were in theirs,
    /// on the server or from the peer's source.
    Busy = 4,
}

pub(crate) const HANDSHAKE_REASONS: [&str; 5] = ["timeout", "closed", "protocol", "tls", "busy"];

impl HandshakeFailure {
    /// Why reading a handshake frame failed: the peer went away, or sent
    /// something that is no frame.
    pub(crate) fn of_frame(e: &FrameError) -> HandshakeFailure {
        match e {
            FrameError::Truncated { .. } | FrameError::Io(_) => HandshakeFailure::Closed,
            _ => HandshakeFailure::Protocol,
        }
    }
}

/// FNV-1a: the counter maps are built once from the registry and only
/// looked up afterwards, with keys of a few bytes, where SipHash's
/// flooding resistance buys nothing and costs most of a lookup.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map from names to counters, fixed after construction.
pub(crate) type Names<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;

/// Per-method call counters of one typeid.
pub(crate) struct TypeCalls {
    pub(crate) methods: Names<AtomicU64>,
    pub(crate) other: AtomicU64,
}

/// Every counter of one server.
pub struct Metrics {
    pub(crate) calls: Names<TypeCalls>,
    pub(crate) server_calls: [AtomicU64; ServerMethod::ALL.len() + 1],
    pub(crate) errors: [AtomicU64; ErrorKind::NAMES.len() + 1],
    pub(crate) latency: Histogram,
    pub(crate) connections_open: AtomicU64,
    pub(crate) dedicated_readers: AtomicU64,
    pub(crate) channels: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) handshake_failures: [AtomicU64; HANDSHAKE_REASONS.len()],
    pub(crate) auth_throttled: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) sessions_open: AtomicU64,
    pub(crate) sessions_total: AtomicU64,
    pub(crate) requests: AtomicU64,
}

/// Bumps a counter: relaxed, since each is read on its own.
fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Counters for the typeids of a frozen registry.
    pub(crate) fn new(types: &IndexMap<String, Arc<TypeSpec>>) -> Metrics {
        let calls = types
            .iter()
            .map(|(typeid, spec)| {
                let methods = spec
                    .exposed
                    .iter()
                    .map(String::as_str)
                    .chain(always())
                    .map(|m| (m.to_owned(), AtomicU64::new(0)))
                    .collect();
                let calls = TypeCalls {
                    methods,
                    other: AtomicU64::new(0),
                };
                (typeid.clone(), calls)
            })
            .collect();
        Metrics {
            calls,
            server_calls: Default::default(),
            errors: Default::default(),
            latency: Histogram::default(),
            connections_open: AtomicU64::new(0),
            dedicated_readers: AtomicU64::new(0),
            channels: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            handshake_failures: Default::default(),
            auth_throttled: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            sessions_open: AtomicU64::new(0),
            sessions_total: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// Counts a call of `method` on an object of `typeid`.
    pub(crate) fn object_call(&self, typeid: &str, method: &str) {
        if let Some(calls) = self.calls.get(typeid) {
            bump(calls.methods.get(method).unwrap_or(&calls.other), 1);
        }
    }

    /// Counts a server-level call (`None`: a name the server does not
    /// have, counted as `(other)`).
    pub(crate) fn server_call(&self, method: Option<ServerMethod>) {
        let i = method.map_or(ServerMethod::ALL.len(), |m| m as usize);
        bump(&self.server_calls[i], 1);
    }

    /// Counts an error answered or met, by kind.
    pub(crate) fn error(&self, kind: &ErrorKind) {
        let name = kind.as_str();
        let i = ERROR_KINDS
            .iter()
            .position(|k| *k == name)
            .unwrap_or(ERROR_KINDS.len());
        bump(&self.errors[i], 1);
    }

    /// A session (an authenticated connection) began.
    pub(crate) fn session_opened(&self) {
        bump(&self.sessions_open, 1);
        bump(&self.sessions_total, 1);
    }

    /// A session ended.
    pub(crate) fn session_closed(&self) {
        self.sessions_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A request reached the engine.
    pub(crate) fn request(&self) {
        bump(&self.requests, 1);
    }

    /// Sessions open now, sessions since start, requests since start (what
    /// `status` reports).
    pub(crate) fn sessions_and_requests(&self) -> (u64, u64, u64) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            load(&self.sessions_open),
            load(&self.sessions_total),
            load(&self.requests),
        )
    }

    /// Records a call answered `outcome`, `started` when it was read.
    pub(crate) fn answered(&self, started: Instant, outcome: &Outcome) {
        self.latency.observe(started.elapsed());
        if let Outcome::Error(e) = outcome {
            self.error(&e.kind);
        }
    }

    /// A socket was accepted; the guard counts it open until dropped.
    pub(crate) fn connection(&self) -> OpenConnection<'_> {
        bump(&self.connections_accepted, 1);
        bump(&self.connections_open, 1);
        OpenConnection(self)
    }

    /// A place for a dedicated reader thread, if fewer than `max` run
    /// now; the guard frees it. The limit and the gauge read one counter.
    pub(crate) fn dedicated_reader(&self, max: usize) -> Option<Place<'_>> {
        Place::take(&self.dedicated_readers, max)
    }

    /// A place for a shared-memory channel, if fewer than `max` are open
    /// now; the guard frees it.
    pub(crate) fn channel(&self, max: usize) -> Option<Place<'_>> {
        Place::take(&self.channels, max)
    }

    /// A TLS connection that ended before its authkey handshake (where
    /// [`Metrics::connection`] counts the others): counted as accepted,
    /// and as a failed handshake for `reason`.
    pub(crate) fn tls_failed(&self, reason: HandshakeFailure) {
        drop(self.connection());
        self.handshake_failed(reason);
    }

    /// A peer was refused after the handshake (connection limit, version).
    pub(crate) fn refused(&self) {
        bump(&self.connections_refused, 1);
    }

    /// Records how the authentication handshake of a connection ended.
    pub(crate) fn handshake(&self, result: &Result<(), AuthenticationError>) {
        match result {
            Ok(()) => {}
            Err(e) if is_auth_failure(e) => bump(&self.auth_failures, 1),
            Err(AuthenticationError::Timeout) => self.handshake_failed(HandshakeFailure::Timeout),
            Err(AuthenticationError::Closed | AuthenticationError::Frame(_)) => {
                self.handshake_failed(HandshakeFailure::Closed)
            }
            Err(_) => self.handshake_failed(HandshakeFailure::Protocol),
        }
    }

    /// Counts a handshake (or hello) that ended without a session.
    pub(crate) fn handshake_failed(&self, reason: HandshakeFailure) {
        bump(&self.handshake_failures[reason as usize], 1);
    }

    /// Counts a hello that could not be read; returns `error` as text.
    pub(crate) fn bad_hello(
        &self,
        reason: HandshakeFailure,
        error: impl std::fmt::Display,
    ) -> String {
        self.handshake_failed(reason);
        error.to_string()
    }

    /// A peer was made to wait before its challenge.
    pub(crate) fn throttled(&self) {
        bump(&self.auth_throttled, 1);
    }

    /// `n` bytes read from a client after its handshake.
    pub(crate) fn received(&self, n: usize) {
        bump(&self.bytes_received, n as u64);
    }

    /// `n` bytes written to a client after its handshake.
    pub(crate) fn sent(&self, n: usize) {
        bump(&self.bytes_sent, n as u64);
    }
}

/// Whether a failed handshake means the peer does not hold the key (as
/// opposed to a stall, a cut or a stray protocol).
pub(crate) fn is_auth_failure(e: &AuthenticationError) -> bool {
    matches!(
        e,
        AuthenticationError::WrongDigest
            | AuthenticationError::Rejected
            | AuthenticationError::LegacyDisabled
            | AuthenticationError::UnsupportedDigest(_)
    )
}

/// Counts a connection open while it lives.
pub(crate) struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Holds one of a bounded number of places (a dedicated reader, a
/// channel) while it lives; the count is also the gauge.
pub(crate) struct Place<'a>(&'a AtomicU64);

impl<'a> Place<'a> {
    fn take(count: &'a AtomicU64, max: usize) -> Option<Place<'a>> {
        let max = max as u64;
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(count))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::SessionId;
    use crate::registry::Registry;

    fn metrics() -> Metrics {
        Metrics::new(&Registry::sync_manager().freeze())
    }

    #[test]
    fn calls_count_by_typeid_and_method_with_a_bounded_label_set() {
        let m = metrics();
        m.object_call("dict", "__getitem__");
        m.object_call("dict", "__getitem__");
        m.object_call("dict", "__repr__");
        m.object_call("dict", "no such method");
        m.object_call("no such type", "get");
        let dict = &m.calls["dict"];
        let get = |name: &str| dict.methods[name].load(Ordering::Relaxed);
        assert_eq!(get("__getitem__"), 2);
        assert_eq!(get("__repr__"), 1);
        assert_eq!(dict.other.load(Ordering::Relaxed), 1);
        assert!(!dict.methods.contains_key("no such method"));
        assert!(!m.calls.contains_key("no such type"));
    }

    #[test]
    fn errors_and_server_calls_fall_back_to_other() {
        let m = metrics();
        m.error(&ErrorKind::KeyError);
        m.error(&ErrorKind::OverflowError);
        m.error(&ErrorKind::Other("MyError".into()));
        m.server_call(ServerMethod::from_name("create"));
        m.server_call(ServerMethod::from_name("frobnicate"));
        let at = |name: &str| ERROR_KINDS.iter().position(|k| *k == name).unwrap();
        assert_eq!(m.errors[at("KeyError")].load(Ordering::Relaxed), 1);
        assert_eq!(m.errors[at("OverflowError")].load(Ordering::Relaxed), 1);
        assert_eq!(m.errors[ERROR_KINDS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(m.server_calls[2].load(Ordering::Relaxed), 1);
        assert_eq!(
            m.server_calls[ServerMethod::ALL.len()].load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn every_counted_server_method_is_one_the_server_has() {
        let engine = crate::Engine::new(crate::Registry::sync_manager());
        let session = std::sync::Arc::new(crate::session::Session::new(SessionId(1), "t"));
        for method in ServerMethod::ALL
            .iter()
            .filter(|m| **m != ServerMethod::Shutdown)
        {
            let args = crate::Args::new(vec![], Default::default());
            if let Outcome::Error(e) = engine.server_call(&session, method.name(), args) {
                assert!(!e.message.contains("has no method"), "{method}: {e}");
            }
        }
    }

    #[test]
    fn handshake_results_are_classified() {
        let m = metrics();
        m.handshake(&Ok(()));
        m.handshake(&Err(AuthenticationError::WrongDigest));
        m.handshake(&Err(AuthenticationError::Timeout));
        m.handshake(&Err(AuthenticationError::Closed));
        m.handshake(&Err(AuthenticationError::Protocol("x".into())));
        m.tls_failed(HandshakeFailure::Tls);
        m.handshake_failed(HandshakeFailure::Busy);
        assert_eq!(m.auth_failures.load(Ordering::Relaxed), 1);
        for reason in &m.handshake_failures {
            assert_eq!(reason.load(Ordering::Relaxed), 1);
        }
        // The TLS failure is an accepted connection, closed again.
        assert_eq!(m.connections_accepted.load(Ordering::Relaxed), 1);
        assert_eq!(m.connections_open.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn places_are_bounded_and_freed_on_drop() {
        let m = Metrics::new(&IndexMap::new());
        let a = m.dedicated_reader(2).unwrap();
        let _b = m.dedicated_reader(2).unwrap();
        assert!(m.dedicated_reader(2).is_none());
        assert_eq!(m.dedicated_readers.load(Ordering::Relaxed), 2);
        drop(a);
        assert!(m.dedicated_reader(2).is_some());
        assert!(m.dedicated_reader(0).is_none());
        let c = m.channel(1).unwrap();
        assert!(m.channel(1).is_none());
        assert_eq!(m.channels.load(Ordering::Relaxed), 1);
        drop(c);
        assert!(m.channel(1).is_some());
    }

    #[test]
    fn the_open_connection_guard_counts_down() {
        let m = metrics();
        let a = m.connection();
        let b = m.connection();
        drop(a);
        assert_eq!(m.connections_open.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(m.connections_open.load(Ordering::Relaxed), 0);
        assert_eq!(m.connections_accepted.load(Ordering::Relaxed), 2);
    }
}
