//! [`BaseProxy`]: one counted reference to a shared object on a manager
//! server, the untyped core of every typed proxy (Python's
//! `multiprocessing.managers.BaseProxy`).
//!
//! A `BaseProxy` owns exactly one reference on the server, held by the
//! process's connection: cloning takes another (`incref`), dropping gives
//! it back (`decref`). The `decref` of a drop is queued on the connection
//! (it rides in front of the next call, or a background releaser thread
//! sends it), so a dropping thread never waits on the network; if the
//! connection is gone by then, the server already released everything
//! the connection held.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mp_proto::message::{Kwargs, ProxyInfo};
use mp_proto::methods::builtin::{waits_for_event, CommonMethod};
use mp_proto::value::{from_value, to_value};
use mp_proto::{ObjectId, Token, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::ManagerClient;
use super::error::ManagerError;

/// One reference to a shared object, with the connection it is held by.
///
/// After a fork the child never touches the parent's socket: the first
/// call in the child takes a reference of its own on the child's
/// connection to the server (Python's `BaseProxy._after_fork`). Until
/// then the child relies on the parent's reference, so the parent gives
/// back a reference that was alive at a fork only once its live children
/// have exited (manager servers aside): a proxy moved into a forked
/// `Process`'s arguments — which the parent drops once the child has
/// started — stays valid for the child, where CPython races.
///
/// After a reconnection (see [`ConnectOptions::reconnect`]) the reference
/// this proxy held is gone with the old connection: a proxy found by name
/// ([`ManagerClient::lookup`]) finds its object again by that name on its
/// next call; any other fails with [`ManagerError::ObjectLost`].
///
/// [`ConnectOptions::reconnect`]: super::ConnectOptions::reconnect
/// [`ManagerClient::lookup`]: super::ManagerClient::lookup
pub struct BaseProxy {
    client: ManagerClient,
    token: Token,
    /// The process `client` belongs to.
    pid: u32,
    /// `client`'s generation when this reference was taken.
    generation: u64,
    /// The name it was looked up by, to find it again after a
    /// reconnection.
    name: Option<Arc<str>>,
    /// The reference used instead of the first one: a forked child's own,
    /// or one found again by name after a reconnection.
    bound: Mutex<Option<Bound>>,
    /// How many forks this process had made when the proxy was made.
    born: u64,
}

/// A reference a proxy took after it was made ([`BaseProxy::bound`]).
struct Bound {
    /// The process it belongs to.
    pid: u32,
    /// The connection holding it.
    client: ManagerClient,
    /// That connection's generation when it was taken.
    generation: u64,
    /// The object, as found then.
    token: Token,
}

impl BaseProxy {
    /// Takes ownership of the reference `info` came with (a `create`, or a
    /// method returning a new object): no `incref` happens here.
    pub fn from_owned(client: ManagerClient, info: ProxyInfo) -> Self {
        BaseProxy::held(client, info.token)
    }

    /// Takes a new reference (`incref`) to the object `token` names, held
    /// by `client` — how another process or connection attaches to an
    /// object it was told about.
    pub fn from_token(client: ManagerClient, token: Token) -> Result<Self, ManagerError> {
        client.incref(token.id)?;
        Ok(BaseProxy::held(client, token))
    }

    /// Creates a shared object of `typeid` and takes its reference.
    pub fn create(
        client: &ManagerClient,
        typeid: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Self, ManagerError> {
        let info = client.create(typeid, args, kwargs)?;
        Ok(Self::from_owned(client.clone(), info))
    }

    pub(super) fn held(client: ManagerClient, token: Token) -> Self {
        BaseProxy {
            generation: client.generation(),
            client,
            token,
            pid: std::process::id(),
            name: None,
            bound: Mutex::new(None),
            born: super::fork::forks(),
        }
    }

    /// The same reference, found by `name`: after a reconnection the
    /// proxy finds its object again by it.
    pub(super) fn with_name(mut self, name: &str) -> Self {
        self.name = Some(Arc::from(name));
        self
    }

    /// The token naming the referent, as the proxy was made with (after a
    /// reconnection a named object may live under another id: see
    /// [`current_token`](Self::current_token)).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The name the proxy was looked up by, if it was.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The connection the reference is held by in this process (in a
    /// forked child, the child's own, taking a reference on first use).
    pub fn client(&self) -> Result<ManagerClient, ManagerError> {
        self.current().map(|(client, _)| client)
    }

    /// The connection and the object id calls go to now: the proxy's own
    /// reference, or — in a forked child, or after a reconnection — the
    /// one it took since.
    pub fn current(&self) -> Result<(ManagerClient, ObjectId), ManagerError> {
        // Cached (refreshed in a forked child): no getpid per call.
        let pid = crate::synchronize::engine::identity::pid();
        if pid == self.pid && self.client.generation() == self.generation {
            return Ok((self.client.clone(), self.token.id));
        }
        self.rebind(pid).map(|(client, token)| (client, token.id))
    }

    /// The token calls go to now (see [`current`](Self::current)).
    pub fn current_token(&self) -> Result<Token, ManagerError> {
        self.current_pair().map(|(_, token)| token)
    }

    /// The connection and token calls go to now.
    pub(super) fn current_pair(&self) -> Result<(ManagerClient, Token), ManagerError> {
        let pid = crate::synchronize::engine::identity::pid();
        if pid == self.pid && self.client.generation() == self.generation {
            return Ok((self.client.clone(), self.token.clone()));
        }
        self.rebind(pid)
    }

    /// Takes the reference this process needs now, unless it has it.
    fn rebind(&self, pid: u32) -> Result<(ManagerClient, Token), ManagerError> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = bound.as_ref().filter(|b| b.pid == pid);
        if let Some(b) = mine {
            if b.client.generation() == b.generation {
                return Ok((b.client.clone(), b.token.clone()));
            }
        }
        let first_in_child = pid != self.pid && mine.is_none();
        let client = match mine {
            Some(b) => b.client.clone(),
            None if pid == self.pid => self.client.clone(),
            None => super::transfer::connection_for(&self.token.address)?,
        };
        let generation = client.generation();
        let token = if first_in_child {
            // The parent's reference keeps the object alive until this
            // one is taken.
            client.incref(self.token.id)?;
            self.token.clone()
        } else {
            // The reference was lost with a connection.
            let Some(name) = &self.name else {
                return Err(ManagerError::ObjectLost {
                    id: self.token.id,
                    typeid: self.token.typeid.clone(),
                });
            };
            client.lookup_info(name)?.token
        };
        *bound = Some(Bound {
            pid,
            client: client.clone(),
            generation,
            token: token.clone(),
        });
        Ok((client, token))
    }

    /// Calls `method` on the referent and returns its value (Python's
    /// `_callmethod`).
    ///
    /// `method` is a name, or a variant of the type's method declaration
    /// (`DictMethod::GetItem`, see [`mp_proto::methods`]).
    pub fn call(&self, method: impl AsRef<str>, args: Vec<Value>) -> Result<Value, ManagerError> {
        self.call_kw(method, args, Kwargs::new())
    }

    /// [`call`](Self::call) with keyword arguments.
    pub fn call_kw(
        &self,
        method: impl AsRef<str>,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, ManagerError> {
        let method = method.as_ref();
        let (client, id) = self.current()?;
        if self.name.is_some() && waits_for_event(&self.token.typeid, method) {
            return self.call_resuming(client, id, method, args, kwargs);
        }
        client.call_method(id, method, args, kwargs)?.into_value()
    }

    /// A blocking call on a named object: sent again after a
    /// reconnection, for the server cancelled it with the old connection
    /// (see `client::reconnect`).
    fn call_resuming(
        &self,
        mut client: ManagerClient,
        mut id: ObjectId,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, ManagerError> {
        loop {
            let generation = client.generation();
            match client.call_method(id, method, args.clone(), kwargs.clone()) {
                Err(ManagerError::ConnectionLost(why)) => {
                    if !client.wait_reconnected(generation, None) {
                        return Err(ManagerError::ConnectionLost(why));
                    }
                    (client, id) = self.current()?;
                }
                answer => return answer?.into_value(),
            }
        }
    }

    /// Calls `method` and converts its value to `T`.
    pub fn call_as<T: DeserializeOwned>(
        &self,
        method: impl AsRef<str>,
        args: Vec<Value>,
    ) -> Result<T, ManagerError> {
        let value = self.call(method, args)?;
        super::transfer::convert_answer(&self.client()?, value)
    }

    /// A copy of the referent converted to `T` (Python's `_getvalue()`).
    pub fn get_value_as<T: DeserializeOwned>(&self) -> Result<T, ManagerError> {
        let value = self.get_value_raw()?;
        super::transfer::convert_answer(&self.client()?, value)
    }

    /// A copy of the referent (Python's `_getvalue()`).
    pub fn get_value_raw(&self) -> Result<Value, ManagerError> {
        self.call(CommonMethod::GetValue, vec![])
    }

    /// The referent's `str()`, as the server renders it.
    pub fn referent_str(&self) -> Result<String, ManagerError> {
        match self.call(CommonMethod::Str, vec![])? {
            Value::Str(s) => Ok(s),
            other => Ok(other.repr()),
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

    /// Writes the referent's `str()`, or the debug form if the server
    /// cannot be asked.
    pub fn fmt_display(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.referent_str() {
            Ok(s) => f.write_str(&s),
            Err(_) => self.fmt_debug(name, f),
        }
    }
}

impl Clone for BaseProxy {
    /// Takes a new reference on the server. If the server cannot be
    /// reached the clone still points at the referent but holds no
    /// reference of its own (a dead connection's references are released
    /// by the server anyway).
    fn clone(&self) -> Self {
        let (client, token) = self
            .current_pair()
            .unwrap_or_else(|_| (self.client.clone(), self.token.clone()));
        if let Err(e) = client.incref(token.id) {
            tracing::warn!(id = %token.id, error = %e, "incref of a cloned proxy failed");
        }
        let mut clone = BaseProxy::held(client, token);
        clone.name = self.name.clone();
        clone
    }
}

impl Drop for BaseProxy {
    fn drop(&mut self) {
        let pid = crate::synchronize::engine::identity::pid();
        let bound = self
            .bound
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|b| b.pid == pid);
        if let Some(b) = bound {
            // The reference taken since; the first one, if this process
            // held it, went with an older connection.
            if b.client.generation() == b.generation {
                release_later(b.client, b.token.id);
            }
            return;
        }
        // A forked child that never used the proxy holds no reference;
        // one lost with a connection is the server's to forget.
        if pid != self.pid || self.client.generation() != self.generation {
            return;
        }
        let client = self.client.clone();
        if self.pid == std::process::id() && self.born != super::fork::forks() {
            // A child forked while this proxy was alive may still rely on
            // this reference (its first call takes its own).
            super::after_fork::release_after_children(client, self.token.id);
        } else {
            release_later(client, self.token.id);
        }
    }
}

impl fmt::Debug for BaseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_debug("BaseProxy", f)
    }
}

/// Queues a `decref` of `id` on `client`'s connection (see
/// [`ManagerClient::decref_later`]).
pub(crate) fn release_later(client: ManagerClient, id: mp_proto::ObjectId) {
    client.decref_later(id);
}

/// A proxy type a manager can hand out for a typeid (Python's
/// `register(…, proxytype=…)`): every typed proxy, [`AutoProxy`], and a
/// user's own type over [`BaseProxy`] implementing it.
///
/// [`AutoProxy`]: super::proxies::AutoProxy
pub trait ProxyType: Sized {
    /// The typeids whose objects this proxy serves (`["dict"]` for a
    /// `DictProxy`); empty for any. [`ManagerClient::lookup`] checks a
    /// named object's typeid against it.
    ///
    /// [`ManagerClient::lookup`]: super::ManagerClient::lookup
    const TYPEIDS: &'static [&'static str] = &[];

    /// Wraps one owned reference; `exposed` is what the server lets
    /// proxies of the typeid call.
    fn from_parts(base: BaseProxy, exposed: Vec<String>) -> Self;
}

impl AsRef<BaseProxy> for BaseProxy {
    fn as_ref(&self) -> &BaseProxy {
        self
    }
}

impl ProxyType for BaseProxy {
    fn from_parts(base: BaseProxy, _exposed: Vec<String>) -> Self {
        base
    }
}

impl BaseProxy {
    /// Calls `method`, which returns a new shared object (a method in the
    /// type's `method_to_typeid`), and wraps it as `P`.
    pub fn call_returning<P: ProxyType>(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<P, ManagerError> {
        let (client, id) = self.current()?;
        let info = client
            .call_method(id, method, args, Kwargs::new())?
            .into_proxy()?;
        let exposed = info.exposed.clone();
        Ok(P::from_parts(BaseProxy::from_owned(client, info), exposed))
    }
}

/// Converts a Rust value to its wire form, to send to a manager server:
/// proxies inside become plain tokens (the server takes its own
/// references to what it stores).
pub fn to_wire<T: Serialize + ?Sized>(value: &T) -> Result<Value, ManagerError> {
    super::transfer::for_server(|| to_value(value))
        .map_err(|e| ManagerError::Conversion(e.to_string()))
}

/// Converts a wire value to a Rust value.
pub fn from_wire<T: DeserializeOwned>(value: Value) -> Result<T, ManagerError> {
    from_value(value).map_err(|e| ManagerError::Conversion(e.to_string()))
}

/// A timeout as Python's float seconds.
pub fn secs(timeout: Duration) -> Value {
    Value::Float(timeout.as_secs_f64())
}

/// Implements `base()`, `Display`, `Debug`, `Clone`, serde and
/// [`ProxyType`] (with the typeids it serves, after `=`) for a proxy type
/// wrapping a `BaseProxy` in its `base` field (and, for a generic one, a
/// `PhantomData` in `_marker`).
macro_rules! proxy_common {
    ($name:ident $(= [$($typeid:literal),*])?) => {
        $crate::managers::proxy::proxy_common!(@fmt $name []);
        impl Clone for $name {
            fn clone(&self) -> Self {
                $name { base: self.base.clone() }
            }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.base.serialize(s)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name { base: $crate::managers::proxy::BaseProxy::deserialize(d)? })
            }
        }
        impl $crate::managers::proxy::ProxyType for $name {
            const TYPEIDS: &'static [&'static str] = &[$($($typeid),*)?];
            fn from_parts(base: $crate::managers::proxy::BaseProxy, _exposed: Vec<String>) -> Self {
                $name { base }
            }
        }
    };
    ($name:ident <$($g:ident),*> $(= [$($typeid:literal),*])?) => {
        $crate::managers::proxy::proxy_common!(@fmt $name [$($g),*]);
        impl<$($g),*> Clone for $name<$($g),*> {
            fn clone(&self) -> Self {
                $name { base: self.base.clone(), _marker: ::std::marker::PhantomData }
            }
        }
        impl<$($g),*> ::serde::Serialize for $name<$($g),*> {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.base.serialize(s)
            }
        }
        impl<'de, $($g),*> ::serde::Deserialize<'de> for $name<$($g),*> {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name {
                    base: $crate::managers::proxy::BaseProxy::deserialize(d)?,
                    _marker: ::std::marker::PhantomData,
                })
            }
        }
        impl<$($g),*> $crate::managers::proxy::ProxyType for $name<$($g),*> {
            const TYPEIDS: &'static [&'static str] = &[$($($typeid),*)?];
            fn from_parts(base: $crate::managers::proxy::BaseProxy, _exposed: Vec<String>) -> Self {
                $name { base, _marker: ::std::marker::PhantomData }
            }
        }
    };
    (@fmt $name:ident [$($g:ident),*]) => {
        impl<$($g),*> $name<$($g),*> {
            /// The untyped reference underneath.
            pub fn base(&self) -> &$crate::managers::proxy::BaseProxy {
                &self.base
            }
        }
        impl<$($g),*> ::std::convert::AsRef<$crate::managers::proxy::BaseProxy> for $name<$($g),*> {
            fn as_ref(&self) -> &$crate::managers::proxy::BaseProxy {
                &self.base
            }
        }
        impl<$($g),*> ::std::fmt::Display for $name<$($g),*> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.base.fmt_display(stringify!($name), f)
            }
        }
        impl<$($g),*> ::std::fmt::Debug for $name<$($g),*> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.base.fmt_debug(stringify!($name), f)
            }
        }
    };
}
pub(crate) use proxy_common;
