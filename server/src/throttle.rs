//! Slowing down peers that keep failing authentication.
//!
//! CPython's manager answers every connection at once, so a peer can try
//! authkeys as fast as the network allows. Here each failed handshake —
//! a wrong digest (the peer does not hold the key), garbage where the
//! handshake should be, or a peer that stalls until the timeout; not one
//! that merely connects and closes, as a port check does — is counted
//! against the peer's address, and the next connection from that address
//! waits before it is sent its challenge: 100 ms after one failure,
//! doubling per further failure up to 5 s. The waits of one address are
//! taken in turn, not side by side: its connections start their
//! handshakes one delay apart however many it opens at once, so opening
//! connections in parallel buys no more guesses per second. A successful
//! handshake from the address clears its count; an address quiet for 10
//! minutes is forgotten.
//!
//! Addresses are IPv4 addresses or IPv6 /64 prefixes (one host usually
//! owns a whole /64). Memory is bounded: at most [`Policy::max_peers`]
//! addresses are remembered; past that the forgotten ones are dropped,
//! then the one that failed longest ago. The wait happens before the
//! handshake timeout starts, so a throttled peer that holds the key still
//! gets in; it holds a handshake ticket of its source while it waits
//! (`crate::admission`). Unix-socket peers
//! are not throttled (the socket's file mode guards them).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mp_proto::auth::AuthenticationError;

use crate::lock;
use crate::metrics::Metrics;
use crate::quiet_log;
use crate::shutdown::Shutdown;

/// How failures turn into waits.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The wait after one failure; it doubles with each further failure.
    pub base: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// An address without a failure for this long is forgotten.
    pub forget_after: Duration,
    /// The most addresses remembered at once.
    pub max_peers: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            forget_after: Duration::from_secs(600),
            max_peers: 10_000,
        }
    }
}

/// Failures of one address.
#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last: Instant,
    /// The earliest a handshake from the address may start that has not
    /// yet taken its turn.
    next: Instant,
}

/// Per-address authentication failure counts.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    policy: Policy,
    peers: Mutex<HashMap<IpAddr, Record>>,
}

/// The address a peer is counted under: its IPv4 address, or its IPv6
/// /64; `None` for a Unix-socket peer.
pub(crate) fn source(peer: &str) -> Option<IpAddr> {
    let ip = peer.parse::<SocketAddr>().ok()?.ip().to_canonical();
    Some(match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    })
}

impl AuthThrottle {
    #[cfg(test)]
    /// A throttle with `policy`.
    pub fn new(policy: Policy) -> Self {
        AuthThrottle {
            policy,
            peers: Mutex::new(HashMap::new()),
        }
    }

    #[cfg(test)]
    /// The delay `peer`'s failures call for at `now`, between one of its
    /// handshakes and the next.
    pub fn delay(&self, peer: &str, now: Instant) -> Duration {
        let Some(ip) = source(peer) else {
            return Duration::ZERO;
        };
        match lock(&self.peers).get(&ip) {
            Some(r) => self.delay_of(r, now),
            None => Duration::ZERO,
        }
    }

    fn delay_of(&self, r: &Record, now: Instant) -> Duration {
        if now.saturating_duration_since(r.last) >= self.policy.forget_after {
            return Duration::ZERO;
        }
        let doublings = r.failures.saturating_sub(1).min(31);
        self.policy
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max_delay)
    }

    /// Takes the next turn of `peer`'s address at `now`: how long this
    /// connection waits before its handshake. Turns are one delay apart,
    /// so connections opened together wait one after another.
    pub fn reserve(&self, peer: &str, now: Instant) -> Duration {
        let Some(ip) = source(peer) else {
            return Duration::ZERO;
        };
        let mut peers = lock(&self.peers);
        let Some(record) = peers.get_mut(&ip) else {
            return Duration::ZERO;
        };
        let delay = self.delay_of(record, now);
        if delay.is_zero() {
            return Duration::ZERO;
        }
        let start = record.next.max(now + delay);
        record.next = start + delay;
        start - now
    }

    /// Records a failed handshake from `peer` at `now`.
    pub fn failed(&self, peer: &str, now: Instant) {
        let Some(ip) = source(peer) else {
            return;
        };
        let mut peers = lock(&self.peers);
        if !peers.contains_key(&ip) && peers.len() >= self.policy.max_peers {
            let forget = self.policy.forget_after;
            peers.retain(|_, r| now.saturating_duration_since(r.last) < forget);
            if peers.len() >= self.policy.max_peers {
                let oldest = peers.iter().min_by_key(|(_, r)| r.last).map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    peers.remove(&oldest);
                }
            }
        }
        let record = peers.entry(ip).or_insert(Record {
            failures: 0,
            last: now,
            next: now,
        });
        if now.saturating_duration_since(record.last) >= self.policy.forget_after {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
    }

    /// Clears `peer`'s failures after it proved it holds the key.
    pub fn succeeded(&self, peer: &str) {
        if let Some(ip) = source(peer) {
            lock(&self.peers).remove(&ip);
        }
    }

    #[cfg(test)]
    /// How many addresses are remembered.
    pub fn len(&self) -> usize {
        lock(&self.peers).len()
    }

    /// Waits out `peer`'s delay, if any, counting it; `false` if the
    /// server began stopping meanwhile (the peer is then dropped).
    pub(crate) async fn wait(&self, peer: &str, metrics: &Metrics, stop: &Shutdown) -> bool {
        let delay = self.reserve(peer, Instant::now());
        if delay.is_zero() {
            return true;
        }
        metrics.throttled();
        quiet_log::info(
            "throttle",
            || tracing::info!(%peer, ?delay, "delaying a peer after failed authentications"),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = stop.wait() => false,
        }
    }

    /// Records a handshake's result for `peer` here and in `metrics`.
    pub(crate) fn record(
        &self,
        peer: &str,
        result: &Result<(), AuthenticationError>,
        metrics: &Metrics,
    ) {
        metrics.handshake(result);
        match result {
            Ok(()) => self.succeeded(peer),
            // Connecting and closing is what a port check does: no guess.
            Err(AuthenticationError::Closed) => {}
            Err(_) => self.failed(peer, Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "192.0.2.7:40000";

    #[test]
    fn the_delay_doubles_per_failure_up_to_the_cap() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        assert_eq!(t.delay(PEER, now), Duration::ZERO);
        let mut seen = Vec::new();
        for _ in 0..8 {
            t.failed(PEER, now);
            seen.push(t.delay(PEER, now).as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        // Another port of the same host is the same peer; another host is not.
        assert_eq!(t.delay("192.0.2.7:1", now), Duration::from_secs(5));
        assert_eq!(t.delay("192.0.2.8:40000", now), Duration::ZERO);
        for _ in 0..100 {
            t.failed(PEER, now);
        }
        assert_eq!(t.delay(PEER, now), Duration::from_secs(5));
    }

    #[test]
    fn success_clears_and_quiet_forgets() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        t.failed(PEER, now);
        t.failed(PEER, now);
        t.succeeded(PEER);
        assert_eq!(t.delay(PEER, now), Duration::ZERO);
        t.failed(PEER, now);
        let later = now + Duration::from_secs(601);
        assert_eq!(t.delay(PEER, later), Duration::ZERO);
        // A failure after the quiet period starts the count again.
        t.failed(PEER, later);
        assert_eq!(t.delay(PEER, later), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_waiting_peer_is_dropped_when_the_server_stops() {
        let t = AuthThrottle::default();
        let metrics = Metrics::new(&crate::Registry::sync_manager().freeze());
        let stop = Shutdown::new();
        assert!(t.wait(PEER, &metrics, &stop).await);
        for _ in 0..10 {
            t.failed(PEER, Instant::now());
        }
        stop.trigger();
        assert!(!t.wait(PEER, &metrics, &stop).await);
    }

    #[test]
    fn memory_is_bounded() {
        let t = AuthThrottle::new(Policy {
            max_peers: 50,
            ..Policy::default()
        });
        let now = Instant::now();
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            t.failed(
                &format!("{ip}:1"),
                now + Duration::from_millis(u64::from(i)),
            );
        }
        assert_eq!(t.len(), 50);
        // The most recent failures are the ones kept.
        assert!(!t
            .delay("10.0.3.231:1", now + Duration::from_secs(1))
            .is_zero());
        assert!(t
            .delay("10.0.0.0:1", now + Duration::from_secs(1))
            .is_zero());
    }

    #[test]
    fn ipv6_peers_count_by_their_64_and_unix_peers_never() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        t.failed("[2001:db8:1:2::1]:5000", now);
        assert!(!t.delay("[2001:db8:1:2:ffff::9]:6000", now).is_zero());
        assert!(t.delay("[2001:db8:1:3::1]:5000", now).is_zero());
        // An IPv4-mapped address is its IPv4 peer.
        t.failed("[::ffff:192.0.2.9]:1", now);
        assert!(!t.delay("192.0.2.9:2", now).is_zero());
        t.failed("/run/mpserver.sock", now);
        assert!(t.delay("/run/mpserver.sock", now).is_zero());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn parallel_connections_of_one_address_wait_in_turn() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        assert_eq!(t.reserve(PEER, now), Duration::ZERO);
        t.failed(PEER, now);
        // Ten connections opened at once start 100 ms apart.
        let waits: Vec<u128> = (0..10).map(|_| t.reserve(PEER, now).as_millis()).collect();
        assert_eq!(waits, (1..=10).map(|i| i * 100).collect::<Vec<_>>());
        // Another address has its own turns.
        assert_eq!(t.reserve("192.0.2.8:1", now), Duration::ZERO);
    }

    #[test]
    fn garbage_and_stalls_count_but_a_bare_close_does_not() {
        let t = AuthThrottle::default();
        let metrics = Metrics::new(&crate::Registry::sync_manager().freeze());
        let now = Instant::now();
        t.record(PEER, &Err(AuthenticationError::Closed), &metrics);
        assert_eq!(t.delay(PEER, now), Duration::ZERO);
        t.record(
            PEER,
            &Err(AuthenticationError::Protocol("garbage".into())),
            &metrics,
        );
        assert!(!t.delay(PEER, Instant::now()).is_zero());
        t.record(PEER, &Err(AuthenticationError::Timeout), &metrics);
        assert_eq!(t.delay(PEER, Instant::now()), Duration::from_millis(200));
    }
}
