//! `Queue` and `JoinableQueue`: Python's `queue.Queue` (both typeids are
//! the same class in CPython's SyncManager, so both have `task_done` and
//! `join`).
//!
//! `put(item, block=True, timeout=None)` and `get(block=True,
//! timeout=None)` raise `Full`/`Empty` when they cannot proceed in time;
//! `put_nowait`/`get_nowait` never wait; a negative timeout is
//! `ValueError`, as in Python. `task_done()` called more often than items
//! were put is `ValueError`; `join()` waits until every item put has been
//! marked done. Blocked getters and putters are served in arrival order:
//! an item put while getters wait goes straight to the longest waiter.
//! An item handed to a getter whose session ended before it could be sent
//! goes back to the front of the queue: nothing is lost.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mp_proto::methods::builtin::QueueMethod;
use mp_proto::methods::MethodSpec;
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::args::{bool_arg, int_arg, queue_timeout, Args};
use crate::budget::shrink_deque;
use crate::errors::value_error;
use crate::held::Held;
use crate::lock;
use crate::object::{CallContext, Reply, Return, SharedObject};
use crate::persist::{Dump, Durable, EffectJournal, Journaling};
use crate::wait::{Cancelled, Wait, WaitQueue, Wakers};

/// Items, counters and the three kinds of waiter.
pub struct QueueState {
    items: VecDeque<Held>,
    /// 0 means unbounded.
    maxsize: usize,
    /// Items put and not yet marked done.
    unfinished: u64,
    getters: WaitQueue<(), Held>,
    /// A blocked putter waits with its item.
    putters: WaitQueue<Held, ()>,
    joiners: WaitQueue<(), ()>,
    /// Where changes are recorded once a data directory keeps the queue.
    journal: Option<EffectJournal>,
}

/// The effects a persisted queue records ([`EffectJournal`]): an item
/// added at the back, the front item taken, an item given back to the
/// front, a task marked done.
mod effect {
    pub const PUT: u8 = 0;
    pub const TAKE: u8 = 1;
    pub const UNTAKE: u8 = 2;
    pub const DONE: u8 = 3;
}

impl QueueState {
    fn record(&self, tag: u8, value: Option<&Value>) {
        if let Some(journal) = &self.journal {
            journal.record(tag, value);
        }
    }

    fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() >= self.maxsize
    }

    /// Adds an item: straight to a waiting getter if there is one.
    fn push(&mut self, item: Held, wakers: &mut Wakers) {
        self.unfinished += 1;
        self.record(effect::PUT, Some(item.value()));
        let mut item = Some(item);
        if !self.getters.is_empty() {
            // Straight to the longest waiter: as if put, then taken.
            self.record(effect::TAKE, None);
            self.getters.grant_front_with(wakers, |()| {
                item.take().unwrap_or_else(|| Held::plain(Value::None))
            });
        }
        if let Some(item) = item {
            self.items.push_back(item);
        }
    }

    /// After an item left: admits the longest-waiting putter's item.
    fn admit_putter(&mut self, wakers: &mut Wakers) {
        if self.full() || self.putters.is_empty() {
            return;
        }
        let mut admitted = None;
        self.putters.grant_front_with(wakers, |item| {
            admitted = Some(item);
        });
        if let Some(item) = admitted {
            self.push(item, wakers);
        }
    }

    fn pop(&mut self, wakers: &mut Wakers) -> Option<Held> {
        let item = self.items.pop_front()?;
        self.record(effect::TAKE, None);
        self.admit_putter(wakers);
        shrink_deque(&mut self.items);
        Some(item)
    }
}

fn getters(s: &mut QueueState) -> &mut WaitQueue<(), Held> {
    &mut s.getters
}

fn putters(s: &mut QueueState) -> &mut WaitQueue<Held, ()> {
    &mut s.putters
}

fn joiners(s: &mut QueueState) -> &mut WaitQueue<(), ()> {
    &mut s.joiners
}

fn getter_cancelled(s: &mut QueueState, c: Cancelled<(), Held>, wakers: &mut Wakers) {
    if let Cancelled::Granted(item) = c {
        // Handed over but never delivered.
        s.untake(item, wakers);
    }
}

impl QueueState {
    /// Gives back an item taken from the front but never delivered: to
    /// the next getter, or back to the front.
    fn untake(&mut self, item: Held, wakers: &mut Wakers) {
        let mut item = Some(item);
        if !self.getters.is_empty() {
            self.getters.grant_front_with(wakers, |()| {
                item.take().unwrap_or_else(|| Held::plain(Value::None))
            });
        }
        if let Some(item) = item {
            self.record(effect::UNTAKE, Some(item.value()));
            self.items.push_front(item);
        }
    }
}

fn putter_cancelled(_: &mut QueueState, _: Cancelled<Held, ()>, _: &mut Wakers) {
    // A putter leaving before admission takes its item with it (dropped
    // with the request); one admitted already has its item queued.
}

fn joiner_cancelled(_: &mut QueueState, _: Cancelled<(), ()>, _: &mut Wakers) {}

/// A shared FIFO queue.
pub struct QueueObject {
    state: Arc<Mutex<QueueState>>,
}

fn empty() -> RemoteError {
    RemoteError::new(ErrorKind::Empty, "")
}

fn full() -> RemoteError {
    RemoteError::new(ErrorKind::Full, "")
}

impl QueueObject {
    /// `Queue(maxsize=0)`; 0 or less is unbounded.
    pub fn create(_ctx: &CallContext<'_>, args: Args) -> Result<QueueObject, RemoteError> {
        let [maxsize] = args.bind("Queue", ["maxsize"], 0)?;
        let maxsize = match maxsize {
            Some(v) => int_arg(&v)?,
            None => 0,
        };
        Ok(QueueObject {
            state: Arc::new(Mutex::new(QueueState {
                items: VecDeque::new(),
                maxsize: usize::try_from(maxsize).unwrap_or(0),
                unfinished: 0,
                getters: WaitQueue::new(),
                putters: WaitQueue::new(),
                joiners: WaitQueue::new(),
                journal: None,
            })),
        })
    }

    fn put(&self, item: Held, block: bool, timeout: Option<Duration>) -> Reply {
        let mut wakers = Wakers::new();
        let mut s = lock(&self.state);
        if !s.full() && s.putters.is_empty() {
            s.push(item, &mut wakers);
            return Reply::none();
        }
        if !block || timeout == Some(Duration::ZERO) {
            drop(s);
            drop(item);
            return Reply::err(full());
        }
        let ticket = s.putters.enqueue(item);
        drop(s);
        let wait = Wait::new(
            Arc::clone(&self.state),
            ticket,
            putters,
            putter_cancelled,
            timeout,
        );
        Reply::pending(async move {
            match wait.await {
                Some(()) => Ok::<Return, RemoteError>(Value::None.into()),
                None => Err(full()),
            }
        })
    }

    fn get(&self, block: bool, timeout: Option<Duration>) -> Reply {
        let mut wakers = Wakers::new();
        let mut s = lock(&self.state);
        if let Some(item) = s.pop(&mut wakers) {
            return Reply::held(item);
        }
        if !block || timeout == Some(Duration::ZERO) {
            return Reply::err(empty());
        }
        let ticket = s.getters.enqueue(());
        drop(s);
        let wait = Wait::new(
            Arc::clone(&self.state),
            ticket,
            getters,
            getter_cancelled,
            timeout,
        );
        Reply::pending(async move {
            match wait.await {
                Some(item) => Ok::<Return, RemoteError>(Return::Value(item)),
                None => Err(empty()),
            }
        })
    }

    fn dispatch(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        args: Args,
    ) -> Result<Reply, RemoteError> {
        let Some(m) = QueueMethod::from_name(method) else {
            return Ok(Reply::no_such_method("Queue", method));
        };
        Ok(match m {
            QueueMethod::Put => {
                let [item, block, timeout] = args.bind(method, ["item", "block", "timeout"], 1)?;
                let block = bool_arg(block.as_ref(), true);
                let timeout = if block {
                    queue_timeout(timeout.as_ref())?
                } else {
                    None
                };
                self.put(ctx.hold(item.unwrap_or_default())?, block, timeout)
            }
            QueueMethod::PutNowait => {
                let [item] = args.bind(method, ["item"], 1)?;
                self.put(ctx.hold(item.unwrap_or_default())?, false, None)
            }
            QueueMethod::Get => {
                let [block, timeout] = args.bind(method, ["block", "timeout"], 0)?;
                let block = bool_arg(block.as_ref(), true);
                let timeout = if block {
                    queue_timeout(timeout.as_ref())?
                } else {
                    None
                };
                self.get(block, timeout)
            }
            QueueMethod::GetNowait => {
                args.none(method)?;
                self.get(false, None)
            }
            QueueMethod::Qsize => {
                args.none(method)?;
                Reply::ok(lock(&self.state).items.len() as i64)
            }
            QueueMethod::Empty => {
                args.none(method)?;
                Reply::ok(lock(&self.state).items.is_empty())
            }
            QueueMethod::Full => {
                args.none(method)?;
                Reply::ok(lock(&self.state).full())
            }
            QueueMethod::TaskDone => {
                args.none(method)?;
                let mut wakers = Wakers::new();
                let mut s = lock(&self.state);
                if s.unfinished == 0 {
                    return Err(value_error("task_done() called too many times"));
                }
                s.unfinished -= 1;
                s.record(effect::DONE, None);
                if s.unfinished == 0 {
                    s.joiners.grant_all(&mut wakers, |()| ());
                }
                Reply::none()
            }
            QueueMethod::Unget => {
                let [item] = args.bind(method, ["item"], 1)?;
                let item = ctx.hold(item.unwrap_or_default())?;
                let mut wakers = Wakers::new();
                lock(&self.state).untake(item, &mut wakers);
                Reply::none()
            }
            QueueMethod::Join => {
                args.none(method)?;
                let mut s = lock(&self.state);
                if s.unfinished == 0 {
                    return Ok(Reply::none());
                }
                let ticket = s.joiners.enqueue(());
                drop(s);
                let wait = Wait::new(
                    Arc::clone(&self.state),
                    ticket,
                    joiners,
                    joiner_cancelled,
                    None,
                );
                Reply::pending(async move {
                    wait.await;
                    Ok::<Return, RemoteError>(Value::None.into())
                })
            }
        })
    }
}

impl SharedObject for QueueObject {
    fn methods() -> &'static [MethodSpec] {
        QueueMethod::TABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.dispatch(ctx, method, args).unwrap_or_else(Reply::err)
    }

    fn references(&self, out: &mut Vec<mp_proto::ObjectId>) {
        // The items stored; those of blocked putters count as held from
        // outside (they are not in the queue yet).
        for item in lock(&self.state).items.iter() {
            out.extend_from_slice(item.referenced_ids());
        }
    }

    fn repr(&self) -> Option<String> {
        let s = lock(&self.state);
        Some(format!(
            "<Queue object, size={} maxsize={} unfinished={} getters={} putters={}>",
            s.items.len(),
            s.maxsize,
            s.unfinished,
            s.getters.len(),
            s.putters.len()
        ))
    }
}

/// A queue persists its items, its maxsize and its unfinished-task
/// count; waiting getters and putters do not (a blocked putter's item
/// was never acknowledged).
impl Durable for QueueObject {
    const JOURNALING: Journaling = Journaling::Effects;

    fn init(&self) -> Args {
        let maxsize = lock(&self.state).maxsize;
        Args::positional(vec![Value::Int(i64::try_from(maxsize).unwrap_or(i64::MAX))])
    }

    fn dump_attached(&self, journal: Option<EffectJournal>, write: &mut dyn FnMut(Dump)) {
        let mut s = lock(&self.state);
        let dump = Dump {
            items: s.items.iter().map(|h| h.value().clone()).collect(),
            state: Value::Int(i64::try_from(s.unfinished).unwrap_or(i64::MAX)),
            pending: s.putters.requests().map(|h| h.value().clone()).collect(),
        };
        write(dump);
        if journal.is_some() {
            s.journal = journal;
        }
    }

    fn fill(&self, ctx: &CallContext<'_>, items: Vec<Value>) -> Result<(), RemoteError> {
        // Each item is held on its own: each was stored by one call.
        let held = items
            .into_iter()
            .map(|v| ctx.hold(v))
            .collect::<Result<Vec<_>, _>>()?;
        lock(&self.state).items.extend(held);
        Ok(())
    }

    fn settle(&self, _ctx: &CallContext<'_>, state: Value) -> Result<(), RemoteError> {
        let unfinished = int_arg(&state)?;
        lock(&self.state).unfinished = u64::try_from(unfinished).unwrap_or(0);
        Ok(())
    }

    fn attach(&self, journal: EffectJournal) {
        lock(&self.state).journal = Some(journal);
    }

    fn apply(
        &self,
        ctx: &CallContext<'_>,
        tag: u8,
        value: Option<Value>,
    ) -> Result<(), RemoteError> {
        let item = match value {
            Some(v) => Some(ctx.hold(v)?),
            None => None,
        };
        let mut s = lock(&self.state);
        match (tag, item) {
            (effect::PUT, Some(item)) => {
                s.unfinished += 1;
                s.record(effect::PUT, Some(item.value()));
                s.items.push_back(item);
            }
            (effect::TAKE, None) => {
                let taken = s
                    .items
                    .pop_front()
                    .ok_or_else(|| value_error("a recorded take from an empty queue"))?;
                s.record(effect::TAKE, None);
                shrink_deque(&mut s.items);
                drop(s);
                drop(taken);
            }
            (effect::UNTAKE, Some(item)) => {
                s.record(effect::UNTAKE, Some(item.value()));
                s.items.push_front(item);
            }
            (effect::DONE, None) => {
                s.unfinished = s.unfinished.saturating_sub(1);
                s.record(effect::DONE, None);
            }
            (tag, _) => return Err(value_error(format!("unknown queue effect {tag}"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::{settle, Harness};

    fn queue(h: &Harness, maxsize: i64) -> QueueObject {
        QueueObject::create(&h.ctx(), Args::positional(vec![maxsize.into()])).unwrap()
    }

    #[tokio::test]
    async fn put_get_full_empty() {
        let h = Harness::new();
        let q = queue(&h, 2);
        h.ok(&q, "put", vec![1.into()]);
        h.ok(&q, "put_nowait", vec![2.into()]);
        assert_eq!(h.ok(&q, "full", vec![]), Value::Bool(true));
        assert_eq!(
            h.err(&q, "put_nowait", vec![3.into()]).kind,
            ErrorKind::Full
        );
        let e = settle(h.call(&q, "put", vec![3.into(), true.into(), 0.01.into()])).await;
        assert_eq!(e.unwrap_err().kind, ErrorKind::Full);
        assert_eq!(
            h.err(&q, "put", vec![3.into(), true.into(), (-1).into()])
                .kind,
            ErrorKind::ValueError
        );
        assert_eq!(h.ok(&q, "get", vec![]), Value::Int(1));
        assert_eq!(h.ok(&q, "qsize", vec![]), Value::Int(1));
        assert_eq!(h.ok(&q, "get_nowait", vec![]), Value::Int(2));
        assert_eq!(h.err(&q, "get_nowait", vec![]).kind, ErrorKind::Empty);
        let e = settle(h.call(&q, "get", vec![true.into(), 0.01.into()])).await;
        assert_eq!(e.unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(h.ok(&q, "empty", vec![]), Value::Bool(true));
    }

    #[tokio::test]
    async fn blocked_putters_and_getters_are_served_in_order() {
        let h = Harness::new();
        let q = queue(&h, 1);
        let Reply::Pending(g1) = h.call(&q, "get", vec![]) else {
            panic!()
        };
        let g1 = tokio::spawn(g1);
        tokio::task::yield_now().await;
        h.ok(&q, "put", vec!["a".into()]);
        let got = settle(Reply::Pending(Box::pin(async move { g1.await.unwrap() }))).await;
        assert_eq!(got.unwrap(), Value::from("a"));
        h.ok(&q, "put", vec!["b".into()]);
        let Reply::Pending(p) = h.call(&q, "put", vec!["c".into()]) else {
            panic!()
        };
        let p = tokio::spawn(p);
        tokio::task::yield_now().await;
        assert_eq!(h.ok(&q, "get", vec![]), Value::from("b"));
        assert!(p.await.unwrap().is_ok());
        assert_eq!(h.ok(&q, "get", vec![]), Value::from("c"));
    }

    #[tokio::test]
    async fn a_cancelled_getter_loses_nothing() {
        let h = Harness::new();
        let q = queue(&h, 0);
        let Reply::Pending(g) = h.call(&q, "get", vec![]) else {
            panic!()
        };
        // Granted the item, then dropped before it could be delivered.
        h.ok(&q, "put", vec![7.into()]);
        drop(g);
        assert_eq!(h.ok(&q, "get_nowait", vec![]), Value::Int(7));
    }

    #[tokio::test]
    async fn unget_puts_back_at_the_front_or_to_a_waiting_getter() {
        let h = Harness::new();
        let q = queue(&h, 0);
        h.ok(&q, "put", vec![1.into()]);
        h.ok(&q, "put", vec![2.into()]);
        assert_eq!(h.ok(&q, "get", vec![]), Value::Int(1));
        h.ok(&q, "_unget", vec![1.into()]);
        assert_eq!(h.ok(&q, "get", vec![]), Value::Int(1));
        assert_eq!(h.ok(&q, "get", vec![]), Value::Int(2));
        let Reply::Pending(g) = h.call(&q, "get", vec![]) else {
            panic!()
        };
        let g = tokio::spawn(g);
        tokio::task::yield_now().await;
        h.ok(&q, "_unget", vec![3.into()]);
        let got = settle(Reply::Pending(Box::pin(async move { g.await.unwrap() }))).await;
        assert_eq!(got.unwrap(), Value::Int(3));
        // A take undone leaves the unfinished count as the puts made it.
        h.ok(&q, "task_done", vec![]);
        h.ok(&q, "task_done", vec![]);
        assert_eq!(h.err(&q, "task_done", vec![]).kind, ErrorKind::ValueError);
    }

    #[tokio::test]
    async fn task_done_and_join() {
        let h = Harness::new();
        let q = queue(&h, 0);
        assert_eq!(h.err(&q, "task_done", vec![]).kind, ErrorKind::ValueError);
        h.ok(&q, "put", vec![1.into()]);
        let Reply::Pending(j) = h.call(&q, "join", vec![]) else {
            panic!()
        };
        let j = tokio::spawn(j);
        h.ok(&q, "get", vec![]);
        h.ok(&q, "task_done", vec![]);
        assert!(j.await.unwrap().is_ok());
        assert_eq!(h.ok(&q, "join", vec![]), Value::None);
        let e = h.err(&q, "task_done", vec![]);
        assert_eq!(e.message, "task_done() called too many times");
    }
}
