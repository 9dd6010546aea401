//! `Lock`, `RLock`, `Semaphore` and `BoundedSemaphore`: one counting
//! semaphore with owners, on the fair waiting engine.
//!
//! * `acquire(blocking=True, timeout=None)` returns whether it acquired.
//!   `timeout=None` waits forever; a negative timeout means zero (the rule
//!   of `multiprocessing.synchronize`); a timeout with `blocking=False` is
//!   `ValueError`, as in `threading`. Waiters are served in arrival order:
//!   a release hands the unit straight to the longest waiter.
//! * The owner of an acquisition is the calling client thread
//!   ([`Owner`]). An `RLock` may be re-acquired by its owner; a `Lock` or
//!   an `RLock` may be released only by its owner (`RuntimeError: cannot
//!   release un-acquired lock`; `release unlocked lock` when nobody holds
//!   a `Lock`). This is stricter than `threading.Lock`, which any thread
//!   may release: on a server shared by many clients, a client that
//!   releases a lock another holds is a bug to report, not a hand-off to
//!   allow (use an `Event`, a `Semaphore` or a `Queue` to signal).
//! * `release(n=1)` on a semaphore; a `BoundedSemaphore` refuses to go
//!   above its initial value (`ValueError: Semaphore released too many
//!   times`).
//! * When a session ends, every unit its threads hold is released (see
//!   [`crate::session`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_proto::methods::builtin::SemaphoreMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::args::{bool_arg, int_arg, lock_timeout, Args};
use crate::errors::{runtime_error, value_error};
use crate::lock;
use crate::object::{CallContext, Owner, Reply, Return, SessionId, SharedObject};
use crate::wait::{Cancelled, Wait, WaitQueue, Wakers};

/// Which of the four it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemKind {
    /// `threading.Lock`.
    Lock,
    /// `threading.RLock`.
    RLock,
    /// `threading.Semaphore`.
    Semaphore,
    /// `threading.BoundedSemaphore`.
    BoundedSemaphore,
}

/// The state behind a [`SemaphoreObject`], shared with its waiting calls.
pub struct SemState {
    kind: SemKind,
    /// Units free now.
    value: u64,
    /// The initial value, for `BoundedSemaphore`.
    bound: u64,
    /// Who holds units, and how many (an `RLock`'s recursion depth).
    holders: Vec<(Owner, u64)>,
    /// Waiters ask on behalf of an owner and are granted one unit.
    waiters: WaitQueue<Owner, Owner>,
}

/// A lock or semaphore.
pub struct SemaphoreObject {
    state: Arc<Mutex<SemState>>,
}

fn queue(s: &mut SemState) -> &mut WaitQueue<Owner, Owner> {
    &mut s.waiters
}

fn on_cancel(s: &mut SemState, c: Cancelled<Owner, Owner>, wakers: &mut Wakers) {
    if let Cancelled::Granted(owner) = c {
        // Granted but never seen: give the unit back.
        s.take_units(owner, 1);
        s.value += 1;
        s.dispatch(wakers);
    }
}

impl SemState {
    fn add_holder(&mut self, owner: Owner, n: u64) {
        match self.holders.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, count)) => *count += n,
            None => self.holders.push((owner, n)),
        }
    }

    /// Removes up to `n` units from `owner`'s holding; returns how many.
    fn take_units(&mut self, owner: Owner, n: u64) -> u64 {
        let Some(i) = self.holders.iter().position(|(o, _)| *o == owner) else {
            return 0;
        };
        let took = n.min(self.holders[i].1);
        self.holders[i].1 -= took;
        if self.holders[i].1 == 0 {
            self.holders.remove(i);
        }
        took
    }

    /// Hands free units to waiters, in order.
    fn dispatch(&mut self, wakers: &mut Wakers) {
        while self.value > 0 {
            let Some(&owner) = self.waiters.front() else {
                break;
            };
            self.waiters.grant_front(wakers, owner);
            self.value -= 1;
            self.add_holder(owner, 1);
        }
    }

    /// Acquires at once if nobody waits and a unit is free (or `owner`
    /// already holds an `RLock`).
    fn try_acquire(&mut self, owner: Owner) -> bool {
        if self.kind == SemKind::RLock {
            if let Some((o, depth)) = self.holders.first_mut() {
                if *o == owner {
                    *depth += 1;
                    return true;
                }
            }
        }
        if self.value > 0 && self.waiters.is_empty() {
            self.value -= 1;
            self.add_holder(owner, 1);
            return true;
        }
        false
    }

    fn is_owned_by(&self, owner: Owner) -> bool {
        self.holders.iter().any(|(o, _)| *o == owner)
    }

    fn release(&mut self, owner: Owner, n: u64, wakers: &mut Wakers) -> Result<(), RemoteError> {
        match self.kind {
            SemKind::Lock => {
                if self.value > 0 {
                    return Err(runtime_error("release unlocked lock"));
                }
                if !self.is_owned_by(owner) {
                    return Err(runtime_error("cannot release un-acquired lock"));
                }
                self.holders.clear();
                self.value = 1;
            }
            SemKind::RLock => {
                match self.holders.first_mut() {
                    Some((o, depth)) if *o == owner => {
                        *depth -= 1;
                        if *depth > 0 {
                            return Ok(());
                        }
                    }
                    _ => return Err(runtime_error("cannot release un-acquired lock")),
                }
                self.holders.clear();
                self.value = 1;
            }
            SemKind::Semaphore | SemKind::BoundedSemaphore => {
                // Python's ints do not overflow; ours would wrap to 0 and
                // lose every unit, so a value past 2**64-1 is refused.
                let Some(after) = self.value.checked_add(n) else {
                    return Err(RemoteError::new(
                        ErrorKind::OverflowError,
                        format!(
                            "releasing {n} would take the semaphore's value past {}",
                            u64::MAX
                        ),
                    ));
                };
                if self.kind == SemKind::BoundedSemaphore && after > self.bound {
                    return Err(value_error("Semaphore released too many times"));
                }
                // The caller's own units first, then the longest-held
                // others': a unit is never released twice, so a session
                // ending later cannot over-release.
                let mut left = n - self.take_units(owner, n);
                while left > 0 && !self.holders.is_empty() {
                    let other = self.holders[0].0;
                    left -= self.take_units(other, left);
                }
                self.value = after;
            }
        }
        self.dispatch(wakers);
        Ok(())
    }

    fn release_session(&mut self, session: SessionId, wakers: &mut Wakers) {
        let mut freed = 0;
        self.holders.retain(|(o, n)| {
            if o.session == session {
                freed += n;
                false
            } else {
                true
            }
        });
        if freed == 0 {
            return;
        }
        self.value += match self.kind {
            // A lock's recursion depth is one unit.
            SemKind::Lock | SemKind::RLock => 1,
            _ => freed,
        };
        self.dispatch(wakers);
    }
}

impl SemaphoreObject {
    /// A new, free lock or semaphore with `value` units.
    pub fn new(kind: SemKind, value: u64) -> Self {
        SemaphoreObject {
            state: Arc::new(Mutex::new(SemState {
                kind,
                value,
                bound: value,
                holders: Vec::new(),
                waiters: WaitQueue::new(),
            })),
        }
    }

    /// `Lock()`.
    pub fn create_lock(_ctx: &CallContext<'_>, args: Args) -> Result<Self, RemoteError> {
        args.none("Lock")?;
        Ok(Self::new(SemKind::Lock, 1))
    }

    /// `RLock()`.
    pub fn create_rlock(_ctx: &CallContext<'_>, args: Args) -> Result<Self, RemoteError> {
        args.none("RLock")?;
        Ok(Self::new(SemKind::RLock, 1))
    }

    /// `Semaphore(value=1)`.
    pub fn create_semaphore(_ctx: &CallContext<'_>, args: Args) -> Result<Self, RemoteError> {
        Ok(Self::new(SemKind::Semaphore, initial(args, "Semaphore")?))
    }

    /// `BoundedSemaphore(value=1)`.
    pub fn create_bounded(_ctx: &CallContext<'_>, args: Args) -> Result<Self, RemoteError> {
        Ok(Self::new(
            SemKind::BoundedSemaphore,
            initial(args, "BoundedSemaphore")?,
        ))
    }

    /// Which kind it is.
    pub fn kind(&self) -> SemKind {
        lock(&self.state).kind
    }

    /// Whether `owner` holds it.
    pub fn is_owned_by(&self, owner: Owner) -> bool {
        lock(&self.state).is_owned_by(owner)
    }

    /// Acquires for `owner`: `Ok(true)` at once, or a future resolving to
    /// whether it acquired within `timeout`.
    pub fn acquire_for(
        &self,
        owner: Owner,
        blocking: bool,
        timeout: Option<Duration>,
    ) -> Result<Result<bool, Wait<SemState, Owner, Owner>>, RemoteError> {
        let mut s = lock(&self.state);
        if s.try_acquire(owner) {
            return Ok(Ok(true));
        }
        if !blocking || timeout == Some(Duration::ZERO) {
            return Ok(Ok(false));
        }
        let ticket = s.waiters.enqueue(owner);
        drop(s);
        Ok(Err(Wait::new(
            Arc::clone(&self.state),
            ticket,
            queue,
            on_cancel,
            timeout,
        )))
    }

    /// Releases every level `owner` holds (a `Condition` about to wait);
    /// returns the depth to restore, or `None` if `owner` holds nothing.
    pub fn release_all(&self, owner: Owner) -> Option<u64> {
        let mut wakers = Wakers::new();
        let mut s = lock(&self.state);
        let depth = match s.kind {
            SemKind::RLock => s
                .holders
                .iter()
                .find(|(o, _)| *o == owner)
                .map(|(_, d)| *d)?,
            _ => {
                if !s.is_owned_by(owner) {
                    return None;
                }
                1
            }
        };
        s.take_units(owner, depth);
        s.value += 1;
        s.dispatch(&mut wakers);
        Some(depth)
    }

    /// Re-acquires for `owner` after a `Condition` wait, restoring `depth`.
    pub async fn restore(self: Arc<Self>, owner: Owner, depth: u64) {
        let acquired = match self.acquire_for(owner, true, None) {
            Ok(Ok(true)) => true,
            Ok(Err(wait)) => wait.await.is_some(),
            _ => false,
        };
        if acquired && depth > 1 {
            let mut s = lock(&self.state);
            s.take_units(owner, 1);
            s.add_holder(owner, depth);
        }
    }

    /// Releases for `owner`.
    pub fn release_for(&self, owner: Owner, n: u64) -> Result<(), RemoteError> {
        let mut wakers = Wakers::new();
        let mut s = lock(&self.state);
        s.release(owner, n, &mut wakers)
    }

    fn acquire(&self, ctx: &CallContext<'_>, args: Args) -> Reply {
        let [blocking, timeout] = match args.bind("acquire", ["blocking", "timeout"], 0) {
            Ok(a) => a,
            Err(e) => return Reply::err(e),
        };
        let blocking = bool_arg(blocking.as_ref(), true);
        if !blocking
            && matches!(&timeout, Some(t) if t.as_float() != Some(-1.0) && *t != Value::None)
        {
            return Reply::err(value_error(
                "can't specify a timeout for a non-blocking call",
            ));
        }
        let timeout = match lock_timeout(timeout.as_ref()) {
            Ok(t) => t,
            Err(e) => return Reply::err(e),
        };
        ctx.track_owner();
        match self.acquire_for(ctx.owner(), blocking, timeout) {
            Err(e) => Reply::err(e),
            Ok(Ok(got)) => Reply::ok(got),
            Ok(Err(wait)) => Reply::pending(async move {
                Ok::<Return, RemoteError>(Value::Bool(wait.await.is_some()).into())
            }),
        }
    }
}

fn initial(args: Args, name: &str) -> Result<u64, RemoteError> {
    let [value] = args.bind(name, ["value"], 0)?;
    let v = match value {
        Some(v) => int_arg(&v)?,
        None => 1,
    };
    u64::try_from(v).map_err(|_| value_error("semaphore initial value must be >= 0"))
}

impl SharedObject for SemaphoreObject {
    fn methods() -> &'static [MethodSpec] {
        SemaphoreMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = SemaphoreMethod::from_name(method) else {
            return Reply::no_such_method("lock", method);
        };
        match m {
            SemaphoreMethod::Acquire | SemaphoreMethod::Enter => self.acquire(ctx, args),
            SemaphoreMethod::Release | SemaphoreMethod::Exit => {
                let kind = self.kind();
                let n = if matches!(kind, SemKind::Semaphore | SemKind::BoundedSemaphore)
                    && method == "release"
                {
                    match args.bind(method, ["n"], 0) {
                        Ok([None]) => 1,
                        Ok([Some(n)]) => match int_arg(&n) {
                            Ok(n) if n >= 1 => n as u64,
                            Ok(_) => return Reply::err(value_error("n must be one or more")),
                            Err(e) => return Reply::err(e),
                        },
                        Err(e) => return Reply::err(e),
                    }
                } else {
                    if method == "release" {
                        if let Err(e) = args.none(method) {
                            return Reply::err(e);
                        }
                    }
                    1
                };
                self.release_for(ctx.owner(), n)
                    .map(|()| Value::None)
                    .into()
            }
            SemaphoreMethod::Locked => match args.none(method) {
                Ok(()) => Reply::ok(lock(&self.state).value == 0),
                Err(e) => Reply::err(e),
            },
        }
    }

    fn repr(&self) -> Option<String> {
        let s = lock(&self.state);
        let state = match s.kind {
            SemKind::Lock => (if s.value == 0 { "locked" } else { "unlocked" }).to_owned(),
            SemKind::RLock => format!(
                "{} count={}",
                if s.value == 0 { "locked" } else { "unlocked" },
                s.holders.first().map_or(0, |(_, d)| *d)
            ),
            SemKind::Semaphore => format!("value={}", s.value),
            SemKind::BoundedSemaphore => format!("value={}/{}", s.value, s.bound),
        };
        Some(format!(
            "<{:?} object, {state}, waiters={}>",
            s.kind,
            s.waiters.len()
        ))
    }

    fn release_session(&self, session: SessionId) {
        let mut wakers = Wakers::new();
        lock(&self.state).release_session(session, &mut wakers);
    }
}

/// A lock or semaphore comes back free, with its initial value: who held
/// it did not survive the restart.
impl crate::persist::Durable for SemaphoreObject {
    const JOURNALING: crate::persist::Journaling = crate::persist::Journaling::Initial;

    fn init(&self) -> Args {
        let s = lock(&self.state);
        match s.kind {
            SemKind::Lock | SemKind::RLock => Args::default(),
            SemKind::Semaphore | SemKind::BoundedSemaphore => {
                Args::positional(vec![Value::Int(i64::try_from(s.bound).unwrap_or(i64::MAX))])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::{settle, Harness};
    use mp_proto::ErrorKind;

    fn call(h: &Harness, o: &SemaphoreObject, thread: u64, m: &str, a: Vec<Value>) -> Reply {
        o.call(&h.ctx_on(thread), m, Args::positional(a))
    }

    #[tokio::test]
    async fn lock_owner_rules() {
        let h = Harness::new();
        let l = SemaphoreObject::new(SemKind::RLock, 1);
        assert_eq!(
            settle(call(&h, &l, 1, "acquire", vec![])).await.unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            settle(call(&h, &l, 1, "acquire", vec![])).await.unwrap(),
            Value::Bool(true)
        );
        // Another thread neither gets it nor may release it.
        assert_eq!(
            settle(call(&h, &l, 2, "acquire", vec![false.into()]))
                .await
                .unwrap(),
            Value::Bool(false)
        );
        let e = settle(call(&h, &l, 2, "release", vec![]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::RuntimeError, "cannot release un-acquired lock")
        );
        settle(call(&h, &l, 1, "release", vec![])).await.unwrap();
        settle(call(&h, &l, 1, "release", vec![])).await.unwrap();
        assert!(settle(call(&h, &l, 1, "release", vec![])).await.is_err());

        let plain = SemaphoreObject::new(SemKind::Lock, 1);
        settle(call(&h, &plain, 1, "acquire", vec![]))
            .await
            .unwrap();
        // A negative timeout means "do not wait".
        assert_eq!(
            settle(call(
                &h,
                &plain,
                2,
                "acquire",
                vec![true.into(), (-5).into()]
            ))
            .await
            .unwrap(),
            Value::Bool(false)
        );
        // Only the owner may release it, unlike threading.Lock.
        let e = settle(call(&h, &plain, 2, "release", vec![]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::RuntimeError, "cannot release un-acquired lock")
        );
        settle(call(&h, &plain, 1, "release", vec![]))
            .await
            .unwrap();
        let e = settle(call(&h, &plain, 2, "release", vec![]))
            .await
            .unwrap_err();
        assert_eq!(e.message, "release unlocked lock");
        assert!(
            settle(call(&h, &plain, 2, "acquire", vec![false.into(), 1.into()]))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn waiters_are_served_in_order_and_timeouts_return_false() {
        let h = Harness::new();
        let l = SemaphoreObject::new(SemKind::Lock, 1);
        settle(call(&h, &l, 1, "acquire", vec![])).await.unwrap();
        let Reply::Pending(a) = call(&h, &l, 2, "acquire", vec![]) else {
            panic!()
        };
        let Reply::Pending(b) = call(&h, &l, 3, "acquire", vec![]) else {
            panic!()
        };
        let a = tokio::spawn(a);
        let b = tokio::spawn(b);
        tokio::task::yield_now().await;
        settle(call(&h, &l, 1, "release", vec![])).await.unwrap();
        assert!(a.await.is_ok());
        assert!(l.is_owned_by(Owner {
            session: h.session.id(),
            thread: 2
        }));
        settle(call(&h, &l, 2, "release", vec![])).await.unwrap();
        assert!(b.await.is_ok());
        let t = settle(call(&h, &l, 4, "acquire", vec![true.into(), 0.01.into()])).await;
        assert_eq!(t.unwrap(), Value::Bool(false));
    }

    #[tokio::test]
    async fn bounded_semaphore_and_session_release() {
        let h = Harness::new();
        let s = SemaphoreObject::new(SemKind::BoundedSemaphore, 2);
        settle(call(&h, &s, 1, "acquire", vec![])).await.unwrap();
        settle(call(&h, &s, 1, "release", vec![])).await.unwrap();
        let e = settle(call(&h, &s, 1, "release", vec![]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::ValueError, "Semaphore released too many times")
        );
        settle(call(&h, &s, 1, "acquire", vec![])).await.unwrap();
        settle(call(&h, &s, 2, "acquire", vec![])).await.unwrap();
        assert_eq!(lock(&s.state).value, 0);
        s.release_session(h.session.id());
        assert_eq!(lock(&s.state).value, 2);
    }
}
