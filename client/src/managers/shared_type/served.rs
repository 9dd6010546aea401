//! The server side of a [`SharedType`]: [`Served`], the object as the
//! engine hosts it, and [`register_type`], its registration.

use std::sync::{Arc, RwLock};

use mp_proto::methods::MethodSpec;
use mp_proto::{ErrorKind, RemoteError};
use mp_server::registry::Registration;
use mp_server::{Args, CallContext, Registry, Reply, Return, SharedObject};

use super::{Answer, AnswerKind, Call, Registrar, SharedType};

/// A [`SharedType`] as the server hosts it: the object behind a
/// read-write lock, shared with the threads running its blocking methods.
pub struct Served<T> {
    cell: Arc<RwLock<T>>,
}

impl<T: SharedType> Served<T> {
    /// Hosts `object`.
    pub fn new(object: T) -> Self {
        Served {
            cell: Arc::new(RwLock::new(object)),
        }
    }
}

impl<T: SharedType> SharedObject for Served<T> {
    fn methods() -> &'static [MethodSpec] {
        T::METHODS
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let call = Call::new(T::TYPEID, method, args.positional, args.keywords);
        if !blocking::<T>(method) {
            return answer(T::dispatch(&self.cell, method, call));
        }
        let cell = Arc::clone(&self.cell);
        let method = method.to_owned();
        Reply::pending(async move {
            match tokio::task::spawn_blocking(move || T::dispatch(&cell, &method, call)).await {
                Ok(result) => into_return(result),
                // The engine catches a panic on its own thread, not on
                // this one: the same answer here.
                Err(e) => Err(RemoteError::new(
                    ErrorKind::RuntimeError,
                    format!("the method panicked: {e}"),
                )),
            }
        })
    }
}

fn blocking<T: SharedType>(method: &str) -> bool {
    T::METHODS.iter().any(|m| m.blocking && m.name == method)
}

fn answer(result: Result<Answer, RemoteError>) -> Reply {
    Reply::Ready(into_return(result))
}

fn into_return(result: Result<Answer, RemoteError>) -> Result<Return, RemoteError> {
    Ok(match result?.0 {
        AnswerKind::Value(value) => value.into(),
        AnswerKind::Object(object) => Return::Object(object.into_served()),
    })
}

/// Registers `T` under its typeid, created from `create`'s arguments by
/// its constructor, with its exposed list, and the types its methods
/// return (unless already registered) — Python's
/// `register('Maths', MathsClass)`.
pub fn register_type<T: SharedType>(registry: &mut Registry) -> Registration<'_> {
    register_type_as::<T>(registry, T::TYPEID)
}

/// [`register_type`] under another typeid (Python's `register('Foo2',
/// Foo, exposed=('g', '_h'))`: one type, two registrations); name the
/// exposed list on the returned registration. A client creates it with
/// `create_as::<T::Proxy>(typeid, args)`.
pub fn register_type_as<'r, T: SharedType>(
    registry: &'r mut Registry,
    typeid: &str,
) -> Registration<'r> {
    // First, so that `registry` is free for the registration returned:
    // a type returning `T` may register `T` as returned-only on the way,
    // which the registration below replaces.
    T::register_returned(&mut Registrar {
        registry: Some(&mut *registry),
    });
    let name = typeid.to_owned();
    let registration = registry.register(typeid, move |_ctx: &CallContext<'_>, args: Args| {
        let call = Call::new(&name, "__init__", args.positional, args.keywords);
        T::construct(call).map(Served::new)
    });
    expose::<T>(registration)
}

/// Registers `U` as a typeid only methods return, if nothing is
/// registered under its typeid yet.
pub(super) fn register_returned<U: SharedType>(registry: &mut Registry) {
    if registry.typeids().any(|t| t == U::TYPEID) {
        return;
    }
    expose::<U>(registry.register_returned::<Served<U>>(U::TYPEID));
    U::register_returned(&mut Registrar {
        registry: Some(registry),
    });
}

fn expose<T: SharedType>(registration: Registration<'_>) -> Registration<'_> {
    match T::EXPOSED {
        Some(names) => registration.exposed(names.iter().copied()),
        None => registration,
    }
}
