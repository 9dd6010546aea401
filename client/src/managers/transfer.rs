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
//! # The authkey, into spawned children only
//!
//! A `spawn` or `forkserver` child starts knowing only its own authkey
//! (its parent's unless [`Process::set_authkey`] gave it another). So
//! that a proxy of a manager with a key of its own works there, a proxy
//! encoded into such a child's start arguments carries the key its
//! connection was made with — as CPython's `BaseProxy.__reduce__` adds
//! `authkey` only while `get_spawning_popen()` is set — unless it is the
//! child's own key. The child connects with it and remembers it for that
//! server, as a forked child remembers its parent's keys. The start
//! arguments travel on a socket only the child holds; a proxy serialized
//! for anything else (a `Pipe`, a `Queue`, a pool's tasks, another
//! manager) never carries a key. A key this process does not know (a
//! connection made by hand with [`ManagerClient::connect_with`] and
//! registered with [`register_connection`]) is not sent either; a child
//! that then fails to authenticate says which manager's key it lacks.
//!
//! [`Process::set_authkey`]: crate::Process::set_authkey

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
    /// The manager's authkey: only in a `spawn`/`forkserver` child's start
    /// arguments, and only when it is not the child's own (see the
    /// module docs). Absent from every other encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authkey: Option<serde_bytes::ByteBuf>,
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

/// The authkey `address` was connected with in this process or the
/// parent it was forked from, if known.
fn known_authkey(address: &str) -> Option<Vec<u8>> {
    super::fork::protect_tables();
    KEYS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|keys| keys.get(address).cloned())
}

/// The authkey to connect to `address` with: the one it was connected
/// with before in this process or its parent, else the process's.
fn authkey_for(address: &str) -> Vec<u8> {
    known_authkey(address).unwrap_or_else(|| {
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
        // The object as it is reached now (after a reconnection a named
        // one may live under another id).
        let (client, token) = self.current_pair().map_err(serde::ser::Error::custom)?;
        if FOR_SERVER.with(Cell::get) {
            return token.serialize(serializer);
        }
        let ticket = match client.transit(token.id, transit_lease()) {
            Ok(t) => Some(t),
            // A server without transit tickets (an older mpserver): the
            // receiver takes a new reference, as CPython's does.
            Err(ManagerError::Remote(e)) if e.kind == mp_proto::ErrorKind::AttributeError => None,
            Err(e) => return Err(serde::ser::Error::custom(e)),
        };
        InTransit {
            authkey: key_for_spawned_child(&token.address),
            token,
            ticket,
        }
        .serialize(serializer)
    }
}

/// The key to put in a proxy of the server at `address`: while a spawn
/// or forkserver child's arguments are encoded, the key this process
/// connected to it with, if known and not the child's own; otherwise
/// none.
fn key_for_spawned_child(address: &str) -> Option<serde_bytes::ByteBuf> {
    let child = crate::process::start::spawning::child_authkey()?;
    known_authkey(address)
        .filter(|key| key.as_slice() != child.as_bytes())
        .map(serde_bytes::ByteBuf::from)
}

/// The connection a received proxy of the server at `address` uses: made
/// with `authkey` if the proxy carried one (and that key remembered for
/// the server), else [`connection_for`]. The error names the server and,
/// when authentication failed without a carried key, why the key is
/// missing.
fn connection_for_received(address: &str, authkey: Option<&[u8]>) -> Result<ManagerClient, String> {
    let result = match authkey {
        Some(key) => address
            .parse::<Address>()
            .map_err(|e| ManagerError::Protocol(e.to_string()))
            .and_then(|parsed| shared_connection(&parsed, key)),
        None => connection_for(address),
    };
    result.map_err(|e| match (&e, authkey) {
        (ManagerError::Authentication(_), None) => format!(
            "cannot rebuild a proxy of the manager at {address}: {e}; this process does not \
             know that manager's authkey (a proxy carries it only into a spawn or forkserver \
             child's start arguments, not over a Pipe or a Queue): connect to the manager with \
             its authkey first"
        ),
        _ => format!("cannot rebuild a proxy of the manager at {address}: {e}"),
    })
}

impl<'de> Deserialize<'de> for BaseProxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if let Some(client) = ANSWER_CLIENT.with(|c| c.borrow().clone()) {
            let token = Token::deserialize(deserializer)?;
            return BaseProxy::from_token(client, token).map_err(serde::de::Error::custom);
        }
        let InTransit {
            token,
            ticket,
            authkey,
        } = InTransit::deserialize(deserializer)?;
        let client =
            connection_for_received(&token.address, authkey.as_ref().map(|k| k.as_slice()))
                .map_err(serde::de::Error::custom)?;
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

#[cfg(test)]
#[cfg(feature = "server")] // the tests serve a manager in-process
mod tests {
    use super::*;
    use crate::process::start::method::StartMethod;
    use crate::process::start::spawning;
    use crate::process::target::FnTarget;

    const KEY: &[u8] = b"transfer-test-own-key";

    fn proxy() -> BaseProxy {
        let address = crate::managers::server::serve_for_tests(KEY);
        let client = shared_connection(&address, KEY).unwrap();
        BaseProxy::create(&client, "dict", vec![], Default::default()).unwrap()
    }

    /// The `authkey` fields anywhere in a CBOR document.
    fn authkeys(value: &ciborium::Value, found: &mut Vec<Vec<u8>>) {
        match value {
            ciborium::Value::Map(entries) => {
                for (k, v) in entries {
                    if k.as_text() == Some("authkey") {
                        found.push(v.as_bytes().cloned().unwrap_or_default());
                    }
                    authkeys(v, found);
                }
            }
            ciborium::Value::Array(items) => items.iter().for_each(|v| authkeys(v, found)),
            ciborium::Value::Tag(_, inner) => authkeys(inner, found),
            _ => {}
        }
    }

    fn keys_in(bytes: &[u8]) -> Vec<Vec<u8>> {
        let value: ciborium::Value = ciborium::from_reader(bytes).unwrap();
        let mut found = Vec::new();
        authkeys(&value, &mut found);
        found
    }

    fn child(_: BaseProxy) {}

    fn start_args(p: &BaseProxy, child_key: &[u8]) -> Vec<u8> {
        let proxy = BaseProxy::from_token(p.client().unwrap(), p.token().clone()).unwrap();
        let target = FnTarget {
            f: child,
            args: (proxy,),
        };
        spawning::portable(&target, StartMethod::Spawn, child_key)
            .unwrap()
            .args
    }

    #[test]
    fn a_spawned_childs_arguments_carry_the_managers_key() {
        let p = proxy();
        assert_eq!(
            keys_in(&start_args(&p, b"the child's key")),
            vec![KEY.to_vec()]
        );
    }

    #[test]
    fn a_child_holding_the_key_already_gets_none() {
        let p = proxy();
        assert!(keys_in(&start_args(&p, KEY)).is_empty());
    }

    #[test]
    fn any_other_encoding_carries_no_key() {
        let p = proxy();
        let mut bytes = Vec::new();
        ciborium::into_writer(&p, &mut bytes).unwrap();
        assert!(keys_in(&bytes).is_empty());
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY));
        // And rebuilding it here still works (the key is known here).
        let back: BaseProxy = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(back.token(), p.token());
    }

    #[test]
    fn a_received_proxy_without_a_known_key_names_its_manager() {
        let p = proxy();
        let address = p.token().address.clone();
        // As if this process had never connected with the key.
        KEYS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .remove(&address);
        with_connections(|map| map.remove(&address));
        let err = connection_for_received(&address, None).unwrap_err();
        assert!(err.contains(&address), "{err}");
        assert!(
            err.contains("does not know that manager's authkey"),
            "{err}"
        );
        // With the key it carried, it connects.
        connection_for_received(&address, Some(KEY)).unwrap();
    }
}
