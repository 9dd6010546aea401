//! The server's memory budget, by bytes: one per engine, shared by every
//! object of its table.
//!
//! Two limits, both on the estimate of
//! [`Value::estimated_bytes`](mp_proto::Value::estimated_bytes):
//!
//! * [`max_value_bytes`](Budget::max_value_bytes), per operation: the
//!   largest value one call may store or build — an item put, the result
//!   of a repeat, a concatenation, a slice or a copy, the items one
//!   `extend` or `update` adds, a constructor's contents. It is checked
//!   before anything is allocated ([`Budget::check_value`]).
//! * [`max_memory`](Budget::max_memory), server-wide: the bytes of every
//!   stored value and live object together, Redis's `maxmemory`. Every
//!   stored value is a [`Held`](crate::held::Held) made through
//!   [`CallContext::hold`](crate::object::CallContext::hold), which
//!   charges its estimate here (one relaxed atomic add) and credits it
//!   back when dropped; every live object of the table holds a
//!   [`Charge`] for its own bytes. A charge that would pass the limit is
//!   refused with `MemoryError` and changes nothing.
//!
//! Going over either is Python's `MemoryError`, with a message naming the
//! setting, and the object called is left as it was.
//!
//! The counter is an estimate of what the stored data takes: a
//! container's spare capacity is kept below its length (the built-in
//! containers shrink after removals, see [`shrink`]), so stored data
//! takes at most about twice [`Budget::held`] in real memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mp_proto::{ErrorKind, RemoteError};

use crate::limits::Limits;

/// The memory limits of one server and the bytes held against them.
#[derive(Debug)]
pub struct Budget {
    held: AtomicUsize,
    max_memory: usize,
    max_value_bytes: usize,
}

impl Budget {
    /// A budget with these limits, nothing held.
    pub fn new(max_memory: u64, max_value_bytes: u64) -> Arc<Budget> {
        Arc::new(Budget {
            held: AtomicUsize::new(0),
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            max_value_bytes: usize::try_from(max_value_bytes).unwrap_or(usize::MAX),
        })
    }

    /// The budget [`Limits`] set.
    pub fn from_limits(limits: &Limits) -> Arc<Budget> {
        Budget::new(limits.max_memory, limits.max_value_bytes)
    }

    /// The bytes of stored values and live objects now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The server-wide limit on [`held`](Self::held).
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// The per-operation limit.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Checks that one operation may build or store a value of `bytes`.
    pub fn check_value(&self, bytes: usize) -> Result<(), RemoteError> {
        if bytes <= self.max_value_bytes {
            Ok(())
        } else {
            Err(memory_error(format!(
                "the result would take about {}, over this server's limit of {} \
                 per value (max-value-bytes)",
                show(bytes),
                show(self.max_value_bytes)
            )))
        }
    }

    /// Adds `bytes` to what is held, unless that would pass
    /// [`max_memory`](Self::max_memory).
    pub fn try_charge(&self, bytes: usize) -> Result<(), RemoteError> {
        if bytes > self.max_memory {
            return Err(self.over(bytes, self.held().saturating_add(bytes)));
        }
        // One relaxed add on the hot path; a charge that went over is
        // taken back. Two racing charges near the limit may both be
        // refused, never both admitted over it.
        let before = self.held.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) <= self.max_memory {
            return Ok(());
        }
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        Err(self.over(bytes, before.saturating_add(bytes)))
    }

    fn over(&self, bytes: usize, total: usize) -> RemoteError {
        memory_error(format!(
            "storing {} more would take this server's stored values to {}, over its \
             limit of {} (max-memory)",
            show(bytes),
            show(total),
            show(self.max_memory)
        ))
    }

    /// Adds `bytes` whatever the limit: a copy of something already held,
    /// on its way out to a client.
    pub fn force_charge(&self, bytes: usize) {
        self.held.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Gives back `bytes` charged earlier.
    pub fn credit(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A charge of `bytes` that is credited back when dropped, for memory
    /// kept outside a [`Held`](crate::held::Held) (a live object, an
    /// array's items, a namespace's attribute names).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, RemoteError> {
        self.try_charge(bytes)?;
        Ok(Charge {
            budget: Arc::clone(self),
            bytes,
        })
    }
}

impl Default for Budget {
    /// The default [`Limits`]' budget.
    fn default() -> Self {
        let limits = Limits::default();
        Budget {
            held: AtomicUsize::new(0),
            max_memory: usize::try_from(limits.max_memory).unwrap_or(usize::MAX),
            max_value_bytes: usize::try_from(limits.max_value_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// Bytes charged to a [`Budget`], given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Charge {
    /// The bytes charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Changes the charge to `bytes`; a growth that would pass the limit
    /// is refused and the charge left as it was.
    pub fn resize(&mut self, bytes: usize) -> Result<(), RemoteError> {
        if bytes > self.bytes {
            self.budget.try_charge(bytes - self.bytes)?;
        } else {
            self.budget.credit(self.bytes - bytes);
        }
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.credit(self.bytes);
    }
}

/// Python's `MemoryError` with `message`.
pub fn memory_error(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorKind::MemoryError, message)
}

/// `bytes` for a message: `512 B`, `3.0 MiB`, `4.0 GiB`.
fn show(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Gives back a container's spare capacity after removals, so that what
/// it keeps allocated stays below twice its length: `capacity` and `len`
/// now, and the capacity to shrink to, if any. Shrinking to half again
/// its length, at most once per quarter of the items removed, keeps the
/// cost amortised O(1).
pub fn shrink(capacity: usize, len: usize) -> Option<usize> {
    (capacity > len.saturating_mul(2).saturating_add(8)).then_some(len + len / 2)
}

/// [`shrink`] for a `Vec`.
pub fn shrink_vec<T>(v: &mut Vec<T>) {
    if let Some(c) = shrink(v.capacity(), v.len()) {
        v.shrink_to(c);
    }
}

/// [`shrink`] for a `VecDeque`.
pub fn shrink_deque<T>(v: &mut std::collections::VecDeque<T>) {
    if let Some(c) = shrink(v.capacity(), v.len()) {
        v.shrink_to(c);
    }
}

/// [`shrink`] for an `IndexMap`.
pub fn shrink_map<K: std::hash::Hash + Eq, V>(m: &mut indexmap::IndexMap<K, V>) {
    if let Some(c) = shrink(m.capacity(), m.len()) {
        m.shrink_to(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_change_nothing() {
        let b = Budget::new(1000, 600);
        b.try_charge(700).unwrap();
        let e = b.try_charge(301).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MemoryError);
        assert!(e.message.contains("max-memory"), "{}", e.message);
        assert_eq!(b.held(), 700);
        b.try_charge(300).unwrap();
        b.credit(1000);
        assert_eq!(b.held(), 0);
        // A charge too large for usize arithmetic is refused, not wrapped.
        assert!(b.try_charge(usize::MAX).is_err());
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn a_value_over_the_per_operation_limit_is_a_memory_error() {
        let b = Budget::new(1 << 40, 64 << 20);
        b.check_value(64 << 20).unwrap();
        let e = b.check_value(4 << 30).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MemoryError);
        assert_eq!(
            e.message,
            "the result would take about 4.0 GiB, over this server's limit of 64.0 MiB \
             per value (max-value-bytes)"
        );
    }

    #[test]
    fn a_charge_gives_its_bytes_back_when_dropped_and_resizes_within_the_limit() {
        let b = Budget::new(100, 100);
        let mut c = b.charge(40).unwrap();
        assert_eq!(b.held(), 40);
        c.resize(100).unwrap();
        assert!(c.resize(101).is_err());
        assert_eq!((c.bytes(), b.held()), (100, 100));
        c.resize(10).unwrap();
        assert_eq!(b.held(), 10);
        drop(c);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn shrinking_keeps_spare_capacity_below_the_length() {
        assert_eq!(shrink(16, 8), None);
        assert_eq!(shrink(1000, 10), Some(15));
        assert_eq!(shrink(20, 0), Some(0));
    }
}
