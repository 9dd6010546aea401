//! What [`ManagerClient`](super::ManagerClient) calls give back: a value
//! or a new shared object, and the server's own reports (Python's
//! `dispatch` results).

pub use mp_proto::reports::{ServerStatus, TypeInfo};

use mp_proto::message::ProxyInfo;
use mp_proto::Value;

use crate::managers::error::ManagerError;

/// What a method call gave back.
#[derive(Clone, Debug, PartialEq)]
pub enum Return {
    /// A value. Every proxy token inside it comes with one reference owned
    /// by this connection.
    Value(Value),
    /// A new shared object (a method in its type's `method_to_typeid`);
    /// this connection owns one reference to it.
    Proxy(ProxyInfo),
}

impl Return {
    /// The value, or a protocol error if a proxy came back instead.
    pub fn into_value(self) -> Result<Value, ManagerError> {
        match self {
            Return::Value(v) => Ok(v),
            Return::Proxy(p) => Err(ManagerError::Protocol(format!(
                "expected a value, got a new '{}' object",
                p.token.typeid
            ))),
        }
    }

    /// The new object, or a protocol error if a value came back instead.
    pub fn into_proxy(self) -> Result<ProxyInfo, ManagerError> {
        match self {
            Return::Proxy(p) => Ok(p),
            Return::Value(v) => Err(ManagerError::Protocol(format!(
                "expected a new shared object, got {}",
                v.repr()
            ))),
        }
    }
}
