//! Proxies as serde values: a proxy serializes as its [`Token`], so it
//! can be stored inside another shared object (`list.append(dict)`) or
//! sent through a `Connection`; deserializing one takes a new reference
//! on a connection of this process (Python's `RebuildProxy`).
//!
//! Which connection: while a proxy converts a server's answer, the
//! proxy's own connection (the answer's references are then given back,
//! see [`convert_answer`]); otherwise the process's connection to the
//! token's server, opened on first use with the current process's
//! authkey, as Python's `RebuildProxy` does. A forked child never reuses
//! its parent's socket: connections are keyed by pid.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use mp_proto::{ObjectId, Token, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::client::ManagerClient;
use super::error::ManagerError;
use super::proxy::{from_wire, release_later, BaseProxy};
use crate::connection::Address;

thread_local! {
    /// The connection answers are being converted for.
    static ANSWER_CLIENT: RefCell<Option<ManagerClient>> = const { RefCell::new(None) };
}

/// This process's connections by server address.
static CONNECTIONS: Mutex<Option<(u32, HashMap<String, ManagerClient>)>> = Mutex::new(None);

/// Records `client` as this process's connection to its server, so
/// proxies received later reuse it.
pub fn register_connection(client: &ManagerClient) {
    let mut all = CONNECTIONS.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    let map = match &mut *all {
        Some((p, map)) if *p == pid => map,
        slot => &mut slot.insert((pid, HashMap::new())).1,
    };
    map.entry(client.address().to_string())
        .or_insert_with(|| client.clone());
}

/// This process's connection to the server at `address`, opened with the
/// current process's authkey if there is none yet.
pub fn connection_for(address: &str) -> Result<ManagerClient, ManagerError> {
    {
        let all = CONNECTIONS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((pid, map)) = &*all {
            if *pid == std::process::id() {
                if let Some(c) = map.get(address) {
                    return Ok(c.clone());
                }
            }
        }
    }
    let parsed: Address = address
        .parse()
        .map_err(|e: crate::connection::ConnectionError| ManagerError::Protocol(e.to_string()))?;
    let key = crate::process::current_process().authkey();
    let client = ManagerClient::connect(&parsed, key.as_bytes())?;
    register_connection(&client);
    Ok(client)
}

/// Converts an answer of `client`'s server to `T`. Proxies inside it
/// take references of their own; the references the answer came with are
/// then given back, so nothing leaks whether or not `T` keeps them.
pub fn convert_answer<T: DeserializeOwned>(
    client: &ManagerClient,
    value: Value,
) -> Result<T, ManagerError> {
    let owned: Vec<ObjectId> = value.tokens().iter().map(|t| t.id).collect();
    let result = if owned.is_empty() {
        from_wire(value)
    } else {
        let previous = ANSWER_CLIENT.with(|c| c.replace(Some(client.clone())));
        let result = from_wire(value);
        ANSWER_CLIENT.with(|c| *c.borrow_mut() = previous);
        result
    };
    for id in owned {
        release_later(client.clone(), id);
    }
    result
}

impl Serialize for BaseProxy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.token().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BaseProxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = Token::deserialize(deserializer)?;
        let client = ANSWER_CLIENT.with(|c| c.borrow().clone());
        let client = match client {
            Some(c) => c,
            None => connection_for(&token.address).map_err(serde::de::Error::custom)?,
        };
        BaseProxy::from_token(client, token).map_err(serde::de::Error::custom)
    }
}
