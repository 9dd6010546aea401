//! [`AsyncBaseProxy`]: one counted reference to a shared object, held by
//! an [`AsyncManagerClient`]'s connection — the untyped core of every
//! async typed proxy, as [`BaseProxy`](crate::managers::BaseProxy) is of
//! the sync ones.
//!
//! What a call does when its future is dropped comes from the method's
//! one declaration (`mp_proto::methods::builtin`): a `blocking` method is
//! cancelled on the server, and a `get`, an `acquire` or a condition's
//! `wait` that won the race gives back what it took (`kind_of`).
//!
//! After a reconnection a proxy found by name
//! ([`AsyncManagerClient::lookup`]) finds its object again by that name;
//! any other fails with [`ManagerError::ObjectLost`]. A blocking call on
//! a named object is sent again once the connection is back, as the sync
//! client does.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use mp_proto::message::{Kwargs, Target};
use mp_proto::methods::builtin::{
    methods_of, waits_for_event, CommonMethod, ConditionMethod, QueueMethod, SemaphoreMethod,
    ServerMethod,
};
use mp_proto::methods::MethodSpec;
use mp_proto::{ObjectId, Token, Value};
use mp_sys::lock;
use serde::de::DeserializeOwned;

use super::client::{fresh_owner, id_value, wrong_type, AsyncManagerClient, CallKind, Undo};
use super::pending::Pending;
use crate::managers::client::Return;
use crate::managers::error::ManagerError;
use crate::managers::proxy::from_wire;

/// One reference to a shared object, held by an async connection.
/// Dropping it gives the reference back (a `decref` nobody waits for);
/// cloning takes another.
pub struct AsyncBaseProxy {
    client: AsyncManagerClient,
    token: Token,
    /// `client`'s generation when the reference was taken.
    generation: u64,
    /// The name it was looked up by, to find it again after a
    /// reconnection.
    name: Option<Arc<str>>,
    /// The reference found again by name after a reconnection: its
    /// generation and token.
    bound: Mutex<Option<(u64, Token)>>,
}

impl AsyncBaseProxy {
    /// Takes ownership of the reference `token` came with (a `create`, a
    /// `lookup`, a method returning a new object).
    pub fn from_owned(client: AsyncManagerClient, token: Token) -> Self {
        AsyncBaseProxy {
            generation: client.generation(),
            client,
            token,
            name: None,
            bound: Mutex::new(None),
        }
    }

    pub(super) fn with_name(mut self, name: &str) -> Self {
        self.name = Some(Arc::from(name));
        self
    }

    /// The token naming the referent, as the proxy was made with.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The name the proxy was looked up by, if it was.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The connection the reference is held by.
    pub fn client(&self) -> &AsyncManagerClient {
        &self.client
    }

    /// The object id calls go to now: the proxy's own reference, or,
    /// after a reconnection, the one found again by name.
    pub async fn current(&self) -> Result<ObjectId, ManagerError> {
        let generation = self.client.generation();
        if generation == self.generation {
            return Ok(self.token.id);
        }
        if let Some((g, token)) = lock(&self.bound).as_ref() {
            if *g == generation {
                return Ok(token.id);
            }
        }
        let Some(name) = &self.name else {
            return Err(ManagerError::ObjectLost {
                id: self.token.id,
                typeid: self.token.typeid.clone(),
            });
        };
        let token = self.client.lookup_info(name).await?.token;
        let id = token.id;
        let mut bound = lock(&self.bound);
        if let Some((g, old)) = bound.replace((generation, token)) {
            // Two tasks looked it up at once: give the other one back.
            if g == generation && old.id != id {
                self.client.send_and_forget(
                    Target::Server,
                    ServerMethod::Decref.name(),
                    vec![id_value(old.id)],
                    0,
                );
            }
        }
        Ok(id)
    }

    /// Calls `method` on the referent and returns its value (Python's
    /// `_callmethod`). If the method is declared `blocking`, dropping the
    /// future cancels it on the server and gives back what it took.
    pub async fn call(
        &self,
        method: impl AsRef<str>,
        args: Vec<Value>,
    ) -> Result<Value, ManagerError> {
        self.call_owned(method.as_ref(), args, Kwargs::new(), 0)
            .await
    }

    /// [`call`](Self::call) with keyword arguments.
    pub async fn call_kw(
        &self,
        method: impl AsRef<str>,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, ManagerError> {
        self.call_owned(method.as_ref(), args, kwargs, 0).await
    }

    /// Calls `method` and converts its value to `T`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        method: impl AsRef<str>,
        args: Vec<Value>,
    ) -> Result<T, ManagerError> {
        from_wire(self.call(method, args).await?)
    }

    /// A copy of the referent (Python's `_getvalue()`).
    pub async fn get_value_raw(&self) -> Result<Value, ManagerError> {
        self.call(CommonMethod::GetValue, vec![]).await
    }

    /// Calls `method` as the owner `thread` (a lock's holder).
    pub(super) async fn call_owned(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
        thread: u64,
    ) -> Result<Value, ManagerError> {
        let blocking = declared_blocking(&self.token.typeid, method);
        self.call_return(method, blocking, args, kwargs, thread)
            .await?
            .into_value()
    }

    /// Calls a method of a program's own shared type by its declaration
    /// (what [`#[shared]`](crate::managers::shared) writes an async
    /// proxy's methods with): a method declared `blocking` is cancelled
    /// on the server when the future is dropped first, whatever the
    /// server-side type.
    pub async fn call_declared(
        &self,
        method: MethodSpec,
        args: Vec<Value>,
    ) -> Result<Value, ManagerError> {
        self.call_return(method.name, method.blocking, args, Kwargs::new(), 0)
            .await?
            .into_value()
    }

    /// Calls `method`, which answers with a new shared object (its
    /// declaration's `returns`, Python's `method_to_typeid`), and wraps
    /// the reference this connection now owns as `P`.
    pub async fn call_returning<P: AsyncProxyType>(
        &self,
        method: MethodSpec,
        args: Vec<Value>,
    ) -> Result<P, ManagerError> {
        let info = self
            .call_return(method.name, method.blocking, args, Kwargs::new(), 0)
            .await?
            .into_proxy()?;
        Ok(P::from_base(AsyncBaseProxy::from_owned(
            self.client.clone(),
            info.token,
        )))
    }

    /// A copy of the referent as `T` (Python's `_getvalue()`, typed).
    /// Proxies inside it come back as plain tokens.
    pub async fn get_value_as<T: DeserializeOwned>(&self) -> Result<T, ManagerError> {
        from_wire(self.get_value_raw().await?)
    }

    /// Sends a call of `method` now and returns its answer to await
    /// later, so that the server works on it while this task does
    /// something else (an iterator's read ahead). `None` when it cannot
    /// be sent without waiting (the proxy's object must first be found
    /// again after a reconnection) or the connection is gone: the caller
    /// then makes the call the ordinary way and meets the error there.
    /// Only for methods that never wait on the server: the answer of a
    /// dropped [`InFlight`] is forgotten, nothing is cancelled.
    pub(super) fn send_now(&self, method: &str, args: Vec<Value>) -> Option<InFlight> {
        let generation = self.client.generation();
        let id = if generation == self.generation {
            self.token.id
        } else {
            match lock(&self.bound).as_ref() {
                Some((g, token)) if *g == generation => token.id,
                _ => return None,
            }
        };
        let kind = kind_of(&self.token.typeid, method, id, 0, false);
        self.client
            .start(Target::Object(id), method, args, Kwargs::new(), kind)
            .ok()
            .map(|pending| InFlight(Box::pin(pending)))
    }

    /// Sends a call of `method` (finding the object again first after a
    /// reconnection) and returns its answer to await later; for methods
    /// that never wait on the server, as [`send_now`](Self::send_now).
    pub(super) async fn send(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<InFlight, ManagerError> {
        let id = self.current().await?;
        let kind = kind_of(&self.token.typeid, method, id, 0, false);
        let pending = self
            .client
            .start(Target::Object(id), method, args, Kwargs::new(), kind)?;
        Ok(InFlight(Box::pin(pending)))
    }

    /// The one way every call goes: to the object the proxy refers to
    /// now, as owner `thread`; a `blocking` call is cancelled on the
    /// server if its future is dropped, and sent again after a
    /// reconnection when it is a named object's wait.
    async fn call_return(
        &self,
        method: &str,
        blocking: bool,
        args: Vec<Value>,
        kwargs: Kwargs,
        thread: u64,
    ) -> Result<Return, ManagerError> {
        let resumes = self.name.is_some() && waits_for_event(&self.token.typeid, method);
        loop {
            let generation = self.client.generation();
            let id = self.current().await?;
            let kind = kind_of(&self.token.typeid, method, id, thread, blocking);
            let called = match self.client.start(
                Target::Object(id),
                method,
                args.clone(),
                kwargs.clone(),
                kind,
            ) {
                Ok(pending) => pending.await,
                Err(e) => Err(e),
            };
            match called {
                // A blocking call on a named object had not happened: the
                // server cancelled it with the old connection.
                Err(ManagerError::ConnectionLost(why)) if resumes => {
                    if !self.client.wait_reconnected(generation).await {
                        return Err(ManagerError::ConnectionLost(why));
                    }
                }
                answer => return answer,
            }
        }
    }

    /// Writes `<Name typeid 'x' at 0x…>` (Python's proxy repr).
    pub fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{name} typeid '{}' at {}#{:#x}>",
            self.token.typeid, self.token.address, self.token.id.0
        )
    }
}

/// The answer of a call sent ahead ([`AsyncBaseProxy::send_now`],
/// [`AsyncBaseProxy::send`]), to await later. Awaiting it by reference
/// makes a wait that can be dropped and taken up again: a cancelled
/// iterator step keeps its call and finds the answer next time.
/// Dropping it forgets the answer; nothing is cancelled.
pub(super) struct InFlight(Pin<Box<Pending>>);

impl InFlight {
    /// The call's answer. Cancellation safe: the answer waits here for
    /// the next `answer()` if this future is dropped.
    pub(super) async fn answer(&mut self) -> Result<Return, ManagerError> {
        (&mut self.0).await
    }
}

/// Whether a built-in type's `method` is declared `blocking` (a program's
/// own types say so in their calls: [`AsyncBaseProxy::call_declared`]).
fn declared_blocking(typeid: &str, method: &str) -> bool {
    methods_of(typeid).is_some_and(|table| table.iter().any(|m| m.blocking && m.name == method))
}

/// How a call of `method` on an object of `typeid` is made: whether it may
/// wait (its declaration's `blocking`), and what a dropped future gives
/// back when the answer won the race.
pub(super) fn kind_of(
    typeid: &str,
    method: &str,
    id: ObjectId,
    thread: u64,
    blocking: bool,
) -> CallKind {
    if !blocking {
        return CallKind {
            thread,
            ..CallKind::quick()
        };
    }
    let acquires = method == SemaphoreMethod::Acquire.name()
        || method == SemaphoreMethod::Enter.name()
        || method == ConditionMethod::Acquire.name()
        || method == ConditionMethod::Enter.name();
    let undo = match typeid {
        "Queue" | "JoinableQueue" if method == QueueMethod::Get.name() => Undo::Unget(id),
        "Condition" if method == ConditionMethod::Wait.name() => Undo::Release {
            object: id,
            thread,
            always: true,
        },
        "Lock" | "RLock" | "Semaphore" | "BoundedSemaphore" | "Condition" if acquires => {
            Undo::Release {
                object: id,
                thread,
                always: false,
            }
        }
        _ => Undo::Nothing,
    };
    CallKind {
        blocking: true,
        thread,
        undo,
    }
}

impl Clone for AsyncBaseProxy {
    /// Takes a new reference on the server (an `incref` sent ahead of
    /// any later call, so the object cannot go in between; nobody waits
    /// for its answer). After a reconnection the clone refers to what
    /// this proxy refers to now.
    fn clone(&self) -> Self {
        let generation = self.client.generation();
        let token = match lock(&self.bound).as_ref() {
            Some((g, t)) if *g == generation => t.clone(),
            _ => self.token.clone(),
        };
        let live = generation == self.generation || token.id != self.token.id;
        if live {
            self.client.send_and_forget(
                Target::Server,
                ServerMethod::Incref.name(),
                vec![id_value(token.id)],
                0,
            );
        }
        AsyncBaseProxy {
            client: self.client.clone(),
            generation: if live { generation } else { self.generation },
            token,
            name: self.name.clone(),
            bound: Mutex::new(None),
        }
    }
}

impl Drop for AsyncBaseProxy {
    fn drop(&mut self) {
        let generation = self.client.generation();
        let held = match self.bound.get_mut().map(Option::take) {
            Ok(Some((g, token))) if g == generation => Some(token.id),
            _ if self.generation == generation => Some(self.token.id),
            // Lost with an older connection: the server forgot it.
            _ => None,
        };
        if let Some(id) = held {
            self.client.send_and_forget(
                Target::Server,
                ServerMethod::Decref.name(),
                vec![id_value(id)],
                0,
            );
        }
    }
}

impl fmt::Debug for AsyncBaseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug("AsyncBaseProxy", f)
    }
}

/// An async proxy type for a typeid: every async typed proxy, and
/// [`AsyncBaseProxy`] itself (any typeid).
pub trait AsyncProxyType: Sized {
    /// The typeids whose objects this proxy serves; empty for any.
    /// [`AsyncManagerClient::lookup`] checks a named object's typeid
    /// against it.
    const TYPEIDS: &'static [&'static str] = &[];

    /// Wraps one owned reference.
    fn from_base(base: AsyncBaseProxy) -> Self;

    /// The untyped reference underneath.
    fn base(&self) -> &AsyncBaseProxy;
}

impl AsyncProxyType for AsyncBaseProxy {
    fn from_base(base: AsyncBaseProxy) -> Self {
        base
    }
    fn base(&self) -> &AsyncBaseProxy {
        self
    }
}

impl AsyncManagerClient {
    /// A proxy of type `P` to the object published as `name`, holding a
    /// reference of its own and finding the object again by name after a
    /// reconnection: a `KeyError` for a name nothing has, a `TypeError`
    /// when the object's typeid is not one `P` serves.
    pub async fn lookup<P: AsyncProxyType>(&self, name: &str) -> Result<P, ManagerError> {
        let info = self.lookup_info(name).await?;
        let base = AsyncBaseProxy::from_owned(self.clone(), info.token).with_name(name);
        let typeid = base.token().typeid.as_str();
        if !P::TYPEIDS.is_empty() && !P::TYPEIDS.contains(&typeid) {
            // `base` goes out of scope here, giving the reference back.
            return Err(wrong_type(name, typeid, P::TYPEIDS));
        }
        Ok(P::from_base(base))
    }

    /// Names the object `proxy` refers to `name` on the server: the name
    /// holds a reference of its own. A name already taken is a
    /// `ValueError` unless `replace`.
    pub async fn publish(
        &self,
        name: &str,
        proxy: &impl AsyncProxyType,
        replace: bool,
    ) -> Result<(), ManagerError> {
        let id = proxy.base().current().await?;
        self.publish_id(name, id, replace).await
    }
}

/// A fresh owner for one acquisition (see `client::fresh_owner`).
pub(super) fn new_owner() -> u64 {
    fresh_owner()
}

/// Implements `Debug`, `Clone` and [`AsyncProxyType`] (with the typeids
/// it serves) for an async proxy wrapping an `AsyncBaseProxy` in `base`
/// (and, for a generic one, a `PhantomData` in `_marker`).
macro_rules! async_proxy_common {
    ($name:ident = [$($typeid:literal),*]) => {
        impl Clone for $name {
            fn clone(&self) -> Self {
                $name { base: self.base.clone() }
            }
        }
        impl $crate::managers::asyncio::AsyncProxyType for $name {
            const TYPEIDS: &'static [&'static str] = &[$($typeid),*];
            fn from_base(base: $crate::managers::asyncio::AsyncBaseProxy) -> Self {
                $name { base }
            }
            fn base(&self) -> &$crate::managers::asyncio::AsyncBaseProxy {
                &self.base
            }
        }
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.base.fmt_debug(stringify!($name), f)
            }
        }
    };
    ($name:ident <$($g:ident),*> = [$($typeid:literal),*]) => {
        impl<$($g),*> Clone for $name<$($g),*> {
            fn clone(&self) -> Self {
                $name { base: self.base.clone(), _marker: ::std::marker::PhantomData }
            }
        }
        impl<$($g),*> $crate::managers::asyncio::AsyncProxyType for $name<$($g),*> {
            const TYPEIDS: &'static [&'static str] = &[$($typeid),*];
            fn from_base(base: $crate::managers::asyncio::AsyncBaseProxy) -> Self {
                $name { base, _marker: ::std::marker::PhantomData }
            }
            fn base(&self) -> &$crate::managers::asyncio::AsyncBaseProxy {
                &self.base
            }
        }
        impl<$($g),*> ::std::fmt::Debug for $name<$($g),*> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.base.fmt_debug(stringify!($name), f)
            }
        }
    };
}
pub(super) use async_proxy_common;
