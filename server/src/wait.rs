//! The fair waiting engine every blocking object is built on.
//!
//! One FIFO of waiters ([`WaitQueue`]) per thing to wait for, kept inside
//! the object's own `Mutex`, and one future ([`Wait`]) per waiting call.
//! The object decides *what* a waiter gets (a lock, a queue item, a
//! notification) and hands it over directly with
//! [`WaitQueue::grant_front`] — so waiters are served in arrival order and
//! a newcomer can never barge past them.
//!
//! The hard part lives here once: a waiter can stop waiting at any moment
//! (its timeout fires, or its session ends and its future is dropped).
//! Its deadline is checked under the object's lock in the same step that
//! looks for a grant, so a waiter either got the thing or timed out, never
//! both; and a future dropped after being granted something but before
//! seeing it passes the grant to the object's `on_cancel` hook, which
//! gives it back (releases the lock, requeues the item). A cancelled
//! waiter never ends up owning anything.
//!
//! Modelled on tokio's `sync` module, where one batch semaphore sits under
//! `Mutex`, `RwLock` and `Semaphore`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::lock;

/// Waiters in arrival order, each with what it asked for (`R`), and the
/// grants (`G`) handed to waiters that have not yet seen them.
pub struct WaitQueue<R, G> {
    waiting: VecDeque<Waiter<R>>,
    granted: Vec<(u64, G)>,
    next_ticket: u64,
}

struct Waiter<R> {
    ticket: u64,
    request: R,
    waker: Option<Waker>,
}

/// Wakers collected under a lock and woken when this is dropped — declare
/// it before taking the lock so the lock is released first.
#[derive(Default)]
pub struct Wakers(Vec<Waker>);

impl Wakers {
    /// No wakers yet.
    pub fn new() -> Self {
        Wakers(Vec::new())
    }
}

impl Drop for Wakers {
    fn drop(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}

impl<R, G> Default for WaitQueue<R, G> {
    fn default() -> Self {
        WaitQueue {
            waiting: VecDeque::new(),
            granted: Vec::new(),
            next_ticket: 0,
        }
    }
}

impl<R, G> WaitQueue<R, G> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many are waiting (not counting granted ones).
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// What each waiter asked for, in arrival order (a blocked putter's
    /// item).
    pub fn requests(&self) -> impl Iterator<Item = &R> {
        self.waiting.iter().map(|w| &w.request)
    }

    /// Adds a waiter at the back; its ticket is what [`Wait`] polls with.
    pub fn enqueue(&mut self, request: R) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.push_back(Waiter {
            ticket,
            request,
            waker: None,
        });
        ticket
    }

    /// What the longest-waiting waiter asked for.
    pub fn front(&self) -> Option<&R> {
        self.waiting.front().map(|w| &w.request)
    }

    /// Removes the longest-waiting waiter, hands it `grant` (computed from
    /// its request) and schedules its wake-up; returns `false` if nobody
    /// waits.
    pub fn grant_front_with(&mut self, wakers: &mut Wakers, grant: impl FnOnce(R) -> G) -> bool {
        let Some(w) = self.waiting.pop_front() else {
            return false;
        };
        self.granted.push((w.ticket, grant(w.request)));
        if let Some(waker) = w.waker {
            wakers.0.push(waker);
        }
        true
    }

    /// [`grant_front_with`](Self::grant_front_with) with a fixed grant.
    pub fn grant_front(&mut self, wakers: &mut Wakers, grant: G) -> bool {
        self.grant_front_with(wakers, |_| grant)
    }

    /// Grants every waiter, in order.
    pub fn grant_all(&mut self, wakers: &mut Wakers, mut grant: impl FnMut(R) -> G) {
        while self.grant_front_with(wakers, &mut grant) {}
    }

    fn take_grant(&mut self, ticket: u64) -> Option<G> {
        let i = self.granted.iter().position(|(t, _)| *t == ticket)?;
        Some(self.granted.swap_remove(i).1)
    }

    fn remove(&mut self, ticket: u64) -> Option<R> {
        // Tickets increase along the queue, so a binary search finds it.
        let i = self
            .waiting
            .binary_search_by_key(&ticket, |w| w.ticket)
            .ok()?;
        self.waiting.remove(i).map(|w| w.request)
    }

    fn set_waker(&mut self, ticket: u64, waker: &Waker) {
        if let Ok(i) = self.waiting.binary_search_by_key(&ticket, |w| w.ticket) {
            let slot = &mut self.waiting[i].waker;
            match slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }
}

/// Why a waiter left without seeing a grant.
pub enum Cancelled<R, G> {
    /// It stopped waiting before anything was granted (timeout, or its
    /// session ended): here is what it had asked for.
    Waiting(R),
    /// It was granted `G` but dropped before seeing it: give it back.
    Granted(G),
}

/// Finds a wait queue inside an object's state.
pub type QueueOf<S, R, G> = fn(&mut S) -> &mut WaitQueue<R, G>;

/// Restores an object's state after a waiter left (see [`Cancelled`]).
pub type OnCancel<S, R, G> = fn(&mut S, Cancelled<R, G>, &mut Wakers);

/// One waiting call: resolves to `Some(grant)`, or `None` if its timeout
/// passed first.
pub struct Wait<S: 'static, R: 'static, G: 'static> {
    state: Arc<Mutex<S>>,
    ticket: u64,
    queue: QueueOf<S, R, G>,
    on_cancel: OnCancel<S, R, G>,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl<S, R, G> Wait<S, R, G> {
    /// Waits on the waiter `ticket` (already enqueued under `state`'s lock)
    /// for at most `timeout` (`None`: forever).
    pub fn new(
        state: Arc<Mutex<S>>,
        ticket: u64,
        queue: QueueOf<S, R, G>,
        on_cancel: OnCancel<S, R, G>,
        timeout: Option<Duration>,
    ) -> Self {
        Wait {
            state,
            ticket,
            queue,
            on_cancel,
            timeout,
            deadline: None,
            done: false,
        }
    }
}

impl<S, R, G> Future for Wait<S, R, G> {
    type Output = Option<G>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<G>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // The timer is made on first poll, inside the runtime, rather than
        // where the object's method built this future.
        if let (Some(t), None) = (this.timeout, &this.deadline) {
            this.deadline = Some(Box::pin(tokio::time::sleep_until(Instant::now() + t)));
        }
        let mut wakers = Wakers::new();
        let mut state = lock(&this.state);
        let queue = (this.queue)(&mut state);
        if let Some(grant) = queue.take_grant(this.ticket) {
            this.done = true;
            return Poll::Ready(Some(grant));
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.done = true;
                if let Some(request) = queue.remove(this.ticket) {
                    (this.on_cancel)(&mut state, Cancelled::Waiting(request), &mut wakers);
                }
                return Poll::Ready(None);
            }
        }
        queue.set_waker(this.ticket, cx.waker());
        Poll::Pending
    }
}

impl<S, R, G> Drop for Wait<S, R, G> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut wakers = Wakers::new();
        let mut state = lock(&self.state);
        let queue = (self.queue)(&mut state);
        let cancelled = match queue.take_grant(self.ticket) {
            Some(grant) => Some(Cancelled::Granted(grant)),
            None => queue.remove(self.ticket).map(Cancelled::Waiting),
        };
        if let Some(c) = cancelled {
            (self.on_cancel)(&mut state, c, &mut wakers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-permit lock on the engine, as the objects build them.
    #[derive(Default)]
    struct Gate {
        free: bool,
        holder: Option<u32>,
        queue: WaitQueue<u32, u32>,
    }

    fn queue(s: &mut Gate) -> &mut WaitQueue<u32, u32> {
        &mut s.queue
    }

    fn cancel(s: &mut Gate, c: Cancelled<u32, u32>, wakers: &mut Wakers) {
        if let Cancelled::Granted(_) = c {
            release(s, wakers);
        }
    }

    fn release(s: &mut Gate, wakers: &mut Wakers) {
        s.holder = None;
        let mut next = None;
        if s.queue.grant_front_with(wakers, |who| {
            next = Some(who);
            who
        }) {
            s.holder = next;
        } else {
            s.free = true;
        }
    }

    fn waiter(state: &Arc<Mutex<Gate>>, who: u32, t: Option<Duration>) -> Wait<Gate, u32, u32> {
        let ticket = lock(state).queue.enqueue(who);
        Wait::new(state.clone(), ticket, queue, cancel, t)
    }

    #[tokio::test]
    async fn grants_go_in_arrival_order() {
        let state = Arc::new(Mutex::new(Gate::default()));
        lock(&state).holder = Some(0);
        let a = tokio::spawn(waiter(&state, 1, None));
        let b = tokio::spawn(waiter(&state, 2, None));
        tokio::task::yield_now().await;
        release(&mut lock(&state), &mut Wakers::new());
        assert_eq!(a.await.unwrap(), Some(1));
        assert_eq!(lock(&state).holder, Some(1));
        release(&mut lock(&state), &mut Wakers::new());
        assert_eq!(b.await.unwrap(), Some(2));
    }

    #[tokio::test]
    async fn a_timed_out_waiter_leaves_the_queue() {
        let state = Arc::new(Mutex::new(Gate::default()));
        lock(&state).holder = Some(0);
        let got = waiter(&state, 1, Some(Duration::from_millis(1))).await;
        assert_eq!(got, None);
        assert!(lock(&state).queue.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_dropped_after_its_grant_gives_it_back() {
        let state = Arc::new(Mutex::new(Gate::default()));
        lock(&state).holder = Some(0);
        let first = waiter(&state, 1, None);
        let second = tokio::spawn(waiter(&state, 2, None));
        tokio::task::yield_now().await;
        // 1 is granted the gate but never polled again: dropping it must
        // pass the gate on to 2 instead of leaving it owned by nobody.
        release(&mut lock(&state), &mut Wakers::new());
        assert_eq!(lock(&state).holder, Some(1));
        drop(first);
        assert_eq!(second.await.unwrap(), Some(2));
        assert_eq!(lock(&state).holder, Some(2));
    }

    #[tokio::test]
    async fn a_waiter_dropped_while_waiting_is_forgotten() {
        let state = Arc::new(Mutex::new(Gate::default()));
        lock(&state).holder = Some(0);
        drop(waiter(&state, 1, None));
        assert!(lock(&state).queue.is_empty());
        release(&mut lock(&state), &mut Wakers::new());
        assert!(lock(&state).free);
    }
}
