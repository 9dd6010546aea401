//! Wake-up tokens for `Condition`: who may return from `wait` after which
//! `notify`, so that a notification reaches only the waiters that were
//! already waiting when it was made.
//!
//! A semaphore of wake-ups is not enough: a process that notifies and then
//! waits again could take back its own notification before the waiter it
//! was meant for runs, and both would sleep for ever (CPython avoids that
//! by making `notify` block until the woken waiters have run). Here every
//! waiter notes the epoch it arrived in; `notify(n)` starts a new epoch and
//! leaves `min(n, waiting)` tokens tagged with it; a waiter may only take a
//! token of an epoch later than its arrival, and takes the oldest such,
//! which keeps a token for every waiter the notification counted.
//!
//! Everything here is changed only by holders of the condition's lock;
//! the atomics are for the shared-memory layout, not for concurrency.
//!
//! # Format
//!
//! ```text
//! waiting: u32           waiters not yet given a token
//! epoch: u32             last epoch that issued tokens (wraps)
//! len: u32               live entries of `tokens`
//! tokens: [(u32, u32); RING]   (epoch, tokens left), oldest first
//! ```

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Epochs with tokens outstanding that fit; more only when that many
/// notifications are waiting for their waiters to run, and then the newest
/// entry absorbs the next (its waiters may then wake a little early, never
/// late).
pub(crate) const RING: usize = 64;

/// The bookkeeping; lives in shared memory next to the futex word.
#[repr(C)]
pub(crate) struct Wakeups {
    waiting: AtomicU32,
    epoch: AtomicU32,
    len: AtomicU32,
    tokens: [[AtomicU32; 2]; RING],
}

/// Whether epoch `a` comes after epoch `b`, across wrap-around.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Wakeups {
    /// A waiter arrives; returns its arrival epoch.
    pub(crate) fn arrive(&self) -> u32 {
        self.waiting
            .store(self.waiting.load(Relaxed).saturating_add(1), Relaxed);
        self.epoch.load(Relaxed)
    }

    fn len(&self) -> usize {
        (self.len.load(Relaxed) as usize).min(RING)
    }

    /// Tokens for up to `n` of the waiters counted now; returns how many.
    pub(crate) fn notify(&self, n: u32) -> u32 {
        let waiting = self.waiting.load(Relaxed);
        let k = waiting.min(n);
        if k == 0 {
            return 0;
        }
        self.waiting.store(waiting - k, Relaxed);
        let epoch = self.epoch.load(Relaxed).wrapping_add(1);
        self.epoch.store(epoch, Relaxed);
        let len = self.len();
        if len == RING {
            let [e, c] = &self.tokens[RING - 1];
            e.store(epoch, Relaxed);
            c.store(c.load(Relaxed).saturating_add(k), Relaxed);
        } else {
            self.tokens[len][0].store(epoch, Relaxed);
            self.tokens[len][1].store(k, Relaxed);
            self.len.store(len as u32 + 1, Relaxed);
        }
        k
    }

    /// Takes a token for a waiter that arrived in `arrived`; false if no
    /// notification since then has one left.
    pub(crate) fn take(&self, arrived: u32) -> bool {
        let len = self.len();
        let Some(i) = (0..len).find(|&i| after(self.tokens[i][0].load(Relaxed), arrived)) else {
            return false;
        };
        let c = self.tokens[i][1].load(Relaxed);
        if c > 1 {
            self.tokens[i][1].store(c - 1, Relaxed);
        } else {
            for j in i..len - 1 {
                for f in 0..2 {
                    self.tokens[j][f].store(self.tokens[j + 1][f].load(Relaxed), Relaxed);
                }
            }
            self.len.store(len as u32 - 1, Relaxed);
        }
        true
    }

    /// A waiter that found no token leaves (timed out).
    pub(crate) fn leave(&self) {
        self.waiting
            .store(self.waiting.load(Relaxed).saturating_sub(1), Relaxed);
    }

    /// Waiters not yet given a token (a snapshot, for Debug).
    pub(crate) fn waiting(&self) -> u32 {
        self.waiting.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Box<Wakeups> {
        // SAFETY: all-zero is a valid Wakeups (atomics only).
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    fn a_notifier_that_waits_again_cannot_take_its_own_notification() {
        let w = fresh();
        let consumer = w.arrive();
        assert_eq!(w.notify(1), 1);
        let producer = w.arrive();
        assert!(!w.take(producer));
        assert!(w.take(consumer));
        assert!(!w.take(consumer));
        assert_eq!(w.waiting(), 1);
    }

    #[test]
    fn notify_n_counts_only_present_waiters_and_every_counted_one_gets_a_token() {
        let w = fresh();
        let a = w.arrive();
        let b = w.arrive();
        assert_eq!(w.notify(1), 1);
        let c = w.arrive();
        assert_eq!(w.notify(5), 2);
        assert_eq!(w.notify(1), 0);
        // Whatever the order they run in, all three find a token.
        assert!(w.take(c));
        assert!(w.take(b));
        assert!(w.take(a));
        assert!(!w.take(a));
        let d = w.arrive();
        w.leave();
        assert!(!w.take(d));
        assert_eq!(w.waiting(), 0);
    }

    #[test]
    fn epochs_wrap_and_the_ring_overflows_into_its_newest_entry() {
        let w = fresh();
        w.epoch.store(u32::MAX - 2, Relaxed);
        let arrivals: Vec<u32> = (0..RING as u32 + 10)
            .map(|_| {
                let e = w.arrive();
                assert_eq!(w.notify(1), 1);
                e
            })
            .collect();
        assert_eq!(w.len(), RING);
        for e in arrivals.iter().rev() {
            assert!(w.take(*e), "arrival {e}");
        }
        assert_eq!(w.len(), 0);
    }
}
