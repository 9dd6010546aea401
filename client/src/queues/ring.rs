//! The shared byte ring behind every queue: length-prefixed records in a
//! `memfd` region, guarded by a robust [`Lock`], with futex sequence words
//! for "an item arrived", "room was made" and "all tasks done".
//!
//! # Why a killed process corrupts nothing
//!
//! Every change happens under the lock, and the word that publishes it is
//! stored last: a producer writes the whole record beyond `tail` and only
//! then moves `tail`; a consumer copies the record out and only then moves
//! `head`. A process killed before that store leaves the queue as it was
//! (its half-written record is beyond `tail` and is overwritten later). The
//! lock is taken over by the next process that needs it (see
//! [`Lock::owner_died`]); that process recounts the items between `head`
//! and `tail`, because a death between the publishing store and the count
//! update would leave the count stale. Only `unfinished` (JoinableQueue)
//! cannot be rebuilt: a producer killed between publishing and counting
//! its task leaves one task too few (a `task_done` for it fails).
//!
//! Wake-ups are sent after the lock is released; a process killed in
//! between would leave a sleeper asleep, so sleepers wake at least every
//! [`RECHECK`] to look again.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::shared_memory::region::Region;
use crate::synchronize::engine::deadline::Deadline;
use crate::synchronize::handle::{Handle, State};
use crate::synchronize::{Lock, SyncError};
use mp_sys::futex;

use super::error::QueueError;

/// Longest a sleeper waits before looking at the queue again, in case the
/// process that should have woken it died first.
const RECHECK: Duration = Duration::from_millis(100);
/// Where the records start in the region (after the header).
const DATA_OFFSET: usize = 256;
/// Size of a record's length prefix.
pub(crate) const PREFIX: usize = 4;
/// Set in a length prefix when the record holds the name of a side
/// segment rather than the item.
const SIDE: u32 = 1 << 31;

/// The shared header of a ring.
#[repr(C)]
pub(crate) struct RingState {
    kind: AtomicU32,
    /// Bumped by every put; getters sleep on it.
    put_seq: AtomicU32,
    /// Bumped by every get; putters sleep on it.
    get_seq: AtomicU32,
    /// Bumped when `unfinished` reaches zero; `join` sleeps on it.
    done_seq: AtomicU32,
    /// Processes sleeping on each word, so the common case skips the
    /// `FUTEX_WAKE` syscall. A sleeper that dies stays counted, which only
    /// costs needless wake-ups.
    getters: AtomicU32,
    putters: AtomicU32,
    joiners: AtomicU32,
    _pad: AtomicU32,
    /// Bytes of record space after [`DATA_OFFSET`].
    capacity: AtomicU64,
    /// Most items held at once (`u64::MAX`: no limit).
    maxsize: AtomicU64,
    /// Stream positions (bytes, never wrapping) of the oldest record and of
    /// the end of the newest one.
    head: AtomicU64,
    tail: AtomicU64,
    /// Items between `head` and `tail`.
    count: AtomicU64,
    /// Items put and not yet marked done (JoinableQueue).
    unfinished: AtomicU64,
}

// SAFETY: repr(C), atomics only, kind first.
unsafe impl State for RingState {
    const KIND: u32 = 0x4d50_5155; // "MPQU"
    const NAME: &'static str = "Queue";
    fn kind_word(&self) -> &AtomicU32 {
        &self.kind
    }
}

/// A handle to a shared ring. Clones share it.
#[derive(Clone)]
pub(crate) struct Ring {
    lock: Lock,
    state: Handle<RingState>,
    capacity: usize,
}

/// How long a blocking operation may wait.
#[derive(Clone, Copy)]
pub(crate) enum Block {
    /// One attempt.
    No,
    /// Until this deadline.
    Until(Deadline),
}

impl Block {
    /// From a Python-style optional timeout (`None`: forever).
    pub(crate) fn after(timeout: Option<Duration>) -> Block {
        Block::Until(Deadline::after(timeout))
    }

    /// How long to sleep now, or `None` once out of time.
    fn sleep_for(&self) -> Option<Duration> {
        match self {
            Block::No => None,
            Block::Until(d) => match d.remaining() {
                None => Some(RECHECK),
                Some(r) if r.is_zero() => None,
                Some(r) => Some(r.min(RECHECK)),
            },
        }
    }
}

impl Ring {
    /// A new empty ring with `capacity` bytes of records, holding at most
    /// `maxsize` items.
    pub(crate) fn new(capacity: usize, maxsize: u64) -> Result<Ring, QueueError> {
        if !(64..=SIDE as usize).contains(&capacity) {
            return Err(QueueError::ValueError(format!(
                "queue capacity of {capacity} bytes is outside 64 to 2^31"
            )));
        }
        let len = DATA_OFFSET
            .checked_add(capacity)
            .ok_or_else(|| QueueError::ValueError("queue capacity too large".into()))?;
        let region = Region::new(len).map_err(SyncError::from)?;
        let state = Handle::<RingState>::create_at(region, 0)?;
        let s = state.get();
        s.capacity.store(capacity as u64, Ordering::Relaxed);
        s.maxsize.store(maxsize, Ordering::Relaxed);
        Ok(Ring {
            lock: Lock::new()?,
            state,
            capacity,
        })
    }

    /// Checks a header received from another process.
    fn attach(lock: Lock, state: Handle<RingState>) -> Result<Ring, QueueError> {
        let capacity = usize::try_from(state.get().capacity.load(Ordering::Relaxed))
            .map_err(|_| QueueError::Corrupt("capacity"))?;
        if capacity == 0
            || state
                .region()
                .checked_slice::<u8>(DATA_OFFSET, capacity)
                .is_none()
        {
            return Err(QueueError::Corrupt("capacity beyond the region"));
        }
        Ok(Ring {
            lock,
            state,
            capacity,
        })
    }

    fn s(&self) -> &RingState {
        self.state.get()
    }

    fn data(&self) -> Result<NonNull<u8>, QueueError> {
        self.state
            .region()
            .checked_slice::<u8>(DATA_OFFSET, self.capacity)
            .ok_or(QueueError::Corrupt("capacity beyond the region"))
    }

    /// Ring capacity in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Most items at once (`u64::MAX`: unbounded).
    pub(crate) fn maxsize(&self) -> u64 {
        self.s().maxsize.load(Ordering::Relaxed)
    }

    /// Items in the queue now (a snapshot).
    pub(crate) fn count(&self) -> u64 {
        self.s().count.load(Ordering::Acquire)
    }

    /// Items put and not marked done (a snapshot).
    pub(crate) fn unfinished(&self) -> u64 {
        self.s().unfinished.load(Ordering::Acquire)
    }

    /// Takes the lock; repairs the count if the previous holder died.
    ///
    /// Always blocking, whatever the caller's timeout: the lock is only
    /// ever held to copy one record, so a `_nowait` or short-timeout call
    /// that gave up on it would fail spuriously while another process is
    /// mid-put of an item that is about to be there (Python's `queue.Queue`
    /// also takes its mutex blocking in `get_nowait`). A holder that died
    /// is replaced within about 100 ms (see [`Lock`]).
    fn lock(&self) -> RingGuard<'_> {
        self.lock.acquire();
        let g = RingGuard { ring: self };
        if self.lock.owner_died() {
            tracing::warn!("a process died while using a queue; recounting its items");
            self.repair();
        }
        g
    }

    /// Rebuilds `count` by walking the records; truncates at the first
    /// impossible length (a record can only be torn beyond `tail`, so this
    /// guards against foreign writes only).
    fn repair(&self) {
        let s = self.s();
        let head = s.head.load(Ordering::Relaxed);
        let tail = s.tail.load(Ordering::Relaxed);
        let mut at = head;
        let mut n = 0u64;
        while tail.saturating_sub(at) >= PREFIX as u64 {
            let mut len = [0u8; PREFIX];
            if self.read_at(at, &mut len).is_err() {
                break;
            }
            let rec = PREFIX as u64 + u64::from(u32::from_le_bytes(len) & !SIDE);
            if rec > tail - at {
                break;
            }
            at += rec;
            n += 1;
        }
        s.tail.store(at, Ordering::Relaxed);
        s.count.store(n, Ordering::Release);
    }

    /// Copies `src` into the ring at stream position `pos`, wrapping.
    fn write_at(&self, pos: u64, src: &[u8]) -> Result<(), QueueError> {
        let data = self.data()?;
        let off = (pos % self.capacity as u64) as usize;
        let first = src.len().min(self.capacity - off);
        // SAFETY: off + first <= capacity and src.len() - first <= off
        // (records never exceed the capacity), all inside the checked
        // slice; the ring lock is held, so nobody else touches these bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), data.as_ptr().add(off), first);
            std::ptr::copy_nonoverlapping(
                src.as_ptr().add(first),
                data.as_ptr(),
                src.len() - first,
            );
        }
        Ok(())
    }

    /// Copies out of the ring at stream position `pos`, wrapping.
    fn read_at(&self, pos: u64, dst: &mut [u8]) -> Result<(), QueueError> {
        if dst.len() > self.capacity {
            return Err(QueueError::Corrupt("record longer than the ring"));
        }
        let data = self.data()?;
        let off = (pos % self.capacity as u64) as usize;
        let first = dst.len().min(self.capacity - off);
        // SAFETY: as in write_at, with the lengths checked above.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr().add(off), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
        Ok(())
    }

    /// Appends one record holding `bytes`; `task` counts it as an
    /// unfinished task (JoinableQueue); `side` marks `bytes` as the name of
    /// a side segment holding the item.
    pub(crate) fn put(
        &self,
        bytes: &[u8],
        block: Block,
        task: bool,
        side: bool,
    ) -> Result<(), QueueError> {
        let len = self.prefix(bytes, side)?;
        let s = self.s();
        loop {
            let guard = self.lock();
            if let Some(wake) = self.append(&guard, len, bytes, task)? {
                drop(guard);
                if wake {
                    futex::wake(&s.put_seq, 1);
                }
                return Ok(());
            }
            let seq = s.get_seq.load(Ordering::Acquire);
            let Some(sleep) = block.sleep_for() else {
                return Err(QueueError::Full);
            };
            s.putters.fetch_add(1, Ordering::AcqRel);
            drop(guard);
            futex::wait(&s.get_seq, seq, Some(sleep));
            s.putters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The length prefix of a record of `bytes` (`side`: naming a side
    /// segment), or `TooLarge` if the record cannot fit in the ring.
    fn prefix(&self, bytes: &[u8], side: bool) -> Result<u32, QueueError> {
        let rec = PREFIX + bytes.len();
        u32::try_from(bytes.len())
            .ok()
            .filter(|_| rec <= self.capacity)
            .map(|l| if side { l | SIDE } else { l })
            .ok_or(QueueError::TooLarge {
                len: rec,
                capacity: self.capacity,
            })
    }

    /// Under the lock: appends the record `len` + `bytes` if the queue has
    /// room; `Some(whether a getter may sleep)` if it did.
    #[inline]
    fn append(
        &self,
        _locked: &RingGuard<'_>,
        len: u32,
        bytes: &[u8],
        task: bool,
    ) -> Result<Option<bool>, QueueError> {
        let s = self.s();
        let rec = PREFIX + bytes.len();
        let head = s.head.load(Ordering::Relaxed);
        let tail = s.tail.load(Ordering::Relaxed);
        let free = self.capacity as u64 - (tail - head);
        if s.count.load(Ordering::Relaxed) >= s.maxsize.load(Ordering::Relaxed) || free < rec as u64
        {
            return Ok(None);
        }
        self.write_at(tail, &len.to_le_bytes())?;
        self.write_at(tail + PREFIX as u64, bytes)?;
        // The publishing store; see the module docs.
        s.tail.store(tail + rec as u64, Ordering::Release);
        s.count.fetch_add(1, Ordering::Release);
        if task {
            s.unfinished.fetch_add(1, Ordering::Release);
        }
        s.put_seq.fetch_add(1, Ordering::Release);
        Ok(Some(s.getters.load(Ordering::Relaxed) > 0))
    }

    /// Takes the oldest record out; `true` if it names a side segment.
    pub(crate) fn get(&self, block: Block) -> Result<(Vec<u8>, bool), QueueError> {
        self.get_claiming(block, &mut |_, _| {})
    }

    /// [`get`](Self::get), calling `claim` with the record (and whether it
    /// names a side segment) while it is still in the ring, under the
    /// lock, just before it is taken out. A process killed at any point
    /// has then either left the record in the ring or made its claim: a
    /// pool worker names the task it takes in shared memory this way, so
    /// no task can vanish with a worker.
    pub(crate) fn get_claiming(
        &self,
        block: Block,
        claim: &mut dyn FnMut(&[u8], bool),
    ) -> Result<(Vec<u8>, bool), QueueError> {
        let s = self.s();
        loop {
            let guard = self.lock();
            if let Some((taken, wake)) = self.take(&guard, claim)? {
                drop(guard);
                if wake {
                    // Every putter: one waiting for a big record must not
                    // keep a small one that now fits asleep.
                    futex::wake_all(&s.get_seq);
                }
                return Ok(taken);
            }
            let seq = s.put_seq.load(Ordering::Acquire);
            let Some(sleep) = block.sleep_for() else {
                return Err(QueueError::Empty);
            };
            s.getters.fetch_add(1, Ordering::AcqRel);
            drop(guard);
            futex::wait(&s.put_seq, seq, Some(sleep));
            s.getters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Under the lock: takes the oldest record out if there is one,
    /// calling `claim` first (see [`get_claiming`](Self::get_claiming));
    /// `Some((record, whether a putter may sleep))` if it did.
    #[inline]
    #[allow(clippy::type_complexity)]
    fn take(
        &self,
        _locked: &RingGuard<'_>,
        claim: &mut dyn FnMut(&[u8], bool),
    ) -> Result<Option<((Vec<u8>, bool), bool)>, QueueError> {
        let s = self.s();
        let head = s.head.load(Ordering::Relaxed);
        let tail = s.tail.load(Ordering::Relaxed);
        if tail - head < PREFIX as u64 {
            return Ok(None);
        }
        let mut len = [0u8; PREFIX];
        self.read_at(head, &mut len)?;
        let raw = u32::from_le_bytes(len);
        let len = (raw & !SIDE) as usize;
        let rec = (PREFIX + len) as u64;
        if rec > tail - head {
            return Err(QueueError::Corrupt("record beyond the tail"));
        }
        let mut out = vec![0u8; len];
        self.read_at(head + PREFIX as u64, &mut out)?;
        claim(&out, raw & SIDE != 0);
        // The publishing store; see the module docs.
        s.head.store(head + rec, Ordering::Release);
        s.count.fetch_sub(1, Ordering::Release);
        s.get_seq.fetch_add(1, Ordering::Release);
        let wake = s.putters.load(Ordering::Relaxed) > 0;
        Ok(Some(((out, raw & SIDE != 0), wake)))
    }

    /// Marks one task done.
    pub(crate) fn task_done(&self) -> Result<(), QueueError> {
        let s = self.s();
        let guard = self.lock();
        let n = s.unfinished.load(Ordering::Relaxed);
        if n == 0 {
            return Err(QueueError::TaskDone);
        }
        s.unfinished.store(n - 1, Ordering::Release);
        if n == 1 {
            s.done_seq.fetch_add(1, Ordering::Release);
            let wake = s.joiners.load(Ordering::Relaxed) > 0;
            drop(guard);
            if wake {
                futex::wake_all(&s.done_seq);
            }
        }
        Ok(())
    }

    /// Waits until every task put has been marked done; `false` on
    /// timeout.
    pub(crate) fn join(&self, block: Block) -> bool {
        let s = self.s();
        loop {
            let seq = s.done_seq.load(Ordering::Acquire);
            if s.unfinished.load(Ordering::Acquire) == 0 {
                return true;
            }
            let Some(sleep) = block.sleep_for() else {
                return false;
            };
            s.joiners.fetch_add(1, Ordering::AcqRel);
            // Re-check after announcing ourselves: a task_done that read
            // joiners == 0 just before must not leave us asleep (the
            // seq word also catches it; this saves the sleep).
            if s.unfinished.load(Ordering::Acquire) != 0 {
                futex::wait(&s.done_seq, seq, Some(sleep));
            }
            s.joiners.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(feature = "asyncio")]
#[path = "ring_async.rs"]
mod ring_async;

/// Releases the ring lock on drop.
struct RingGuard<'a> {
    ring: &'a Ring,
}

impl Drop for RingGuard<'_> {
    fn drop(&mut self) {
        // Only we release it; an error would mean someone else did.
        let _ = self.ring.lock.release();
    }
}

/// Serialized form: the lock and the header's region.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Queue")]
struct Wire {
    lock: Lock,
    state: Handle<RingState>,
}

/// Borrowing twin of [`Wire`].
#[derive(Serialize)]
#[serde(rename = "Queue")]
struct WireRef<'a> {
    lock: &'a Lock,
    state: &'a Handle<RingState>,
}

impl Serialize for Ring {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        WireRef {
            lock: &self.lock,
            state: &self.state,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Ring {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        Ring::attach(w.lock, w.state).map_err(de::Error::custom)
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity)
            .field("count", &self.count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{get_context, StartMethod};

    /// A child dies holding the lock after publishing a record but before
    /// counting it, with a third record half-written beyond the tail: the
    /// next user takes the lock over, recounts, and sees exactly the whole
    /// records.
    #[test]
    fn a_holder_killed_mid_put_leaves_a_consistent_queue() {
        let ring = Ring::new(4096, u64::MAX).unwrap();
        ring.put(b"first", Block::No, false, false).unwrap();
        let child = ring.clone();
        let p = get_context(StartMethod::Fork).process_fn(move || {
            let guard = child.lock();
            let s = child.s();
            let tail = s.tail.load(Ordering::Relaxed);
            child.write_at(tail, &6u32.to_le_bytes()).unwrap();
            child.write_at(tail + 4, b"second").unwrap();
            s.tail.store(tail + 10, Ordering::Release);
            child.write_at(tail + 10, &1000u32.to_le_bytes()).unwrap();
            // Exit still holding the lock, as a killed process would.
            std::mem::forget(guard);
            0
        });
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(0));
        assert_eq!(ring.count(), 1, "the dead holder never counted its put");
        assert_eq!(ring.get(Block::No).unwrap(), (b"first".to_vec(), false));
        assert_eq!(ring.count(), 1, "recounted on takeover");
        assert_eq!(ring.get(Block::No).unwrap(), (b"second".to_vec(), false));
        assert!(matches!(ring.get(Block::No), Err(QueueError::Empty)));
        ring.put(b"third", Block::No, false, false).unwrap();
        assert_eq!(ring.get(Block::No).unwrap(), (b"third".to_vec(), false));
    }

    /// A getter killed while claiming a record (holding the lock, the
    /// record not yet taken out) leaves it in the ring for the next one.
    #[test]
    fn a_getter_killed_in_its_claim_leaves_the_record() {
        let ring = Ring::new(4096, u64::MAX).unwrap();
        ring.put(b"task", Block::No, false, false).unwrap();
        let child = ring.clone();
        let p = get_context(StartMethod::Fork).process_fn(move || {
            let _ = child.get_claiming(Block::No, &mut |_, _| {
                // SAFETY: ends this child at once, as SIGKILL would.
                unsafe { libc::_exit(7) }
            });
            0
        });
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(7));
        let mut claimed = Vec::new();
        let got = ring.get_claiming(Block::No, &mut |rec, side| {
            assert!(!side);
            claimed = rec.to_vec();
        });
        assert_eq!(got.unwrap(), (b"task".to_vec(), false));
        assert_eq!(claimed, b"task");
        assert!(matches!(ring.get(Block::No), Err(QueueError::Empty)));
    }
}
