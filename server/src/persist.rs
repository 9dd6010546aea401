//! What a shared object type does to survive a restart: [`Durable`].
//!
//! With a data directory (`mpserver serve --data-dir`, see
//! [`crate::durable`]) the server keeps the objects reachable from a name
//! in a snapshot plus an append-only log. The engine does the bookkeeping;
//! a type only says how to take itself apart and put itself back:
//!
//! * [`Durable::init`]: the constructor arguments that make it again,
//!   empty (a queue's `maxsize`, a value's typecode);
//! * [`Durable::dump`]: its contents ([`Dump`]), written as the records
//!   [`fill`](Durable::fill) and [`settle`](Durable::settle) read back;
//! * [`Durable::JOURNALING`]: how its later changes reach the log
//!   ([`Journaling`]): as the calls that made them (replayed by calling
//!   again), as effects the object records itself ([`EffectJournal`],
//!   for a type whose state changes outside its own calls, such as a
//!   queue handing an item to a waiting getter), or not at all (a lock
//!   comes back free).
//!
//! A type registered with [`Registry::register_durable`] persists; any
//! other type's objects are not written, and a token to one stored in a
//! persisted container names nothing after a restart.
//!
//! [`Registry::register_durable`]: crate::registry::Registry::register_durable

use std::sync::Arc;

use mp_proto::{ObjectId, RemoteError, Value};

use crate::args::Args;
use crate::errors::type_error;
use crate::object::{CallContext, SharedObject};

/// How a durable type's changes after its snapshot reach the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journaling {
    /// Each successful call of a method its declaration does not mark
    /// `read_only` is logged, and replayed by calling it again. The
    /// engine serializes such calls per object around the log write, so
    /// the log holds them in the order they took effect. Right for a
    /// type whose state changes only inside its own calls, at once (a
    /// `dict`, a `list`).
    Calls,
    /// The object records its own changes through the [`EffectJournal`]
    /// given to [`Durable::dump`], under its own lock, and replays them
    /// with [`Durable::apply`]. For a type whose state changes outside
    /// its calls or later than them (a queue: an item put goes straight
    /// to a waiting getter, a blocked putter's item is admitted by
    /// another caller's `get`).
    Effects,
    /// Nothing after creation: the object comes back as
    /// [`init`](Durable::init) makes it (a lock comes back free, a
    /// barrier fresh).
    Initial,
}

/// An object's contents, as [`Durable::dump`] gives them.
#[derive(Debug, Default)]
pub struct Dump {
    /// The contents in order (a dict's keys and values alternating, a
    /// list's or queue's items); written in chunks that
    /// [`Durable::fill`] appends in the same order.
    pub items: Vec<Value>,
    /// The rest of the state, small, set by [`Durable::settle`] after the
    /// items (a queue's unfinished-task count, an event's flag).
    pub state: Value,
    /// Values the object may store later without a further call naming
    /// them (a blocked putter's item): objects they name are persisted
    /// too, so a later effect never names one the log has not defined.
    pub pending: Vec<Value>,
}

/// Where an object of a [`Journaling::Effects`] type records its changes.
///
/// An effect is a small tag of the type's own vocabulary and an optional
/// value (a queue's `put` and its item); [`Durable::apply`] reads them
/// back in the same order. Record them under the object's lock, in the
/// order they take effect.
#[derive(Clone)]
pub struct EffectJournal {
    pub(crate) id: ObjectId,
    pub(crate) sink: Arc<dyn EffectSink>,
}

/// What an [`EffectJournal`] writes to (the data directory's log).
pub(crate) trait EffectSink: Send + Sync {
    /// Appends one effect of object `id`.
    fn effect(&self, id: ObjectId, tag: u8, value: Option<&Value>);
}

impl EffectJournal {
    /// Records one change: `tag` in the type's vocabulary, and the value
    /// it concerns, if any.
    pub fn record(&self, tag: u8, value: Option<&Value>) {
        self.sink.effect(self.id, tag, value);
    }
}

impl std::fmt::Debug for EffectJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EffectJournal({})", self.id)
    }
}

/// A shared object type that survives a restart (see the module docs).
///
/// ```
/// use std::sync::Mutex;
/// use mp_server::persist::{Dump, Durable};
/// use mp_server::prelude::*;
///
/// shared_methods! {
///     /// A counter's methods.
///     pub enum CounterMethod {
///         /// Adds one.
///         Incr = "incr",
///         /// The count.
///         Get = "get": read_only,
///     }
/// }
///
/// /// A counter that survives a restart.
/// struct Counter(Mutex<i64>);
///
/// impl SharedObject for Counter {
///     fn methods() -> &'static [MethodSpec] {
///         CounterMethod::TABLE
///     }
///     fn call(&self, _ctx: &CallContext<'_>, method: &str, _args: Args) -> Reply {
///         let mut n = self.0.lock().unwrap();
///         match CounterMethod::from_name(method) {
///             Some(CounterMethod::Incr) => *n += 1,
///             Some(CounterMethod::Get) => {}
///             None => return Reply::no_such_method("Counter", method),
///         }
///         Reply::ok(*n)
///     }
/// }
///
/// impl Durable for Counter {
///     // The default journaling: every `incr` is logged and replayed.
///     fn init(&self) -> Args {
///         Args::default()
///     }
///     fn dump(&self) -> Dump {
///         Dump { state: Value::Int(*self.0.lock().unwrap()), ..Dump::default() }
///     }
///     fn settle(&self, _ctx: &CallContext<'_>, state: Value) -> Result<(), RemoteError> {
///         *self.0.lock().unwrap() = mp_server::args::int_arg(&state)?;
///         Ok(())
///     }
/// }
///
/// let mut registry = Registry::new();
/// registry.register_durable("Counter", |_ctx, args: Args| {
///     args.none("Counter")?;
///     Ok(Counter(Mutex::new(0)))
/// });
/// ```
pub trait Durable: SharedObject + Sized {
    /// How changes after the snapshot are logged.
    const JOURNALING: Journaling = Journaling::Calls;

    /// The arguments the type's registered constructor takes to make the
    /// object again without its contents: its fixed settings. A token
    /// among them (a `Condition`'s lock) is persisted first.
    fn init(&self) -> Args;

    /// The contents. For [`Journaling::Calls`] the engine holds every
    /// logged call of the object off while it runs; a
    /// [`Journaling::Effects`] type overrides
    /// [`dump_attached`](Self::dump_attached) instead.
    fn dump(&self) -> Dump {
        Dump::default()
    }

    /// Dumps the contents and starts recording effects into `journal`,
    /// calling `write` with the dump while still holding the object's
    /// lock, so that no effect falls between the dump and the journal.
    /// Only [`Journaling::Effects`] types are given a journal; the
    /// default ignores it and calls `write(self.dump())`.
    fn dump_attached(&self, journal: Option<EffectJournal>, write: &mut dyn FnMut(Dump)) {
        let _ = journal;
        write(self.dump());
    }

    /// Appends one chunk of [`Dump::items`], in order, to a restored
    /// object. The default refuses contents.
    fn fill(&self, ctx: &CallContext<'_>, items: Vec<Value>) -> Result<(), RemoteError> {
        let _ = ctx;
        if items.is_empty() {
            Ok(())
        } else {
            Err(type_error("this type keeps no contents to restore"))
        }
    }

    /// Sets [`Dump::state`] on a restored object, after its items.
    fn settle(&self, ctx: &CallContext<'_>, state: Value) -> Result<(), RemoteError> {
        let _ = (ctx, state);
        Ok(())
    }

    /// Starts recording effects into `journal` on a restored object (a
    /// [`Journaling::Effects`] type; others ignore it).
    fn attach(&self, journal: EffectJournal) {
        let _ = journal;
    }

    /// Replays one recorded effect.
    fn apply(
        &self,
        ctx: &CallContext<'_>,
        tag: u8,
        value: Option<Value>,
    ) -> Result<(), RemoteError> {
        let _ = (ctx, tag, value);
        Err(type_error("this type records no effects"))
    }
}

/// Dumps an object, with a journal to attach, into a writer; `false`
/// if the object is not of the hooks' type.
pub(crate) type DumpHook =
    fn(&dyn SharedObject, Option<EffectJournal>, &mut dyn FnMut(Dump)) -> bool;
/// Replays one effect on an object.
pub(crate) type ApplyHook =
    fn(&dyn SharedObject, &CallContext<'_>, u8, Option<Value>) -> Result<(), RemoteError>;

/// A durable type's hooks, by typeid, for objects seen as
/// `dyn SharedObject` (each downcasts to its type).
#[derive(Clone, Copy)]
pub(crate) struct DurableHooks {
    pub journaling: Journaling,
    pub init: fn(&dyn SharedObject) -> Option<Args>,
    pub dump: DumpHook,
    pub fill: fn(&dyn SharedObject, &CallContext<'_>, Vec<Value>) -> Result<(), RemoteError>,
    pub settle: fn(&dyn SharedObject, &CallContext<'_>, Value) -> Result<(), RemoteError>,
    pub attach: fn(&dyn SharedObject, EffectJournal),
    pub apply: ApplyHook,
}

fn wrong_type() -> RemoteError {
    type_error("the restored object is not of its registered type")
}

impl DurableHooks {
    /// The hooks of `T`.
    pub fn of<T: Durable>() -> DurableHooks {
        DurableHooks {
            journaling: T::JOURNALING,
            init: |o| o.as_any().downcast_ref::<T>().map(T::init),
            dump: |o, journal, write| match o.as_any().downcast_ref::<T>() {
                Some(t) => {
                    t.dump_attached(journal, write);
                    true
                }
                None => false,
            },
            fill: |o, ctx, items| {
                o.as_any()
                    .downcast_ref::<T>()
                    .ok_or_else(wrong_type)?
                    .fill(ctx, items)
            },
            settle: |o, ctx, state| {
                o.as_any()
                    .downcast_ref::<T>()
                    .ok_or_else(wrong_type)?
                    .settle(ctx, state)
            },
            attach: |o, journal| {
                if let Some(t) = o.as_any().downcast_ref::<T>() {
                    t.attach(journal);
                }
            },
            apply: |o, ctx, tag, value| {
                o.as_any()
                    .downcast_ref::<T>()
                    .ok_or_else(wrong_type)?
                    .apply(ctx, tag, value)
            },
        }
    }
}
