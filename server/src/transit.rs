//! References in transit: a proxy sent from one process to another keeps
//! its referent alive until the receiver takes the reference over, even if
//! the sender drops its copy (or exits) at once.
//!
//! CPython increfs when a proxy is pickled and has the receiver incref
//! again; between the two nothing but luck keeps the referent alive, and a
//! receiver that never comes leaks the count forever. Here references are
//! owned by sessions, so a reference in transit must belong to no session:
//!
//! * `transit(id, lease_secs)` adds one reference to `id` held by the
//!   server itself, under a fresh ticket, and returns the ticket;
//! * `receive(ticket)` moves that reference into the caller's session (the
//!   table's count does not change) and returns the object id;
//! * a ticket nobody receives within its lease is dropped, with its
//!   reference — the receiver that never comes leaks nothing for longer
//!   than the lease.
//!
//! The sender's process dying does not matter: the ticket is not its
//! session's. Expired tickets are swept by a timer task per ticket when a
//! tokio runtime runs the engine, and on every `transit`/`receive` call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mp_proto::{ObjectId, RemoteError};

use crate::errors::key_error_msg;
use crate::lock;
use crate::table::Table;

/// The longest lease a ticket may ask for (a day): a bound so a bad
/// argument cannot overflow the clock.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);

/// Tickets for references in transit.
pub struct Transit {
    next: AtomicU64,
    tickets: Mutex<HashMap<u64, (ObjectId, Instant)>>,
}

impl Default for Transit {
    fn default() -> Self {
        Transit {
            // Random start so a stale ticket from another server run is
            // unlikely to name a live one.
            next: AtomicU64::new(rand::random::<u32>() as u64 + 1),
            tickets: Mutex::new(HashMap::new()),
        }
    }
}

impl Transit {
    /// Takes a reference to `id` for a ticket valid for `lease`.
    pub fn send(&self, table: &Table, id: ObjectId, lease: Duration) -> Result<u64, RemoteError> {
        self.sweep(table);
        table.incref(id)?;
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + lease.min(MAX_LEASE);
        lock(&self.tickets).insert(ticket, (id, deadline));
        Ok(ticket)
    }

    /// Hands the reference of `ticket` over to the caller (who records it
    /// in its session); a `KeyError` for an unknown or expired ticket.
    pub fn receive(&self, table: &Table, ticket: u64) -> Result<ObjectId, RemoteError> {
        let taken = lock(&self.tickets).remove(&ticket);
        self.sweep(table);
        match taken {
            Some((id, _)) => Ok(id),
            None => Err(key_error_msg(format!(
                "no reference in transit under ticket {ticket} (already received or expired)"
            ))),
        }
    }

    /// Drops the reference of `ticket` if it is still unclaimed: its
    /// lease is over (its timer fired; the timer's millisecond rounding
    /// does not hold it back).
    pub fn expire(&self, table: &Table, ticket: u64) {
        let gone = lock(&self.tickets).remove(&ticket);
        if let Some((id, _)) = gone {
            // Already disposed of (server shutting down) is fine.
            let _ = table.decref(id);
        }
    }

    /// Drops every ticket whose lease is over.
    pub fn sweep(&self, table: &Table) {
        let now = Instant::now();
        let expired: Vec<ObjectId> = {
            let mut tickets = lock(&self.tickets);
            let gone: Vec<u64> = tickets
                .iter()
                .filter(|(_, (_, d))| *d <= now)
                .map(|(t, _)| *t)
                .collect();
            gone.iter()
                .filter_map(|t| tickets.remove(t).map(|(id, _)| id))
                .collect()
        };
        for id in expired {
            let _ = table.decref(id);
        }
    }

    #[cfg(test)]
    /// Tickets not yet received.
    pub fn len(&self) -> usize {
        lock(&self.tickets).len()
    }

    #[cfg(test)]
    /// Whether no reference is in transit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Args, Engine, Registry};

    #[test]
    fn a_received_ticket_is_gone_and_an_expired_one_drops_its_reference() {
        let engine = Engine::new(Registry::sync_manager());
        let session = engine.open_session("test");
        let id = engine
            .create(&session, "dict", Args::positional(vec![]))
            .unwrap()
            .token
            .id;
        let table = engine.table();
        let transit = Transit::default();
        let t1 = transit.send(table, id, Duration::from_secs(60)).unwrap();
        assert_eq!(transit.receive(table, t1).unwrap(), id);
        assert!(transit.receive(table, t1).is_err());
        // The received reference now belongs to the caller: 2 in all.
        assert_eq!(table.decref(id).unwrap(), 1);
        let t2 = transit.send(table, id, Duration::ZERO).unwrap();
        transit.expire(table, t2);
        assert!(transit.is_empty());
        assert!(transit.receive(table, t2).is_err());
        // Only the original reference is left.
        assert_eq!(table.decref(id).unwrap(), 0);
        assert!(transit.send(table, id, Duration::ZERO).is_err());
    }
}
