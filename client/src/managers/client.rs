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

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use mp_sys::lock;
use std::time::{Duration, Instant};

use mp_proto::auth::{client_handshake, AuthOptions};
use mp_proto::codec::{decode, encode_frame_into, encode_into};
use mp_proto::frame::{read_frame, write_frame};
use mp_proto::message::{
    ChannelAnswer, Hello, HelloReply, Kwargs, Outcome, ProxyInfo, Request, Response, Target,
    CONNECTION_ID,
};
use mp_proto::reports::ObjectInfo;
use mp_proto::value::from_value;
use mp_proto::{ObjectId, Value};

pub use super::answers::{Returned, ServerStatus, TypeInfo};
use super::error::ManagerError;
use super::release::Releases;
use super::stream::Stream;
#[cfg(feature = "tls")]
use super::tls::TlsConnector;
use crate::connection::Address;
use mp_sys::channel::Region;
use mp_sys::spin::{SpinPolicy, Spun};

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Bound on connecting plus the handshake and hello.
    pub timeout: Duration,
    /// Handshake options (legacy CPython MD5 peers).
    pub auth: AuthOptions,
    /// The largest answer accepted.
    pub max_frame_bytes: u64,
    /// The longest a thread waiting for an answer polls the socket
    /// (yielding the CPU between polls) before it sleeps in `read`. An
    /// answer that arrives within it saves the sleep and wake-up, which
    /// dominate a round trip between CPUs. Whether to poll at all is
    /// learned per connection from measured round trips; zero never
    /// polls.
    pub spin: Duration,
    /// Speak TLS to the server (`mpserver serve --tls-cert …`); `None`,
    /// the default, is plain TCP. TCP addresses only. A successful TLS
    /// connection also registers the connector for its address, so later
    /// plain `connect`s there use it (see
    /// [`use_tls_for`](super::tls::use_tls_for)). Feature `tls`.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsConnector>,
    /// Ask an `mpserver` on this machine (a Unix socket, or TCP to a
    /// loopback address) for a shared-memory channel: calls then go
    /// through memory both processes map, with the socket kept open beside
    /// it, several times faster than loopback TCP with many busy clients.
    /// The server may decline (`--shared-memory-channels`, a CPython
    /// manager never offers), and the connection then uses its socket.
    /// Default `true`, unless the environment sets
    /// `MP_MANAGER_SHARED_MEMORY=0`.
    pub shared_memory: bool,
}

/// The environment variable that turns shared-memory channels off by
/// default ([`ConnectOptions::shared_memory`]).
pub const SHARED_MEMORY_ENV: &str = "MP_MANAGER_SHARED_MEMORY";

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Duration::from_secs(20),
            auth: AuthOptions::default(),
            max_frame_bytes: mp_proto::frame::DEFAULT_MAX_FRAME,
            spin: Duration::from_micros(50),
            #[cfg(feature = "tls")]
            tls: None,
            shared_memory: std::env::var_os(SHARED_MEMORY_ENV).map_or(true, |v| v != "0"),
        }
    }
}

/// The read buffer: most answers fit, large ones are read through it.
const READ_BUFFER: usize = 16 * 1024;

/// A call waiting for its answer.
struct Slot {
    answer: Option<Outcome>,
    /// The waiting thread's condition variable.
    wake: Arc<Condvar>,
    /// Whether that thread sleeps on it now: a wake-up is a system call,
    /// so only a sleeping thread gets one.
    waiting: bool,
}

struct State {
    /// The read half, present when no thread is reading. Buffered, so a
    /// small answer costs one `read` rather than two (header, body).
    reader: Option<BufReader<Stream>>,
    slots: HashMap<u64, Slot>,
    /// Why the connection is dead, once it is.
    dead: Option<String>,
    /// Whether waiting threads poll before they sleep.
    spin: SpinPolicy,
}

struct Inner {
    address: Address,
    writer: Mutex<Stream>,
    state: Mutex<State>,
    next_id: AtomicU64,
    max_frame: u64,
    /// `decref`s of dropped proxies waiting to go out.
    releases: Releases,
    /// Whether calls go through a shared-memory channel.
    channel: bool,
    /// The process that connected. A forked child dropping its copy must
    /// leave the connection to its parent: closing its descriptors is
    /// harmless, shutting the socket (or the channel) down is not.
    owner: u32,
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

/// The calling thread's number, assigned on first use.
pub fn current_thread_no() -> u64 {
    THREAD_NO.with(|n| {
        if n.get() == 0 {
            n.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
        }
        n.get()
    })
}

impl ManagerClient {
    /// Connects to the manager at `address` and authenticates with
    /// `authkey` (over TLS if [`use_tls_for`](super::tls::use_tls_for)
    /// registered `address`).
    pub fn connect(address: &Address, authkey: &[u8]) -> Result<Self, ManagerError> {
        let options = ConnectOptions {
            #[cfg(feature = "tls")]
            tls: super::tls::registered(address),
            ..ConnectOptions::default()
        };
        Self::connect_with(address, authkey, &options)
    }

    /// [`connect`](Self::connect) with options.
    pub fn connect_with(
        address: &Address,
        authkey: &[u8],
        options: &ConnectOptions,
    ) -> Result<Self, ManagerError> {
        let connect_error = |source| ManagerError::Connect {
            address: address.to_string(),
            source,
        };
        let mut stream = match address {
            Address::Tcp { .. } => {
                let addrs = address.resolve().map_err(|e| {
                    connect_error(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
                })?;
                let mut last = None;
                let mut found = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, options.timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = found.ok_or_else(|| {
                    connect_error(last.unwrap_or_else(|| io::Error::other("no address")))
                })?;
                s.set_nodelay(true).map_err(connect_error)?;
                #[cfg(not(feature = "tls"))]
                let stream = Stream::Tcp(s);
                #[cfg(feature = "tls")]
                let stream = match (&options.tls, address) {
                    (Some(tls), Address::Tcp { host, .. }) => {
                        Stream::Tls(tls.connect(s, host, options.timeout).map_err(|source| {
                            ManagerError::Tls {
                                address: address.to_string(),
                                source,
                            }
                        })?)
                    }
                    _ => Stream::Tcp(s),
                };
                stream
            }
            #[cfg(feature = "tls")]
            Address::Unix(_) if options.tls.is_some() => {
                return Err(connect_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS needs a TCP address",
                )))
            }
            Address::Unix(path) => Stream::Unix(UnixStream::connect(path).map_err(connect_error)?),
        };
        stream
            .set_timeouts(Some(options.timeout))
            .map_err(connect_error)?;
        #[cfg(feature = "tls")]
        let handshake_error = |e| super::tls::handshake_error(e, address);
        #[cfg(not(feature = "tls"))]
        let handshake_error = ManagerError::Authentication;
        client_handshake(&mut stream, authkey, &options.auth).map_err(handshake_error)?;
        let hello = Hello {
            channel: options.shared_memory && stream.is_local(),
            ..Hello::current(format!("multiprocessing-rs/{}", env!("CARGO_PKG_VERSION")))
        };
        let mut bytes = Vec::new();
        encode_into(&hello, &mut bytes).map_err(|e| ManagerError::Protocol(e.to_string()))?;
        write_frame(&mut stream, &bytes)
            .map_err(|e| ManagerError::ConnectionLost(e.to_string()))?;
        let reply = read_frame(&mut stream, 64 * 1024)
            .map_err(|e| ManagerError::ConnectionLost(e.to_string()))?
            .ok_or_else(|| ManagerError::ConnectionLost("closed during hello".into()))?;
        let offer = match decode::<HelloReply>(&reply)
            .map_err(|e| ManagerError::Protocol(e.to_string()))?
        {
            HelloReply::Welcome { channel, .. } => channel,
            HelloReply::Refused { message } => return Err(ManagerError::Refused(message)),
        };
        if let Some(offer) = offer {
            // Mapping fails on another host, in another pid namespace, or
            // without the right to open the server's descriptors: the
            // socket then carries the calls.
            let region = Region::open(offer.pid, offer.fd, offer.ring, offer.nonce).ok();
            let mut bytes = Vec::new();
            encode_into(
                &ChannelAnswer {
                    attached: region.is_some(),
                },
                &mut bytes,
            )
            .map_err(|e| ManagerError::Protocol(e.to_string()))?;
            write_frame(&mut stream, &bytes)
                .map_err(|e| ManagerError::ConnectionLost(e.to_string()))?;
            if let Some(region) = region {
                stream = stream.with_channel(region);
            }
        }
        // Calls may block as long as the server's method does.
        stream.set_timeouts(None).map_err(connect_error)?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &options.tls {
            super::tls::use_tls_for(address, tls.clone());
        }
        let writer = stream.try_clone().map_err(connect_error)?;
        let channel = stream.is_channel();
        Ok(ManagerClient {
            inner: Arc::new(Inner {
                address: address.clone(),
                writer: Mutex::new(writer),
                state: Mutex::new(State {
                    reader: Some(BufReader::with_capacity(READ_BUFFER, stream)),
                    slots: HashMap::new(),
                    dead: None,
                    spin: SpinPolicy::new(options.spin),
                }),
                next_id: AtomicU64::new(1),
                max_frame: options.max_frame_bytes,
                releases: Releases::default(),
                channel,
                owner: std::process::id(),
            }),
        })
    }

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
    ) -> Result<Returned, ManagerError> {
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
    pub(super) fn next_id(&self) -> u64 {
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
        for &id in ids {
            state.slots.insert(
                id,
                Slot {
                    answer: None,
                    wake: Arc::clone(wake),
                    waiting: false,
                },
            );
        }
        // On a channel a poll is a load and never stops for a busy CPU
        // (`mp_sys::spin::Contention`), so the waiting thread always
        // polls: learning, as on a socket, could settle on both sides
        // sleeping, each waiting for the other to poll first, where a
        // round trip between CPUs costs two cross-CPU wake-ups.
        Ok(if self.inner.channel {
            state.spin.max()
        } else {
            state.spin.next_spin()
        })
    }

    /// Writes encoded request frames for the registered calls `ids`; on
    /// failure the connection is dead and the calls are forgotten.
    pub(super) fn send(&self, frames: &[u8], ids: &[u64]) -> Result<(), ManagerError> {
        let written = lock(&self.inner.writer).write_all(frames);
        if let Err(e) = written {
            let mut state = lock(&self.inner.state);
            for id in ids {
                state.slots.remove(id);
            }
            Self::kill(&mut state, format!("write failed: {e}"));
            return Err(ManagerError::ConnectionLost(format!("write failed: {e}")));
        }
        Ok(())
    }

    /// Waits for the answer to `id`, reading the socket when nobody else is
    /// (polling it for up to `spin` first). With `sent`, the round trip
    /// teaches the connection whether polling pays.
    pub(super) fn wait(
        &self,
        id: u64,
        wake: &Condvar,
        spin: Duration,
        sent: Option<Instant>,
    ) -> Result<Returned, ManagerError> {
        let inner = &*self.inner;
        let mut state = lock(&inner.state);
        loop {
            if let Some(answer) = state.slots.get_mut(&id).and_then(|s| s.answer.take()) {
                state.slots.remove(&id);
                if let Some(sent) = sent {
                    state.spin.record(spin, sent.elapsed());
                }
                Self::pass_reading(&state);
                return Self::outcome(answer);
            }
            if let Some(why) = &state.dead {
                let why = why.clone();
                state.slots.remove(&id);
                return Err(ManagerError::ConnectionLost(why));
            }
            let Some(mut reader) = state.reader.take() else {
                if let Some(slot) = state.slots.get_mut(&id) {
                    slot.waiting = true;
                }
                state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                if let Some(slot) = state.slots.get_mut(&id) {
                    slot.waiting = false;
                }
                continue;
            };
            drop(state);
            let spun = if reader.buffer().is_empty() {
                reader.get_ref().spin_until_readable(spin)
            } else {
                Spun::Skipped
            };
            let frame = read_frame(&mut reader, inner.max_frame);
            state = lock(&inner.state);
            state.reader = Some(reader);
            if spun == Spun::Contended {
                state.spin.contended();
            }
            let response = match frame {
                Ok(Some(bytes)) => decode::<Response>(&bytes).map_err(|e| e.to_string()),
                Ok(None) => Err("the server closed the connection".to_string()),
                Err(e) => Err(e.to_string()),
            };
            match response {
                Ok(Response { id: rid, outcome }) => match state.slots.get_mut(&rid) {
                    Some(slot) => {
                        slot.answer = Some(outcome);
                        if slot.waiting {
                            slot.wake.notify_one();
                        }
                    }
                    // The server's last word before it closes: every call
                    // in flight fails with it.
                    None if rid == CONNECTION_ID => {
                        if let Outcome::Error(e) = outcome {
                            Self::kill(&mut state, e.to_string());
                        }
                    }
                    // A call forgotten meanwhile.
                    None => {}
                },
                Err(why) => Self::kill(&mut state, why),
            }
        }
    }

    /// Wakes one thread still waiting for an answer so it takes over
    /// reading.
    fn pass_reading(state: &State) {
        if state.reader.is_some() {
            if let Some(slot) = state
                .slots
                .values()
                .find(|s| s.waiting && s.answer.is_none())
            {
                slot.wake.notify_one();
            }
        }
    }

    fn kill(state: &mut State, why: String) {
        if state.dead.is_none() {
            state.dead = Some(why);
        }
        if let Some(r) = &state.reader {
            r.get_ref().shutdown();
        }
        for slot in state.slots.values() {
            slot.wake.notify_one();
        }
    }

    fn outcome(outcome: Outcome) -> Result<Returned, ManagerError> {
        match outcome {
            Outcome::Return(v) => Ok(Returned::Value(v)),
            Outcome::Proxy(p) => Ok(Returned::Proxy(p)),
            Outcome::Error(e) => Err(ManagerError::Remote(e)),
        }
    }

    fn server(&self, method: &str, args: Vec<Value>) -> Result<Value, ManagerError> {
        self.call(Target::Server, method, args, Kwargs::new())?
            .into_value()
    }

    /// Calls `method` of the shared object `id` (Python's `_callmethod`).
    pub fn call_method(
        &self,
        id: ObjectId,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Returned, ManagerError> {
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
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Value::Str(typeid.to_owned()));
        all.extend(args);
        self.call(Target::Server, "create", all, kwargs)?
            .into_proxy()
    }

    /// Adds a reference to `id`, owned by this connection.
    pub fn incref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server("incref", vec![id_value(id)]).map(drop)
    }

    /// Gives back a reference to `id` this connection owns.
    pub fn decref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server("decref", vec![id_value(id)]).map(drop)
    }

    /// The methods `id`'s proxies may call.
    pub fn get_methods(&self, id: ObjectId) -> Result<Vec<String>, ManagerError> {
        convert(self.server("get_methods", vec![id_value(id)])?)
    }

    /// How many shared objects are alive.
    pub fn number_of_objects(&self) -> Result<u64, ManagerError> {
        convert(self.server("number_of_objects", vec![])?)
    }

    /// Every live object with its typeid and refcount.
    pub fn debug_info(&self) -> Result<Vec<ObjectInfo>, ManagerError> {
        convert(self.server("debug_info", vec![])?)
    }

    /// The server's status.
    pub fn status(&self) -> Result<ServerStatus, ManagerError> {
        convert(self.server("status", vec![])?)
    }

    /// The registered typeids.
    pub fn typeids(&self) -> Result<Vec<TypeInfo>, ManagerError> {
        convert(self.server("typeids", vec![])?)
    }

    /// A round trip that does nothing.
    pub fn ping(&self) -> Result<(), ManagerError> {
        self.server("ping", vec![]).map(drop)
    }

    /// Asks the server to stop gracefully.
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        self.server("shutdown", vec![]).map(drop)
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
        self.inner.channel
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
    }
}

/// Appends the frame of one request to `out`.
pub(super) fn encode_request(
    out: &mut Vec<u8>,
    id: u64,
    target: Target,
    method: &str,
    args: Vec<Value>,
    kwargs: Kwargs,
) -> Result<(), ManagerError> {
    let request = Request {
        id,
        target,
        method: method.to_owned(),
        args,
        kwargs,
        thread: current_thread_no(),
    };
    encode_frame_into(&request, out, usize::MAX).map_err(|e| ManagerError::Protocol(e.to_string()))
}

fn id_value(id: ObjectId) -> Value {
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
