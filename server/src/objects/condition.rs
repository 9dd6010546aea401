//! `Condition`: Python's `threading.Condition` (served through
//! `ConditionProxy`: `acquire`, `release`, `wait`, `notify`, `notify_all`;
//! `wait_for` runs client side, as in CPython).
//!
//! `Condition()` makes its own `RLock`; `Condition(lock)` with a proxy of a
//! shared `Lock` or `RLock` uses that object (and holds a reference to it).
//! `wait` and `notify` need the lock held by the caller
//! (`RuntimeError: cannot wait on un-acquired lock`). `wait(timeout)`
//! releases the lock fully, waits for a notification or the timeout,
//! re-acquires the lock (restoring an `RLock`'s depth) and returns whether
//! it was notified. A waiter cancelled after a notification passes it on
//! to the next waiter.

use std::sync::{Arc, Mutex};

use mp_proto::methods::builtin::ConditionMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::{RemoteError, Value};

use crate::args::{int_arg, lock_timeout, Args};
use crate::errors::{runtime_error, type_error};
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SessionId, SharedObject};
use crate::objects::semaphore::{SemKind, SemaphoreObject};
use crate::wait::{Cancelled, Wait, WaitQueue, Wakers};

/// Waiters for a notification.
pub struct CondState {
    waiters: WaitQueue<(), ()>,
}

fn queue(s: &mut CondState) -> &mut WaitQueue<(), ()> {
    &mut s.waiters
}

fn on_cancel(s: &mut CondState, c: Cancelled<(), ()>, wakers: &mut Wakers) {
    if let Cancelled::Granted(()) = c {
        s.waiters.grant_front(wakers, ());
    }
}

/// A shared condition variable.
pub struct ConditionObject {
    lock: Arc<SemaphoreObject>,
    /// The id of a shared lock given to the constructor, so session ends
    /// are forwarded to it; `None` for the condition's own lock.
    shared_lock: Option<mp_proto::ObjectId>,
    /// Keeps a given lock object alive while the condition is.
    lock_ref: Option<Held>,
    state: Arc<Mutex<CondState>>,
}

impl ConditionObject {
    /// `Condition(lock=None)`.
    pub fn create(ctx: &CallContext<'_>, args: Args) -> Result<ConditionObject, RemoteError> {
        let [given] = args.bind("Condition", ["lock"], 0)?;
        let (lock, shared_lock, lock_ref) = match given {
            None | Some(Value::None) => (
                Arc::new(SemaphoreObject::new(SemKind::RLock, 1)),
                None,
                None,
            ),
            Some(Value::Proxy(token)) => {
                let object = ctx.resolve(&token).ok_or_else(|| {
                    type_error("Condition(lock): the lock is not a live object of this server")
                })?;
                let lock = object
                    .into_any()
                    .downcast::<SemaphoreObject>()
                    .ok()
                    .filter(|l| matches!(l.kind(), SemKind::Lock | SemKind::RLock))
                    .ok_or_else(|| type_error("Condition(lock): lock must be a Lock or RLock"))?;
                let id = token.id;
                let held = ctx.hold(Value::Proxy(token))?;
                (lock, Some(id), Some(held))
            }
            Some(other) => {
                return Err(type_error(format!(
                    "Condition(lock): expected a Lock or RLock proxy, not {}",
                    other.type_name()
                )))
            }
        };
        Ok(ConditionObject {
            lock,
            shared_lock,
            lock_ref,
            state: Arc::new(Mutex::new(CondState {
                waiters: WaitQueue::new(),
            })),
        })
    }

    /// The kind of the lock it is built on (`RLock` for its own).
    pub fn lock_kind(&self) -> SemKind {
        self.lock.kind()
    }

    fn track(&self, ctx: &CallContext<'_>) {
        ctx.track_owner();
        if let Some(id) = self.shared_lock {
            ctx.track_owner_of(id);
        }
    }

    fn wait(&self, ctx: &CallContext<'_>, args: Args) -> Result<Reply, RemoteError> {
        let [timeout] = args.bind("wait", ["timeout"], 0)?;
        let timeout = lock_timeout(timeout.as_ref())?;
        let owner = ctx.owner();
        if !self.lock.is_owned_by(owner) {
            return Err(runtime_error("cannot wait on un-acquired lock"));
        }
        self.track(ctx);
        // Enqueue before releasing the lock, so a notify issued by whoever
        // takes the lock next cannot be missed.
        let ticket = lock(&self.state).waiters.enqueue(());
        let wait = Wait::new(Arc::clone(&self.state), ticket, queue, on_cancel, timeout);
        let depth = self.lock.release_all(owner).unwrap_or(1);
        let lock_obj = Arc::clone(&self.lock);
        Ok(Reply::pending(async move {
            let notified = wait.await.is_some();
            lock_obj.restore(owner, depth).await;
            Ok::<Return, RemoteError>(Value::Bool(notified).into())
        }))
    }

    fn notify(&self, ctx: &CallContext<'_>, n: Option<usize>) -> Result<(), RemoteError> {
        if !self.lock.is_owned_by(ctx.owner()) {
            return Err(runtime_error("cannot notify on un-acquired lock"));
        }
        let mut wakers = Wakers::new();
        let mut s = lock(&self.state);
        match n {
            Some(n) => {
                for _ in 0..n {
                    if !s.waiters.grant_front(&mut wakers, ()) {
                        break;
                    }
                }
            }
            None => s.waiters.grant_all(&mut wakers, |()| ()),
        }
        Ok(())
    }
}

impl SharedObject for ConditionObject {
    fn methods() -> &'static [MethodSpec] {
        ConditionMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = ConditionMethod::from_name(method) else {
            return Reply::no_such_method("Condition", method);
        };
        match m {
            ConditionMethod::Acquire
            | ConditionMethod::Release
            | ConditionMethod::Enter
            | ConditionMethod::Exit => {
                self.track(ctx);
                self.lock.call(ctx, method, args)
            }
            ConditionMethod::Wait => self.wait(ctx, args).unwrap_or_else(Reply::err),
            ConditionMethod::Notify => {
                let n = args.bind(method, ["n"], 0).and_then(|[n]| match n {
                    None => Ok(1),
                    Some(v) => int_arg(&v).map(|n| usize::try_from(n).unwrap_or(0)),
                });
                n.and_then(|n| self.notify(ctx, Some(n)))
                    .map(|()| Value::None)
                    .into()
            }
            ConditionMethod::NotifyAll => args
                .none(method)
                .and_then(|()| self.notify(ctx, None))
                .map(|()| Value::None)
                .into(),
        }
    }

    fn references(&self, out: &mut Vec<mp_proto::ObjectId>) {
        if let Some(held) = &self.lock_ref {
            out.extend_from_slice(held.referenced_ids());
        }
    }

    fn repr(&self) -> Option<String> {
        Some(format!(
            "<Condition({}, {})>",
            self.lock.repr().unwrap_or_default(),
            lock(&self.state).waiters.len()
        ))
    }

    fn release_session(&self, session: SessionId) {
        if self.shared_lock.is_none() {
            self.lock.release_session(session);
        }
    }
}

/// A condition comes back with the same lock, free, and no waiters.
impl crate::persist::Durable for ConditionObject {
    const JOURNALING: crate::persist::Journaling = crate::persist::Journaling::Initial;

    fn init(&self) -> Args {
        match &self.lock_ref {
            Some(token) => Args::positional(vec![token.value().clone()]),
            None => Args::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::{settle, Harness};

    #[tokio::test]
    async fn wait_and_notify() {
        let h = Harness::new();
        let c = ConditionObject::create(&h.ctx(), Args::default()).unwrap();
        let call = |t: u64, m: &str, a: Vec<Value>| c.call(&h.ctx_on(t), m, Args::positional(a));
        let e = settle(call(1, "wait", vec![])).await.unwrap_err();
        assert_eq!(e.message, "cannot wait on un-acquired lock");
        assert!(settle(call(1, "notify", vec![])).await.is_err());

        settle(call(1, "acquire", vec![])).await.unwrap();
        let Reply::Pending(waiting) = call(1, "wait", vec![]) else {
            panic!()
        };
        let waiting = tokio::spawn(waiting);
        tokio::task::yield_now().await;
        // Thread 1 released the lock while waiting: thread 2 can notify.
        settle(call(2, "acquire", vec![])).await.unwrap();
        settle(call(2, "notify", vec![])).await.unwrap();
        settle(call(2, "release", vec![])).await.unwrap();
        let r = waiting.await.unwrap();
        assert!(matches!(r, Ok(Return::Value(ref v)) if *v.value() == Value::Bool(true)));
        // Thread 1 holds the lock again after waking.
        assert!(c.lock.is_owned_by(h.ctx_on(1).owner()));
        // A wait that times out returns False, still re-acquiring.
        let r = settle(call(1, "wait", vec![0.01.into()])).await.unwrap();
        assert_eq!(r, Value::Bool(false));
        assert!(c.lock.is_owned_by(h.ctx_on(1).owner()));
    }
}
