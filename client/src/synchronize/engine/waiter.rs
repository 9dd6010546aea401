//! Waiting on a futex word from async code without a thread per wait
//! (feature `asyncio`): [`FutexWait`], a future that completes when a word
//! in shared memory no longer holds the value it was given, served by a
//! few threads per process that sleep on many words at once.
//!
//! # Why a waiter thread, and why the waking side is unchanged
//!
//! A futex cannot be registered with epoll, so some thread must sleep in
//! the kernel for an async task. Here that is one *waiter thread* per 127
//! distinct words waited on at once (one per [`futex::WAIT_ANY_MAX`] minus
//! its control word), sleeping in `futex_waitv` (Linux 5.16+) on all of
//! them plus a control word that registrations bump. To the process that
//! sets an `Event` or releases a `Lock`, the waiter thread is one more
//! sleeper on the word: it already changes the word and calls
//! `FUTEX_WAKE`, so the blocking paths pay nothing for async waiters. When
//! the thread wakes it fires every registration whose word changed and
//! wakes their tasks, which look at the primitive again.
//!
//! Registrations of the same word and value share one slot, so ten
//! thousand tasks awaiting one `Event` cost one thread and one slot. The
//! threads are started on demand and stay for the life of the process
//! (a forked child starts its own). On a kernel without `futex_waitv` each
//! thread watches one word with `FUTEX_WAIT`, and is interrupted by a wake
//! of that word (a spurious wake-up for its other sleepers, which look
//! again).
//!
//! # Cancellation
//!
//! Dropping a [`FutexWait`] removes its registration. A futex wake-up may
//! be addressed to one sleeper (`FUTEX_WAKE` of 1: a released lock, a put
//! item); if the waiter thread took it and fired a registration whose
//! future is then dropped unseen, the drop passes the wake-up on to the
//! word's other sleepers, so a cancelled task never swallows one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mp_sys::futex;
use mp_sys::lock;

use super::identity;
use crate::shared_memory::region::Region;
use crate::synchronize::SyncError;

/// Words one waiter thread watches besides its control word.
const SLOTS: usize = futex::WAIT_ANY_MAX - 1;

/// A word and the value a registration saw in it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Key {
    addr: usize,
    expected: u32,
}

/// One task's registration, shared by its future and its waiter thread.
struct Entry {
    /// When the thread fires it regardless of the word (a recheck).
    deadline: Option<Instant>,
    /// Keeps the word's mapping alive while the thread may read it.
    region: Arc<Region>,
    /// `(fired, waker)`, changed together so no wake-up falls between.
    state: Mutex<(bool, Option<Waker>)>,
}

impl Entry {
    /// Marks it fired; returns the waker to call once no lock is held.
    fn fire(&self) -> Option<Waker> {
        let mut st = lock(&self.state);
        st.0 = true;
        st.1.take()
    }
}

/// The registrations one waiter thread serves.
struct Shard {
    entries: Mutex<HashMap<Key, Vec<Arc<Entry>>>>,
    /// Bumped by every change of `entries`; the thread sleeps on it too.
    control: AtomicU32,
    /// Whether the thread sleeps in `futex_waitv` (else on one word).
    waitv: bool,
}

impl Shard {
    /// Wakes the thread to look at its registrations again.
    fn changed(&self, key: Option<Key>) {
        self.control.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.control);
        if let (false, Some(key)) = (self.waitv, key) {
            // Without futex_waitv the thread sleeps on the word itself.
            // SAFETY: the caller holds the entry (and so the mapping) for
            // `key`; waking touches no memory.
            futex::wake_all(unsafe { word_at(key.addr) });
        }
    }

    /// The thread's loop: fire what changed or expired, sleep on the rest.
    fn run(&self) {
        loop {
            let seq = self.control.load(Ordering::SeqCst);
            let mut wake = Vec::new();
            let mut keys = Vec::new();
            let mut keep = Vec::new();
            let mut next: Option<Instant> = None;
            {
                let mut entries = lock(&self.entries);
                let now = Instant::now();
                entries.retain(|key, list| {
                    // SAFETY: every entry of `list` holds the mapping.
                    let word = unsafe { word_at(key.addr) };
                    if word.load(Ordering::SeqCst) != key.expected {
                        wake.extend(list.iter().filter_map(|e| e.fire()));
                        return false;
                    }
                    list.retain(|e| match e.deadline {
                        Some(d) if d <= now => {
                            wake.extend(e.fire());
                            false
                        }
                        Some(d) => {
                            next = Some(next.map_or(d, |n| n.min(d)));
                            true
                        }
                        None => true,
                    });
                    if list.is_empty() {
                        return false;
                    }
                    keys.push(*key);
                    keep.push(Arc::clone(&list[0].region));
                    true
                });
            }
            for w in wake {
                w.wake();
            }
            let timeout = next.map(|n| n.saturating_duration_since(Instant::now()));
            // SAFETY (both arms): `keep` holds every watched mapping until
            // the sleep ends.
            if self.waitv {
                let mut words = vec![(&self.control, seq)];
                words.extend(
                    keys.iter()
                        .map(|k| (unsafe { word_at(k.addr) }, k.expected)),
                );
                if futex::wait_any(&words, timeout).is_err() {
                    // EFAULT/EINVAL cannot come from live mappings; do
                    // not spin if they somehow do.
                    std::thread::sleep(Duration::from_millis(1));
                }
            } else {
                match keys.first() {
                    Some(k) => {
                        futex::wait(unsafe { word_at(k.addr) }, k.expected, timeout);
                    }
                    None => {
                        futex::wait(&self.control, seq, timeout);
                    }
                }
            }
            drop(keep);
        }
    }
}

/// The word at `addr`.
///
/// # Safety
///
/// `addr` must be an aligned `AtomicU32` in a mapping the caller keeps
/// alive for the returned lifetime.
unsafe fn word_at<'a>(addr: usize) -> &'a AtomicU32 {
    // SAFETY: the caller's contract.
    unsafe { &*(addr as *const AtomicU32) }
}

/// This process's waiter threads.
pub(crate) struct Waiters {
    pid: u32,
    waitv: bool,
    shards: Mutex<Vec<Arc<Shard>>>,
}

/// The current process's [`Waiters`]; a forked child makes its own (the
/// parent's threads do not exist in it, and the parent's copy of the
/// table may have been locked by one of them at the fork, so it is left
/// alone: a few bytes leaked per forked generation that waits).
static WAITERS: AtomicPtr<Waiters> = AtomicPtr::new(std::ptr::null_mut());

impl Waiters {
    /// The process's waiter threads (none started yet on first call).
    pub(crate) fn get() -> &'static Waiters {
        let me = identity::pid();
        let p = WAITERS.load(Ordering::Acquire);
        // SAFETY: every pointer stored is a leaked Box, never freed.
        if let Some(w) = unsafe { p.as_ref() } {
            if w.pid == me {
                return w;
            }
        }
        let fresh = Box::into_raw(Box::new(Waiters::new(waitv_supported())));
        match WAITERS.compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just leaked, never freed.
            Ok(_) => unsafe { &*fresh },
            Err(other) => {
                // SAFETY: ours was never shared; `other` is a leaked Box.
                unsafe {
                    drop(Box::from_raw(fresh));
                    &*other
                }
            }
        }
    }

    /// A set of waiter threads; `waitv` chooses `futex_waitv` over one
    /// word per thread.
    pub(crate) fn new(waitv: bool) -> Waiters {
        Waiters {
            pid: identity::pid(),
            waitv,
            shards: Mutex::new(Vec::new()),
        }
    }

    /// Registers `entry` under `key` with a thread that watches the word
    /// or has room for it, starting one if none has.
    fn register(&self, key: Key, entry: Arc<Entry>) -> Result<Arc<Shard>, SyncError> {
        let room = if self.waitv { SLOTS } else { 1 };
        let timed = entry.deadline.is_some();
        let mut shards = lock(&self.shards);
        let mut with_room = None;
        for shard in shards.iter() {
            let mut entries = lock(&shard.entries);
            if let Some(list) = entries.get_mut(&key) {
                // The thread already watches the word; only an earlier
                // deadline makes it look again.
                list.push(entry);
                drop(entries);
                if timed {
                    shard.changed(Some(key));
                }
                return Ok(Arc::clone(shard));
            }
            if with_room.is_none() && entries.len() < room {
                with_room = Some(Arc::clone(shard));
            }
        }
        let shard = match with_room {
            Some(shard) => {
                lock(&shard.entries).insert(key, vec![entry]);
                shard
            }
            None => {
                let shard = Arc::new(Shard {
                    entries: Mutex::new(HashMap::from([(key, vec![entry])])),
                    control: AtomicU32::new(0),
                    waitv: self.waitv,
                });
                let runner = Arc::clone(&shard);
                std::thread::Builder::new()
                    .name("mp-futex-waiter".into())
                    .spawn(move || runner.run())
                    .map_err(SyncError::AsyncWaiter)?;
                shards.push(Arc::clone(&shard));
                shard
            }
        };
        drop(shards);
        shard.changed(Some(key));
        Ok(shard)
    }
}

/// Whether this kernel has `futex_waitv`: a call whose word does not hold
/// its value returns at once where it exists.
fn waitv_supported() -> bool {
    let probe = AtomicU32::new(1);
    match futex::wait_any(&[(&probe, 0)], Some(Duration::ZERO)) {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(target: "multiprocessing", "no futex_waitv ({e}): one waiter thread per word");
            false
        }
    }
}

/// A future that completes once the word no longer holds `expected`, or
/// after `recheck` (for callers that must look again periodically, e.g.
/// for a dead lock holder), or spuriously: callers look at their word
/// again in every case, as after [`futex::wait`].
///
/// Errors only if a waiter thread was needed and could not be started.
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct FutexWait {
    waiters: &'static Waiters,
    region: Arc<Region>,
    key: Key,
    recheck: Option<Duration>,
    /// Set once registered: the entry and the thread serving it.
    registered: Option<(Arc<Entry>, Arc<Shard>)>,
}

impl FutexWait {
    /// Waits on `word`, which must lie inside `region`'s mapping.
    pub(crate) fn new(
        region: &Arc<Region>,
        word: &AtomicU32,
        expected: u32,
        recheck: Option<Duration>,
    ) -> FutexWait {
        Self::with_waiters(Waiters::get(), region, word, expected, recheck)
    }

    /// [`new`](Self::new) served by the given threads (tests use a set
    /// without `futex_waitv`).
    pub(crate) fn with_waiters(
        waiters: &'static Waiters,
        region: &Arc<Region>,
        word: &AtomicU32,
        expected: u32,
        recheck: Option<Duration>,
    ) -> FutexWait {
        FutexWait {
            waiters,
            region: Arc::clone(region),
            key: Key {
                addr: word.as_ptr() as usize,
                expected,
            },
            recheck,
            registered: None,
        }
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: `self.region` keeps the mapping of the word alive.
        unsafe { word_at(self.key.addr) }
    }
}

impl Future for FutexWait {
    type Output = Result<(), SyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((entry, _)) = &this.registered {
            let mut st = lock(&entry.state);
            if st.0 {
                drop(st);
                this.registered = None;
                return Poll::Ready(Ok(()));
            }
            match &st.1 {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.1 = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        if this.word().load(Ordering::SeqCst) != this.key.expected {
            return Poll::Ready(Ok(()));
        }
        // A change between that look and the registration is seen by the
        // thread, which looks at the word before it sleeps.
        let entry = Arc::new(Entry {
            deadline: this.recheck.and_then(|d| Instant::now().checked_add(d)),
            region: Arc::clone(&this.region),
            state: Mutex::new((false, Some(cx.waker().clone()))),
        });
        let shard = this.waiters.register(this.key, Arc::clone(&entry))?;
        this.registered = Some((entry, shard));
        Poll::Pending
    }
}

impl Drop for FutexWait {
    fn drop(&mut self) {
        let Some((entry, shard)) = self.registered.take() else {
            return;
        };
        if lock(&entry.state).0 {
            // Fired and never seen: the wake-up that fired it may have
            // been meant for one sleeper; hand it on.
            futex::wake(self.word(), 1);
            return;
        }
        let mut entries = lock(&shard.entries);
        let emptied = match entries.get_mut(&self.key) {
            Some(list) => {
                list.retain(|e| !Arc::ptr_eq(e, &entry));
                list.is_empty()
            }
            None => false,
        };
        if emptied {
            entries.remove(&self.key);
        }
        // The thread may have fired it between the two looks.
        let fired = lock(&entry.state).0;
        drop(entries);
        if fired {
            futex::wake(self.word(), 1);
        } else if emptied {
            // Let the thread stop watching the word (and its mapping).
            shard.changed(Some(self.key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake as TaskWake;

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);
    impl TaskWake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut FutexWait, waker: &Waker) -> Poll<Result<(), SyncError>> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    fn wait_for(count: &Count, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while count.0.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The first word of a fresh region.
    fn word_of(region: &Arc<Region>) -> &AtomicU32 {
        let ptr = region.checked::<AtomicU32>(0).unwrap();
        // SAFETY: in bounds and aligned (checked), alive as long as the
        // region the result borrows from.
        unsafe { ptr.as_ref() }
    }

    fn served_by_both(test: fn(&'static Waiters)) {
        test(Waiters::get());
        test(Box::leak(Box::new(Waiters::new(false))));
    }

    #[test]
    fn a_changed_word_wakes_every_task_waiting_on_it() {
        served_by_both(|waiters| {
            let region = Region::new(64).unwrap();
            let word = word_of(&region);
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(Arc::clone(&count));
            let mut a = FutexWait::with_waiters(waiters, &region, word, 0, None);
            let mut b = FutexWait::with_waiters(waiters, &region, word, 0, None);
            assert!(poll(&mut a, &waker).is_pending());
            assert!(poll(&mut b, &waker).is_pending());
            word.store(1, Ordering::SeqCst);
            futex::wake(word, 1);
            wait_for(&count, 2);
            assert!(matches!(poll(&mut a, &waker), Poll::Ready(Ok(()))));
            assert!(matches!(poll(&mut b, &waker), Poll::Ready(Ok(()))));
        });
    }

    #[test]
    fn a_recheck_fires_without_a_change_and_a_drop_unregisters() {
        served_by_both(|waiters| {
            let region = Region::new(64).unwrap();
            let word = word_of(&region);
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(Arc::clone(&count));
            let mut timed =
                FutexWait::with_waiters(waiters, &region, word, 0, Some(Duration::from_millis(10)));
            assert!(poll(&mut timed, &waker).is_pending());
            wait_for(&count, 1);
            assert!(matches!(poll(&mut timed, &waker), Poll::Ready(Ok(()))));
            let mut dropped = FutexWait::with_waiters(waiters, &region, word, 0, None);
            assert!(poll(&mut dropped, &waker).is_pending());
            drop(dropped);
            let registered: usize = lock(&waiters.shards)
                .iter()
                .map(|s| lock(&s.entries).values().map(Vec::len).sum::<usize>())
                .sum();
            assert_eq!(registered, 0, "the dropped wait is still registered");
        });
    }

    #[test]
    fn more_words_than_one_thread_watches_are_all_served() {
        let waiters = Waiters::get();
        let regions: Vec<_> = (0..SLOTS + 5).map(|_| Region::new(64).unwrap()).collect();
        let words: Vec<&AtomicU32> = regions.iter().map(word_of).collect();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut waits: Vec<_> = regions
            .iter()
            .zip(&words)
            .map(|(r, w)| FutexWait::with_waiters(waiters, r, w, 0, None))
            .collect();
        for w in &mut waits {
            assert!(poll(w, &waker).is_pending());
        }
        for w in &words {
            w.store(1, Ordering::SeqCst);
            futex::wake(w, 1);
        }
        wait_for(&count, words.len());
        for w in &mut waits {
            assert!(matches!(poll(w, &waker), Poll::Ready(Ok(()))));
        }
    }
}
