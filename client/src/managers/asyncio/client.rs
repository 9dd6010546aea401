//! [`AsyncManagerClient`]: one multiplexed connection to a manager server
//! for async code, shared by any number of tasks.
//!
//! # How tasks share the connection
//!
//! A call registers a oneshot under a fresh request id, writes its frame
//! (under the write lock, a short critical section: frames are small and
//! the server never stops reading a connection whose answers are read)
//! and awaits the oneshot. One reader thread per connection reads every
//! answer and completes the oneshot its id names, so a `get` waiting on
//! an empty queue holds up nothing but itself. The reader is a thread,
//! not a task, because a shared-memory channel wakes its reader through
//! a futex, which no runtime can poll; it also makes the client work the
//! same under a current-thread and a multi-thread runtime.
//!
//! The connection is opened by the sync client's own code
//! (`managers::client::connect`: TCP, Unix, TLS, the handshake, the hello,
//! the channel), on the runtime's blocking pool.
//!
//! # Dropped calls
//!
//! Dropping a call's future before its answer forgets the call. If the
//! call may wait on the server (a declared `blocking` method), a
//! `cancel(id)` goes out so the server drops it, and whatever the answer
//! brings back when it won the race is handed back (`Undo`): an item
//! to the queue's front, a lock released.
//!
//! # Reconnection
//!
//! When the connection breaks, every call in flight fails with
//! [`ManagerError::ConnectionLost`] and the reader thread connects again
//! with the sync client's backoff ([`Reconnect`](crate::managers::Reconnect)),
//! starting a new generation (see [`super::proxy`] for what proxies do
//! about it).

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufReader, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mp_proto::codec::decode;
use mp_proto::frame::read_frame;
use mp_proto::message::{Kwargs, Outcome, ProxyInfo, Response, Target, CONNECTION_ID};
use mp_proto::methods::builtin::{QueueMethod, SemaphoreMethod, ServerMethod};
use mp_proto::reports::{NamedObject, ObjectInfo};
use mp_proto::value::from_value;
use mp_proto::{ErrorKind, ObjectId, RemoteError, Value};
use mp_sys::lock;
use mp_sys::spin::SpinPolicy;
use tokio::sync::{oneshot, watch};

use crate::connection::Address;
use crate::managers::client::connect::{open, Opened};
use crate::managers::client::stream::Stream;
use crate::managers::client::{create_args, encode_request_as};
use crate::managers::client::{ConnectOptions, ConnectionState, Return, ServerStatus};
use crate::managers::error::ManagerError;

/// The read buffer: most answers fit in one `read`.
const READ_BUFFER: usize = 16 * 1024;

/// What to do with the answer of a call whose future was dropped first:
/// give back what it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Undo {
    /// Nothing was taken (or nothing can be given back).
    Nothing,
    /// A queue `get`: the item goes back to the front (`_unget`).
    Unget(ObjectId),
    /// An `acquire` (or a condition's `wait`, which re-acquires): a
    /// `True` answer means it is held by `thread`, so release it.
    Release {
        /// The lock, semaphore or condition.
        object: ObjectId,
        /// The owner the acquisition was made for.
        thread: u64,
        /// Release whatever the answer (a condition's `wait` holds the
        /// lock again whether or not it was notified).
        always: bool,
    },
}

/// A call waiting for its answer.
enum Slot {
    /// Its future waits.
    Waiting {
        answer: oneshot::Sender<Outcome>,
        undo: Undo,
    },
    /// Its future was dropped: the answer, when it comes, is undone.
    Abandoned { undo: Undo },
}

struct State {
    slots: HashMap<u64, Slot>,
    /// Why the connection is down, while it is.
    dead: Option<String>,
    /// Whether the reader thread is connecting again.
    reconnecting: bool,
    /// How many times the client reconnected.
    generation: u64,
}

/// What tasks waiting for a reconnection watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link {
    generation: u64,
    /// Down for good: reconnection is off, gave up, or the client closed.
    closed: bool,
}

/// The connection's state, shared with the reader thread.
pub(super) struct Shared {
    address: Address,
    authkey: Vec<u8>,
    options: ConnectOptions,
    writer: Mutex<Option<Stream>>,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Calls in flight that are not declared blocking: while there are
    /// some, the reader polls before it sleeps.
    quick: AtomicUsize,
    /// `State::generation`, readable without the lock.
    generation: AtomicU64,
    link: watch::Sender<Link>,
    /// The last handle is gone: the reader stops instead of reconnecting.
    closing: AtomicBool,
    channel: AtomicBool,
    /// The process that connected (a forked child leaves the socket to
    /// its parent).
    owner: u32,
}

/// What every clone of an [`AsyncManagerClient`] holds: dropping the last
/// one closes the connection and ends the reader thread.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        if self.shared.owner == std::process::id() {
            if let Some(w) = lock(&self.shared.writer).as_ref() {
                w.shutdown();
            }
        }
    }
}

/// A connection to a manager server for async code: the async
/// counterpart of [`ManagerClient`](crate::managers::ManagerClient).
/// Cheap to clone; clones share the connection, which closes when the
/// last one is dropped.
///
/// ```
/// # #[cfg(feature = "server")] {
/// use multiprocessing::managers::asyncio::AsyncManagerClient;
/// use multiprocessing::managers::Manager;
///
/// let server = Manager::start("127.0.0.1:0", b"key").unwrap();
/// let address = server.address().clone();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let client = AsyncManagerClient::connect(&address, b"key").await.unwrap();
///     client.ping().await.unwrap();
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncManagerClient {
    handle: Arc<Handle>,
}

/// Thread numbers for the requests of async clients: lock ownership is
/// per connection and number, so any number unique on the connection
/// will do; each acquisition takes a fresh one.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A fresh owner number for an acquisition.
pub(super) fn fresh_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// The owner number of calls that own nothing.
const ANY_OWNER: u64 = 0;

impl AsyncManagerClient {
    /// Connects to the manager at `address` and authenticates with
    /// `authkey` (over TLS if
    /// [`use_tls_for`](crate::managers::tls::use_tls_for) registered
    /// `address`). The socket, handshake and hello run on the runtime's
    /// blocking pool.
    pub async fn connect(address: &Address, authkey: &[u8]) -> Result<Self, ManagerError> {
        let options = ConnectOptions {
            #[cfg(feature = "tls")]
            tls: crate::managers::tls::registered(address),
            ..ConnectOptions::default()
        };
        Self::connect_with(address, authkey, &options).await
    }

    /// [`connect`](Self::connect) with options (TLS, timeouts, the
    /// shared-memory channel, reconnection).
    pub async fn connect_with(
        address: &Address,
        authkey: &[u8],
        options: &ConnectOptions,
    ) -> Result<Self, ManagerError> {
        let (a, k, o) = (address.clone(), authkey.to_vec(), options.clone());
        let opened = tokio::task::spawn_blocking(move || open(&a, &k, &o))
            .await
            .map_err(|e| ManagerError::ConnectionLost(format!("connecting failed: {e}")))??;
        let (link, _) = watch::channel(Link {
            generation: 0,
            closed: false,
        });
        let shared = Arc::new(Shared {
            address: address.clone(),
            authkey: authkey.to_vec(),
            options: options.clone(),
            writer: Mutex::new(Some(opened.writer)),
            state: Mutex::new(State {
                slots: HashMap::new(),
                dead: None,
                reconnecting: false,
                generation: 0,
            }),
            next_id: AtomicU64::new(1),
            quick: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            link,
            closing: AtomicBool::new(false),
            channel: AtomicBool::new(opened.channel),
            owner: std::process::id(),
        });
        let reader = BufReader::with_capacity(READ_BUFFER, opened.reader);
        let for_thread = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("mp-async-reader".into())
            .spawn(move || read_answers(for_thread, reader))
            .map_err(|e| ManagerError::ConnectionLost(format!("no reader thread: {e}")))?;
        Ok(AsyncManagerClient {
            handle: Arc::new(Handle { shared }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.shared().address
    }

    /// Whether `other` shares this one's connection (is a clone of it).
    pub fn same_connection(&self, other: &AsyncManagerClient) -> bool {
        Arc::ptr_eq(&self.handle, &other.handle)
    }

    /// Whether calls go through a shared-memory channel.
    pub fn uses_shared_memory(&self) -> bool {
        self.shared().channel.load(Ordering::Relaxed)
    }

    /// How many times this client has reconnected: references taken in
    /// an earlier generation are gone from the server.
    pub fn generation(&self) -> u64 {
        self.shared().generation.load(Ordering::Acquire)
    }

    /// Where the connection stands now.
    pub fn connection_state(&self) -> ConnectionState {
        let state = lock(&self.shared().state);
        match (&state.dead, state.reconnecting) {
            (None, _) => ConnectionState::Connected,
            (Some(_), true) => ConnectionState::Reconnecting,
            (Some(_), false) => ConnectionState::Closed,
        }
    }

    /// Waits until the connection is back in a generation after `seen`;
    /// false if it will not come back (reconnection off or given up).
    pub async fn wait_reconnected(&self, seen: u64) -> bool {
        let mut link = self.shared().link.subscribe();
        let back = link
            .wait_for(|l| l.closed || l.generation != seen)
            .await
            .map(|l| !l.closed);
        back.unwrap_or(false)
    }

    /// Sends one request and awaits its answer. `blocking` says the
    /// method may wait on the server (it is then cancelled there if the
    /// future is dropped first), `thread` is the owner the server records
    /// for a lock, and `undo` what to give back when the future is
    /// dropped but the call succeeded anyway.
    pub(super) fn start(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
        call: CallKind,
    ) -> Result<Pending, ManagerError> {
        let shared = self.shared();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::with_capacity(64);
        encode_request_as(&mut frame, id, target, method, args, kwargs, call.thread)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&shared.state);
            if let Some(why) = &state.dead {
                return Err(ManagerError::ConnectionLost(why.clone()));
            }
            state.slots.insert(
                id,
                Slot::Waiting {
                    answer: tx,
                    undo: call.undo,
                },
            );
        }
        if !call.blocking {
            shared.quick.fetch_add(1, Ordering::Relaxed);
        }
        let pending = Pending {
            shared: Arc::clone(shared),
            id,
            answer: rx,
            call,
            done: false,
        };
        shared.write(&frame)?;
        Ok(pending)
    }

    /// Sends one request and awaits its answer (Python's `_callmethod`
    /// for an object target, or a server call).
    pub async fn call(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Return, ManagerError> {
        self.start(target, method, args, kwargs, CallKind::quick())?
            .await
    }

    /// Calls `method` of the shared object `id`. A method the server may
    /// hold (a built-in type's `blocking` method) is cancelled there when
    /// the future is dropped first.
    pub async fn call_method(
        &self,
        id: ObjectId,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Return, ManagerError> {
        self.call(Target::Object(id), method, args, kwargs).await
    }

    async fn server(&self, method: ServerMethod, args: Vec<Value>) -> Result<Value, ManagerError> {
        self.call(Target::Server, method.name(), args, Kwargs::new())
            .await?
            .into_value()
    }

    /// Creates a shared object of `typeid`; this connection owns its one
    /// reference.
    pub async fn create(
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
        )
        .await?
        .into_proxy()
    }

    /// Adds a reference to `id`, owned by this connection.
    pub async fn incref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server(ServerMethod::Incref, vec![id_value(id)])
            .await
            .map(drop)
    }

    /// Gives back a reference to `id` this connection owns.
    pub async fn decref(&self, id: ObjectId) -> Result<(), ManagerError> {
        self.server(ServerMethod::Decref, vec![id_value(id)])
            .await
            .map(drop)
    }

    /// A round trip that does nothing.
    pub async fn ping(&self) -> Result<(), ManagerError> {
        self.server(ServerMethod::Ping, vec![]).await.map(drop)
    }

    /// How many shared objects are alive.
    pub async fn number_of_objects(&self) -> Result<u64, ManagerError> {
        convert(self.server(ServerMethod::NumberOfObjects, vec![]).await?)
    }

    /// Every live object with its typeid and refcount.
    pub async fn debug_info(&self) -> Result<Vec<ObjectInfo>, ManagerError> {
        convert(self.server(ServerMethod::DebugInfo, vec![]).await?)
    }

    /// The server's status.
    pub async fn status(&self) -> Result<ServerStatus, ManagerError> {
        convert(self.server(ServerMethod::Status, vec![]).await?)
    }

    /// Names the object `id` refers to `name` on the server (see
    /// [`ManagerClient::publish`](crate::managers::ManagerClient::publish)).
    pub async fn publish_id(
        &self,
        name: &str,
        id: ObjectId,
        replace: bool,
    ) -> Result<(), ManagerError> {
        let args = vec![
            Value::Str(name.to_owned()),
            id_value(id),
            Value::Bool(replace),
        ];
        self.server(ServerMethod::Publish, args).await.map(drop)
    }

    /// Removes `name` (a `KeyError` if nothing has it).
    pub async fn unpublish(&self, name: &str) -> Result<(), ManagerError> {
        self.server(ServerMethod::Unpublish, vec![Value::Str(name.to_owned())])
            .await
            .map(drop)
    }

    /// The server's `lookup`: a new reference to the object `name`
    /// names, which this connection then owns.
    pub async fn lookup_info(&self, name: &str) -> Result<ProxyInfo, ManagerError> {
        self.call(
            Target::Server,
            ServerMethod::Lookup.name(),
            vec![Value::Str(name.to_owned())],
            Kwargs::new(),
        )
        .await?
        .into_proxy()
    }

    /// Every name on the server, with its object and typeid.
    pub async fn names(&self) -> Result<Vec<NamedObject>, ManagerError> {
        convert(self.server(ServerMethod::Names, vec![]).await?)
    }

    /// Sends a request whose answer nobody awaits (a dropped proxy's
    /// `decref`, a guard's `release`): a failure means the connection is
    /// gone, and the server released what it held with it.
    pub(super) fn send_and_forget(
        &self,
        target: Target,
        method: &str,
        args: Vec<Value>,
        thread: u64,
    ) {
        self.shared().send_and_forget(target, method, args, thread);
    }
}

/// How a call is made and what its dropping does.
#[derive(Clone, Copy, Debug)]
pub(super) struct CallKind {
    /// The method may wait on the server: dropping its future sends a
    /// `cancel`.
    pub(super) blocking: bool,
    /// The owner number the server records (for locks).
    pub(super) thread: u64,
    /// What to give back when its answer comes after its future was
    /// dropped.
    pub(super) undo: Undo,
}

impl CallKind {
    /// A call that never waits on the server and takes nothing.
    pub(super) fn quick() -> CallKind {
        CallKind {
            blocking: false,
            thread: ANY_OWNER,
            undo: Undo::Nothing,
        }
    }
}

/// The future of one call's answer. Dropping it before the answer forgets
/// the call and, for a blocking one, cancels it on the server.
pub(super) struct Pending {
    shared: Arc<Shared>,
    id: u64,
    answer: oneshot::Receiver<Outcome>,
    call: CallKind,
    done: bool,
}

impl Future for Pending {
    type Output = Result<Return, ManagerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let answer = match Pin::new(&mut this.answer).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(answer) => answer,
        };
        this.finish();
        Poll::Ready(match answer {
            Ok(Outcome::Return(v)) => Ok(Return::Value(v)),
            Ok(Outcome::Proxy(p)) => Ok(Return::Proxy(p)),
            Ok(Outcome::Error(e)) => Err(ManagerError::Remote(e)),
            Err(_) => Err(ManagerError::ConnectionLost(
                lock(&this.shared.state)
                    .dead
                    .clone()
                    .unwrap_or_else(|| "the connection was lost".into()),
            )),
        })
    }
}

impl Pending {
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            if !self.call.blocking {
                self.shared.quick.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.finish();
        let undo = self.call.undo;
        let abandoned = {
            let mut state = lock(&self.shared.state);
            match state.slots.get_mut(&self.id) {
                Some(slot) => {
                    *slot = Slot::Abandoned { undo };
                    true
                }
                None => false,
            }
        };
        if abandoned {
            if self.call.blocking {
                let rid = i64::try_from(self.id).unwrap_or(i64::MAX);
                self.shared.send_and_forget(
                    Target::Server,
                    ServerMethod::Cancel.name(),
                    vec![Value::Int(rid)],
                    ANY_OWNER,
                );
            }
        } else if let Ok(outcome) = self.answer.try_recv() {
            // Answered, but nobody will look: give back what it took.
            self.shared.undo(undo, outcome);
        }
    }
}

impl Shared {
    /// Writes request frames; a failure shuts the socket down, so the
    /// reader thread notices and fails every call.
    fn write(&self, frame: &[u8]) -> Result<(), ManagerError> {
        let mut writer = lock(&self.writer);
        let Some(stream) = writer.as_mut() else {
            return Err(ManagerError::ConnectionLost("not connected".into()));
        };
        if let Err(e) = stream.write_all(frame) {
            stream.shutdown();
            return Err(ManagerError::ConnectionLost(format!("write failed: {e}")));
        }
        Ok(())
    }

    fn send_and_forget(&self, target: Target, method: &str, args: Vec<Value>, thread: u64) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::with_capacity(64);
        if encode_request_as(&mut frame, id, target, method, args, Kwargs::new(), thread).is_ok() {
            // No slot: its answer is read and dropped.
            let _ = self.write(&frame);
        }
    }

    /// Gives back what an abandoned call's `outcome` took.
    fn undo(&self, undo: Undo, outcome: Outcome) {
        match (undo, outcome) {
            (Undo::Unget(object), Outcome::Return(item)) => {
                let tokens = tokens_in(&item);
                self.send_and_forget(
                    Target::Object(object),
                    QueueMethod::Unget.name(),
                    vec![item],
                    ANY_OWNER,
                );
                // The item's proxies came with references of this
                // connection; the queue now holds its own.
                for id in tokens {
                    self.send_and_forget(
                        Target::Server,
                        ServerMethod::Decref.name(),
                        vec![id_value(id)],
                        ANY_OWNER,
                    );
                }
            }
            (
                Undo::Release {
                    object,
                    thread,
                    always,
                },
                Outcome::Return(held),
            ) if always || held == Value::Bool(true) => self.send_and_forget(
                Target::Object(object),
                SemaphoreMethod::Release.name(),
                vec![],
                thread,
            ),
            _ => {}
        }
    }
}

/// The ids of the proxy tokens inside `value`.
fn tokens_in(value: &Value) -> Vec<ObjectId> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Proxy(t) => found.push(t.id),
            Value::List(items) | Value::Tuple(items) => stack.extend(items.iter()),
            Value::Dict(map) => {
                for (k, v) in map.iter() {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    found
}

/// The reader thread: reads answers and hands each to its call until the
/// connection breaks, then reconnects (if it is on) and goes on.
fn read_answers(shared: Arc<Shared>, mut reader: BufReader<Stream>) {
    let mut spin = SpinPolicy::new(shared.options.spin);
    loop {
        let why = read_until_broken(&shared, &mut reader, &mut spin);
        let closing = shared.closing.load(Ordering::Acquire);
        let policy = shared.options.reconnect.filter(|_| !closing);
        lose(&shared, why, policy.is_some());
        let Some(policy) = policy else { return };
        match reconnect(&shared, policy) {
            Some(opened) => {
                reader = BufReader::with_capacity(READ_BUFFER, opened.reader);
                install(&shared, opened.writer, opened.channel);
            }
            None => return,
        }
    }
}

/// Reads and delivers answers; returns why the connection ended.
fn read_until_broken(
    shared: &Shared,
    reader: &mut BufReader<Stream>,
    spin: &mut SpinPolicy,
) -> String {
    loop {
        if reader.buffer().is_empty() && shared.quick.load(Ordering::Relaxed) > 0 {
            let polled = spin.next_spin();
            if reader.get_ref().spin_until_readable(polled) == mp_sys::spin::Spun::Contended {
                spin.contended();
            }
        }
        let frame = match read_frame(reader, shared.options.max_frame_bytes) {
            Ok(Some(frame)) => frame,
            Ok(None) => return "the server closed the connection".into(),
            Err(e) => return e.to_string(),
        };
        let Response { id, outcome } = match decode::<Response>(&frame) {
            Ok(r) => r,
            Err(e) => return e.to_string(),
        };
        let mut state = lock(&shared.state);
        match state.slots.remove(&id) {
            Some(Slot::Waiting { answer, undo }) => {
                // Sent under the lock: a future dropped meanwhile finds
                // either its slot or its answer (see `Pending::drop`).
                if let Err(outcome) = answer.send(outcome) {
                    drop(state);
                    shared.undo(undo, outcome);
                }
            }
            Some(Slot::Abandoned { undo }) => {
                drop(state);
                shared.undo(undo, outcome);
            }
            // The server's last word before it closes.
            None if id == CONNECTION_ID => {
                if let Outcome::Error(e) = outcome {
                    return e.to_string();
                }
            }
            // An answer nobody awaits (a decref's, a cancel's).
            None => {}
        }
    }
}

/// Marks the connection down: every call in flight fails.
fn lose(shared: &Shared, why: String, reconnecting: bool) {
    tracing::debug!(address = %shared.address, reason = %why, "async manager connection lost");
    if let Some(w) = lock(&shared.writer).take() {
        w.shutdown();
    }
    let mut state = lock(&shared.state);
    state.dead = Some(if shared.closing.load(Ordering::Acquire) {
        "the client was closed".into()
    } else {
        why
    });
    state.reconnecting = reconnecting;
    // Dropping the senders fails the waiting futures.
    state.slots.clear();
    let generation = state.generation;
    drop(state);
    if !reconnecting {
        shared.link.send_replace(Link {
            generation,
            closed: true,
        });
    }
}

/// Connects again with backoff until it works, gives up, or the client
/// is dropped.
fn reconnect(shared: &Shared, policy: crate::managers::Reconnect) -> Option<Opened> {
    let started = Instant::now();
    let mut delay = policy.initial_delay;
    loop {
        std::thread::sleep(delay);
        if shared.closing.load(Ordering::Acquire) {
            give_up(shared);
            return None;
        }
        match open(&shared.address, &shared.authkey, &shared.options) {
            Ok(opened) => return Some(opened),
            Err(e) => {
                tracing::debug!(address = %shared.address, error = %e, "reconnecting failed");
                if policy.give_up_after.is_some_and(|g| started.elapsed() >= g) {
                    tracing::warn!(address = %shared.address, error = %e, "gave up reconnecting to the manager");
                    give_up(shared);
                    return None;
                }
            }
        }
        delay = (delay * 2)
            .min(policy.max_delay)
            .max(Duration::from_millis(1));
    }
}

fn give_up(shared: &Shared) {
    let mut state = lock(&shared.state);
    state.reconnecting = false;
    let generation = state.generation;
    drop(state);
    shared.link.send_replace(Link {
        generation,
        closed: true,
    });
}

/// Carries on over a new connection: a new generation.
fn install(shared: &Shared, writer: Stream, channel: bool) {
    let mut w = lock(&shared.writer);
    if shared.closing.load(Ordering::Acquire) {
        writer.shutdown();
    }
    *w = Some(writer);
    let mut state = lock(&shared.state);
    state.generation += 1;
    state.dead = None;
    state.reconnecting = false;
    let generation = state.generation;
    shared.generation.store(generation, Ordering::Release);
    shared.channel.store(channel, Ordering::Relaxed);
    drop(state);
    drop(w);
    tracing::info!(address = %shared.address, "reconnected to the manager");
    shared.link.send_replace(Link {
        generation,
        closed: false,
    });
}

pub(super) fn id_value(id: ObjectId) -> Value {
    // Server ids stay below 2^52, so they fit an int.
    Value::Int(id.0 as i64)
}

fn convert<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ManagerError> {
    from_value(value).map_err(|e| ManagerError::Protocol(format!("unexpected answer: {e}")))
}

/// The error a lookup of the wrong type gets.
pub(super) fn wrong_type(name: &str, typeid: &str, wanted: &[&str]) -> ManagerError {
    ManagerError::Remote(RemoteError::new(
        ErrorKind::TypeError,
        format!("the name '{name}' is a '{typeid}' object, not one of {wanted:?}"),
    ))
}

/// A weak handle, for the process-wide registry of connections.
#[derive(Clone)]
pub(super) struct WeakAsyncClient(Weak<Handle>);

impl WeakAsyncClient {
    pub(super) fn upgrade(&self) -> Option<AsyncManagerClient> {
        self.0.upgrade().map(|handle| AsyncManagerClient { handle })
    }
}

impl AsyncManagerClient {
    pub(super) fn downgrade(&self) -> WeakAsyncClient {
        WeakAsyncClient(Arc::downgrade(&self.handle))
    }

    /// The key this client authenticated with.
    pub(super) fn authkey(&self) -> &[u8] {
        &self.shared().authkey
    }
}

impl std::fmt::Debug for AsyncManagerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncManagerClient")
            .field("address", &self.shared().address)
            .finish()
    }
}
