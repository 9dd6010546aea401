//! Proxies as serde values (Python's `BaseProxy.__reduce__` and
//! `RebuildProxy`): a proxy can be stored inside another shared object
//! (`list.append(dict)`) or sent to another process through a
//! `Connection`, a queue, or a spawned child's arguments.
//!
//! # Two forms
//!
//! * **To a server** (inside [`to_wire`](super::proxy::to_wire), i.e. as a
//!   method's argument): the bare [`Token`]. The server takes its own
//!   reference to whatever it stores, and the call is synchronous, so the
//!   referent cannot die in between.
//! * **To another process** (any other serializer): the token plus a
//!   *transit ticket*. Serializing asks the server to hold one extra
//!   reference that belongs to no connection (`transit`, see
//!   `mp_server::transit`); the receiver's deserialization moves exactly
//!   that reference into its own connection (`receive`) instead of taking
//!   a new one. So the referent stays alive while the proxy is in flight
//!   even if the sender drops its copy at once, or exits. A ticket nobody
//!   receives (the message was lost, the receiver died) is dropped by the
//!   server when its lease ends — [`set_transit_lease`], five minutes by
//!   default — so an undelivered proxy keeps its referent alive for at
//!   most that long. Deserializing the same bytes twice, or after the
//!   lease, falls back to a fresh `incref`, which fails with the server's
//!   `KeyError` if the referent is gone by then.
//!
//! Serializing a proxy for another process therefore costs one round trip
//! to its server (CPython pays one too, for its incref).
//!
//! # Which connection
//!
//! While a proxy converts a server's answer, the proxy's own connection
//! (the answer's references are then given back, see [`convert_answer`]);
//! otherwise the process's connection to the token's server, opened on
//! first use with the authkey this process (or the parent it was forked
//! from) used for that server, else the current process's authkey, as
//! Python's `RebuildProxy` does. A forked child never reuses its parent's
//! socket: connections are keyed by pid.
//!
//! A `spawn` or `forkserver` child knows only its own authkey (the
//! parent's, inherited): a proxy of a manager started with another key
//! cannot be rebuilt there. CPython sends the key along while spawning;
//! here, start such managers with the process's authkey ([`Manager()`])
//! or pass the address and key and connect in the child.
//!
//! [`Manager()`]: super::Manager()

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mp_proto::{ObjectId, Token, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::client::{ManagerClient, WeakClient};
use super::error::ManagerError;
use super::proxy::{from_wire, release_later, BaseProxy};
use crate::connection::Address;

thread_local! {
    /// The connection answers are being converted for.
    static ANSWER_CLIENT: RefCell<Option<ManagerClient>> = const { RefCell::new(None) };
    /// Whether values are being converted for a server call.
    static FOR_SERVER: Cell<bool> = const { Cell::new(false) };
}

/// The transit lease in milliseconds.
static LEASE_MS: AtomicU64 = AtomicU64::new(300_000);

/// How long a proxy serialized for another process keeps its referent
/// alive on the server if nobody receives it (five minutes unless set).
/// Applies to proxies serialized afterwards, by this process.
pub fn set_transit_lease(lease: Duration) {
    let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    LEASE_MS.store(ms, Ordering::Relaxed);
}

/// The current transit lease.
pub fn transit_lease() -> Duration {
    Duration::from_millis(LEASE_MS.load(Ordering::Relaxed))
}

/// Runs `f` with proxies serializing as bare tokens, for a server call.
pub(crate) fn for_server<R>(f: impl FnOnce() -> R) -> R {
    let previous = FOR_SERVER.with(|c| c.replace(true));
    let result = f();
    FOR_SERVER.with(|c| c.set(previous));
    result
}

/// A proxy on its way to another process.
#[derive(Serialize, Deserialize)]
#[serde(rename = "ProxyInTransit")]
struct InTransit {
    token: Token,
    /// `None` when the server has no transit tickets.
    ticket: Option<u64>,
}

/// This process's connection to one server, and the authkey it was made
/// with (`None`: made elsewhere, key unknown). Weak: the table never keeps
/// a connection open by itself (the server must see it close when the
/// last proxy and manager using it are gone).
pub(super) struct Shared {
    client: WeakClient,
    authkey: Option<Vec<u8>>,
}

impl Shared {
    /// The connection, if it is still held and not known to be dead.
    fn live(&self) -> Option<ManagerClient> {
        self.client.upgrade().filter(|c| !c.is_closed())
    }
}

/// This process's connections by server address.
pub(super) static CONNECTIONS: Mutex<Option<(u32, HashMap<String, Shared>)>> = Mutex::new(None);

/// Runs `f` on this process's connection table (a forked child starts
/// with an empty one: it must not use its parent's sockets).
fn with_connections<R>(f: impl FnOnce(&mut HashMap<String, Shared>) -> R) -> R {
    super::fork::protect_tables();
    let mut all = CONNECTIONS.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    let map = match &mut *all {
        Some((p, map)) if *p == pid => map,
        slot => &mut slot.insert((pid, HashMap::new())).1,
    };
    f(map)
}

/// The authkey each known server was connected with. Kept across fork (a
/// forked child knows what its parent knew, as a CPython proxy keeps its
/// `_authkey`), so a proxy a forked child inherits reconnects with the
/// manager's key rather than the process's.
pub(super) static KEYS: Mutex<Option<HashMap<String, Vec<u8>>>> = Mutex::new(None);

/// The authkey to connect to `address` with: the one it was connected
/// with before in this process or its parent, else the process's.
fn authkey_for(address: &str) -> Vec<u8> {
    super::fork::protect_tables();
    let known = KEYS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|keys| keys.get(address).cloned());
    known.unwrap_or_else(|| {
        crate::process::current_process()
            .authkey()
            .as_bytes()
            .to_vec()
    })
}

/// Records `client` as this process's connection to its server, so
/// proxies received later reuse it (unless there is a live one already).
pub fn register_connection(client: &ManagerClient) {
    register_keyed(client, None);
}

/// [`register_connection`], remembering the authkey it was made with.
pub(crate) fn register_keyed(client: &ManagerClient, authkey: Option<&[u8]>) {
    super::fork::protect_tables();
    if let Some(key) = authkey {
        KEYS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(client.address().to_string(), key.to_vec());
    }
    with_connections(|map| {
        let key = client.address().to_string();
        if map.get(&key).and_then(Shared::live).is_some() {
            return;
        }
        map.insert(
            key,
            Shared {
                client: client.downgrade(),
                authkey: authkey.map(<[u8]>::to_vec),
            },
        );
    })
}

/// This process's one connection to the server at `address` (Python's
/// per-process connection, without CPython's one per thread): a live one
/// made with the same `authkey` (or registered without one) is reused,
/// otherwise a new one is opened and recorded.
pub fn shared_connection(address: &Address, authkey: &[u8]) -> Result<ManagerClient, ManagerError> {
    let found = with_connections(|map| {
        map.get(&address.to_string())
            .filter(|s| s.authkey.as_deref().map_or(true, |k| k == authkey))
            .and_then(Shared::live)
    });
    if let Some(client) = found {
        return Ok(client);
    }
    let client = ManagerClient::connect(address, authkey)?;
    register_keyed(&client, Some(authkey));
    Ok(client)
}

/// This process's connection to the server at `address`, opened if there
/// is none yet with the authkey this process (or the parent it was forked
/// from) connected to it with, else the current process's authkey, as
/// Python's `RebuildProxy` does.
pub fn connection_for(address: &str) -> Result<ManagerClient, ManagerError> {
    let parsed: Address = address
        .parse()
        .map_err(|e: crate::connection::ConnectionError| ManagerError::Protocol(e.to_string()))?;
    shared_connection(&parsed, &authkey_for(address))
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
        if FOR_SERVER.with(Cell::get) {
            return self.token().serialize(serializer);
        }
        let client = self.client().map_err(serde::ser::Error::custom)?;
        let ticket = match client.transit(self.token().id, transit_lease()) {
            Ok(t) => Some(t),
            // A server without transit tickets (an older mpserver): the
            // receiver takes a new reference, as CPython's does.
            Err(ManagerError::Remote(e)) if e.kind == mp_proto::ErrorKind::AttributeError => None,
            Err(e) => return Err(serde::ser::Error::custom(e)),
        };
        InTransit {
            token: self.token().clone(),
            ticket,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BaseProxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if let Some(client) = ANSWER_CLIENT.with(|c| c.borrow().clone()) {
            let token = Token::deserialize(deserializer)?;
            return BaseProxy::from_token(client, token).map_err(serde::de::Error::custom);
        }
        let InTransit { token, ticket } = InTransit::deserialize(deserializer)?;
        let client = connection_for(&token.address).map_err(serde::de::Error::custom)?;
        match ticket {
            Some(ticket) => receive(client, token, ticket),
            None => BaseProxy::from_token(client, token),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// Takes over the reference in transit under `ticket`, or a new one if
/// it is gone (received already, or its lease over).
fn receive(client: ManagerClient, token: Token, ticket: u64) -> Result<BaseProxy, ManagerError> {
    match client.receive(ticket) {
        Ok(id) if id == token.id => Ok(BaseProxy::held(client, token)),
        Ok(other) => {
            // Another server's ticket with the same number: not ours.
            release_later(client, other);
            Err(ManagerError::Protocol(format!(
                "transit ticket {ticket} names object {other}, not {}",
                token.id
            )))
        }
        Err(ManagerError::Remote(e)) if e.kind == mp_proto::ErrorKind::KeyError => {
            BaseProxy::from_token(client, token)
        }
        Err(e) => Err(e),
    }
}
