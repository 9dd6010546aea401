//! The owner word: a futex mutex whose word names its holder, so that a
//! holder that died can be recognised and the lock recovered.
//!
//! # Format
//!
//! ```text
//! bit 31     bit 30       bits 29..0
//! WAITERS    OWNER_DIED   owner id (pid for Lock, tid for RLock); 0 = free
//! ```
//!
//! This is the layout the kernel uses for robust and PI futexes. Acquire is
//! one compare-and-swap of `0 -> id`; release is one swap to 0 and a
//! `FUTEX_WAKE` only when WAITERS was set. A blocked acquirer sleeps in
//! slices of [`CHECK_INTERVAL`]; each time a slice ends with the lock still
//! held by the same id, it asks the kernel whether that id is alive
//! ([`identity::is_dead`]). If it is not, it takes the lock over in one
//! compare-and-swap that also sets OWNER_DIED, which stays set until the
//! next release so the new holder can be told.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::deadline::Deadline;
use super::identity;
use mp_sys::futex::{self, Wake};

/// Mask of the owner id bits.
pub(crate) const ID_MASK: u32 = 0x3fff_ffff;
/// Set by the process that took the lock over from a dead owner.
pub(crate) const OWNER_DIED: u32 = 1 << 30;
/// Set when some acquirer may be asleep on the word.
pub(crate) const WAITERS: u32 = 1 << 31;

/// How long a blocked acquirer sleeps before checking that the owner lives.
/// Long enough to cost nothing, short enough that recovery feels prompt.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Polls of the word before sleeping: a holder on another CPU often lets
/// go within a hundred nanoseconds, far less than a sleep and wake-up.
/// Few: measured with two processes hammering one lock, 100 polls kept
/// both CPUs fighting over the cache line and halved throughput, while 8
/// matched a raw futex mutex (which does not spin).
const SPIN: u32 = 8;

/// How an acquisition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The lock was free or released normally.
    Clean,
    /// The lock was taken over from an owner that died holding it.
    OwnerDied,
}

/// One attempt, no waiting.
#[inline]
pub(crate) fn try_acquire(word: &AtomicU32, me: u32) -> bool {
    word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Acquires for `me` unless `deadline` passes first.
#[inline]
pub(crate) fn acquire(word: &AtomicU32, me: u32, deadline: Deadline) -> Option<Taken> {
    if try_acquire(word, me) {
        return Some(Taken::Clean);
    }
    acquire_slow(word, me, deadline)
}

#[cold]
fn acquire_slow(word: &AtomicU32, me: u32, deadline: Deadline) -> Option<Taken> {
    for _ in 0..SPIN {
        if word.load(Ordering::Relaxed) == 0 && try_acquire(word, me) {
            return Some(Taken::Clean);
        }
        std::hint::spin_loop();
    }
    loop {
        let Err(v) = take_or_mark(word, me) else {
            return Some(Taken::Clean);
        };
        let slice = match deadline.remaining() {
            // Out of time: one last look at whether the holder is dead, so
            // a zero timeout recovers a dead owner's lock as `nowait` does.
            Some(left) if left.is_zero() => {
                return take_over_if_dead(word, v, me).then_some(Taken::OwnerDied)
            }
            Some(left) => left.min(CHECK_INTERVAL),
            None => CHECK_INTERVAL,
        };
        if futex::wait(word, v, Some(slice)) == Wake::TimedOut
            && word.load(Ordering::Relaxed) == v
            && take_over_if_dead(word, v, me)
        {
            return Some(Taken::OwnerDied);
        }
    }
}

/// One step of the waiting protocol, shared by the blocking and async
/// acquires: takes the lock for `me` if it is free — with `WAITERS` set,
/// since others may be asleep and the extra wake-up this can cost is
/// cheaper than a lost one — else makes sure `WAITERS` is set so the
/// holder's release wakes a sleeper. `Err` is the word's value to sleep on.
fn take_or_mark(word: &AtomicU32, me: u32) -> Result<(), u32> {
    loop {
        let v = word.load(Ordering::Relaxed);
        if v & ID_MASK == 0 {
            if word
                .compare_exchange(v, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(());
            }
        } else if v & WAITERS != 0 {
            return Err(v);
        } else if word
            .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return Err(v | WAITERS);
        }
    }
}

/// [`acquire`] without a deadline for an async task (feature `asyncio`):
/// the same protocol, with each sleep a [`FutexWait`] on the lock's word
/// (inside `region`) that looks at the holder's life every
/// [`CHECK_INTERVAL`]. The lock is taken only by a compare-and-swap in the
/// poll that returns it, so a future dropped before completing holds
/// nothing.
#[cfg(feature = "asyncio")]
pub(crate) async fn acquire_async(
    region: &std::sync::Arc<crate::shared_memory::region::Region>,
    word: &AtomicU32,
    me: u32,
) -> Result<Taken, crate::synchronize::SyncError> {
    use super::waiter::FutexWait;
    if try_acquire(word, me) {
        return Ok(Taken::Clean);
    }
    loop {
        let Err(v) = take_or_mark(word, me) else {
            return Ok(Taken::Clean);
        };
        FutexWait::new(region, word, v, Some(CHECK_INTERVAL)).await?;
        // Unchanged after the wait: a recheck (or a spurious wake-up);
        // is the holder still alive?
        if word.load(Ordering::Relaxed) == v && take_over_if_dead(word, v, me) {
            return Ok(Taken::OwnerDied);
        }
    }
}

/// One attempt, no waiting, that also takes the lock over when its holder
/// has died: a `try_lock` polling loop must not spin forever on a dead
/// owner's lock. The liveness check costs a system call or two, so a
/// thread that found this holder alive skips it for [`RECHECK_ALIVE`].
pub(crate) fn try_acquire_or_recover(word: &AtomicU32, me: u32) -> Option<Taken> {
    if try_acquire(word, me) {
        return Some(Taken::Clean);
    }
    let v = word.load(Ordering::Relaxed);
    let holder = v & ID_MASK;
    if holder == 0 {
        // Released between the two looks: one more attempt, as the first.
        return try_acquire(word, me).then_some(Taken::Clean);
    }
    thread_local! {
        static ALIVE: std::cell::Cell<Option<(u32, std::time::Instant)>> =
            const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    let recently_alive = ALIVE
        .get()
        .is_some_and(|(id, at)| id == holder && now.saturating_duration_since(at) < RECHECK_ALIVE);
    if recently_alive {
        return None;
    }
    if take_over_if_dead(word, v, me) {
        return Some(Taken::OwnerDied);
    }
    ALIVE.set(Some((holder, now)));
    None
}

/// How long a thread trusts that a holder it found alive still is, on the
/// no-wait path.
const RECHECK_ALIVE: Duration = Duration::from_millis(10);

/// Takes the lock over from the holder named in `seen` (the word as last
/// read) if that holder has ended, setting OWNER_DIED for the new holder;
/// false if it lives or the word changed meanwhile.
fn take_over_if_dead(word: &AtomicU32, seen: u32, me: u32) -> bool {
    let dead = seen & ID_MASK;
    if dead == 0 || !identity::is_dead(dead) {
        return false;
    }
    // WAITERS stays set: others may be asleep, and an extra wake-up is
    // cheaper than a lost one.
    let taken = word
        .compare_exchange(
            seen,
            me | WAITERS | OWNER_DIED,
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_ok();
    if taken {
        tracing::warn!(
            dead_owner = dead,
            "lock recovered from a process or thread that died holding it"
        );
    }
    taken
}

/// Frees the word and wakes one sleeper if any; returns the previous word
/// so the caller can tell a release of a free lock.
#[inline]
pub(crate) fn release(word: &AtomicU32) -> u32 {
    let prev = word.swap(0, Ordering::Release);
    if prev & WAITERS != 0 {
        futex::wake(word, 1);
    }
    prev
}

/// The current holder's id, 0 if free.
#[inline]
pub(crate) fn owner(word: &AtomicU32) -> u32 {
    word.load(Ordering::Relaxed) & ID_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_returns_what_was_there_and_frees() {
        let w = AtomicU32::new(0);
        assert!(try_acquire(&w, 7));
        assert!(!try_acquire(&w, 8));
        assert_eq!(owner(&w), 7);
        assert_eq!(release(&w), 7);
        assert_eq!(release(&w), 0);
    }

    #[test]
    fn a_dead_owner_is_taken_over_and_the_new_holder_is_told() {
        // SAFETY: the child only calls _exit.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: async-signal-safe.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        let w = AtomicU32::new(child as u32);
        let got = acquire(
            &w,
            identity::pid(),
            Deadline::after(Some(Duration::from_secs(30))),
        );
        assert_eq!(got, Some(Taken::OwnerDied));
        assert_eq!(owner(&w), identity::pid());
        assert_ne!(w.load(Ordering::Relaxed) & OWNER_DIED, 0);
    }

    #[test]
    fn a_live_owner_is_waited_for_until_the_deadline() {
        let w = AtomicU32::new(identity::pid());
        let got = acquire(&w, 1, Deadline::after(Some(Duration::from_millis(20))));
        assert_eq!(got, None);
    }

    fn a_dead_child() -> u32 {
        // SAFETY: the child only calls _exit.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: async-signal-safe.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        child as u32
    }

    #[test]
    fn a_nowait_attempt_recovers_a_dead_owners_lock() {
        let w = AtomicU32::new(a_dead_child());
        assert_eq!(
            try_acquire_or_recover(&w, identity::pid()),
            Some(Taken::OwnerDied)
        );
        assert_eq!(owner(&w), identity::pid());
        let zero = AtomicU32::new(a_dead_child());
        let got = acquire(
            &zero,
            identity::pid(),
            Deadline::after(Some(Duration::ZERO)),
        );
        assert_eq!(got, Some(Taken::OwnerDied));
    }

    #[test]
    fn a_nowait_attempt_leaves_a_live_owners_lock() {
        let w = AtomicU32::new(identity::pid());
        assert_eq!(try_acquire_or_recover(&w, 1), None);
        assert_eq!(try_acquire_or_recover(&w, 1), None);
        assert_eq!(owner(&w), identity::pid());
    }
}
