//! The engine: registry + object table + sessions, answering requests.
//!
//! Codec-independent: it takes a decoded [`Request`] and returns an
//! [`Outcome`] (or a future of one for a blocking call). The CBOR serve
//! loop in [`crate::server`] drives it today; a CPython pickle codec can
//! drive the very same objects later.
//!
//! An object call looks the object up, checks the method is exposed
//! (falling back, as CPython does, to `__repr__`, `__str__` and
//! `#GETVALUE` for unexposed names), runs it, and turns the result into an
//! outcome: a value (whose proxy tokens become references owned by the
//! caller's session), or — for a method in the type's `method_to_typeid` —
//! a new object and its proxy. Server-level calls (`create`, `incref`,
//! `status`, …) are in [`control`], the other half of `Engine`'s home.

pub mod control;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use indexmap::IndexMap;
use mp_proto::message::{Outcome, ProxyInfo, Request, Target};
use mp_proto::methods::builtin::CommonMethod;
use mp_proto::{ObjectId, RemoteError, Token, Value};

use crate::args::Args;
use crate::budget::Budget;
use crate::errors::{attribute_error, type_error};
use crate::held::Held;
use crate::limits::Limits;
use crate::object::{CallContext, Reply, Return, SessionId};
use crate::registry::{Registry, TypeSpec};
use crate::session::Session;
use crate::shutdown::Shutdown;
use crate::table::{no_such_object, Table};

/// One server's shared state.
pub struct Engine {
    pub(crate) types: IndexMap<String, Arc<TypeSpec>>,
    pub(crate) table: Arc<Table>,
    pub(crate) started: Instant,
    /// The address tokens carry, set once the server is bound.
    address: RwLock<String>,
    next_session: AtomicU64,
    pub(crate) shutdown: Shutdown,
    pub(crate) metrics: crate::metrics::Metrics,
    /// References in transit between processes.
    pub(crate) transit: crate::transit::Transit,
    /// Objects the server owns by name.
    pub(crate) names: crate::names::Names,
    /// The data directory, once opened ([`Engine::open_data_dir`]).
    pub(crate) durable: std::sync::OnceLock<Arc<crate::durable::Durability>>,
}

impl Engine {
    /// An engine serving `registry`'s types, with the default
    /// [`Limits`]' memory budget.
    pub fn new(registry: Registry) -> Arc<Engine> {
        Engine::with_limits(registry, &Limits::default())
    }

    /// An engine serving `registry`'s types within `limits`' memory
    /// budget ([`Limits::max_memory`], [`Limits::max_value_bytes`]).
    pub fn with_limits(registry: Registry, limits: &Limits) -> Arc<Engine> {
        let types = registry.freeze();
        Arc::new(Engine {
            metrics: crate::metrics::Metrics::new(&types),
            types,
            table: Table::with_budget(Budget::from_limits(limits)),
            started: Instant::now(),
            address: RwLock::new(String::new()),
            next_session: AtomicU64::new(1),
            shutdown: Shutdown::new(),
            transit: Default::default(),
            names: Default::default(),
            durable: std::sync::OnceLock::new(),
        })
    }

    /// Keeps the named objects in `options.dir` from now on
    /// ([`crate::durable`]): restores what the directory holds into this
    /// engine, then logs every change to a persisted object. Open it
    /// before serving any call; `limits` bound what is read from disk.
    pub fn open_data_dir(
        self: &Arc<Self>,
        options: &crate::durable::DurableOptions,
        limits: &Limits,
    ) -> Result<crate::durable::RecoveryReport, crate::durable::DurableError> {
        if self.durable.get().is_some() {
            return Err(crate::durable::DurableError::AlreadyOpen);
        }
        let (durability, report) = crate::durable::Durability::open(
            self,
            options,
            limits.max_frame_bytes,
            limits.max_value_bytes,
        )?;
        self.durable
            .set(durability)
            .map_err(|_| crate::durable::DurableError::AlreadyOpen)?;
        Ok(report)
    }

    /// Writes out and fsyncs the data directory's log and stops logging:
    /// what a stopping server disposes of afterwards stays in the
    /// directory. A no-op without one.
    pub fn close_data_dir(&self) {
        if let Some(d) = self.durable.get() {
            d.close();
        }
    }

    /// The data directory in use, if any.
    pub fn data_dir(&self) -> Option<&Arc<crate::durable::Durability>> {
        self.durable.get()
    }

    /// The object table.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// The named objects.
    pub fn names(&self) -> &crate::names::Names {
        &self.names
    }

    /// The shutdown signal: triggered by the `shutdown` call, a signal, or
    /// the embedder.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Sets the address put in tokens (`host:port` or a socket path).
    pub fn set_address(&self, address: impl Into<String>) {
        *self.address.write().unwrap_or_else(|e| e.into_inner()) = address.into();
    }

    /// The address put in tokens.
    pub fn address(&self) -> String {
        self.address
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The spec of `typeid`.
    pub fn spec(&self, typeid: &str) -> Option<&Arc<TypeSpec>> {
        self.types.get(typeid)
    }

    /// Starts a session for a new connection from `peer`.
    pub fn open_session(&self, peer: impl Into<String>) -> Arc<Session> {
        let id = SessionId(self.next_session.fetch_add(1, Ordering::Relaxed));
        self.metrics.session_opened();
        Arc::new(Session::new(id, peer))
    }

    /// Ends a session: releases what its threads hold, then drops its
    /// references. Call it after its waiting calls are cancelled (their
    /// futures dropped), so nothing can be granted to it afterwards.
    pub fn end_session(&self, session: &Session) {
        let (owning, refs) = session.drain();
        for id in owning {
            if let Some((object, _)) = self.table.get(id) {
                object.release_session(session.id());
            }
        }
        // While the server stops, other connections are still answering
        // calls they read before the stop: the objects stay until the table
        // is cleared once every connection is done, so those calls do not
        // meet a KeyError for an object freed under them.
        for (id, n) in refs.into_iter().filter(|_| !self.shutdown.is_triggered()) {
            // An object can only be gone already if the table was cleared.
            let _ = self.table.decref_n(id, n);
        }
        self.table.collect_if_due();
        self.metrics.session_closed();
    }

    /// Answers one request for `session`: its outcome now, or the future
    /// of it for a call that blocks.
    pub fn call(self: &Arc<Self>, session: &Arc<Session>, request: Request) -> Reply<Outcome> {
        self.metrics.request();
        let Request {
            target,
            method,
            args,
            kwargs,
            thread,
            ..
        } = request;
        let args = Args::new(args, kwargs);
        match target {
            Target::Server => Reply::Ready(self.server_call(session, &method, args)),
            Target::Object(id) => self.object_call(session, id, method, args, thread),
        }
    }

    fn object_call(
        self: &Arc<Self>,
        session: &Arc<Session>,
        id: ObjectId,
        method: String,
        args: Args,
        thread: u64,
    ) -> Reply<Outcome> {
        let Some((object, spec)) = self.table.get(id) else {
            return Reply::Ready(Outcome::Error(no_such_object(id)));
        };
        if !spec.is_exposed(&method) {
            let result = match CommonMethod::from_name(&method) {
                Some(CommonMethod::Repr | CommonMethod::Str) => {
                    Ok(Return::Value(Held::plain(Value::Str(
                        object
                            .repr()
                            .unwrap_or_else(|| format!("<{} object at 0x{id}>", spec.typeid)),
                    ))))
                }
                Some(CommonMethod::GetValue) => object.get_value().map(Return::Value),
                None => Err(attribute_error(format!(
                    "method '{method}' of '{}' object is not in exposed={:?}",
                    spec.typeid, spec.exposed
                ))),
            };
            return Reply::Ready(self.finish(session, &spec, &method, result));
        }
        let ctx = CallContext {
            table: &self.table,
            session,
            thread,
            object: Some(id),
        };
        // An embedder's method that panics fails this call, not the
        // connection: its session must still end properly later.
        let run = |args: Args| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                object.call(&ctx, &method, args)
            }))
            .unwrap_or_else(|_| {
                tracing::error!(typeid = %spec.typeid, %method, "a shared object's method panicked");
                Reply::err(crate::errors::runtime_error(format!(
                    "internal error in {}.{method}()",
                    spec.typeid
                )))
            })
        };
        // A changing call of a durable type goes through the data
        // directory, if there is one.
        let reply = match (self.durable.get(), spec.durable.as_ref()) {
            (Some(d), Some(hooks)) if spec.mutates(&method) => {
                d.call(&self.table, id, hooks, &method, args, run)
            }
            _ => run(args),
        };
        match reply {
            Reply::Ready(result) => Reply::Ready(self.finish(session, &spec, &method, result)),
            Reply::Pending(future) => {
                let engine = Arc::clone(self);
                let session = Arc::clone(session);
                Reply::Pending(Box::pin(async move {
                    let result = future.await;
                    engine.finish(&session, &spec, &method, result)
                }))
            }
        }
    }

    /// Turns a method's result into the outcome sent back.
    pub(crate) fn finish(
        &self,
        session: &Session,
        spec: &TypeSpec,
        method: &str,
        result: Result<Return, RemoteError>,
    ) -> Outcome {
        self.metrics.object_call(&spec.typeid, method);
        match result {
            Ok(Return::Value(held)) => Outcome::Return(self.adopt(session, held)),
            Ok(Return::Object(object)) => {
                let spec = spec.returns_typeid(method).and_then(|t| self.types.get(t));
                match spec {
                    Some(spec) => match self.table.insert(object, Arc::clone(spec)) {
                        Ok(id) => {
                            session.add_ref(id);
                            Outcome::Proxy(self.proxy_info(spec, id))
                        }
                        Err(e) => Outcome::Error(e),
                    },
                    None => Outcome::Error(type_error(format!(
                        "method '{method}' returned a shared object but has no \
                         registered typeid in method_to_typeid"
                    ))),
                }
            }
            Err(e) => Outcome::Error(e),
        }
    }

    pub(crate) fn proxy_info(&self, spec: &TypeSpec, id: ObjectId) -> ProxyInfo {
        ProxyInfo {
            token: Token {
                typeid: spec.typeid.clone(),
                address: self.address(),
                id,
            },
            exposed: spec.exposed.clone(),
        }
    }

    /// Gives `session` one reference for every live token in a returned
    /// value: those the value already held are transferred, the rest are
    /// added.
    fn adopt(&self, session: &Session, held: Held) -> Value {
        let (value, refs) = held.into_parts();
        let mut covered: Vec<ObjectId> = refs.map(|r| r.ids).unwrap_or_default();
        for token in value.tokens() {
            if let Some(i) = covered.iter().position(|id| *id == token.id) {
                covered.swap_remove(i);
                session.add_ref(token.id);
            } else if self.table.incref_token(token) {
                session.add_ref(token.id);
            }
        }
        for id in covered {
            let _ = self.table.decref(id);
        }
        value
    }

    /// A `CallContext` for server-level work (constructors).
    pub(crate) fn context<'a>(&'a self, session: &'a Session) -> CallContext<'a> {
        CallContext {
            table: &self.table,
            session,
            thread: 0,
            object: None,
        }
    }
}
