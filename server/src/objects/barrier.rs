//! `Barrier`: Python's `threading.Barrier` (served through `BarrierProxy`:
//! `wait`, `abort`, `reset`, and `parties`/`n_waiting`/`broken` read with
//! `__getattribute__`).
//!
//! `wait(timeout=None)` returns the caller's arrival index (`0` to
//! `parties - 1`); when the last party arrives the action runs, then all
//! are released together. A wait that times out — or whose session ends —
//! breaks the barrier, and every waiter then gets `BrokenBarrierError`,
//! as do later `wait`s until `reset()`.
//!
//! An action must run on the server, so it cannot be a client's function:
//! `Barrier(parties, action=...)` from a client is a `TypeError`; an
//! embedder gives a Rust action with [`BarrierObject::with_action`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_proto::methods::builtin::BarrierMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::args::{int_arg, lock_timeout, str_arg, Args};
use crate::errors::{attribute_error, type_error, value_error};
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::wait::{Cancelled, Wait, WaitQueue, Wakers};

/// Runs when the last party arrives; an error breaks the barrier.
pub type BarrierAction = Arc<dyn Fn() -> Result<(), RemoteError> + Send + Sync>;

/// The barrier's counters and waiters.
pub struct BarrierState {
    parties: u64,
    /// Arrived in this cycle.
    count: u64,
    broken: bool,
    /// Each waiter knows its index; it is granted `true` on release and
    /// `false` when the barrier breaks.
    waiters: WaitQueue<u64, bool>,
}

impl BarrierState {
    fn break_now(&mut self, wakers: &mut Wakers) {
        self.broken = true;
        self.count = 0;
        self.waiters.grant_all(wakers, |_| false);
    }
}

fn queue(s: &mut BarrierState) -> &mut WaitQueue<u64, bool> {
    &mut s.waiters
}

fn on_cancel(s: &mut BarrierState, c: Cancelled<u64, bool>, wakers: &mut Wakers) {
    // A waiter leaving early (timeout, session gone) breaks the barrier,
    // as a timeout does in Python; one leaving after release changes
    // nothing.
    if let Cancelled::Waiting(_) = c {
        s.break_now(wakers);
    }
}

fn broken() -> RemoteError {
    RemoteError::new(ErrorKind::BrokenBarrierError, "")
}

/// A shared barrier.
pub struct BarrierObject {
    state: Arc<Mutex<BarrierState>>,
    default_timeout: Option<Duration>,
    action: Option<BarrierAction>,
}

impl BarrierObject {
    /// `Barrier(parties, action=None, timeout=None)`.
    pub fn create(_ctx: &CallContext<'_>, args: Args) -> Result<BarrierObject, RemoteError> {
        let [parties, action, timeout] =
            args.bind("Barrier", ["parties", "action", "timeout"], 1)?;
        if !matches!(action, None | Some(Value::None)) {
            return Err(type_error(
                "Barrier(action=...): an action cannot be sent to the server; \
                 register a typeid with a Rust action instead",
            ));
        }
        let parties = int_arg(&parties.unwrap_or_default())?;
        let timeout = lock_timeout(timeout.as_ref())?;
        Self::with_action(parties, None, timeout)
    }

    /// A barrier for `parties` with an optional action run by the last
    /// arrival, and a default timeout for `wait`.
    pub fn with_action(
        parties: i64,
        action: Option<BarrierAction>,
        timeout: Option<Duration>,
    ) -> Result<BarrierObject, RemoteError> {
        let parties = u64::try_from(parties)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| value_error("parties must be > 0"))?;
        Ok(BarrierObject {
            state: Arc::new(Mutex::new(BarrierState {
                parties,
                count: 0,
                broken: false,
                waiters: WaitQueue::new(),
            })),
            default_timeout: timeout,
            action,
        })
    }

    fn wait(&self, args: Args) -> Result<Reply, RemoteError> {
        let [timeout] = args.bind("wait", ["timeout"], 0)?;
        let timeout = match timeout {
            None | Some(Value::None) => self.default_timeout,
            Some(t) => lock_timeout(Some(&t))?,
        };
        let mut wakers = Wakers::new();
        let mut s = lock(&self.state);
        if s.broken {
            return Err(broken());
        }
        let index = s.count;
        s.count += 1;
        if s.count == s.parties {
            if let Some(action) = &self.action {
                if let Err(e) = action() {
                    s.break_now(&mut wakers);
                    return Err(e);
                }
            }
            s.count = 0;
            s.waiters.grant_all(&mut wakers, |_| true);
            return Ok(Reply::ok(index as i64));
        }
        if timeout == Some(Duration::ZERO) {
            s.break_now(&mut wakers);
            return Err(broken());
        }
        let ticket = s.waiters.enqueue(index);
        drop(s);
        let wait = Wait::new(Arc::clone(&self.state), ticket, queue, on_cancel, timeout);
        Ok(Reply::pending(async move {
            match wait.await {
                Some(true) => Ok::<Return, RemoteError>(Value::Int(index as i64).into()),
                _ => Err(broken()),
            }
        }))
    }
}

impl SharedObject for BarrierObject {
    fn methods() -> &'static [MethodSpec] {
        BarrierMethod::TABLE
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let Some(m) = BarrierMethod::from_name(method) else {
            return Reply::no_such_method("Barrier", method);
        };
        match m {
            BarrierMethod::Wait => self.wait(args).unwrap_or_else(Reply::err),
            BarrierMethod::Abort => args
                .none(method)
                .map(|()| {
                    let mut wakers = Wakers::new();
                    lock(&self.state).break_now(&mut wakers);
                    Value::None
                })
                .into(),
            BarrierMethod::Reset => args
                .none(method)
                .map(|()| {
                    let mut wakers = Wakers::new();
                    let mut s = lock(&self.state);
                    // Current waiters get BrokenBarrierError; the barrier
                    // itself starts over, usable again.
                    s.waiters.grant_all(&mut wakers, |_| false);
                    s.broken = false;
                    s.count = 0;
                    Value::None
                })
                .into(),
            BarrierMethod::GetAttribute => args
                .bind(method, ["name"], 1)
                .and_then(|[name]| {
                    let name = name.unwrap_or_default();
                    let s = lock(&self.state);
                    match str_arg(&name, "attribute name")? {
                        "parties" => Ok(Value::Int(s.parties as i64)),
                        "n_waiting" => Ok(Value::Int(if s.broken { 0 } else { s.count as i64 })),
                        "broken" => Ok(Value::Bool(s.broken)),
                        other => Err(attribute_error(format!(
                            "'Barrier' object has no attribute '{other}'"
                        ))),
                    }
                })
                .into(),
        }
    }

    fn repr(&self) -> Option<String> {
        let s = lock(&self.state);
        Some(format!(
            "<Barrier object, waiters={}/{}{}>",
            s.count,
            s.parties,
            if s.broken { ", broken" } else { "" }
        ))
    }
}

/// A barrier comes back fresh: its parties and timeout, nobody waiting,
/// not broken.
impl crate::persist::Durable for BarrierObject {
    const JOURNALING: crate::persist::Journaling = crate::persist::Journaling::Initial;

    fn init(&self) -> Args {
        let parties = lock(&self.state).parties;
        Args::positional(vec![
            Value::Int(i64::try_from(parties).unwrap_or(i64::MAX)),
            Value::None,
            self.default_timeout
                .map_or(Value::None, |t| Value::Float(t.as_secs_f64())),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::{settle, Harness};

    #[tokio::test]
    async fn barrier_semantics() {
        let h = Harness::new();
        let b = BarrierObject::create(&h.ctx(), Args::positional(vec![2.into()])).unwrap();
        let Reply::Pending(first) = h.call(&b, "wait", vec![]) else {
            panic!()
        };
        let first = tokio::spawn(first);
        tokio::task::yield_now().await;
        assert_eq!(
            h.ok(&b, "__getattribute__", vec!["n_waiting".into()]),
            Value::Int(1)
        );
        assert_eq!(h.ok(&b, "wait", vec![]), Value::Int(1));
        assert!(first.await.unwrap().is_ok());
        // A timeout breaks it for everyone until reset.
        let e = settle(h.call(&b, "wait", vec![0.01.into()]))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BrokenBarrierError);
        assert_eq!(
            h.ok(&b, "__getattribute__", vec!["broken".into()]),
            Value::Bool(true)
        );
        assert_eq!(
            h.err(&b, "wait", vec![]).kind,
            ErrorKind::BrokenBarrierError
        );
        h.ok(&b, "reset", vec![]);
        assert_eq!(
            h.ok(&b, "__getattribute__", vec!["broken".into()]),
            Value::Bool(false)
        );
        assert_eq!(
            h.ok(&b, "__getattribute__", vec!["parties".into()]),
            Value::Int(2)
        );
        assert!(BarrierObject::create(&h.ctx(), Args::positional(vec![0.into()])).is_err());
    }

    #[tokio::test]
    async fn an_action_runs_once_per_cycle() {
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let r = runs.clone();
        let action: BarrierAction = Arc::new(move || {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        let h = Harness::new();
        let b = BarrierObject::with_action(1, Some(action), None).unwrap();
        h.ok(&b, "wait", vec![]);
        h.ok(&b, "wait", vec![]);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
