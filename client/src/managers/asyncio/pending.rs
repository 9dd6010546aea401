//! The future of one async call ([`Pending`]) and how a call is made
//! ([`CallKind`]): what it waits for, and what dropping it does.
//!
//! Each `poll` runs the blocking client's reading rules for a task
//! (`managers::client::tasks`): it finds its answer, or reads answers
//! itself when nobody else is reading, or leaves its waker for whoever
//! does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use mp_proto::message::Target;
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::Value;

use crate::managers::client::tasks::TaskCall;
use crate::managers::client::undo::{Undo, ANY_OWNER};
use crate::managers::client::{ManagerClient, Return};
use crate::managers::error::ManagerError;

/// How a call is made and what its dropping does.
#[derive(Clone, Copy, Debug)]
pub(in crate::managers) struct CallKind {
    /// The method may wait on the server: dropping its future sends a
    /// `cancel`, and its task never polls the connection for the answer.
    pub(in crate::managers) blocking: bool,
    /// The owner number the server records (for locks).
    pub(in crate::managers) thread: u64,
    /// What to give back when its answer comes after its future was
    /// dropped.
    pub(in crate::managers) undo: Undo,
}

impl CallKind {
    /// A call that never waits on the server and takes nothing.
    pub(in crate::managers) fn quick() -> CallKind {
        CallKind {
            blocking: false,
            thread: ANY_OWNER,
            undo: Undo::Nothing,
        }
    }
}

/// The future of one call's answer. Dropping it before the answer forgets
/// the call and, for a blocking one, cancels it on the server.
pub(in crate::managers) struct Pending {
    pub(super) client: ManagerClient,
    pub(super) call: TaskCall,
    pub(super) kind: CallKind,
    pub(super) done: bool,
}

impl Future for Pending {
    type Output = Result<Return, ManagerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let polled = this.client.poll_answer(&this.call, cx);
        if polled.is_ready() {
            this.done = true;
        }
        polled
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let in_flight = self.client.abandon(&self.call, self.kind.undo);
        if in_flight && self.kind.blocking {
            let rid = i64::try_from(self.call.id).unwrap_or(i64::MAX);
            self.client.send_and_forget(
                Target::Server,
                ServerMethod::Cancel.name(),
                vec![Value::Int(rid)],
                ANY_OWNER,
            );
        }
    }
}
