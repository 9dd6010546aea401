//! What [`ManagerClient`](super::ManagerClient) calls give back: a value
//! or a new shared object, and the server's own reports (Python's
//! `dispatch` results).

use std::collections::BTreeMap;

use mp_proto::message::ProxyInfo;
use mp_proto::Value;
use serde::{Deserialize, Serialize};

use super::error::ManagerError;

/// What a method call gave back.
#[derive(Clone, Debug, PartialEq)]
pub enum Returned {
    /// A value. Every proxy token inside it comes with one reference owned
    /// by this connection.
    Value(Value),
    /// A new shared object (a method in its type's `method_to_typeid`);
    /// this connection owns one reference to it.
    Proxy(ProxyInfo),
}

impl Returned {
    /// The value, or a protocol error if a proxy came back instead.
    pub fn into_value(self) -> Result<Value, ManagerError> {
        match self {
            Returned::Value(v) => Ok(v),
            Returned::Proxy(p) => Err(ManagerError::Protocol(format!(
                "expected a value, got a new '{}' object",
                p.token.typeid
            ))),
        }
    }

    /// The new object, or a protocol error if a value came back instead.
    pub fn into_proxy(self) -> Result<ProxyInfo, ManagerError> {
        match self {
            Returned::Proxy(p) => Ok(p),
            Returned::Value(v) => Err(ManagerError::Protocol(format!(
                "expected a new shared object, got {}",
                v.repr()
            ))),
        }
    }
}

/// What the `status` server call reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// The server's name and version (`mpserver/0.1.0`).
    pub server: String,
    /// The address it serves at.
    pub address: String,
    /// Seconds since it started.
    pub uptime_secs: f64,
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Requests answered since start.
    pub requests_total: u64,
    /// Live shared objects.
    pub number_of_objects: u64,
    /// Live shared objects by typeid.
    pub objects_by_typeid: BTreeMap<String, u64>,
}

/// A registered typeid, as the `typeids` server call describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeInfo {
    /// Its name.
    pub typeid: String,
    /// Methods a proxy may call.
    pub exposed: Vec<String>,
    /// Methods returning new shared objects, and their typeid.
    pub method_to_typeid: BTreeMap<String, String>,
    /// Whether clients create it directly.
    pub create_method: bool,
}
