//! What a peer may hold before and after it authenticates.
//!
//! A peer that has not proved it holds the authkey must not be able to
//! crowd out those who have. So an accepted connection first needs a
//! *handshake ticket*: at most [`Limits::max_handshakes`] connections are
//! in their handshake at once, and at most
//! [`Limits::max_handshakes_per_source`] from one source address (an IPv4
//! address or an IPv6 /64, as the throttle counts them; Unix-socket peers
//! share one source, guarded by the socket's file mode). A connection over
//! either cap is closed at once, before a byte is read. Only a peer that
//! has authenticated takes one of the [`Limits::max_connections`] *slots*,
//! so idle unauthenticated sockets can hold tickets, never slots.
//!
//! [`Limits::max_handshakes`]: crate::limits::Limits::max_handshakes
//! [`Limits::max_handshakes_per_source`]: crate::limits::Limits::max_handshakes_per_source
//! [`Limits::max_connections`]: crate::limits::Limits::max_connections

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::Limits;
use crate::lock;
use crate::throttle::source;

/// The handshake tickets and connection slots of one server.
#[derive(Debug)]
pub(crate) struct Admission {
    handshakes: Arc<Semaphore>,
    per_source: Arc<Mutex<HashMap<Option<IpAddr>, usize>>>,
    max_per_source: usize,
    slots: Arc<Semaphore>,
}

/// Why a connection got no handshake ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Too many handshakes in flight on the whole server.
    Server,
    /// Too many handshakes in flight from this peer's source.
    Source,
}

/// A connection's right to run its handshake; given back when dropped.
#[derive(Debug)]
pub(crate) struct HandshakeTicket {
    _permit: OwnedSemaphorePermit,
    source: Option<IpAddr>,
    per_source: Arc<Mutex<HashMap<Option<IpAddr>, usize>>>,
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        let mut counts = lock(&self.per_source);
        if let Some(n) = counts.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

impl Admission {
    /// Tickets and slots as `limits` set them.
    pub(crate) fn new(limits: &Limits) -> Admission {
        Admission {
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
            per_source: Arc::default(),
            max_per_source: limits.max_handshakes_per_source,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
        }
    }

    /// A handshake ticket for a connection from `peer`, if both caps
    /// allow one.
    pub(crate) fn handshake(&self, peer: &str) -> Result<HandshakeTicket, Busy> {
        let permit = Arc::clone(&self.handshakes)
            .try_acquire_owned()
            .map_err(|_| Busy::Server)?;
        let source = source(peer);
        let mut counts = lock(&self.per_source);
        let n = counts.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Busy::Source);
        }
        *n += 1;
        drop(counts);
        Ok(HandshakeTicket {
            _permit: permit,
            source,
            per_source: Arc::clone(&self.per_source),
        })
    }

    /// A connection slot for a peer that has authenticated, if one is
    /// free.
    pub(crate) fn slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_source: usize) -> Limits {
        Limits {
            max_handshakes: total,
            max_handshakes_per_source: per_source,
            max_connections: 1,
            ..Limits::default()
        }
    }

    #[test]
    fn tickets_are_bounded_per_source_and_in_all() {
        let a = Admission::new(&limits(3, 2));
        let one = a.handshake("192.0.2.1:1").unwrap();
        let _two = a.handshake("192.0.2.1:2").unwrap();
        assert_eq!(a.handshake("192.0.2.1:3").unwrap_err(), Busy::Source);
        let _other = a.handshake("192.0.2.2:1").unwrap();
        assert_eq!(a.handshake("192.0.2.3:1").unwrap_err(), Busy::Server);
        drop(one);
        assert!(a.handshake("192.0.2.1:4").is_ok());
    }

    #[test]
    fn a_refused_ticket_gives_back_its_permit() {
        let a = Admission::new(&limits(2, 1));
        let _held = a.handshake("192.0.2.1:1").unwrap();
        for _ in 0..10 {
            assert_eq!(a.handshake("192.0.2.1:2").unwrap_err(), Busy::Source);
        }
        assert!(a.handshake("192.0.2.9:1").is_ok());
    }

    #[test]
    fn slots_are_separate_from_tickets() {
        let a = Admission::new(&limits(8, 8));
        let _tickets: Vec<_> = (0..8)
            .map(|i| a.handshake(&format!("192.0.2.1:{i}")).unwrap())
            .collect();
        let slot = a.slot();
        assert!(slot.is_some());
        assert!(a.slot().is_none());
        drop(slot);
        assert!(a.slot().is_some());
    }
}
