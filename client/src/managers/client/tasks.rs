//! Calls made by async tasks (`managers::asyncio`) on the same connection,
//! slots and reading role as the blocking client's threads: a task's
//! future registers its call, and each `poll` either finds its answer,
//! or takes the reading role if it is free and reads (see `reading.rs`),
//! or leaves its waker for whoever reads.
//!
//! Runtime-agnostic (std's `Waker` only): a task never blocks in `read`.
//! A quick call's task polls the connection for its answer for up to the
//! connection's spin (as a blocking caller does before it sleeps), then
//! leaves the reading to a thread; a call that may wait long (a declared
//! `blocking` method) only looks.

#![cfg_attr(not(feature = "asyncio"), allow(dead_code))]

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mp_proto::frame::read_frame;
use mp_sys::lock;
use mp_sys::spin::Spun;

use super::reading::{readable, After, Slot, Waiter};
use super::undo::Undo;
use super::{ManagerClient, Return};
use crate::managers::error::ManagerError;

/// A task's call in flight, as its future keeps it.
pub(in crate::managers) struct TaskCall {
    /// The request id.
    pub(in crate::managers) id: u64,
    /// Whether the task may poll for the answer (the method never waits
    /// on the server).
    quick: bool,
    /// How long a poll may spin for it.
    spin: Duration,
    sent: Instant,
}

impl ManagerClient {
    /// Registers a task's call `id` before its request goes out.
    pub(in crate::managers) fn register_task(
        &self,
        id: u64,
        quick: bool,
    ) -> Result<TaskCall, ManagerError> {
        let mut state = lock(&self.inner.state);
        if let Some(why) = &state.dead {
            return Err(ManagerError::ConnectionLost(why.clone()));
        }
        let generation = state.generation;
        state.slots.insert(
            id,
            Slot {
                answer: None,
                waiter: Waiter::Task { waker: None, quick },
                waiting: false,
                generation,
                abandoned: None,
            },
        );
        // As for threads (`register`): always poll a channel, learn on a
        // socket.
        let spin = match quick {
            false => Duration::ZERO,
            true if self.uses_shared_memory() => state.spin.max(),
            true => state.spin.next_spin(),
        };
        Ok(TaskCall {
            id,
            quick,
            spin,
            sent: Instant::now(),
        })
    }

    /// Polls for the answer to `call`: `Ready` once it came (or the
    /// connection broke), reading for it when nobody else is.
    pub(in crate::managers) fn poll_answer(
        &self,
        call: &TaskCall,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Return, ManagerError>> {
        let inner = &*self.inner;
        let id = call.id;
        let started = Instant::now();
        let mut state = lock(&inner.state);
        if state.nominee == Some(id) {
            state.nominee = None;
        }
        loop {
            let st = &mut *state;
            let Some(slot) = st.slots.get_mut(&id) else {
                return Poll::Ready(Err(ManagerError::ConnectionLost(
                    st.dead.clone().unwrap_or_else(|| st.last_loss.clone()),
                )));
            };
            if let Some(answer) = slot.answer.take() {
                st.slots.remove(&id);
                if call.quick {
                    st.spin.record(call.spin, call.sent.elapsed());
                }
                let after = self.hand_on(&mut state, id, true);
                drop(state);
                self.after(after);
                return Poll::Ready(Self::outcome(answer));
            }
            let current = slot.generation == st.generation;
            if let Some(why) = st.dead.as_ref().or((!current).then_some(&st.last_loss)) {
                let why = why.clone();
                st.slots.remove(&id);
                return Poll::Ready(Err(ManagerError::ConnectionLost(why)));
            }
            let Some(mut reader) = st.reader.take() else {
                set_waker(slot, cx.waker());
                return Poll::Pending;
            };
            let generation = state.generation;
            drop(state);
            let left = call.spin.saturating_sub(started.elapsed());
            let (ready, spun) = readable(&reader, left);
            if !ready {
                state = lock(&inner.state);
                if state.generation == generation {
                    state.reader = Some(reader);
                }
                if spun == Spun::Contended {
                    state.spin.contended();
                }
                // Nothing came in time: leave reading to a thread, which
                // may sleep in `read`, and wait for the waker.
                if let Some(slot) = state.slots.get_mut(&id) {
                    set_waker(slot, cx.waker());
                }
                let after = self.hand_on(&mut state, 0, false);
                drop(state);
                self.after(after);
                return Poll::Pending;
            }
            let frame = read_frame(&mut reader, inner.max_frame);
            state = lock(&inner.state);
            if state.generation != generation {
                continue;
            }
            state.reader = Some(reader);
            let after = self.take_in(&mut state, frame);
            if !matches!(after, After::Nothing) {
                drop(state);
                self.after(after);
                state = lock(&inner.state);
            }
        }
    }

    /// Forgets a task's call whose future was dropped before its answer.
    /// Returns whether the call was still in flight on the server (so a
    /// `cancel` may be worth sending); an answer that already came is
    /// given back here, one that comes later by whoever reads it.
    pub(in crate::managers) fn abandon(&self, call: &TaskCall, undo: Undo) -> bool {
        let id = call.id;
        let mut state = lock(&self.inner.state);
        let nominated = state.nominee == Some(id);
        if nominated {
            state.nominee = None;
        }
        let mut in_flight = false;
        let mut given = None;
        let live = state.dead.is_none();
        let generation = state.generation;
        match state.slots.get_mut(&id) {
            Some(slot) if slot.answer.is_some() => {
                given = slot.answer.take().map(|a| (undo, a));
                state.slots.remove(&id);
            }
            Some(slot) if live && slot.generation == generation => {
                in_flight = true;
                // Even a call that takes nothing may answer with new
                // references (a `create`, a value holding proxies): its
                // answer is read and they are given back.
                state.slots.abandon(id, undo);
            }
            Some(_) => {
                state.slots.remove(&id);
            }
            None => {}
        }
        let after = if nominated || in_flight {
            self.hand_on(&mut state, id, true)
        } else {
            After::Nothing
        };
        drop(state);
        self.after(after);
        if let Some((undo, outcome)) = given {
            self.give_back(undo, outcome);
        }
        in_flight
    }

    /// Polls whether the connection is back in a generation after `seen`:
    /// `Ready(false)` if it will not come back (reconnection off or given
    /// up).
    pub(in crate::managers) fn poll_reconnected(
        &self,
        seen: u64,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        let mut state = lock(&self.inner.state);
        if state.dead.is_none() && state.generation != seen {
            return Poll::Ready(true);
        }
        if state.dead.is_some() && !state.reconnecting {
            return Poll::Ready(false);
        }
        if !state.watchers.iter().any(|w| w.will_wake(cx.waker())) {
            state.watchers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Leaves `waker` in `slot` for whoever delivers its answer.
fn set_waker(slot: &mut Slot, waker: &Waker) {
    if let Waiter::Task { waker: w, .. } = &mut slot.waiter {
        match w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }
}
