//! Plain Rust types served by a manager: what
//! [`#[shared]`](crate::managers::shared) generates, and how a manager
//! serves it (Python's `BaseManager.register(typeid, callable)` with a
//! class, and the proxy Python builds from its exposed methods).
//!
//! ```
//! use multiprocessing::managers::{shared, BaseManager};
//!
//! #[derive(Default)]
//! pub struct Maths;
//!
//! #[shared]
//! impl Maths {
//!     pub fn add(&self, x: i64, y: i64) -> i64 {
//!         x + y
//!     }
//!     pub fn mul(&self, x: i64, y: i64) -> i64 {
//!         x * y
//!     }
//! }
//!
//! # fn main() -> Result<(), multiprocessing::managers::ManagerError> {
//! let mut manager = BaseManager::new("127.0.0.1:0", b"maths");
//! manager.register::<Maths>()?;
//! manager.start()?;
//! let maths = manager.create::<Maths>()?;
//! assert_eq!(maths.add(4, 3)?, 7);
//! assert_eq!(maths.mul(7, 8)?, 56);
//! # Ok(())
//! # }
//! ```
//!
//! # What the attribute makes
//!
//! On `#[shared] impl Maths { … }` it keeps the `impl` as written and
//! adds:
//!
//! * `MathsMethod`, the methods declared once
//!   ([`shared_methods!`](crate::managers::shared_methods)): every method
//!   with a `self` receiver, under its Rust name (or `#[shared(name =
//!   "__len__")]`). Names starting with `_` are served but not exposed,
//!   as Python hides them; `#[shared(exposed = ["f", "_h"])]` on the `impl`
//!   names the exposed list instead.
//! * `MathsProxy`, a proxy with the same methods and parameters, each
//!   returning `Result<R, ManagerError>`: `&str` and `&[T]` parameters
//!   stay borrows; a method returning `Result<T, E>` gives
//!   `Result<T, MethodError<E>>`, with the method's own `E`; a method
//!   returning [`NewObject<U>`] gives `U`'s proxy (Python's
//!   `method_to_typeid`).
//! * With the SDK's `asyncio` feature, `AsyncMathsProxy`: the same
//!   methods as `async fn`s (a method returning [`NewObject<U>`] gives
//!   `U`'s async proxy), and `impl AsyncSharedType for Maths`; create
//!   one with `AsyncSyncManager::create_shared`, find a published one
//!   with its `lookup` (see `managers::asyncio::shared`). Whether it is
//!   written is decided by *this* crate's feature, not the program's:
//!   the attribute wraps it in a hidden macro of this crate that keeps
//!   it under `asyncio` and drops it otherwise, so a program turns it on
//!   by enabling `multiprocessing/asyncio` and declares no feature of
//!   its own.
//! * `impl SharedType for Maths`: the typeid (the type's name, or
//!   `#[shared(typeid = "…")]`), the constructor (`Default`, or the
//!   associated function marked `#[shared(new)]`, whose parameters become
//!   [`create_with`](crate::managers::BaseManager::create_with)'s tuple),
//!   and the server's dispatch.
//!
//! # How the server runs the methods
//!
//! The object lives in a read-write lock: `&self` methods of different
//! clients run at the same time, a `&mut self` method alone. Methods run
//! on the server's event loop, so they should be quick; one that may wait
//! (on a channel, on the disk) is marked `#[shared(blocking)]` and runs on
//! a thread of its own, leaving the loop free. Arguments arrive from the
//! network: a wrong count or type is a `TypeError` with Python's wording,
//! for that call only; a panic in a method is a `RuntimeError` for that
//! call, and the object stays usable (a poisoned lock is taken over).
//!
//! A method's `Err(e)` travels as a value (serde's form of `Result`), so
//! `E` needs `Serialize` and `DeserializeOwned`, and reaches the caller as
//! [`MethodError::Raised`].

mod call;
#[cfg(feature = "server")]
mod served;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use mp_proto::methods::MethodSpec;
use mp_proto::value::to_value;
use mp_proto::{ErrorKind, Value};
use serde::Serialize;

pub use call::{Bound, Call};
/// The error a server-side call gives (generated code names it here).
pub use mp_proto::RemoteError;
#[cfg(feature = "server")]
pub use served::{register_type, register_type_as, Served};

use super::error::ManagerError;
use super::proxy::ProxyType;

/// A Rust type a manager serves, with its typed proxy: what
/// [`#[shared]`](crate::managers::shared) implements (by hand only if the
/// attribute cannot express it).
pub trait SharedType: Sized + Send + Sync + 'static {
    /// The typeid it is registered and created under.
    const TYPEID: &'static str;
    /// Its methods, declared once.
    const METHODS: &'static [MethodSpec];
    /// The exposed list, if not the declaration's default (every name not
    /// starting with `_`).
    const EXPOSED: Option<&'static [&'static str]> = None;

    /// The typed proxy of this type.
    type Proxy: ProxyType;
    /// The constructor's arguments as a tuple (`()` for `Default`).
    type NewArgs;

    /// The constructor's arguments in their wire form.
    fn new_args(args: Self::NewArgs) -> Result<Vec<Value>, ManagerError>;

    /// Builds an object from a `create` call's arguments (server side).
    fn construct(call: Call) -> Result<Self, RemoteError>;

    /// Runs `method` on the object in `cell` (server side).
    fn dispatch(cell: &RwLock<Self>, method: &str, call: Call) -> Result<Answer, RemoteError>;

    /// Registers, on `registrar`, the types this type's methods return
    /// as new shared objects, so that the server can hand them out.
    fn register_returned(_registrar: &mut Registrar<'_>) {}
}

/// What one call of a `#[shared]` method gave: a value, or a new shared
/// object for the server to hand out as a proxy.
// Only the server side reads an answer; a build without the `server`
// feature still names the type in `SharedType::dispatch`.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub struct Answer(AnswerKind);

#[cfg_attr(not(feature = "server"), allow(dead_code))]
enum AnswerKind {
    Value(Value),
    Object(Box<dyn NewShared>),
}

impl Answer {
    /// A returned value, in its wire form.
    pub fn value<T: Serialize + ?Sized>(value: &T) -> Result<Answer, RemoteError> {
        to_value(value)
            .map(|v| Answer(AnswerKind::Value(v)))
            .map_err(|e| {
                RemoteError::new(
                    ErrorKind::TypeError,
                    format!("cannot send the method's result: {e}"),
                )
            })
    }

    /// A returned new shared object.
    pub fn object<U: SharedType>(object: NewObject<U>) -> Answer {
        Answer(AnswerKind::Object(Box::new(object)))
    }
}

/// A new shared object a `#[shared]` method returns: the caller gets a
/// proxy to it (`U::Proxy`), as Python's `method_to_typeid` gives.
#[derive(Debug)]
pub struct NewObject<U>(pub U);

/// A [`NewObject`] whose type is no longer known.
trait NewShared: Send {
    #[cfg(feature = "server")]
    fn into_served(self: Box<Self>) -> std::sync::Arc<dyn mp_server::SharedObject>;
}

impl<U: SharedType> NewShared for NewObject<U> {
    #[cfg(feature = "server")]
    fn into_served(self: Box<Self>) -> std::sync::Arc<dyn mp_server::SharedObject> {
        std::sync::Arc::new(Served::new(self.0))
    }
}

/// Why a call of a `#[shared]` method returning `Result<T, E>` failed:
/// the method's own error, or the call's.
#[derive(Debug, thiserror::Error)]
pub enum MethodError<E> {
    /// The method returned `Err(e)`.
    #[error("the method raised: {0:?}")]
    Raised(E),
    /// The call did not complete (connection, arguments, server).
    #[error(transparent)]
    Manager(#[from] ManagerError),
}

impl<E> MethodError<E> {
    /// The method's own error, if that is why the call failed.
    pub fn raised(self) -> Option<E> {
        match self {
            MethodError::Raised(e) => Some(e),
            MethodError::Manager(_) => None,
        }
    }
}

/// Where [`SharedType::register_returned`] registers: a server's registry
/// (with the `server` feature), or nothing when this process only
/// connects.
pub struct Registrar<'r> {
    #[cfg(feature = "server")]
    registry: Option<&'r mut mp_server::Registry>,
    #[cfg(not(feature = "server"))]
    _registry: std::marker::PhantomData<&'r mut ()>,
}

impl Registrar<'_> {
    /// Registers `U` for objects methods return (never created directly),
    /// unless its typeid is registered already.
    pub fn returned<U: SharedType>(&mut self) {
        #[cfg(feature = "server")]
        if let Some(registry) = self.registry.as_deref_mut() {
            served::register_returned::<U>(registry);
        }
    }
}

/// Creates a `T` on `client`'s server with `args` and wraps its
/// reference in `T`'s proxy.
pub(crate) fn create<T: SharedType>(
    client: &super::ManagerClient,
    args: T::NewArgs,
) -> Result<T::Proxy, ManagerError> {
    let info = client.create(T::TYPEID, T::new_args(args)?, Default::default())?;
    let exposed = info.exposed.clone();
    Ok(T::Proxy::from_parts(
        super::BaseProxy::from_owned(client.clone(), info),
        exposed,
    ))
}

/// The object's read lock for a `&self` method, taken over if a panic
/// poisoned it (the object's invariants are its methods' to keep; a
/// panicking method already failed its call).
pub fn read<T>(cell: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    cell.read().unwrap_or_else(PoisonError::into_inner)
}

/// The object's write lock for a `&mut self` method (see [`read`]).
pub fn write<T>(cell: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    cell.write().unwrap_or_else(PoisonError::into_inner)
}

/// The error a fallible `#[shared(new)]` constructor's `Err` gives the
/// `create` call: a `ValueError` with the error's text.
pub fn constructor_error(error: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(ErrorKind::ValueError, error.to_string())
}

/// `AttributeError` for a method the type does not have.
pub fn no_such_method(type_name: &str, method: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::AttributeError,
        format!("'{type_name}' object has no attribute '{method}'"),
    )
}

/// Keeps what it is given when this crate has its `asyncio` feature, and
/// drops it otherwise: what [`#[shared]`](crate::managers::shared) wraps
/// a type's async proxy in, so that the feature asked about is this
/// crate's, not the crate the attribute is expanded in. Not an API.
#[cfg(feature = "asyncio")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_asyncio {
    ($($item:tt)*) => { $($item)* };
}

/// Keeps what it is given when this crate has its `asyncio` feature, and
/// drops it otherwise (see the other definition). Not an API.
#[cfg(not(feature = "asyncio"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_asyncio {
    ($($item:tt)*) => {};
}
