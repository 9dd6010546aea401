//! `Event`: Python's `threading.Event` (served through `EventProxy`:
//! `is_set`, `set`, `clear`, `wait`).
//!
//! `wait(timeout=None)` returns `True` at once if the flag is set, else
//! waits for `set()` and returns `True`, or `False` when the timeout
//! passes first.

use std::sync::{Arc, Mutex};

use mp_proto::methods::builtin::EventMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::{RemoteError, Value};

use crate::args::{lock_timeout, Args};
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::wait::{Cancelled, Wait, WaitQueue, Wakers};

/// The flag and who waits for it.
pub struct EventState {
    flag: bool,
    waiters: WaitQueue<(), ()>,
}

fn queue(s: &mut EventState) -> &mut WaitQueue<(), ()> {
    &mut s.waiters
}

fn on_cancel(_: &mut EventState, _: Cancelled<(), ()>, _: &mut Wakers) {}

/// A shared event.
pub struct EventObject {
    state: Arc<Mutex<EventState>>,
}

impl EventObject {
    /// `Event()`.
    pub fn create(_ctx: &CallContext<'_>, args: Args) -> Result<EventObject, RemoteError> {
        args.none("Event")?;
        Ok(EventObject {
            state: Arc::new(Mutex::new(EventState {
                flag: false,
                waiters: WaitQueue::new(),
            })),
        })
    }

    fn wait(&self, args: Args) -> Result<Reply, RemoteError> {
        let [timeout] = args.bind("wait", ["timeout"], 0)?;
        let timeout = lock_timeout(timeout.as_ref())?;
        let mut s = lock(&self.state);
        if s.flag {
            return Ok(Reply::ok(true));
        }
        if timeout == Some(std::time::Duration::ZERO) {
            return Ok(Reply::ok(false));
        }
        let ticket = s.waiters.enqueue(());
        drop(s);
        let wait = Wait::new(Arc::clone(&self.state), ticket, queue, on_cancel, timeout);
        Ok(Reply::pending(async move {
            Ok::<Return, RemoteError>(Value::Bool(wait.await.is_some()).into())
        }))
    }
}

impl SharedObject for EventObject {
    fn methods() -> &'static [MethodSpec] {
        EventMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = EventMethod::from_name(method) else {
            return Reply::no_such_method("Event", method);
        };
        match m {
            EventMethod::IsSet => args
                .none(method)
                .map(|()| Value::Bool(lock(&self.state).flag))
                .into(),
            EventMethod::Set => args
                .none(method)
                .map(|()| {
                    let mut wakers = Wakers::new();
                    let mut s = lock(&self.state);
                    s.flag = true;
                    s.waiters.grant_all(&mut wakers, |()| ());
                    Value::None
                })
                .into(),
            EventMethod::Clear => args
                .none(method)
                .map(|()| {
                    lock(&self.state).flag = false;
                    Value::None
                })
                .into(),
            EventMethod::Wait => self.wait(args).unwrap_or_else(Reply::err),
        }
    }

    fn repr(&self) -> Option<String> {
        let s = lock(&self.state);
        Some(format!(
            "<Event object, {}>",
            if s.flag { "set" } else { "unset" }
        ))
    }
}

/// An event persists its flag (not its waiters).
impl crate::persist::Durable for EventObject {
    fn init(&self) -> Args {
        Args::default()
    }

    fn dump(&self) -> crate::persist::Dump {
        crate::persist::Dump {
            state: Value::Bool(lock(&self.state).flag),
            ..Default::default()
        }
    }

    fn settle(&self, _ctx: &CallContext<'_>, state: Value) -> Result<(), RemoteError> {
        lock(&self.state).flag = matches!(state, Value::Bool(true));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::{settle, Harness};

    #[tokio::test]
    async fn event_semantics() {
        let h = Harness::new();
        let e = EventObject::create(&h.ctx(), Args::default()).unwrap();
        assert_eq!(h.ok(&e, "is_set", vec![]), Value::Bool(false));
        assert_eq!(
            settle(h.call(&e, "wait", vec![0.01.into()])).await.unwrap(),
            Value::Bool(false)
        );
        let Reply::Pending(w) = h.call(&e, "wait", vec![]) else {
            panic!()
        };
        let w = tokio::spawn(w);
        tokio::task::yield_now().await;
        h.ok(&e, "set", vec![]);
        assert!(w.await.unwrap().is_ok());
        assert_eq!(h.ok(&e, "wait", vec![]), Value::Bool(true));
        h.ok(&e, "clear", vec![]);
        assert_eq!(h.ok(&e, "is_set", vec![]), Value::Bool(false));
    }
}
