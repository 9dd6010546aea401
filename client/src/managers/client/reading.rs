//! The reading role of a connection, shared by every caller waiting on it
//! — threads of the blocking client and tasks of the async one alike
//! ("leader/followers").
//!
//! Whoever waits for an answer and finds the read half free (`State::
//! reader`) takes it, reads answers, and hands each to its caller: a
//! thread is woken on its condition variable, a task through its waker.
//! When its own answer arrives it puts the read half back and hands the
//! role on ([`ManagerClient::hand_on`]) so that a call still waiting
//! always has someone reading for it:
//!
//! 1. a thread asleep waiting is woken (it reads with a blocking `read`);
//! 2. else a task waiting on a quick call is woken to poll for answers;
//! 3. else (only tasks of calls that may wait long, or dropped calls
//!    whose answers must be given back) the connection's *parker* thread
//!    reads: a task must not block its runtime's thread in `read`, and a
//!    shared-memory channel wakes its reader through a futex no runtime
//!    can poll.
//!
//! A task holds the role only inside one `poll` (see
//! `managers::asyncio::pending`), never across an `.await`, so a dropped
//! future never keeps it; a task woken to take it but dropped first hands
//! it on from its `Drop`.

use std::io::BufReader;
use std::sync::{Arc, Condvar, PoisonError, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use mp_proto::codec::decode;
use mp_proto::frame::read_frame;
use mp_proto::message::{Outcome, Response, CONNECTION_ID};
use mp_sys::lock;
use mp_sys::spin::Spun;

use super::stream::Stream;
use super::undo::Undo;
use super::{Inner, ManagerClient, Return, State};
use crate::managers::error::ManagerError;

/// Who waits for a call's answer.
pub(super) enum Waiter {
    /// A thread, asleep on its condition variable while the slot says
    /// `waiting`.
    Thread(Arc<Condvar>),
    /// A task: its waker while it waits. A `quick` call's task takes the
    /// reading role and polls for answers; a call that may wait long
    /// leaves the reading to a thread.
    #[cfg_attr(not(feature = "asyncio"), allow(dead_code))]
    Task { waker: Option<Waker>, quick: bool },
}

/// A call waiting for its answer.
pub(super) struct Slot {
    pub(super) answer: Option<Outcome>,
    pub(super) waiter: Waiter,
    /// Whether a `Thread` waiter sleeps now: a wake-up is a system call,
    /// so only a sleeping thread gets one.
    pub(super) waiting: bool,
    /// The connection generation its request went out on: after a
    /// reconnection no answer to it can come.
    pub(super) generation: u64,
    /// Its future was dropped: what to give back when the answer comes.
    pub(super) abandoned: Option<Undo>,
}

/// What to do once the state's lock is released.
#[must_use]
pub(super) enum After {
    Nothing,
    /// Wake a task (its answer came, or it takes over reading).
    Wake(Waker),
    /// Give back what an abandoned call took.
    GiveBack(Undo, Outcome),
}

impl After {
    fn and(self, other: After) -> [After; 2] {
        [self, other]
    }
}

impl ManagerClient {
    /// Does what `after` says; never with the state locked (giving back
    /// writes requests).
    pub(super) fn after(&self, after: After) {
        match after {
            After::Nothing => {}
            After::Wake(waker) => waker.wake(),
            After::GiveBack(undo, outcome) => self.give_back(undo, outcome),
        }
    }

    /// Takes in one frame read by the holder of the reading role.
    pub(super) fn take_in(
        &self,
        state: &mut State,
        frame: Result<Option<Vec<u8>>, mp_proto::frame::FrameError>,
    ) -> After {
        let response = match frame {
            Ok(Some(bytes)) => decode::<Response>(&bytes).map_err(|e| e.to_string()),
            Ok(None) => Err("the server closed the connection".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let Response { id, outcome } = match response {
            Ok(r) => r,
            Err(why) => {
                self.kill(state, why);
                return After::Nothing;
            }
        };
        let Some(slot) = state.slots.get_mut(&id) else {
            // The server's last word before it closes: every call in
            // flight fails with it.
            if id == CONNECTION_ID {
                if let Outcome::Error(e) = outcome {
                    self.kill(state, e.to_string());
                }
            }
            // Otherwise a call forgotten meanwhile (a decref's, a
            // cancel's).
            return After::Nothing;
        };
        if let Some(undo) = slot.abandoned {
            state.slots.remove(&id);
            return After::GiveBack(undo, outcome);
        }
        slot.answer = Some(outcome);
        match &mut slot.waiter {
            Waiter::Thread(wake) => {
                if slot.waiting {
                    wake.notify_one();
                }
                After::Nothing
            }
            Waiter::Task { waker, .. } => waker.take().map_or(After::Nothing, After::Wake),
        }
    }

    /// Called when the read half is back in `state` and its last holder
    /// (or a task woken to take it) leaves: makes sure that while a call
    /// still waits someone reads (see the module's rules). `spinners`
    /// says whether a task may be woken to poll; the call `skip` is the
    /// one leaving.
    pub(super) fn hand_on(&self, state: &mut State, skip: u64, spinners: bool) -> After {
        if state.reader.is_none() || state.dead.is_some() {
            return After::Nothing;
        }
        let mut quick = None;
        // Calls only the parker reads for need it; they are never looked
        // at one by one here (see `slots.rs`).
        let mut park = state.slots.has_parked();
        for (id, slot) in state.slots.readers() {
            if id == skip || slot.answer.is_some() {
                continue;
            }
            match &slot.waiter {
                Waiter::Thread(wake) if slot.waiting => {
                    wake.notify_one();
                    return After::Nothing;
                }
                // Between its looks at the state: it will look again.
                Waiter::Thread(_) => {}
                Waiter::Task {
                    waker: Some(_),
                    quick: true,
                } if spinners => {
                    quick.get_or_insert(id);
                }
                Waiter::Task { waker: Some(_), .. } => park = true,
                // Not polled yet: it will find the read half itself.
                Waiter::Task { waker: None, .. } => {}
            }
        }
        if let Some(id) = quick {
            if let Some(Slot {
                waiter: Waiter::Task { waker, .. },
                ..
            }) = state.slots.get_mut(&id)
            {
                if let Some(waker) = waker.take() {
                    state.nominee = Some(id);
                    return After::Wake(waker);
                }
            }
        }
        if park {
            self.inner.parker.request(&self.inner);
        }
        After::Nothing
    }

    /// Marks the connection dead for `why`: every waiting call fails, and
    /// reconnection starts if it is on.
    pub(super) fn kill(&self, state: &mut State, why: String) {
        if state.dead.is_some() {
            return;
        }
        tracing::debug!(address = %self.inner.address, reason = %why, "manager connection lost");
        state.dead = Some(why.clone());
        state.last_loss = why.clone();
        if let Some(r) = &state.reader {
            r.get_ref().shutdown();
        }
        // Abandoned calls will get no answer: nothing to give back.
        state.slots.forget_abandoned();
        for slot in state.slots.values_mut() {
            match &mut slot.waiter {
                Waiter::Thread(wake) => wake.notify_one(),
                Waiter::Task { waker, .. } => {
                    if let Some(w) = waker.take() {
                        w.wake();
                    }
                }
            }
        }
        self.start_reconnecting(state, why);
        if !state.reconnecting {
            state.wake_watchers();
        }
    }

    /// Waits for the answer to `id`, reading the socket when nobody else is
    /// (polling it for up to `spin` first). With `sent`, the round trip
    /// teaches the connection whether polling pays.
    pub(super) fn wait(
        &self,
        id: u64,
        wake: &Condvar,
        spin: Duration,
        sent: Option<Instant>,
    ) -> Result<Return, ManagerError> {
        let inner = &*self.inner;
        let mut state = lock(&inner.state);
        loop {
            if let Some(answer) = state.slots.get_mut(&id).and_then(|s| s.answer.take()) {
                state.slots.remove(&id);
                if let Some(sent) = sent {
                    state.spin.record(spin, sent.elapsed());
                }
                let after = self.hand_on(&mut state, id, true);
                drop(state);
                self.after(after);
                return Self::outcome(answer);
            }
            let current = state.slots.get(&id).map(|s| s.generation) == Some(state.generation);
            if let Some(why) = state
                .dead
                .as_ref()
                .or((!current).then_some(&state.last_loss))
            {
                let why = why.clone();
                state.slots.remove(&id);
                return Err(ManagerError::ConnectionLost(why));
            }
            let Some(mut reader) = state.reader.take() else {
                if let Some(slot) = state.slots.get_mut(&id) {
                    slot.waiting = true;
                }
                state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                if let Some(slot) = state.slots.get_mut(&id) {
                    slot.waiting = false;
                }
                continue;
            };
            let generation = state.generation;
            drop(state);
            let spun = if reader.buffer().is_empty() {
                reader.get_ref().spin_until_readable(spin)
            } else {
                Spun::Skipped
            };
            let frame = read_frame(&mut reader, inner.max_frame);
            state = lock(&inner.state);
            if state.generation != generation {
                // Reconnected meanwhile: this reader belongs to the old
                // connection, and whatever it read answers nothing now.
                continue;
            }
            state.reader = Some(reader);
            if spun == Spun::Contended {
                state.spin.contended();
            }
            let after = self.take_in(&mut state, frame);
            if !matches!(after, After::Nothing) {
                drop(state);
                self.after(after);
                state = lock(&inner.state);
            }
        }
    }

    pub(in crate::managers) fn outcome(outcome: Outcome) -> Result<Return, ManagerError> {
        match outcome {
            Outcome::Return(v) => Ok(Return::Value(v)),
            Outcome::Proxy(p) => Ok(Return::Proxy(p)),
            Outcome::Error(e) => Err(ManagerError::Remote(e)),
        }
    }
}

impl State {
    /// Wakes the tasks waiting for the connection to come back or close
    /// for good.
    pub(super) fn wake_watchers(&mut self) {
        for w in self.watchers.drain(..) {
            w.wake();
        }
    }
}

/// The connection's parker: a thread, started on first need, that reads
/// with a blocking `read` when only tasks wait and none should poll
/// (see the module's rules). It holds the connection only while it
/// hands an answer over, so it never keeps a dropped client open.
#[derive(Default)]
pub(super) struct Parker {
    cell: Arc<ParkerCell>,
}

#[derive(Default)]
struct ParkerCell {
    flags: std::sync::Mutex<ParkerFlags>,
    wake: Condvar,
}

#[derive(Default)]
struct ParkerFlags {
    /// Someone asked it to read.
    requested: bool,
    /// Its thread runs.
    alive: bool,
    /// It sleeps on `wake`.
    sleeping: bool,
    /// The client is gone: the thread ends.
    closed: bool,
}

impl Parker {
    /// Asks the parker to take the reading role (called with the state
    /// locked; the parker locks the state only without its own lock).
    fn request(&self, inner: &Arc<Inner>) {
        let mut flags = lock(&self.cell.flags);
        if flags.closed {
            return;
        }
        flags.requested = true;
        if flags.sleeping {
            self.cell.wake.notify_one();
        } else if !flags.alive {
            let (weak, cell) = (Arc::downgrade(inner), Arc::clone(&self.cell));
            let spawned = std::thread::Builder::new()
                .name("mp-manager-parker".into())
                .spawn(move || park_loop(weak, cell));
            match spawned {
                Ok(_) => flags.alive = true,
                // Nobody could read for the tasks that wait: the answers
                // to them would never come.
                Err(e) => {
                    tracing::error!(error = %e, "no thread to read manager answers");
                    flags.requested = false;
                }
            }
        }
    }

    /// The client is gone: ends the thread.
    pub(super) fn close(&self) {
        let mut flags = lock(&self.cell.flags);
        flags.closed = true;
        self.cell.wake.notify_one();
    }
}

/// The parker's body.
fn park_loop(weak: Weak<Inner>, cell: Arc<ParkerCell>) {
    loop {
        {
            let mut flags = lock(&cell.flags);
            while !flags.requested && !flags.closed {
                flags.sleeping = true;
                flags = cell
                    .wake
                    .wait(flags)
                    .unwrap_or_else(PoisonError::into_inner);
                flags.sleeping = false;
            }
            if flags.closed {
                flags.alive = false;
                return;
            }
            flags.requested = false;
        }
        let Some(client) = weak.upgrade().map(|inner| ManagerClient { inner }) else {
            return;
        };
        let mut state = lock(&client.inner.state);
        if state.dead.is_some() {
            continue;
        }
        // Someone else took the role meanwhile: they hand it on.
        let Some(mut reader) = state.reader.take() else {
            continue;
        };
        let (generation, max_frame) = (state.generation, client.inner.max_frame);
        let spin = state.spin.max();
        drop(state);
        // Only the weak handle while blocked: dropping the last client
        // shuts the connection down, which ends this read.
        drop(client);
        // Poll before sleeping in `read`, as the blocking client does: a
        // busy connection's next answer is usually on its way.
        if reader.buffer().is_empty() {
            let _ = reader.get_ref().spin_until_readable(spin);
        }
        let frame = read_frame(&mut reader, max_frame);
        let Some(client) = weak.upgrade().map(|inner| ManagerClient { inner }) else {
            return;
        };
        let mut state = lock(&client.inner.state);
        if state.generation != generation {
            continue;
        }
        state.reader = Some(reader);
        let first = client.take_in(&mut state, frame);
        // On a channel a woken task polls, cheaper than this thread's
        // futex; on a socket tasks poll only while polling pays, so this
        // thread reads on while only tasks wait, rather than wake one
        // that would hand reading straight back.
        let spinners = client.uses_shared_memory();
        let next = client.hand_on(&mut state, 0, spinners);
        drop(state);
        for after in first.and(next) {
            client.after(after);
        }
    }
}

/// Reads nothing, just looks: whether `reader` has an answer to read now,
/// polling for up to `spin`.
pub(super) fn readable(reader: &BufReader<Stream>, spin: Duration) -> (bool, Spun) {
    if !reader.buffer().is_empty() {
        return (true, Spun::Immediate);
    }
    // At least one look (a zero spin would skip it).
    let spun = reader
        .get_ref()
        .spin_until_readable(spin.max(Duration::from_nanos(1)));
    // `Skipped`: decrypted bytes already wait inside the TLS session.
    let ready = matches!(spun, Spun::Immediate | Spun::Ready | Spun::Skipped);
    (ready, spun)
}
