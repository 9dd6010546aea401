//! [`ManagerClient`]: one authenticated connection to a manager server,
//! shared by any number of threads.
//!
//! # How threads share the connection
//!
//! A call registers its id, writes its request (under the write lock),
//! then waits for its answer. Whichever waiting thread finds the socket
//! free reads from it — "leader/followers": it reads one answer at a time,
//! hands answers for other ids to their threads, and when its own arrives
//! passes the reading role to another waiter. With one thread that is a
//! plain blocking round trip (no helper thread, no extra wake-up); with
//! many, answers reach their callers in any order. A broken connection
//! fails every call waiting on it with [`ManagerError::ConnectionLost`],
//! carrying the server's own words when it said why it closed
//! ([`mp_proto::message::Response::connection_error`]).
//!
//! The type's home is this folder: `connect.rs` (the handshake, hello and
//! channel, [`ConnectOptions`]), `stream.rs` (TCP, Unix, TLS or a channel),
//! `answers.rs` (what calls give back), `reading.rs` (the reading role,
//! shared with the async client's tasks), `undo.rs` (giving back what a
//! dropped async call took), [`batch`] (many calls in flight at once),
//! `names.rs` (named objects: publish, lookup) and `release.rs` (drops'
//! decrefs riding on later calls).

mod answers;
pub mod batch;
pub(in crate::managers) mod connect;
mod names;
pub(in crate::managers) mod reading;
mod reconnect;
pub(crate) mod release;
mod slots;
pub(in crate::managers) mod stream;
pub(in crate::managers) mod tasks;
pub(in crate::managers) mod undo;

use std::cell::Cell;
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use mp_sys::lock;
use std::time::{Duration, Instant};

use mp_proto::codec::encode_frame_into;
use mp_proto::message::{Kwargs, ProxyInfo, Request, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::reports::ObjectInfo;
use mp_proto::value::from_value;
use mp_proto::{ObjectId, Value};

use super::error::ManagerError;
use crate::connection::Address;
pub use answers::{Return, ServerStatus, TypeInfo};
pub use connect::{ConnectOptions, SHARED_MEMORY_ENV};
use mp_sys::spin::SpinPolicy;
use reading::{Slot, Waiter};
pub use reconnect::{ConnectionEvent, ConnectionState, Reconnect};
use release::Releases;
use stream::Stream;

/// The read buffer: most answers fit, large ones are read through it.
const READ_BUFFER: usize = 16 * 1024;

struct State {
    /// The read half, present when no thread is reading. Buffered, so a
    /// small answer costs one `read` rather than two (header, body).
    reader: Option<BufReader<Stream>>,
    slots: slots::Slots,
    /// Why the connection is dead, once it is.
    dead: Option<String>,
    /// Whether waiting threads poll before they sleep.
    spin: SpinPolicy,
    /// How many times the client reconnected (see `reconnect`).
    generation: u64,
    /// Whether a thread is reconnecting now.
    reconnecting: bool,
    /// Why the connection last broke.
    last_loss: String,
    /// The task last woken to take over reading (see `reading.rs`): if
    /// its future is dropped unpolled, it hands reading on.
    nominee: Option<u64>,
    /// Tasks waiting for a reconnection to succeed or give up.
    watchers: Vec<std::task::Waker>,
}

struct Inner {
    address: Address,
    /// What reconnecting needs: the key and the options connected with.
    authkey: Vec<u8>,
    options: ConnectOptions,
    writer: Mutex<Stream>,
    state: Mutex<State>,
    next_id: AtomicU64,
    max_frame: u64,
    /// `decref`s of dropped proxies waiting to go out.
    releases: Releases,
    /// `State::generation`, readable without the lock.
    generation: AtomicU64,
    /// Signalled when a reconnection succeeds or gives up.
    reconnected: Condvar,
    /// Who wants to hear of connection changes.
    events: Mutex<Vec<reconnect::Listener>>,
    /// Whether calls go through a shared-memory channel.
    channel: AtomicBool,
    /// The process that connected. A forked child dropping its copy must
    /// leave the connection to its parent: closing its descriptors is
    /// harmless, shutting the socket (or the channel) down is not.
    owner: u32,
    /// The thread that reads when only tasks wait (see `reading.rs`).
    parker: reading::Parker,
}

/// A connection to a manager server. Cheap to clone; clones share the
/// connection, and the connection closes when the last one is dropped.
#[derive(Clone)]
pub struct ManagerClient {
    inner: Arc<Inner>,
}

thread_local! {
    /// This thread's number as the server sees it (lock ownership).
    static THREAD_NO: Cell<u64> = const { Cell::new(0) };
    /// This thread's condition variable for waiting on answers.
    static WAKE: Arc<Condvar> = Arc::new(Condvar::new());
}

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

/// The calling thread's condition variable for waiting on answers.
pub(super) fn thread_wake() -> Arc<Condvar> {
    WAKE.with(Arc::clone)
}

/// A fresh thread number: the async client's lock owners draw from the
/// same numbers, so a blocking thread and a task sharing a connection
/// never own a lock as one.
pub(in crate::managers) fn fresh_thread_no() -> u64 {
    NEXT_THREAD.fetch_add(1, Ordering::Relaxed)
}

/// The calling thread's number, assigned on first use.
pub fn current_thread_no() -> u64 {
    THREAD_NO.with(|n| {
        if n.get() == 0 {
            n.set(fresh_thread_no());
        }
        n.get()
    })
}

impl ManagerClient {
    /// Whether `other` shares this one's connection (is a clone of it).
    pub fn same_connection(&self, other: &ManagerClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// Sends one request and waits for its answer.
    pub fn call(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Return, ManagerError> {
        let released = self.inner.releases.take();
        if !released.is_empty() {
            return self.call_with_releases(released, target, method, args, kwargs);
        }
        let id = self.next_id();
        let mut frame = Vec::with_capacity(64);
        encode_request(&mut frame, id, target, method, args, kwargs)?;
        let wake = thread_wake();
        let spin = self.register(&[id], &wake)?;
        let sent = Instant::now();
        self.send(&frame, &[id])?;
        self.wait(id, &wake, spin, Some(sent))
    }

    /// Sends one request now; its answer is waited for with
    /// [`InFlight::wait`] (dropping the `InFlight` forgets it). What a
    /// reader pipelines with: the server works on the next request while
    /// the caller uses the last answer.
    pub(crate) fn send_call(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<InFlight, ManagerError> {
        let id = self.next_id();
        let mut frame = Vec::with_capacity(64);
        encode_request(&mut frame, id, target, method, args, kwargs)?;
        let wake = thread_wake();
        let spin = self.register(&[id], &wake)?;
        self.send(&frame, &[id])?;
        Ok(InFlight {
            client: self.clone(),
            id,
            wake,
            spin,
            waited: false,
        })
    }

    /// The `decref`s waiting to go out on this connection.
    pub(super) fn releases(&self) -> &Releases {
        &self.inner.releases
    }

    /// Forgets the registered calls `ids`: their answers, if any come, are
    /// dropped.
    pub(super) fn forget(&self, ids: &[u64]) {
        let mut state = lock(&self.inner.state);
        for id in ids {
            state.slots.remove(id);
        }
    }

    /// A fresh request id.
    pub(in crate::managers) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers the calls `ids` of this thread before their requests go
    /// out; returns how long to poll while waiting for their answers.
    pub(super) fn register(
        &self,
        ids: &[u64],
        wake: &Arc<Condvar>,
    ) -> Result<Duration, ManagerError> {
        let mut state = lock(&self.inner.state);
        if let Some(why) = &state.dead {
            return Err(ManagerError::ConnectionLost(why.clone()));
        }
        let generation = state.generation;
        for &id in ids {
            state.slots.insert(
                id,
                Slot {
                    answer: None,
                    waiter: Waiter::Thread(Arc::clone(wake)),
                    waiting: false,
                    generation,
                    abandoned: None,
                },
            );
        }
        // On a channel a poll is a load and never stops for a busy CPU
        // (`mp_sys::spin::Contention`), so the waiting thread always
        // polls: learning, as on a socket, could settle on both sides
        // sleeping, each waiting for the other to poll first, where a
        // round trip between CPUs costs two cross-CPU wake-ups.
        Ok(if self.inner.channel.load(Ordering::Relaxed) {
            state.spin.max()
        } else {
            state.spin.next_spin()
        })
    }

    /// Writes encoded request frames for the registered calls `ids`; on
    /// failure the connection is dead and the calls are forgotten.
    pub(in crate::managers) fn send(&self, frames: &[u8], ids: &[u64]) -> Result<(), ManagerError> {
        let written = lock(&self.inner.writer).write_all(frames);
        if let Err(e) = written {
            let mut state = lock(&self.inner.state);
            for id in ids {
                state.slots.remove(id);
            }
            self.kill(&mut state, format!("write failed: {e}"));
            return Err(ManagerError::ConnectionLost(format!("write failed: {e}")));
        }
        Ok(())
    }

    fn server(&self, method: ServerMethod, args: Vec<Value>) -> Result<Value, ManagerError> {
        self.call(Target::Server, method.name(), args, Kwargs::new())?
            .into_value()
    }

    /// Calls `method` of the shared object `id` (Python's `_callmethod`).
    pub fn call_method(
        &self,
        id: ObjectId,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Return, ManagerError> {
        self.call(Target::Object(id), method, args, kwargs)
    }

    /// Creates a shared object of `typeid`; this connection owns its one
    /// reference.
    pub fn create(
        &self,
        typeid: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<ProxyInfo, ManagerError> {
        self.call(
            Target::Server,
            ServerMethod::Create.name(),
            create_args(typeid, args),
            kwargs,
        )?
        .into_proxy()
    }

    /// Adds a reference to `id`, owned by this connection.
    pub fn incref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server(ServerMethod::Incref, vec![id_value(id)])
            .map(drop)
    }

    /// Gives back a reference to `id` this connection owns.
    pub fn decref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server(ServerMethod::Decref, vec![id_value(id)])
            .map(drop)
    }

    /// The methods `id`'s proxies may call.
    pub fn get_methods(&self, id: ObjectId) -> Result<Vec<String>, ManagerError> {
        convert(self.server(ServerMethod::GetMethods, vec![id_value(id)])?)
    }

    /// How many shared objects are alive.
    pub fn number_of_objects(&self) -> Result<u64, ManagerError> {
        convert(self.server(ServerMethod::NumberOfObjects, vec![])?)
    }

    /// Every live object with its typeid and refcount.
    pub fn debug_info(&self) -> Result<Vec<ObjectInfo>, ManagerError> {
        convert(self.server(ServerMethod::DebugInfo, vec![])?)
    }

    /// The server's status.
    pub fn status(&self) -> Result<ServerStatus, ManagerError> {
        convert(self.server(ServerMethod::Status, vec![])?)
    }

    /// The registered typeids.
    pub fn typeids(&self) -> Result<Vec<TypeInfo>, ManagerError> {
        convert(self.server(ServerMethod::Typeids, vec![])?)
    }

    /// Puts one reference to `id` in transit for at most `lease` (the
    /// server's `transit` call, see `mp_server::transit`): the server holds
    /// it under the returned ticket until some connection
    /// [`receive`](Self::receive)s it or the lease ends.
    pub fn transit(&self, id: ObjectId, lease: Duration) -> Result<u64, ManagerError> {
        let args = vec![id_value(id), Value::Float(lease.as_secs_f64())];
        convert(self.server(ServerMethod::Transit, args)?)
    }

    /// Takes over the reference in transit under `ticket`; this connection
    /// then owns it. Returns the object's id.
    pub fn receive(&self, ticket: u64) -> Result<ObjectId, ManagerError> {
        let ticket = i64::try_from(ticket)
            .map_err(|_| ManagerError::Protocol(format!("ticket {ticket} out of range")))?;
        convert(self.server(ServerMethod::Receive, vec![Value::Int(ticket)])?).map(ObjectId)
    }

    /// A round trip that does nothing.
    pub fn ping(&self) -> Result<(), ManagerError> {
        self.server(ServerMethod::Ping, vec![]).map(drop)
    }

    /// Asks the server to stop gracefully.
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        self.server(ServerMethod::Shutdown, vec![]).map(drop)
    }
}

/// A request sent whose answer is not yet read ([`ManagerClient::send_call`]).
pub(crate) struct InFlight {
    client: ManagerClient,
    id: u64,
    /// The condition variable its slot was registered with: any thread
    /// may wait on it.
    wake: Arc<Condvar>,
    spin: Duration,
    waited: bool,
}

impl InFlight {
    /// Waits for the answer.
    pub(crate) fn wait(mut self) -> Result<Return, ManagerError> {
        self.waited = true;
        self.client.wait(self.id, &self.wake, self.spin, None)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.waited {
            // Its answer, when it comes, is dropped.
            self.client.forget(&[self.id]);
        }
    }
}

// --- Connection reuse (managers::transfer) ---

/// A handle on a [`ManagerClient`] that does not keep it open.
#[derive(Clone)]
pub struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    /// The connection, if something still holds it open.
    pub fn upgrade(&self) -> Option<ManagerClient> {
        self.0.upgrade().map(|inner| ManagerClient { inner })
    }
}

impl ManagerClient {
    /// A handle that does not keep the connection open.
    pub fn downgrade(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// Whether this connection's calls go through a shared-memory channel
    /// ([`ConnectOptions::shared_memory`]) rather than its socket.
    pub fn uses_shared_memory(&self) -> bool {
        self.inner.channel.load(Ordering::Relaxed)
    }

    /// The key this client authenticated with.
    #[cfg_attr(not(feature = "asyncio"), allow(dead_code))]
    pub(in crate::managers) fn authkey(&self) -> &[u8] {
        &self.inner.authkey
    }

    /// Whether the connection is known to be dead (every call on it fails
    /// with [`ManagerError::ConnectionLost`]).
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.state).dead.is_some()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.owner == std::process::id() {
            lock(&self.writer).shutdown();
        }
        self.parker.close();
    }
}

/// Appends the frame of one request of the calling thread to `out`.
pub(super) fn encode_request(
    out: &mut Vec<u8>,
    id: u64,
    target: Target,
    method: &str,
    args: Vec<Value>,
    kwargs: Kwargs,
) -> Result<(), ManagerError> {
    encode_request_as(out, id, target, method, args, kwargs, current_thread_no())
}

/// Appends the frame of one request to `out`, made as the client thread
/// numbered `thread` (the async client numbers its lock owners itself).
pub(in crate::managers) fn encode_request_as(
    out: &mut Vec<u8>,
    id: u64,
    target: Target,
    method: &str,
    args: Vec<Value>,
    kwargs: Kwargs,
    thread: u64,
) -> Result<(), ManagerError> {
    let request = Request {
        id,
        target,
        method: method.to_owned(),
        args,
        kwargs,
        thread,
    };
    encode_frame_into(&request, out, usize::MAX).map_err(|e| ManagerError::Protocol(e.to_string()))
}

/// `create`'s positional arguments: the typeid, then the constructor's.
pub(in crate::managers) fn create_args(typeid: &str, args: Vec<Value>) -> Vec<Value> {
    let mut all = Vec::with_capacity(args.len() + 1);
    all.push(Value::Str(typeid.to_owned()));
    all.extend(args);
    all
}

pub(in crate::managers) fn id_value(id: ObjectId) -> Value {
    // Server ids stay below 2^52, so they fit an int.
    Value::Int(id.0 as i64)
}

fn convert<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ManagerError> {
    from_value(value).map_err(|e| ManagerError::Protocol(format!("unexpected answer: {e}")))
}

/// Builds keyword arguments from pairs.
pub fn kwargs<I, K, V>(pairs: I) -> Kwargs
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<Value>,
{
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

impl std::fmt::Debug for ManagerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerClient")
            .field("address", &self.inner.address)
            .finish()
    }
}
