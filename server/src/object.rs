//! The [`SharedObject`] trait: what a type must do to be served.
//!
//! Python's manager serves any object and calls its methods by name; here
//! a type implements [`SharedObject`]: it declares its methods once
//! ([`shared_methods!`](mp_proto::shared_methods)), answers
//! [`call`](SharedObject::call) by name with [`Args`], and returns a
//! [`Reply`] — ready at once, or a future for a call that blocks (a queue
//! `get`, a lock `acquire`). Blocking calls are futures, not threads, so
//! ten thousand waiting clients cost ten thousand small tasks.
//!
//! ```
//! use mp_server::prelude::*;
//!
//! shared_methods! {
//!     /// `MathsClass`'s methods, declared once.
//!     pub enum MathsMethod {
//!         /// `add(x, y)`.
//!         Add = "add",
//!         /// `mul(x, y)`.
//!         Mul = "mul",
//!     }
//! }
//!
//! /// The reference's `MathsClass`.
//! struct Maths;
//!
//! impl SharedObject for Maths {
//!     fn methods() -> &'static [MethodSpec] {
//!         MathsMethod::TABLE
//!     }
//!     fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
//!         let Some(m) = MathsMethod::from_name(method) else {
//!             return Reply::no_such_method("MathsClass", method);
//!         };
//!         let (x, y) = match args.parse::<(i64, i64)>(method) {
//!             Ok(xy) => xy,
//!             Err(e) => return Reply::err(e),
//!         };
//!         Reply::ok(match m {
//!             MathsMethod::Add => x + y,
//!             MathsMethod::Mul => x * y,
//!         })
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register("Maths", |_ctx, args| {
//!     args.none("Maths")?;
//!     Ok(Maths)
//! });
//! ```

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mp_proto::methods::MethodSpec;
use mp_proto::{ObjectId, RemoteError, Token, Value};

use crate::args::Args;
use crate::budget::Budget;
use crate::errors::{attribute_error, type_error};
use crate::held::Held;
use crate::session::Session;
use crate::table::Table;

/// Identifies a session (one client connection) on this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Who holds a lock: a client thread of a session.
///
/// Python's locks belong to threads; a manager client's threads are told
/// apart by [`Request::thread`](mp_proto::message::Request::thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The connection the call came in on.
    pub session: SessionId,
    /// The calling thread, as the client numbers them.
    pub thread: u64,
}

/// A type the server can host.
///
/// Implementations hold their state behind interior mutability (a
/// `Mutex`): calls arrive concurrently from many sessions. A method that
/// may block returns [`Reply::Pending`]; its future must own what it needs
/// (an `Arc` of the state), and dropping it — the caller's session ended,
/// or a timeout — must leave nothing acquired on its behalf.
pub trait SharedObject: AsAny + Send + Sync + 'static {
    /// Every method [`call`](Self::call) answers, from the type's one
    /// declaration ([`shared_methods!`](mp_proto::shared_methods)'s
    /// `TABLE`). Unless the registration lists the exposed methods
    /// explicitly, those the declaration exposes are (Python's
    /// `public_methods`, plus declared dunders).
    fn methods() -> &'static [MethodSpec]
    where
        Self: Sized;

    /// Runs `method` with `args`.
    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply;

    /// Python's `repr()` of the object (`__repr__`/`__str__` fall back to
    /// it); `None` shows `<typeid object>`.
    fn repr(&self) -> Option<String> {
        None
    }

    /// A copy of the object's value (Python's `#GETVALUE`, what a client
    /// gets for `copy.copy(proxy)`-style requests), if it has one.
    fn get_value(&self) -> Result<Held, RemoteError> {
        Err(type_error("this shared object has no value to copy"))
    }

    /// The session `session` ended: release whatever it holds (locks,
    /// semaphore units). Called once per session that called
    /// [`CallContext::track_owner`] on this object.
    fn release_session(&self, _session: SessionId) {}

    /// Appends the id of every object this one holds a reference to
    /// through its stored values (each [`Held`]'s
    /// [`referenced_ids`](Held::referenced_ids), once per reference), for
    /// the table's cycle collector ([`Table::collect_cycles`]). Leaving a
    /// reference out is safe — what it names counts as held from outside,
    /// so it is never freed by the collector — but then a cycle through
    /// it is never collected; listing a reference the object does not
    /// hold could free a live object.
    ///
    /// [`Table::collect_cycles`]: crate::table::Table::collect_cycles
    fn references(&self, _out: &mut Vec<mp_proto::ObjectId>) {}
}

/// Lets the engine turn a `dyn SharedObject` back into its concrete type
/// (a `Condition` finding the `Lock` it was given).
pub trait AsAny {
    /// `self` as `&dyn Any`.
    fn as_any(&self) -> &dyn Any;
    /// `self` as `Arc<dyn Any>`, for `Arc::downcast`.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Any + Send + Sync> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// A blocking call in progress: the future of what it will give.
pub type PendingCall<T = Result<Return, RemoteError>> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a call produced: its result now, or the future of it for a call
/// that blocks. The one "now or later" type of the answer path: an
/// object's method gives a `Reply` of its [`Return`] (the default), the
/// engine a `Reply` of the wire's [`Outcome`](mp_proto::message::Outcome).
pub enum Reply<T = Result<Return, RemoteError>> {
    /// The call finished.
    Ready(T),
    /// The call waits; the future finishes it.
    Pending(PendingCall<T>),
}

/// A successful call's result.
pub enum Return {
    /// A value (with the references it holds, see [`Held`]).
    Value(Held),
    /// A new shared object, for a method listed in the type's
    /// `method_to_typeid`: the engine registers it under that typeid and
    /// answers with a proxy.
    Object(Arc<dyn SharedObject>),
}

impl Reply {
    /// A finished call returning `value`.
    pub fn ok(value: impl Into<Value>) -> Reply {
        Reply::Ready(Ok(Return::Value(Held::plain(value.into()))))
    }

    /// A finished call returning `None`.
    pub fn none() -> Reply {
        Reply::Ready(Ok(Return::Value(Held::plain(Value::None))))
    }

    /// A finished call returning a stored value (and its references).
    pub fn held(value: Held) -> Reply {
        Reply::Ready(Ok(Return::Value(value)))
    }

    /// A finished call that raised `error`.
    pub fn err(error: RemoteError) -> Reply {
        Reply::Ready(Err(error))
    }

    /// A blocking call.
    pub fn pending(
        future: impl Future<Output = Result<Return, RemoteError>> + Send + 'static,
    ) -> Reply {
        Reply::Pending(Box::pin(future))
    }

    /// A finished call returning a new shared object.
    pub fn object(object: impl SharedObject) -> Reply {
        Reply::Ready(Ok(Return::Object(Arc::new(object))))
    }

    /// `AttributeError` for a method the type does not have.
    pub fn no_such_method(type_name: &str, method: &str) -> Reply {
        Reply::err(attribute_error(format!(
            "'{type_name}' object has no attribute '{method}'"
        )))
    }
}

impl From<Value> for Return {
    fn from(value: Value) -> Self {
        Return::Value(Held::plain(value))
    }
}

impl From<Held> for Return {
    fn from(value: Held) -> Self {
        Return::Value(value)
    }
}

impl<T: Into<Return>> From<Result<T, RemoteError>> for Reply {
    fn from(result: Result<T, RemoteError>) -> Self {
        Reply::Ready(result.map(Into::into))
    }
}

/// What a method may know and do beyond its arguments: who is calling,
/// and the engine services (storing tokens, finding other objects, asking
/// to be told when the caller's session ends).
pub struct CallContext<'a> {
    pub(crate) table: &'a Arc<Table>,
    pub(crate) session: &'a Session,
    pub(crate) thread: u64,
    pub(crate) object: Option<ObjectId>,
}

impl<'a> CallContext<'a> {
    /// The calling client thread: the owner of anything it acquires.
    pub fn owner(&self) -> Owner {
        Owner {
            session: self.session.id(),
            thread: self.thread,
        }
    }

    /// The called object's id (`None` while constructing).
    pub fn object_id(&self) -> Option<ObjectId> {
        self.object
    }

    /// Makes `value` storable: it will hold a reference to every live
    /// object it names for as long as it is kept, and its bytes are
    /// charged to the server's memory budget — `MemoryError` if it is
    /// larger than one operation may store or the server's stored values
    /// would pass their limit (see [`crate::budget`]).
    pub fn hold(&self, value: Value) -> Result<Held, RemoteError> {
        Held::new(value, self.table)
    }

    /// Makes every value of `values` storable as one operation: all, or
    /// none and `MemoryError` (see [`Held::new_all`]).
    pub fn hold_all(&self, values: Vec<Value>) -> Result<Vec<Held>, RemoteError> {
        Held::new_all(values, self.table)
    }

    /// A result built for the caller (a copy, a slice): it keeps the
    /// objects it names alive until the caller has them, and is not
    /// charged as stored. Check its size first with
    /// [`check_value`](Self::check_value).
    pub fn result(&self, value: Value) -> Held {
        Held::result(value, self.table)
    }

    /// Checks, before building it, that a value of about `bytes` (by
    /// [`Value::estimated_bytes`]) is within what one operation may build:
    /// `MemoryError` if not.
    pub fn check_value(&self, bytes: usize) -> Result<(), RemoteError> {
        self.table.budget().check_value(bytes)
    }

    /// The server's memory budget.
    pub fn budget(&self) -> &Arc<Budget> {
        self.table.budget()
    }

    /// Asks for [`SharedObject::release_session`] on this object when the
    /// caller's session ends (call it before acquiring on its behalf).
    pub fn track_owner(&self) {
        if let Some(id) = self.object {
            self.session.track(id);
        }
    }

    /// Like [`track_owner`](Self::track_owner) for another object (a
    /// `Condition` acquiring the lock it wraps).
    pub fn track_owner_of(&self, id: ObjectId) {
        self.session.track(id);
    }

    /// The live object `token` names on this server, if any.
    pub fn resolve(&self, token: &Token) -> Option<Arc<dyn SharedObject>> {
        let (object, spec) = self.table.get(token.id)?;
        (spec.typeid == token.typeid).then_some(object)
    }

    /// The object table, for embedders that manage references themselves.
    pub fn table(&self) -> &Arc<Table> {
        self.table
    }
}
