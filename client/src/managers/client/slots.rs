//! The calls of one connection that wait for their answers, indexed by
//! who may take the reading role: handing the role on (`reading.rs`'s
//! `hand_on`) looks only at threads and tasks of quick calls, never at
//! every waiting call, so ten thousand tasks blocked in `get` cost a
//! quick call on the same connection nothing.

use std::collections::HashMap;

use super::reading::{Slot, Waiter};
use super::undo::Undo;

/// The waiting calls by request id, in two maps: each call is in one.
/// A connection only threads use has nothing in `parked`, so its calls
/// cost one map as before the async client existed.
#[derive(Default)]
pub(super) struct Slots {
    /// The calls whose caller may read for the others: threads, and
    /// tasks of quick calls.
    readers: HashMap<u64, Slot>,
    /// The rest (tasks of calls that may wait long, abandoned calls):
    /// only the parker ever reads for them.
    parked: HashMap<u64, Slot>,
}

/// Whether `slot`'s caller may take the reading role.
fn may_read(slot: &Slot) -> bool {
    slot.abandoned.is_none()
        && match slot.waiter {
            Waiter::Thread(_) => true,
            Waiter::Task { quick, .. } => quick,
        }
}

impl Slots {
    pub(super) fn insert(&mut self, id: u64, slot: Slot) {
        if may_read(&slot) {
            self.readers.insert(id, slot);
        } else {
            self.parked.insert(id, slot);
        }
    }

    pub(super) fn remove(&mut self, id: &u64) -> Option<Slot> {
        match self.readers.remove(id) {
            Some(slot) => Some(slot),
            None if self.parked.is_empty() => None,
            None => self.parked.remove(id),
        }
    }

    pub(super) fn get(&self, id: &u64) -> Option<&Slot> {
        match self.readers.get(id) {
            Some(slot) => Some(slot),
            None if self.parked.is_empty() => None,
            None => self.parked.get(id),
        }
    }

    /// The slot, to fill in its answer or waker. Whether its caller may
    /// read is fixed when it is inserted or [`abandon`](Self::abandon)ed.
    pub(super) fn get_mut(&mut self, id: &u64) -> Option<&mut Slot> {
        match self.readers.get_mut(id) {
            Some(slot) => Some(slot),
            None if self.parked.is_empty() => None,
            None => self.parked.get_mut(id),
        }
    }

    /// Marks the call `id` dropped by its caller: `undo` is done to its
    /// answer, which nobody waits for (the parker reads it).
    pub(super) fn abandon(&mut self, id: u64, undo: Undo) {
        if let Some(mut slot) = self.remove(&id) {
            slot.abandoned = Some(undo);
            slot.waiter = Waiter::Task {
                waker: None,
                quick: false,
            };
            self.parked.insert(id, slot);
        }
    }

    /// Forgets the abandoned calls (the connection died: no answer comes).
    pub(super) fn forget_abandoned(&mut self) {
        self.parked.retain(|_, slot| slot.abandoned.is_none());
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.readers.values_mut().chain(self.parked.values_mut())
    }

    /// The calls whose caller may take the reading role.
    pub(super) fn readers(&self) -> impl Iterator<Item = (u64, &Slot)> {
        self.readers.iter().map(|(id, slot)| (*id, slot))
    }

    /// Whether a call only the parker can read for waits (or has an
    /// answer its task has not taken yet).
    pub(super) fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar};

    use super::*;

    fn slot(waiter: Waiter) -> Slot {
        Slot {
            answer: None,
            waiter,
            waiting: false,
            generation: 0,
            abandoned: None,
        }
    }

    fn task(quick: bool) -> Waiter {
        Waiter::Task { waker: None, quick }
    }

    #[test]
    fn only_threads_and_quick_tasks_are_readers() {
        let mut slots = Slots::default();
        slots.insert(1, slot(Waiter::Thread(Arc::new(Condvar::new()))));
        slots.insert(2, slot(task(true)));
        for id in 3..1000 {
            slots.insert(id, slot(task(false)));
        }
        let mut readers: Vec<u64> = slots.readers().map(|(id, _)| id).collect();
        readers.sort();
        assert_eq!(readers, [1, 2]);
        assert!(slots.has_parked());

        slots.abandon(2, Undo::Nothing);
        let readers: Vec<u64> = slots.readers().map(|(id, _)| id).collect();
        assert_eq!(readers, [1]);
        slots.forget_abandoned();
        assert!(slots.get(&2).is_none());

        for id in 3..1000 {
            assert!(slots.remove(&id).is_some());
        }
        assert!(!slots.has_parked(), "only the thread is left");
        slots.remove(&1);
        assert_eq!(slots.readers().count(), 0);
    }
}
