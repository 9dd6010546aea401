//! The limits a server enforces on its peers.
//!
//! A manager faces untrusted networks: every resource a peer can make the
//! server spend is bounded here. Going over a limit gets the peer a typed
//! answer (`LimitExceeded`, `MemoryError`, or a refused hello) or a
//! closed connection — never a crash and never a stall for the other
//! clients. The memory limits are enforced by [`crate::budget`].

use std::time::Duration;

/// Bounds on what peers may make the server spend.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Authenticated connections served at once; a peer that
    /// authenticates past it is refused with a message saying so. Only
    /// authenticated peers hold these (the server's `admission` module).
    pub max_connections: usize,
    /// Connections in their handshake at once (not yet authenticated);
    /// one more is closed at once, before a byte is read.
    pub max_handshakes: usize,
    /// Connections in their handshake at once from one source address (an
    /// IPv4 address or an IPv6 /64; Unix-socket peers count as one).
    pub max_handshakes_per_source: usize,
    /// The largest request frame accepted; a larger header gets an error
    /// frame and closes the connection before anything is allocated for
    /// it. Also the largest answer sent: one whose encoding would be
    /// larger is answered `LimitExceeded` instead (encoding stops at the
    /// limit, so it never costs more).
    pub max_frame_bytes: u64,
    /// Answers one connection may have encoded and not yet written. Past
    /// it the server stops answering and reading that connection's
    /// requests until the peer reads (backpressure); a blocking call that
    /// completes meanwhile keeps its outcome, unencoded, until then. So a
    /// peer that pipelines requests and never reads holds at most this
    /// plus one answer (at most `max_frame_bytes`) of output.
    pub max_output_bytes: usize,
    /// Blocking calls one connection may have waiting at once; one more is
    /// answered `LimitExceeded` at once.
    pub max_in_flight: usize,
    /// Time allowed for the authentication handshake and hello; a peer
    /// that has not finished by then is dropped.
    pub handshake_timeout: Duration,
    /// TCP keepalive: after this long without traffic the kernel probes
    /// the peer, and a peer gone without a word (host down, cable cut) is
    /// declared dead about half a minute later, ending its session and
    /// releasing its locks. `None` leaves keepalive off.
    pub keepalive: Option<Duration>,
    /// Connections that may each be served by a thread of their own while
    /// they send requests back to back (a thread answers a request without
    /// the event loop's `epoll_wait`); the others wait their turn on the
    /// event loop, as does every connection while it is idle or has a
    /// blocking call waiting. 0 serves every connection on the event loop.
    pub dedicated_readers: usize,
    /// Clients on this machine that may each talk through a shared-memory
    /// channel instead of their socket ([`mp_sys::channel`]); each holds
    /// two rings of [`CHANNEL_RING`] bytes. Clients past the limit, and
    /// those that do not ask, use their socket. 0 turns channels off.
    pub shared_memory_channels: usize,
    /// How long a graceful stop waits for connections to flush their
    /// answers before cutting them.
    pub drain_timeout: Duration,
    /// The bytes every stored value and live object may take together
    /// (Redis's `maxmemory`), as [`Value::estimated_bytes`] counts them: a
    /// store that would pass it is answered `MemoryError` and changes
    /// nothing. See [`crate::budget`].
    ///
    /// [`Value::estimated_bytes`]: mp_proto::Value::estimated_bytes
    pub max_memory: u64,
    /// The largest value one operation may store or build, by the same
    /// estimate: an item stored, the result of a repeat, concatenation,
    /// slice or copy, what one `extend`/`update` adds, a constructor's
    /// contents. Checked before anything is allocated; over it is
    /// `MemoryError`.
    pub max_value_bytes: u64,
}

/// The default [`Limits::max_output_bytes`]: 8 MiB, far more than the
/// answers a client waits for at once, and small next to one frame.
pub const DEFAULT_MAX_OUTPUT: usize = 8 * 1024 * 1024;

/// The default [`Limits::max_memory`]: 1 GiB.
pub const DEFAULT_MAX_MEMORY: u64 = 1 << 30;

/// The default [`Limits::max_value_bytes`]: 256 MiB, four times the
/// default frame limit, so any string or bytes value that fits in a
/// request can be stored.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 256 << 20;

/// The size of each ring of a shared-memory channel: a frame larger than
/// this still passes, in pieces.
pub const CHANNEL_RING: u32 = 128 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            max_handshakes: 1024,
            max_handshakes_per_source: 64,
            max_frame_bytes: 64 * 1024 * 1024,
            max_output_bytes: DEFAULT_MAX_OUTPUT,
            max_in_flight: 1024,
            handshake_timeout: Duration::from_secs(10),
            keepalive: Some(Duration::from_secs(30)),
            dedicated_readers: 64,
            shared_memory_channels: 64,
            drain_timeout: Duration::from_secs(10),
            max_memory: DEFAULT_MAX_MEMORY,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}
