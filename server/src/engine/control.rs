//! Server-level calls: requests whose target is the server itself.
//!
//! | method | arguments | returns |
//! | --- | --- | --- |
//! | `create` | `typeid, *args, **kwargs` | a proxy (one reference, owned by the session) |
//! | `incref` / `decref` | object id (int, hex str, or token) | `None` |
//! | `get_methods` (alias `exposed`) | object id | list of method names |
//! | `number_of_objects` | — | int |
//! | `debug_info` | — | list of `{id, typeid, refcount}` |
//! | `status` | — | dict: version, address, uptime, connections, objects by typeid |
//! | `typeids` | — | list of `{typeid, exposed, method_to_typeid, create_method}` |
//! | `ping` / `dummy` | — | `None` |
//! | `shutdown` | — | `None`, then the server stops gracefully |
//! | `transit` | object id, lease seconds | a ticket: one reference held by the server for the lease (`transit.rs`) |
//! | `receive` | ticket | the object id; the ticket's reference moves into the caller's session |
//! | `publish` | `name, id, replace=False` | `None`; the name holds a reference ([`crate::names`]) |
//! | `unpublish` | `name` | `None`; the name's reference is given back |
//! | `lookup` | `name` | a proxy (one reference, owned by the session) |
//! | `names` | — | list of `{name, id, typeid}` |
//!
//! Python's `Server.public` has the same names (its `debug_info` returns a
//! string; ours is structured so `mpserver objects --json` can print it).

use std::sync::Arc;

use mp_proto::message::Outcome;
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::reports::{NamedObject, ServerStatus};
use mp_proto::value::{to_value, Map};
use mp_proto::{ObjectId, RemoteError, Value};

use crate::args::{bool_arg, int_arg, str_arg, Args};
use crate::engine::Engine;
use crate::errors::{attribute_error, key_error_msg, type_error};
use crate::session::Session;
use crate::table::no_such_object;

fn dict(pairs: Vec<(&str, Value)>) -> Value {
    let map: Map = pairs
        .into_iter()
        .map(|(k, v)| (Value::Str(k.to_owned()), v))
        .collect();
    Value::from(map)
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::List(items.into_iter().map(|s| Value::Str(s.clone())).collect())
}

/// Reads an object id: an int, a hex string (CPython's idents) or a token.
pub fn object_id(value: &Value) -> Result<ObjectId, RemoteError> {
    match value {
        Value::Int(i) => u64::try_from(*i)
            .map(ObjectId)
            .map_err(|_| type_error("an object id is a non-negative integer")),
        Value::Str(s) => s
            .parse::<ObjectId>()
            .map_err(|_| type_error(format!("{s:?} is not an object id"))),
        Value::Proxy(token) => Ok(token.id),
        other => Err(type_error(format!(
            "an object id is an int, a hex str or a token, not {}",
            other.type_name()
        ))),
    }
}

impl Engine {
    pub(crate) fn server_call(
        self: &Arc<Self>,
        session: &Arc<Session>,
        method: &str,
        args: Args,
    ) -> Outcome {
        self.metrics.server_call(ServerMethod::from_name(method));
        match self.control(session, method, args) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Error(e),
        }
    }

    fn one_id(args: Args, method: &str) -> Result<ObjectId, RemoteError> {
        let [id] = args.bind(method, ["id"], 1)?;
        object_id(&id.unwrap_or_default())
    }

    fn control(
        self: &Arc<Self>,
        session: &Arc<Session>,
        method: &str,
        mut args: Args,
    ) -> Result<Outcome, RemoteError> {
        let Some(m) = ServerMethod::from_name(method) else {
            return Err(attribute_error(format!(
                "the server has no method '{method}'"
            )));
        };
        let value = match m {
            ServerMethod::Ping | ServerMethod::Dummy => {
                args.none(method)?;
                Value::None
            }
            ServerMethod::Create => {
                if args.positional.is_empty() {
                    return Err(type_error(
                        "create() missing required argument 'typeid' (pos 1)",
                    ));
                }
                let typeid = args.positional.remove(0);
                let typeid = str_arg(&typeid, "typeid")?;
                return self.create(session, typeid, args).map(Outcome::Proxy);
            }
            ServerMethod::Incref => {
                let id = Self::one_id(args, method)?;
                self.table.incref(id)?;
                session.add_ref(id);
                Value::None
            }
            ServerMethod::Decref => {
                let id = Self::one_id(args, method)?;
                if !session.take_ref(id) {
                    return Err(key_error_msg(format!(
                        "this session holds no reference to object '{id}'"
                    )));
                }
                self.table.decref(id)?;
                self.table.collect_if_due();
                Value::None
            }
            ServerMethod::Transit | ServerMethod::Receive => {
                return self.transit_call(session, m, args)
            }
            ServerMethod::GetMethods | ServerMethod::Exposed => {
                let id = Self::one_id(args, method)?;
                let (_, spec) = self.table.get(id).ok_or_else(|| no_such_object(id))?;
                strings(&spec.exposed)
            }
            ServerMethod::NumberOfObjects => {
                args.none(method)?;
                // Live objects only: a cycle nothing else holds is not.
                self.table.collect_cycles();
                Value::Int(self.table.len() as i64)
            }
            ServerMethod::DebugInfo => {
                args.none(method)?;
                self.table.collect_cycles();
                let names = self.names.list();
                let mut objects = self.table.snapshot();
                for o in &mut objects {
                    o.names = names
                        .iter()
                        .filter(|(_, id)| *id == o.id)
                        .map(|(n, _)| n.clone())
                        .collect();
                }
                // Plain structs of strings and numbers always convert.
                to_value(&objects).unwrap_or_default()
            }
            ServerMethod::Publish => {
                let [name, id, replace] = args.bind(method, ["name", "id", "replace"], 2)?;
                let name = str_arg(name.as_ref().unwrap_or(&Value::None), "name")?;
                if self.types.contains_key(name) {
                    return Err(type_error(format!(
                        "'{name}' is a typeid; a name cannot hide one"
                    )));
                }
                let id = object_id(&id.unwrap_or_default())?;
                let replace = bool_arg(replace.as_ref(), false);
                self.publish(name, id, replace)?;
                Value::None
            }
            ServerMethod::Unpublish => {
                let [name] = args.bind(method, ["name"], 1)?;
                let name = str_arg(name.as_ref().unwrap_or(&Value::None), "name")?;
                self.unpublish(name)?;
                Value::None
            }
            ServerMethod::Lookup => {
                let [name] = args.bind(method, ["name"], 1)?;
                let name = str_arg(name.as_ref().unwrap_or(&Value::None), "name")?;
                return self.lookup(session, name).map(Outcome::Proxy);
            }
            ServerMethod::Names => {
                args.none(method)?;
                to_value(&self.named_objects()).unwrap_or_default()
            }
            ServerMethod::Status => {
                args.none(method)?;
                self.status()
            }
            ServerMethod::Typeids => {
                args.none(method)?;
                Value::List(
                    self.types
                        .values()
                        .map(|spec| {
                            let m2t: Map = spec
                                .method_to_typeid
                                .iter()
                                .map(|(m, t)| (Value::Str(m.clone()), Value::Str(t.clone())))
                                .collect();
                            dict(vec![
                                ("typeid", Value::Str(spec.typeid.clone())),
                                ("exposed", strings(&spec.exposed)),
                                ("method_to_typeid", Value::from(m2t)),
                                ("create_method", Value::Bool(spec.create_method)),
                            ])
                        })
                        .collect(),
                )
            }
            ServerMethod::Cancel => {
                let [id] = args.bind(method, ["request_id"], 1)?;
                int_arg(&id.unwrap_or_default())?;
                // Blocking calls wait with their connection, which answers
                // `cancel` before the engine sees it; driven without one,
                // nothing of the session's is waiting here.
                Value::Bool(false)
            }
            ServerMethod::Shutdown => {
                args.none(method)?;
                tracing::info!(peer = session.peer(), "shutdown requested by a client");
                self.shutdown.trigger();
                Value::None
            }
        };
        Ok(Outcome::Return(value))
    }

    /// `transit` and `receive` (see [`crate::transit`]).
    fn transit_call(
        self: &Arc<Self>,
        session: &Arc<Session>,
        m: ServerMethod,
        args: Args,
    ) -> Result<Outcome, RemoteError> {
        let method = m.name();
        if m == ServerMethod::Receive {
            let [ticket] = args.bind(method, ["ticket"], 1)?;
            let ticket = object_id(&ticket.unwrap_or_default())?.0;
            let id = self.transit.receive(&self.table, ticket)?;
            session.add_ref(id);
            return Ok(Outcome::Return(Value::Int(id.0 as i64)));
        }
        let [id, lease] = args.bind(method, ["id", "lease"], 2)?;
        let id = object_id(&id.unwrap_or_default())?;
        let lease = match lease.unwrap_or_default() {
            Value::Int(i) if i >= 0 => std::time::Duration::from_secs(i as u64),
            Value::Float(f) if f.is_finite() && f >= 0.0 => {
                std::time::Duration::from_secs_f64(f.min(crate::transit::MAX_LEASE.as_secs_f64()))
            }
            other => {
                return Err(type_error(format!(
                    "a lease is a non-negative number of seconds, not {}",
                    other.repr()
                )))
            }
        };
        let ticket = self.transit.send(&self.table, id, lease)?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let engine = Arc::clone(self);
            runtime.spawn(async move {
                tokio::time::sleep(lease.min(crate::transit::MAX_LEASE)).await;
                engine.transit.expire(&engine.table, ticket);
            });
        }
        Ok(Outcome::Return(Value::Int(ticket as i64)))
    }

    /// Makes a new object of `typeid`; the session owns its one reference.
    pub fn create(
        &self,
        session: &Session,
        typeid: &str,
        args: Args,
    ) -> Result<mp_proto::message::ProxyInfo, RemoteError> {
        let Some(spec) = self.types.get(typeid) else {
            // A name is served as a typeid too: CPython's
            // `register('jobs'); m.jobs()` sends `create('jobs')`.
            if self.names.get(typeid).is_some() {
                args.none(typeid)?;
                return self.lookup(session, typeid);
            }
            return Err(key_error_msg(format!("unknown typeid '{typeid}'")));
        };
        let constructor = spec.constructor.as_ref().ok_or_else(|| {
            type_error(format!(
                "typeid '{typeid}' is only returned by methods and cannot be created"
            ))
        })?;
        let object = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            constructor(&self.context(session), args)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(%typeid, "a constructor panicked");
            Err(crate::errors::runtime_error(format!(
                "internal error creating '{typeid}'"
            )))
        })?;
        let id = self.table.insert(object, Arc::clone(spec))?;
        session.add_ref(id);
        Ok(self.proxy_info(spec, id))
    }

    /// A new reference, owned by `session`, to the object `name` names.
    pub fn lookup(
        &self,
        session: &Session,
        name: &str,
    ) -> Result<mp_proto::message::ProxyInfo, RemoteError> {
        let id = self
            .names
            .get(name)
            .ok_or_else(|| crate::names::no_such_name(name))?;
        self.table.incref(id)?;
        session.add_ref(id);
        let (_, spec) = self.table.get(id).ok_or_else(|| no_such_object(id))?;
        Ok(self.proxy_info(&spec, id))
    }

    /// Names object `id` `name` (an existing name only if `replace`),
    /// durably when the engine has a data directory.
    pub fn publish(&self, name: &str, id: ObjectId, replace: bool) -> Result<(), RemoteError> {
        match self.durable.get() {
            Some(d) => d.publish(self, name, id, replace),
            None => self.names.publish(&self.table, name, id, replace),
        }
    }

    /// Removes `name`, durably when the engine has a data directory; the
    /// object it named.
    pub fn unpublish(&self, name: &str) -> Result<ObjectId, RemoteError> {
        match self.durable.get() {
            Some(d) => d.unpublish(self, name),
            None => self.names.unpublish(&self.table, name),
        }
    }

    /// Makes the object `declaration` describes and names it: what
    /// `mpserver serve --shared` does at start. The name holds its only
    /// reference. A name restored from the data directory keeps its
    /// object (its contents are the point of keeping it): nothing is made,
    /// and its id is returned.
    pub fn declare(
        &self,
        declaration: &crate::names::Declaration,
    ) -> Result<ObjectId, RemoteError> {
        if self.types.contains_key(&declaration.name) {
            return Err(type_error(format!(
                "'{}' is a typeid; a name cannot hide one",
                declaration.name
            )));
        }
        if let Some(id) = self.names.get(&declaration.name) {
            if let Some((_, spec)) = self.table.get(id) {
                if spec.typeid != declaration.typeid {
                    tracing::warn!(
                        name = %declaration.name,
                        restored = %spec.typeid,
                        declared = %declaration.typeid,
                        "a declared name was restored from the data directory with another typeid; keeping the restored object (unpublish it to declare it anew)"
                    );
                } else {
                    tracing::info!(name = %declaration.name, "declared name restored from the data directory; keeping its object");
                }
                return Ok(id);
            }
        }
        let session = self.open_session("(declared at start)");
        let made = self
            .create(&session, &declaration.typeid, declaration.args.clone())
            .and_then(|info| {
                self.publish(&declaration.name, info.token.id, false)
                    .map(|()| info.token.id)
            });
        self.end_session(&session);
        made
    }

    /// Every name, its object and typeid.
    pub fn named_objects(&self) -> Vec<NamedObject> {
        self.names
            .list()
            .into_iter()
            .filter_map(|(name, id)| {
                let (_, spec) = self.table.get(id)?;
                Some(NamedObject {
                    name,
                    id,
                    typeid: spec.typeid.clone(),
                })
            })
            .collect()
    }

    /// What `status` reports.
    pub fn status(&self) -> Value {
        let (connections, connections_total, requests_total) = self.metrics.sessions_and_requests();
        let status = ServerStatus {
            server: format!("mpserver/{}", env!("CARGO_PKG_VERSION")),
            address: self.address(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            connections,
            connections_total,
            requests_total,
            number_of_objects: self.table.len() as u64,
            objects_by_typeid: self.table.counts_by_typeid(),
            names: self.named_objects(),
        };
        // A struct of strings, numbers and a map of them always converts.
        to_value(&status).unwrap_or_default()
    }
}
