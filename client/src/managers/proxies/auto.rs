//! [`AutoProxy`]: an untyped proxy for any registered typeid, offering
//! exactly the methods the server exposes (Python's `AutoProxy`).

use std::sync::Arc;

use mp_proto::message::{Kwargs, ProxyInfo};
use mp_proto::{ErrorKind, RemoteError, Value};

use crate::managers::client::{ManagerClient, Return};
use crate::managers::error::ManagerError;
use crate::managers::proxy::{proxy_common, BaseProxy, ProxyType};

/// A proxy calling methods by name.
pub struct AutoProxy {
    base: BaseProxy,
    exposed: Arc<Vec<String>>,
}
proxy_common!(@fmt AutoProxy []);

impl Clone for AutoProxy {
    fn clone(&self) -> Self {
        AutoProxy {
            base: self.base.clone(),
            exposed: Arc::clone(&self.exposed),
        }
    }
}

impl ProxyType for AutoProxy {
    fn from_parts(base: BaseProxy, exposed: Vec<String>) -> Self {
        AutoProxy {
            base,
            exposed: Arc::new(exposed),
        }
    }
}

impl serde::Serialize for AutoProxy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.base.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for AutoProxy {
    /// Asks the server what the typeid exposes (one round trip).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let base = BaseProxy::deserialize(d)?;
        let exposed = base
            .client()
            .and_then(|c| c.get_methods(base.token().id))
            .map_err(serde::de::Error::custom)?;
        Ok(AutoProxy::from_parts(base, exposed))
    }
}

/// What an [`AutoProxy`] call gave back.
#[derive(Debug)]
pub enum AutoReturn {
    /// A plain value.
    Value(Value),
    /// A new shared object (a method in the type's `method_to_typeid`).
    Proxy(AutoProxy),
}

impl AutoReturn {
    /// The value, or a protocol error if a proxy came back.
    pub fn into_value(self) -> Result<Value, ManagerError> {
        match self {
            AutoReturn::Value(v) => Ok(v),
            AutoReturn::Proxy(p) => Err(ManagerError::Protocol(format!(
                "expected a value, got a new '{}' object",
                p.base.token().typeid
            ))),
        }
    }

    /// The proxy, or a protocol error if a value came back.
    pub fn into_proxy(self) -> Result<AutoProxy, ManagerError> {
        match self {
            AutoReturn::Proxy(p) => Ok(p),
            AutoReturn::Value(v) => Err(ManagerError::Protocol(format!(
                "expected a new shared object, got {}",
                v.repr()
            ))),
        }
    }
}

impl AutoProxy {
    /// Takes ownership of the reference `info` came with.
    pub fn from_info(client: ManagerClient, info: ProxyInfo) -> Self {
        let exposed = Arc::new(info.exposed.clone());
        AutoProxy {
            base: BaseProxy::from_owned(client, info),
            exposed,
        }
    }

    /// The methods this proxy may call.
    pub fn exposed(&self) -> &[String] {
        &self.exposed
    }

    /// The same reference, allowed to call only those of `names` the
    /// server exposes too (Python's client-side `register(…, exposed=…)`).
    pub fn restrict(self, names: &[String]) -> AutoProxy {
        let exposed = self
            .exposed
            .iter()
            .filter(|m| names.contains(m))
            .cloned()
            .collect();
        AutoProxy {
            base: self.base,
            exposed: Arc::new(exposed),
        }
    }

    /// Gives up the method list, keeping the reference.
    pub fn into_base(self) -> BaseProxy {
        self.base
    }

    /// [`call_method`](Self::call_method) for a method returning a new
    /// shared object, wrapped as `P` (Python's `method_to_typeid` with the
    /// typeid's registered `proxytype`).
    pub fn call_method_as<P: ProxyType>(
        &self,
        name: &str,
        args: Vec<Value>,
    ) -> Result<P, ManagerError> {
        self.check_exposed(name)?;
        self.base.call_returning(name, args)
    }

    fn check_exposed(&self, name: &str) -> Result<(), ManagerError> {
        if self.exposed.iter().any(|m| m == name) {
            return Ok(());
        }
        Err(ManagerError::Remote(RemoteError::new(
            ErrorKind::AttributeError,
            format!(
                "'{}' proxy has no exposed method '{name}'",
                self.base.token().typeid
            ),
        )))
    }

    /// Calls `name` with positional `args`. A method the type does not
    /// expose is an `AttributeError` without a round trip.
    pub fn call_method(&self, name: &str, args: Vec<Value>) -> Result<AutoReturn, ManagerError> {
        self.call_method_kw(name, args, Kwargs::new())
    }

    /// [`call_method`](Self::call_method) with keyword arguments.
    pub fn call_method_kw(
        &self,
        name: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<AutoReturn, ManagerError> {
        self.check_exposed(name)?;
        let (client, id) = self.base.current()?;
        match client.call_method(id, name, args, kwargs)? {
            Return::Value(v) => Ok(AutoReturn::Value(v)),
            Return::Proxy(info) => Ok(AutoReturn::Proxy(AutoProxy::from_info(
                client.clone(),
                info,
            ))),
        }
    }

    /// A copy of the referent (Python's `_getvalue()`).
    pub fn get_value(&self) -> Result<Value, ManagerError> {
        self.base.get_value_raw()
    }
}
