//! Giving back what a call took when nobody will look at its answer: an
//! async call whose future was dropped after its request went out (see
//! `managers::asyncio`'s cancellation safety), and the references its
//! answer brought. The blocking client never abandons a call.

use mp_proto::message::{Kwargs, Outcome, Target};
use mp_proto::methods::builtin::{QueueMethod, SemaphoreMethod, ServerMethod};
use mp_proto::{ObjectId, Value};

use super::{encode_request_as, id_value, ManagerClient};

/// The owner number of calls that own nothing.
pub(in crate::managers) const ANY_OWNER: u64 = 0;

/// What to do with the answer of a call whose future was dropped first:
/// give back what it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "asyncio"), allow(dead_code))]
pub(in crate::managers) enum Undo {
    /// Nothing was taken (or nothing can be given back).
    Nothing,
    /// A queue `get`: the item goes back to the front (`_unget`).
    Unget(ObjectId),
    /// An `acquire` (or a condition's `wait`, which re-acquires): a
    /// `True` answer means it is held by `thread`, so release it.
    Release {
        /// The lock, semaphore or condition.
        object: ObjectId,
        /// The owner the acquisition was made for.
        thread: u64,
        /// Release whatever the answer (a condition's `wait` holds the
        /// lock again whether or not it was notified).
        always: bool,
    },
}

impl ManagerClient {
    /// Sends a request whose answer nobody awaits (a dropped proxy's
    /// `decref`, a guard's `release`, a `cancel`): a failure means the
    /// connection is gone, and the server released what it held with it.
    pub(in crate::managers) fn send_and_forget(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        thread: u64,
    ) {
        let id = self.next_id();
        let mut frame = Vec::with_capacity(64);
        if encode_request_as(&mut frame, id, target, method, args, Kwargs::new(), thread).is_ok() {
            // No slot: its answer is read and dropped.
            let _ = self.send(&frame, &[]);
        }
    }

    /// Gives back what an abandoned call's `outcome` took.
    pub(in crate::managers) fn give_back(&self, undo: Undo, outcome: Outcome) {
        match (undo, outcome) {
            (Undo::Unget(object), Outcome::Return(item)) => {
                let tokens = tokens_in(&item);
                self.send_and_forget(
                    Target::Object(object),
                    QueueMethod::Unget.name(),
                    vec![item],
                    ANY_OWNER,
                );
                // The item's proxies came with references of this
                // connection; the queue now holds its own.
                self.decref_all(tokens);
            }
            (
                Undo::Release {
                    object,
                    thread,
                    always,
                },
                Outcome::Return(held),
            ) if always || held == Value::Bool(true) => self.send_and_forget(
                Target::Object(object),
                SemaphoreMethod::Release.name(),
                vec![],
                thread,
            ),
            // A new object (a `create`, a `lookup`, a method returning
            // one) or a value holding proxies came with references of
            // this connection that no proxy will own.
            (_, Outcome::Proxy(info)) => self.decref_all([info.token.id]),
            (_, Outcome::Return(value)) => self.decref_all(tokens_in(&value)),
            (_, Outcome::Error(_)) => {}
        }
    }

    /// Drops this connection's reference to each of `ids`.
    fn decref_all(&self, ids: impl IntoIterator<Item = ObjectId>) {
        for id in ids {
            self.send_and_forget(
                Target::Server,
                ServerMethod::Decref.name(),
                vec![id_value(id)],
                ANY_OWNER,
            );
        }
    }
}

/// The ids of the proxy tokens inside `value`.
fn tokens_in(value: &Value) -> Vec<ObjectId> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Proxy(t) => found.push(t.id),
            Value::List(items) | Value::Tuple(items) => stack.extend(items.iter()),
            Value::Dict(map) => {
                for (k, v) in map.iter() {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    found
}
