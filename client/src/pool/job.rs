//! The parent's record of one submitted call (Python's `ApplyResult`,
//! `MapResult` and `IMapIterator` internals, which live in the pool's
//! `_cache`): where each task's outcome goes, who waits for it, and what a
//! terminated pool tells the waiters. Shared by [`Pool`](super::Pool) and
//! [`ThreadPool`](super::ThreadPool).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::PoolError;
use mp_sys::lock;

/// A job as the pool's cache sees it.
pub(crate) trait Job: Send + Sync {
    /// Fails every task still pending with `reason` (placed at each
    /// task's index): [`PoolError::Terminated`] or [`PoolError::Broken`].
    fn abort(&self, reason: &PoolError);
}

/// Where the outcomes of a job's tasks go, one per input position; `E` is
/// the error type of the job's function.
pub(crate) trait Sink<T, E>: Job {
    /// Records the outcome of the task at `index`; a second outcome for a
    /// position is ignored (a worker killed after sending its result can
    /// be reported lost too). Returns whether the job needs nothing more.
    fn deliver(&self, index: usize, outcome: Result<T, PoolError<E>>) -> bool;
}

impl<S: Job + ?Sized> Job for Arc<S> {
    fn abort(&self, reason: &PoolError) {
        (**self).abort(reason);
    }
}

impl<T, E, S: Sink<T, E> + ?Sized> Sink<T, E> for Arc<S> {
    fn deliver(&self, index: usize, outcome: Result<T, PoolError<E>>) -> bool {
        (**self).deliver(index, outcome)
    }
}

/// Waits on `cv` until `ready` holds or `timeout` passes; returns the
/// guard and whether `ready` holds. Shared with [`crate::dummy`].
pub(crate) fn wait_until<'a, S>(
    cv: &Condvar,
    mut g: MutexGuard<'a, S>,
    timeout: Option<Duration>,
    ready: impl Fn(&S) -> bool,
) -> (MutexGuard<'a, S>, bool) {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    while !ready(&g) {
        match (timeout, deadline) {
            (None, _) | (Some(_), None) => {
                g = cv.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
            (Some(_), Some(d)) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (g, false);
                }
                g = cv
                    .wait_timeout(g, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
    (g, true)
}

/// Callbacks run on completion (Python's `callback`/`error_callback`).
pub(crate) type Callback<V> = Box<dyn FnOnce(&V) + Send>;
/// The error callback.
pub(crate) type ErrorCallback<E> = Box<dyn FnOnce(&PoolError<E>) + Send>;

/// A value that becomes ready once, with waiters and callbacks.
pub(crate) struct Completion<V, E> {
    state: Mutex<CompletionState<V, E>>,
    cv: Condvar,
    /// Set with the value, so a waiter can poll briefly without the lock.
    ready: AtomicBool,
}

/// How long a waiter polls before sleeping: a result that is about to
/// arrive then costs no wake-up (tens of microseconds on a busy machine).
const SPIN: Duration = Duration::from_micros(30);

struct CompletionState<V, E> {
    /// Set by the first `complete`: later ones (a duplicate outcome) are
    /// ignored even while the first is still running its callback.
    claimed: bool,
    value: Option<Result<V, PoolError<E>>>,
    /// Set once `poll_take` moved the value out (feature `asyncio`).
    #[cfg(feature = "asyncio")]
    taken: bool,
    /// Async tasks to wake with the value (feature `asyncio`).
    #[cfg(feature = "asyncio")]
    wakers: Vec<std::task::Waker>,
    callback: Option<Callback<V>>,
    error_callback: Option<ErrorCallback<E>>,
}

impl<V, E> Completion<V, E> {
    pub(crate) fn new(
        callback: Option<Callback<V>>,
        error_callback: Option<ErrorCallback<E>>,
    ) -> Self {
        Completion {
            state: Mutex::new(CompletionState {
                claimed: false,
                value: None,
                #[cfg(feature = "asyncio")]
                taken: false,
                #[cfg(feature = "asyncio")]
                wakers: Vec::new(),
                callback,
                error_callback,
            }),
            cv: Condvar::new(),
            ready: AtomicBool::new(false),
        }
    }

    /// Polls the ready flag for up to [`SPIN`] (never past `timeout`),
    /// yielding the CPU: the thread that will set it may share this one.
    fn spin(&self, timeout: Option<Duration>) {
        let spin = timeout.map_or(SPIN, |t| t.min(SPIN));
        let start = Instant::now();
        while !self.ready.load(Ordering::Acquire) && start.elapsed() < spin {
            std::thread::yield_now();
        }
    }

    /// Sets the value once (later calls are ignored). The callback runs
    /// before waiters are released, as in Python, so `get` returning means
    /// the callback has run.
    pub(crate) fn complete(&self, value: Result<V, PoolError<E>>) {
        let (cb, ecb) = {
            let mut st = lock(&self.state);
            if st.claimed {
                return;
            }
            st.claimed = true;
            (st.callback.take(), st.error_callback.take())
        };
        // A panicking callback must not take the pool's thread with it
        // (nor leave the result unset): it is caught and logged.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &value {
            Ok(v) => {
                if let Some(cb) = cb {
                    cb(v);
                }
            }
            Err(e) => {
                if let Some(ecb) = ecb {
                    ecb(e);
                }
            }
        }));
        if ran.is_err() {
            tracing::error!(target: "multiprocessing", "a pool callback panicked");
        }
        let mut st = lock(&self.state);
        st.value = Some(value);
        self.ready.store(true, Ordering::Release);
        #[cfg(feature = "asyncio")]
        let wakers = std::mem::take(&mut st.wakers);
        drop(st);
        self.cv.notify_all();
        #[cfg(feature = "asyncio")]
        for w in wakers {
            w.wake();
        }
    }

    /// Registers `cx`'s task to be woken with the value unless it is
    /// there; whether it is (feature `asyncio`).
    #[cfg(feature = "asyncio")]
    fn poll_ready_locked(st: &mut CompletionState<V, E>, cx: &mut std::task::Context<'_>) -> bool {
        if st.value.is_some() || st.taken {
            return true;
        }
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        false
    }

    /// Ready once the value is there (feature `asyncio`).
    #[cfg(feature = "asyncio")]
    pub(crate) fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match Self::poll_ready_locked(&mut lock(&self.state), cx) {
            true => std::task::Poll::Ready(()),
            false => std::task::Poll::Pending,
        }
    }

    /// Moves the value out once it is there (feature `asyncio`); a poll
    /// after it was taken is a `ValueError`.
    #[cfg(feature = "asyncio")]
    pub(crate) fn poll_take(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<V, PoolError<E>>> {
        let mut st = lock(&self.state);
        if !Self::poll_ready_locked(&mut st, cx) {
            return std::task::Poll::Pending;
        }
        st.taken = true;
        std::task::Poll::Ready(st.value.take().unwrap_or_else(|| {
            Err(PoolError::ValueError(
                "the result was already taken".to_string(),
            ))
        }))
    }

    pub(crate) fn ready(&self) -> bool {
        lock(&self.state).value.is_some()
    }

    /// Waits; returns whether the value is there.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> bool {
        self.spin(timeout);
        wait_until(&self.cv, lock(&self.state), timeout, |s| s.value.is_some()).1
    }

    /// Whether it succeeded: `None` while not ready.
    pub(crate) fn successful(&self) -> Option<bool> {
        lock(&self.state).value.as_ref().map(Result::is_ok)
    }

    /// Waits at most `timeout` (`None`: for ever) and moves the value
    /// out; [`PoolError::Timeout`] if it did not come in time. Only the
    /// one [`AsyncResult`](super::AsyncResult) calls it, once, by value,
    /// so the value is there whenever the wait succeeded.
    pub(crate) fn take(&self, timeout: Option<Duration>) -> Result<V, PoolError<E>> {
        self.spin(timeout);
        let (mut g, _) = wait_until(&self.cv, lock(&self.state), timeout, |s| s.value.is_some());
        g.value.take().unwrap_or(Err(PoolError::Timeout))
    }
}

/// An `apply_async` job: one task, one value.
pub(crate) struct ApplyJob<T, E> {
    pub(crate) done: Arc<Completion<T, E>>,
}

impl<T: Send, E: Send> Job for ApplyJob<T, E> {
    fn abort(&self, reason: &PoolError) {
        self.done.complete(Err(reason.at(0)));
    }
}

impl<T: Send, E: Send> Sink<T, E> for ApplyJob<T, E> {
    fn deliver(&self, _index: usize, outcome: Result<T, PoolError<E>>) -> bool {
        self.done.complete(outcome);
        true
    }
}

/// A `map_async`/`starmap_async` job: the list of results in input order,
/// or the first failure to arrive (Python's `MapResult`).
pub(crate) struct MapJob<T, E> {
    slots: Mutex<MapSlots<T>>,
    pub(crate) done: Arc<Completion<Vec<T>, E>>,
}

struct MapSlots<T> {
    values: Vec<Option<T>>,
    remaining: usize,
    failed: bool,
}

impl<T, E> MapJob<T, E> {
    pub(crate) fn new(
        len: usize,
        callback: Option<Callback<Vec<T>>>,
        error_callback: Option<ErrorCallback<E>>,
    ) -> Self {
        let job = MapJob {
            slots: Mutex::new(MapSlots {
                values: (0..len).map(|_| None).collect(),
                remaining: len,
                failed: false,
            }),
            done: Arc::new(Completion::new(callback, error_callback)),
        };
        if len == 0 {
            job.done.complete(Ok(Vec::new()));
        }
        job
    }
}

impl<T: Send, E: Send> Job for MapJob<T, E> {
    fn abort(&self, reason: &PoolError) {
        let first = {
            let mut s = lock(&self.slots);
            if s.failed || s.remaining == 0 {
                return;
            }
            s.failed = true;
            s.values.iter().position(Option::is_none).unwrap_or(0)
        };
        self.done.complete(Err(reason.at(first)));
    }
}

impl<T: Send, E: Send> Sink<T, E> for MapJob<T, E> {
    fn deliver(&self, index: usize, outcome: Result<T, PoolError<E>>) -> bool {
        let mut s = lock(&self.slots);
        if s.failed {
            return true;
        }
        let Some(slot) = s.values.get_mut(index) else {
            return false;
        };
        if slot.is_some() {
            return s.remaining == 0;
        }
        match outcome {
            Ok(v) => {
                *slot = Some(v);
                s.remaining -= 1;
                if s.remaining > 0 {
                    return false;
                }
                let values: Vec<T> = std::mem::take(&mut s.values)
                    .into_iter()
                    .flatten()
                    .collect();
                drop(s);
                self.done.complete(Ok(values));
                true
            }
            Err(e) => {
                // Python's MapResult is ready at the first failure.
                s.failed = true;
                s.values = Vec::new();
                drop(s);
                self.done.complete(Err(e));
                true
            }
        }
    }
}

/// An `imap`/`imap_unordered` job: outcomes handed out one at a time, in
/// input order or as they come (Python's `IMapIterator`).
///
/// The input is consumed lazily, as in Python, so the job learns its
/// length only when the input runs out ([`set_length`](Self::set_length));
/// positions are announced ([`submitted`](Self::submitted)) before their
/// tasks are queued.
pub(crate) struct IMapJob<T, E> {
    state: Mutex<IMapState<T, E>>,
    cv: Condvar,
}

struct IMapState<T, E> {
    ordered: bool,
    /// The number of items, once the input has run out (or the job was
    /// aborted: then no more are taken).
    total: Option<usize>,
    /// For each position queued so far, whether its outcome has arrived.
    seen: Vec<bool>,
    arrived: usize,
    /// Ordered: outcomes waiting for their turn, by position.
    pending: HashMap<usize, Result<T, PoolError<E>>>,
    /// Unordered: outcomes in arrival order.
    queue: VecDeque<Result<T, PoolError<E>>>,
    /// How many were handed out.
    yielded: usize,
}

impl<T, E> IMapState<T, E> {
    fn complete(&self) -> bool {
        self.total == Some(self.arrived)
    }

    fn push(&mut self, index: usize, outcome: Result<T, PoolError<E>>) {
        self.seen[index] = true;
        self.arrived += 1;
        if self.ordered {
            self.pending.insert(index, outcome);
        } else {
            self.queue.push_back(outcome);
        }
    }
}

impl<T, E> IMapJob<T, E> {
    pub(crate) fn new(ordered: bool) -> Self {
        IMapJob {
            state: Mutex::new(IMapState {
                ordered,
                total: None,
                seen: Vec::new(),
                arrived: 0,
                pending: HashMap::new(),
                queue: VecDeque::new(),
                yielded: 0,
            }),
            cv: Condvar::new(),
        }
    }

    /// `n` more positions are about to be queued; `false` once the job is
    /// over (aborted), when no more input should be taken.
    pub(crate) fn submitted(&self, n: usize) -> bool {
        let mut g = lock(&self.state);
        if g.total.is_some() {
            return false;
        }
        let len = g.seen.len() + n;
        g.seen.resize(len, false);
        true
    }

    /// The input ran out: the job has as many items as were submitted.
    /// `true` if every outcome is already in (the job is done).
    pub(crate) fn set_length(&self) -> bool {
        let mut g = lock(&self.state);
        if g.total.is_none() {
            g.total = Some(g.seen.len());
        }
        let done = g.complete();
        drop(g);
        self.cv.notify_all();
        done
    }

    /// Taking the next input item failed (the iterator panicked): that
    /// position fails with [`PoolError::InputPanic`] and the job ends
    /// there, as Python's does when its iterable raises. `true` if the
    /// job is done.
    pub(crate) fn input_failed(&self, message: String) -> bool {
        let mut g = lock(&self.state);
        if g.total.is_none() {
            let index = g.seen.len();
            g.seen.push(false);
            g.push(index, Err(PoolError::InputPanic { index, message }));
            g.total = Some(g.seen.len());
        }
        let done = g.complete();
        drop(g);
        self.cv.notify_all();
        done
    }

    /// The next outcome: `None` at the end, `Some(Err(Timeout))` if none
    /// came within `timeout`.
    pub(crate) fn next(&self, timeout: Option<Duration>) -> Option<Result<T, PoolError<E>>> {
        let over = |s: &IMapState<T, E>| s.total.is_some_and(|t| s.yielded >= t);
        let available = |s: &IMapState<T, E>| {
            over(s)
                || if s.ordered {
                    s.pending.contains_key(&s.yielded)
                } else {
                    !s.queue.is_empty()
                }
        };
        let (mut g, ok) = wait_until(&self.cv, lock(&self.state), timeout, available);
        if !ok {
            return Some(Err(PoolError::Timeout));
        }
        if over(&g) {
            return None;
        }
        let next = if g.ordered {
            let at = g.yielded;
            g.pending.remove(&at)
        } else {
            g.queue.pop_front()
        };
        g.yielded += 1;
        next
    }

    /// Items not yet handed out: at least those queued, at most all of
    /// them once the input has run out.
    pub(crate) fn remaining(&self) -> (usize, Option<usize>) {
        let g = lock(&self.state);
        let queued = g.seen.len() - g.yielded;
        (queued, g.total.map(|_| queued))
    }
}

impl<T: Send, E: Send> Job for IMapJob<T, E> {
    fn abort(&self, reason: &PoolError) {
        let mut g = lock(&self.state);
        // No more input is taken: the job ends with what was queued.
        g.total = Some(g.seen.len());
        for index in 0..g.seen.len() {
            if !g.seen[index] {
                g.push(index, Err(reason.at(index)));
            }
        }
        drop(g);
        self.cv.notify_all();
    }
}

impl<T: Send, E: Send> Sink<T, E> for IMapJob<T, E> {
    fn deliver(&self, index: usize, outcome: Result<T, PoolError<E>>) -> bool {
        let mut g = lock(&self.state);
        match g.seen.get(index) {
            Some(false) => {}
            _ => return g.complete(),
        }
        g.push(index, outcome);
        let done = g.complete();
        drop(g);
        self.cv.notify_all();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::NoError;

    #[test]
    fn a_map_collects_in_order_and_fails_at_the_first_error() {
        let job = MapJob::<u32, String>::new(3, None, None);
        assert!(!job.deliver(2, Ok(20)));
        assert!(!job.deliver(0, Ok(0)));
        assert!(!job.done.ready());
        assert!(job.deliver(1, Ok(10)));
        assert_eq!(job.done.take(None), Ok(vec![0, 10, 20]));

        let job = MapJob::<u32, String>::new(3, None, None);
        job.deliver(0, Ok(0));
        assert!(job.deliver(
            1,
            Err(PoolError::Task {
                index: 1,
                error: "x".into()
            })
        ));
        assert_eq!(job.done.successful(), Some(false));
        assert_eq!(
            job.done.take(None),
            Err(PoolError::Task {
                index: 1,
                error: "x".into()
            })
        );
    }

    #[test]
    fn a_panicking_callback_still_sets_the_result() {
        let done =
            Completion::<u8, NoError>::new(Some(Box::new(|_: &u8| panic!("callback"))), None);
        done.complete(Ok(3));
        assert_eq!(done.take(None), Ok(3));
    }

    #[test]
    fn a_value_without_clone_moves_out_once_and_a_wait_can_time_out() {
        struct Unique(u8);
        let done = Completion::<Unique, NoError>::new(None, None);
        assert!(matches!(
            done.take(Some(Duration::from_millis(1))),
            Err(PoolError::Timeout)
        ));
        done.complete(Ok(Unique(4)));
        assert!(matches!(done.take(None), Ok(Unique(4))));
    }

    #[test]
    fn imap_orders_ignores_duplicates_and_times_out() {
        let job = IMapJob::<u32, NoError>::new(true);
        assert!(job.submitted(2));
        assert!(!job.set_length());
        job.deliver(1, Ok(1));
        assert_eq!(
            job.next(Some(Duration::from_millis(1))),
            Some(Err(PoolError::Timeout))
        );
        job.deliver(1, Ok(99));
        assert!(job.deliver(0, Ok(0)));
        assert_eq!(job.next(None), Some(Ok(0)));
        assert_eq!(job.next(None), Some(Ok(1)));
        assert_eq!(job.next(None), None);
    }

    #[test]
    fn imap_learns_its_length_when_the_input_runs_out() {
        let job = IMapJob::<u32, NoError>::new(true);
        assert!(job.submitted(1));
        assert!(!job.deliver(0, Ok(7)));
        assert_eq!(job.remaining(), (1, None));
        assert_eq!(job.next(None), Some(Ok(7)));
        // Not over yet: more input may come.
        assert_eq!(
            job.next(Some(Duration::from_millis(1))),
            Some(Err(PoolError::Timeout))
        );
        assert!(job.submitted(1));
        assert!(!job.deliver(1, Ok(8)));
        assert!(job.set_length(), "every outcome was in");
        assert_eq!(job.remaining(), (1, Some(1)));
        assert_eq!(job.next(None), Some(Ok(8)));
        assert_eq!(job.next(None), None);
        // An empty input: over at once.
        let empty = IMapJob::<u32, NoError>::new(false);
        assert!(empty.set_length());
        assert_eq!(empty.next(None), None);
    }

    #[test]
    fn abort_fails_what_is_pending() {
        let job = IMapJob::<u32, String>::new(false);
        assert!(job.submitted(2));
        job.deliver(0, Ok(0));
        job.abort(&PoolError::Terminated { index: 0 });
        assert!(!job.submitted(1), "an aborted job takes no more input");
        assert_eq!(job.next(None), Some(Ok(0)));
        assert_eq!(
            job.next(None),
            Some(Err(PoolError::Terminated { index: 1 }))
        );
        let apply = ApplyJob {
            done: Arc::new(Completion::<u8, String>::new(None, None)),
        };
        apply.abort(&PoolError::Terminated { index: 0 });
        assert_eq!(
            apply.done.take(None),
            Err(PoolError::Terminated { index: 0 })
        );
    }
}
