//! The server's reports about itself, as the server-level calls answer
//! them: `debug_info` ([`ObjectInfo`]), `status` ([`ServerStatus`]) and
//! `typeids` ([`TypeInfo`]).
//!
//! Python's `BaseManager` has `_debug_info()` and `_number_of_objects()`;
//! the rest is `mpserver`'s. Each report is one type here, which the
//! server turns into a [`Value`](crate::Value) with
//! [`to_value`](crate::value::to_value) and a client reads back with
//! [`from_value`](crate::value::from_value): the field names are the
//! dict keys on the wire, written once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ObjectId;

/// What `debug_info` reports for one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The object's id.
    pub id: ObjectId,
    /// Its typeid.
    pub typeid: String,
    /// References to it right now.
    pub refcount: u64,
    /// The names it is published under (see [`NamedObject`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// One named object, as the `names` server call reports it: an object the
/// server owns by name, apart from any session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedObject {
    /// The name.
    pub name: String,
    /// The object it names.
    pub id: ObjectId,
    /// The object's typeid.
    pub typeid: String,
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
    /// The named objects, in publication order.
    #[serde(default)]
    pub names: Vec<NamedObject>,
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
