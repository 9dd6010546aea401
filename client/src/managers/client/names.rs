//! Named objects from a client: [`publish`](ManagerClient::publish),
//! [`unpublish`](ManagerClient::unpublish),
//! [`lookup`](ManagerClient::lookup) and
//! [`names`](ManagerClient::names) — the server's `mp_server::names`,
//! which owns an object by name apart from any session, so that a second
//! client finds what a first one (or the operator, with `mpserver serve
//! --shared jobs=Queue`) made.

use mp_proto::message::ProxyInfo;
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::reports::NamedObject;
use mp_proto::{ErrorKind, RemoteError, Value};

use super::{convert, id_value, ManagerClient};
use crate::managers::error::ManagerError;
use crate::managers::proxy::{BaseProxy, ProxyType};

impl ManagerClient {
    /// Names the object `proxy` refers to `name` on the server: the name
    /// holds a reference of its own, so the object lives while named,
    /// whoever drops theirs. A name already taken is a `ValueError`
    /// unless `replace`.
    pub fn publish(
        &self,
        name: &str,
        proxy: &impl AsRef<BaseProxy>,
        replace: bool,
    ) -> Result<(), ManagerError> {
        let args = vec![
            Value::Str(name.to_owned()),
            id_value(proxy.as_ref().token().id),
            Value::Bool(replace),
        ];
        self.server(ServerMethod::Publish, args).map(drop)
    }

    /// Removes `name` (a `KeyError` if nothing has it); the object lives
    /// on while anyone else refers to it.
    pub fn unpublish(&self, name: &str) -> Result<(), ManagerError> {
        self.server(ServerMethod::Unpublish, vec![Value::Str(name.to_owned())])
            .map(drop)
    }

    /// A proxy of type `P` to the object published as `name`, holding a
    /// reference of its own: a `KeyError` for a name nothing has, a
    /// `TypeError` when the object's typeid is not one `P` serves.
    pub fn lookup<P: ProxyType>(&self, name: &str) -> Result<P, ManagerError> {
        let info = self.lookup_info(name)?;
        let exposed = info.exposed.clone();
        let base = BaseProxy::from_owned(self.clone(), info).with_name(name);
        let typeid = &base.token().typeid;
        if !P::TYPEIDS.is_empty() && !P::TYPEIDS.contains(&typeid.as_str()) {
            // `base` goes out of scope here, giving the reference back.
            return Err(ManagerError::Remote(RemoteError::new(
                ErrorKind::TypeError,
                format!(
                    "the name '{name}' is a '{typeid}' object, not one of {:?}",
                    P::TYPEIDS
                ),
            )));
        }
        Ok(P::from_parts(base, exposed))
    }

    /// The server's `lookup`: a new reference to the object `name`
    /// names, which this connection then owns.
    pub fn lookup_info(&self, name: &str) -> Result<ProxyInfo, ManagerError> {
        self.call(
            mp_proto::message::Target::Server,
            ServerMethod::Lookup.name(),
            vec![Value::Str(name.to_owned())],
            Default::default(),
        )?
        .into_proxy()
    }

    /// Every name on the server, with its object and typeid.
    pub fn names(&self) -> Result<Vec<NamedObject>, ManagerError> {
        convert(self.server(ServerMethod::Names, vec![])?)
    }
}
