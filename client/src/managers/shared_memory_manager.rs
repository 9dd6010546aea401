//! [`SharedMemoryManager`]: a manager whose server tracks named shared
//! memory blocks and unlinks them when it shuts down (Python's
//! `multiprocessing.managers.SharedMemoryManager`, `SharedMemoryServer`
//! and `_SharedMemoryTracker`).
//!
//! [`shared_memory`](SharedMemoryManager::shared_memory) and
//! [`shareable_list`](SharedMemoryManager::shareable_list) create a block
//! in the calling process, as CPython does, then tell the server its
//! name; if the server cannot be told, the block is unlinked again and
//! the call fails. The server keeps the names until
//! [`shutdown`](SharedMemoryManager::shutdown), which unlinks every block
//! still tracked — whichever process made it, and whether or not that
//! process is still alive. A block already unlinked by its user is
//! skipped.
//!
//! # The server side
//!
//! CPython subclasses its `Server` with three extra server calls. Here the
//! same state is one shared object of the typeid [`TRACKER_TYPEID`]
//! (registered with [`register_tracker`], feature `server`), which every
//! client of the server reaches through `create` (it is the same object
//! each time, as [`register_shared`](super::server::register_shared)
//! makes it). Its methods are declared once in [`TrackerMethod`]:
//! `track_segment(name)`, `release_segment(name)` (unlink it and forget
//! it), `list_segments()` and `unlink()` (every tracked block, as
//! `_SharedMemoryTracker.unlink`). The blocks are unlinked when
//! [`SharedMemoryManager::shutdown`] asks (before it stops the server),
//! and again when the server drops the tracker (a server stopped any
//! other way, or [`get_server`](SharedMemoryManager::get_server) run to
//! its end).
//!
//! **Bounds.** Each tracked name is validated as a block name (1 to 254
//! bytes) and stored as a held value, so the names a peer makes the
//! server remember count against the server's `max_memory` (a full
//! budget answers `MemoryError`, tracking nothing).
//!
//! A manager that only [`connect`](SharedMemoryManager::connect)s makes
//! tracked blocks like the one that started the server, but its
//! `shutdown` only closes its connection: the server and its blocks
//! belong to the manager that started it.
//!
//! Like CPython's, the manager starts this program's resource tracker
//! (see [`crate::resource_tracker`]) before the server, so the server and
//! the processes that make blocks share one: a block the server unlinks
//! is also forgotten by the tracker.

use mp_proto::message::Kwargs;
use mp_proto::Value;

use super::base_manager::BaseManager;
use super::error::ManagerError;
use super::proxy::{from_wire, BaseProxy};
use crate::connection::Address;
use crate::shared_memory::{Item, ShareableList, SharedMemory, SharedMemoryError};

/// The typeid under which a server serves its segment tracker.
///
/// ```
/// use multiprocessing::managers::shared_memory_manager::{tracker_registry, TRACKER_TYPEID};
///
/// assert!(tracker_registry().typeids().any(|t| t == TRACKER_TYPEID));
/// ```
pub const TRACKER_TYPEID: &str = "SharedMemoryTracker";

mp_proto::shared_methods! {
    /// The methods of the segment tracker ([`TRACKER_TYPEID`]): CPython's
    /// `SharedMemoryServer` calls and `_SharedMemoryTracker.unlink`.
    ///
    /// ```
    /// use multiprocessing::managers::shared_memory_manager::TrackerMethod;
    ///
    /// assert_eq!(TrackerMethod::TrackSegment.name(), "track_segment");
    /// assert_eq!(TrackerMethod::from_name("list_segments"), Some(TrackerMethod::ListSegments));
    /// ```
    pub enum TrackerMethod {
        /// `track_segment(name)`: remember a block to unlink at shutdown.
        TrackSegment = "track_segment",
        /// `release_segment(name)`: unlink a tracked block and forget it.
        ReleaseSegment = "release_segment",
        /// `list_segments()`: the tracked names, oldest first.
        ListSegments = "list_segments",
        /// `unlink()`: unlink every tracked block and forget them all.
        Unlink = "unlink",
    }
}

/// A manager whose server unlinks the shared memory blocks made through
/// it when it shuts down (Python's `SharedMemoryManager`).
///
/// Blocks come from [`shared_memory`](Self::shared_memory) (Python's
/// `smm.SharedMemory(size)`) and [`shareable_list`](Self::shareable_list)
/// (`smm.ShareableList(sequence)`). Dropping a manager that started its
/// server shuts it down, as Python's `with SharedMemoryManager() as smm:`
/// does on leaving the block.
///
/// ```
/// use multiprocessing::managers::SharedMemoryManager;
/// use multiprocessing::shared_memory::{Item, SharedMemory};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut smm = SharedMemoryManager::new("127.0.0.1:0", b"secret");
/// smm.start()?;
/// let mut block = smm.shared_memory(128)?;
/// block.buf_mut()[..5].copy_from_slice(b"hello");
/// let list = smm.shareable_list(&[Item::Int(1), Item::Str("two".into())])?;
/// assert_eq!(smm.list_segments()?.len(), 2);
///
/// let name = block.name().to_owned();
/// smm.shutdown()?; // unlinks both blocks
/// assert!(SharedMemory::attach(&name).is_err());
/// # drop(list);
/// # Ok(())
/// # }
/// ```
pub struct SharedMemoryManager {
    base: BaseManager,
    /// The server's tracker, once started or connected.
    tracker: Option<BaseProxy>,
    /// The process that made this manager: only it unlinks at shutdown.
    owner: u32,
}

impl SharedMemoryManager {
    /// A manager for `address` (`"127.0.0.1:0"`, a `host:port`, or a Unix
    /// socket path containing `/`) with `authkey`, not started yet
    /// (Python's `SharedMemoryManager(address, authkey)`).
    pub fn new(address: &str, authkey: &[u8]) -> Self {
        SharedMemoryManager {
            base: BaseManager::new(address, authkey),
            tracker: None,
            owner: std::process::id(),
        }
    }

    #[cfg(feature = "server")]
    /// More typeids for the server to serve, as
    /// [`BaseManager::registry`]; only before [`start`](Self::start).
    pub fn registry(&mut self) -> Result<&mut mp_server::Registry, ManagerError> {
        self.base.registry()
    }

    #[cfg(feature = "server")]
    /// Starts the server in a forked child and connects to it.
    pub fn start(&mut self) -> Result<(), ManagerError> {
        ensure_tracker()?;
        register_tracker(self.base.registry()?);
        self.base.start()?;
        self.attach()
    }

    #[cfg(feature = "server")]
    /// [`start`](Self::start) with a child made by `method` (`spawn` and
    /// `forkserver` need [`crate::init`] called first in `main`). The
    /// child serves the tracker only: a manager whose
    /// [`registry`](Self::registry) was filled in is refused, as
    /// [`BaseManager::start_in`] refuses it.
    pub fn start_in(&mut self, method: crate::StartMethod) -> Result<(), ManagerError> {
        ensure_tracker()?;
        self.base.start_in(method, tracker_registry, || {})?;
        self.attach()
    }

    #[cfg(feature = "server")]
    /// Binds the manager's address to serve the tracker (and whatever
    /// [`registry`](Self::registry) added) in this process (Python's
    /// `get_server()`); the blocks are unlinked when
    /// [`serve_forever`](super::ManagerServer::serve_forever) returns.
    pub fn get_server(&mut self) -> Result<super::ManagerServer, ManagerError> {
        ensure_tracker()?;
        register_tracker(self.base.registry()?);
        self.base.get_server()
    }

    /// Connects to a server already running at the manager's address
    /// (one started by another `SharedMemoryManager`, or any server with
    /// the tracker registered).
    pub fn connect(&mut self) -> Result<(), ManagerError> {
        self.base.connect()?;
        self.attach()
    }

    /// Takes this connection's reference to the server's tracker.
    fn attach(&mut self) -> Result<(), ManagerError> {
        let client = self
            .base
            .client()
            .ok_or_else(|| ManagerError::State("neither started nor connected".into()))?;
        let tracker = BaseProxy::create(client, TRACKER_TYPEID, vec![], Kwargs::new()).map_err(
            |e| match e {
                ManagerError::Remote(remote) => ManagerError::State(format!(
                    "the manager at {} does not track shared memory (no '{TRACKER_TYPEID}' \
                     typeid; start it with SharedMemoryManager or register_tracker): {remote}",
                    client.address()
                )),
                other => other,
            },
        )?;
        self.tracker = Some(tracker);
        Ok(())
    }

    fn tracker(&self) -> Result<&BaseProxy, ManagerError> {
        self.tracker.as_ref().ok_or_else(|| {
            ManagerError::State(
                "neither started nor connected to a server that tracks shared memory".into(),
            )
        })
    }

    /// A new block of `size` bytes, tracked by the server (Python's
    /// `SharedMemory(size)`): it is unlinked when the manager shuts down
    /// unless someone unlinked it before.
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory, SharedMemoryError> {
        let tracker = self.tracker()?;
        let block = SharedMemory::create(size)?;
        track(tracker, block.name())?;
        Ok(block)
    }

    /// A new [`ShareableList`] holding `items`, tracked by the server
    /// (Python's `ShareableList(sequence)`).
    pub fn shareable_list(&self, items: &[Item]) -> Result<ShareableList, SharedMemoryError> {
        let tracker = self.tracker()?;
        let list = ShareableList::new(items)?;
        track(tracker, list.shm().name())?;
        Ok(list)
    }

    /// The names of the blocks the server tracks, oldest first (the
    /// server's `list_segments`).
    pub fn list_segments(&self) -> Result<Vec<String>, ManagerError> {
        from_wire(self.tracker()?.call(TrackerMethod::ListSegments, vec![])?)
    }

    /// Unlinks a tracked block now and stops tracking it (the server's
    /// `release_segment`): `ValueError` if the server does not track
    /// `name`.
    pub fn release_segment(&self, name: &str) -> Result<(), ManagerError> {
        self.tracker()?
            .call(TrackerMethod::ReleaseSegment, vec![Value::from(name)])
            .map(drop)
    }

    /// The server's address, once started or connected.
    pub fn address(&self) -> Option<&Address> {
        self.base.address()
    }

    /// The underlying manager (its connection, its server process, and
    /// [`BaseManager::create`] for other registered typeids).
    pub fn base(&self) -> &BaseManager {
        &self.base
    }

    /// Unlinks every tracked block, then stops the server this manager
    /// started (idempotent). A manager that only connected just drops its
    /// connection, as does a forked copy of the one that started it.
    ///
    /// The server is stopped even if unlinking failed; that failure is
    /// then returned.
    pub fn shutdown(&mut self) -> Result<(), ManagerError> {
        let tracker = self.tracker.take();
        let mut unlinked = Ok(());
        let ours = std::process::id() == self.owner && self.base.process().is_some();
        if let (Some(tracker), true) = (&tracker, ours) {
            unlinked = match tracker.call(TrackerMethod::Unlink, vec![]) {
                // The server is gone already: it unlinked when it dropped
                // its tracker, or it was killed and there is nobody to ask.
                Err(ManagerError::ConnectionLost(_)) => Ok(()),
                other => other.map(drop),
            };
        }
        drop(tracker);
        self.base.shutdown()?;
        unlinked
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for SharedMemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemoryManager")
            .field("address", &self.base.address())
            .field("started", &self.base.process().is_some())
            .finish()
    }
}

/// Tells the server to track `name`; unlinks the block if it cannot.
fn track(tracker: &BaseProxy, name: &str) -> Result<(), SharedMemoryError> {
    match tracker.call(TrackerMethod::TrackSegment, vec![Value::from(name)]) {
        Ok(_) => Ok(()),
        Err(e) => {
            // Untracked, it would outlive the manager: remove it now.
            let _ = SharedMemory::unlink_by_name(name);
            Err(e.into())
        }
    }
}

/// Starts this program's resource tracker before the server does, so
/// both share one (CPython's bpo-36867).
#[cfg(feature = "server")]
fn ensure_tracker() -> Result<(), ManagerError> {
    crate::resource_tracker::ensure_running()
        .map(drop)
        .map_err(|e| ManagerError::Start(format!("cannot start the resource tracker: {e}")))
}

#[cfg(feature = "server")]
pub use server_side::{register_tracker, tracker_registry};

#[cfg(feature = "server")]
mod server_side {
    //! The tracker object a server holds.

    use std::sync::{Mutex, PoisonError};

    use mp_proto::methods::MethodSpec;
    use mp_proto::{ErrorKind, RemoteError, Value};
    use mp_server::{errors, Args, CallContext, Held, Registry, Reply, SharedObject};

    use super::{TrackerMethod, TRACKER_TYPEID};
    use crate::shared_memory::block::check_name;
    use crate::shared_memory::{SharedMemory, SharedMemoryError};

    /// Registers the segment tracker ([`TRACKER_TYPEID`]) in `registry`:
    /// one tracker per server, shared by every client. For a server a
    /// program embeds with other typeids; its tracked blocks are unlinked
    /// when the server stops.
    ///
    /// ```
    /// use mp_server::{Listen, Registry};
    /// use multiprocessing::managers::shared_memory_manager::register_tracker;
    /// use multiprocessing::managers::{ManagerServer, SharedMemoryManager};
    /// use multiprocessing::shared_memory::SharedMemory;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut registry = Registry::sync_manager();
    /// register_tracker(&mut registry);
    /// let server = ManagerServer::bind(registry, b"key", &Listen::Tcp("127.0.0.1:0".into()))?;
    /// let address = server.address().to_owned();
    /// let engine = server.engine();
    /// let serving = std::thread::spawn(move || server.serve_forever());
    ///
    /// let mut smm = SharedMemoryManager::new(&address, b"key");
    /// smm.connect()?;
    /// let name = smm.shared_memory(64)?.name().to_owned();
    /// drop(smm);
    ///
    /// engine.shutdown().trigger();
    /// serving.join().unwrap()?;
    /// drop(engine); // the last handle on the server: its tracker goes
    /// assert!(SharedMemory::attach(&name).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn register_tracker(registry: &mut Registry) {
        super::super::server::register_shared(registry, TRACKER_TYPEID, |_| {
            Ok(SegmentTracker::default())
        });
    }

    /// A registry serving only the segment tracker (what
    /// [`SharedMemoryManager::start_in`](super::SharedMemoryManager::start_in)
    /// builds in its child).
    ///
    /// ```
    /// use multiprocessing::managers::shared_memory_manager::tracker_registry;
    /// use multiprocessing::managers::ManagerServer;
    ///
    /// let listen = mp_server::Listen::Tcp("127.0.0.1:0".into());
    /// let server = ManagerServer::bind(tracker_registry(), b"key", &listen)?;
    /// assert!(server.address().starts_with("127.0.0.1:"));
    /// # Ok::<(), multiprocessing::managers::ManagerError>(())
    /// ```
    pub fn tracker_registry() -> Registry {
        let mut registry = Registry::new();
        register_tracker(&mut registry);
        registry
    }

    /// The names of the blocks to unlink at shutdown.
    #[derive(Default)]
    struct SegmentTracker {
        /// Held values: each name is charged to the server's budget.
        names: Mutex<Vec<Held>>,
    }

    fn name_of(held: &Held) -> Option<&str> {
        match held.value() {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Unlinks `name`; a block already gone counts as done.
    fn unlink(name: &str) -> Result<(), SharedMemoryError> {
        match SharedMemory::unlink_by_name(name) {
            Err(SharedMemoryError::FileNotFound(_)) => Ok(()),
            other => other,
        }
    }

    fn os_error(e: SharedMemoryError) -> RemoteError {
        match e {
            SharedMemoryError::FileNotFound(name) => RemoteError::new(
                ErrorKind::from_name("FileNotFoundError"),
                format!("[Errno 2] No such file or directory: '/{name}'"),
            ),
            SharedMemoryError::ValueError(m) => errors::value_error(m),
            other => RemoteError::new(ErrorKind::from_name("OSError"), other.to_string()),
        }
    }

    impl SegmentTracker {
        fn names(&self) -> std::sync::MutexGuard<'_, Vec<Held>> {
            self.names.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn track(&self, ctx: &CallContext<'_>, args: Args) -> Result<Value, RemoteError> {
            let (name,): (String,) = args.parse(TrackerMethod::TrackSegment.name())?;
            check_name(&name).map_err(os_error)?;
            let mut names = self.names();
            if !names.iter().any(|h| name_of(h) == Some(name.as_str())) {
                names.push(ctx.hold(Value::Str(name))?);
            }
            Ok(Value::None)
        }

        fn release(&self, args: Args) -> Result<Value, RemoteError> {
            let (name,): (String,) = args.parse(TrackerMethod::ReleaseSegment.name())?;
            let mut names = self.names();
            let Some(at) = names.iter().position(|h| name_of(h) == Some(name.as_str())) else {
                return Err(errors::value_error(format!(
                    "shared memory block '{name}' is not tracked"
                )));
            };
            names.remove(at);
            drop(names);
            SharedMemory::unlink_by_name(&name).map_err(os_error)?;
            Ok(Value::None)
        }

        fn list(&self, args: Args) -> Result<Value, RemoteError> {
            args.none(TrackerMethod::ListSegments.name())?;
            Ok(Value::List(
                self.names()
                    .iter()
                    .filter_map(name_of)
                    .map(Value::from)
                    .collect(),
            ))
        }

        /// Unlinks every tracked block; the first failure is reported
        /// after all were tried.
        fn unlink_all(&self) -> Result<Value, RemoteError> {
            let names = std::mem::take(&mut *self.names());
            let mut first = Ok(Value::None);
            for held in &names {
                if let Some(name) = name_of(held) {
                    if let Err(e) = unlink(name) {
                        tracing::warn!(target: "multiprocessing", %name, error = %e, "cannot unlink a tracked shared memory block");
                        if first.is_ok() {
                            first = Err(os_error(e));
                        }
                    }
                }
            }
            first
        }
    }

    impl SharedObject for SegmentTracker {
        fn methods() -> &'static [MethodSpec] {
            TrackerMethod::TABLE
        }

        fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
            let Some(m) = TrackerMethod::from_name(method) else {
                return Reply::no_such_method(TRACKER_TYPEID, method);
            };
            match m {
                TrackerMethod::TrackSegment => self.track(ctx, args),
                TrackerMethod::ReleaseSegment => self.release(args),
                TrackerMethod::ListSegments => self.list(args),
                TrackerMethod::Unlink => args.none(method).and_then(|()| self.unlink_all()),
            }
            .into()
        }

        fn repr(&self) -> Option<String> {
            Some(format!(
                "<{TRACKER_TYPEID} tracking {} segments>",
                self.names().len()
            ))
        }
    }

    impl Drop for SegmentTracker {
        /// The server is going: nothing it tracks may outlive it
        /// (CPython's `_SharedMemoryTracker.__del__`).
        fn drop(&mut self) {
            let _ = self.unlink_all();
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use mp_proto::message::{Kwargs, Outcome, Request, Target};
        use mp_proto::methods::builtin::ServerMethod;
        use mp_server::{Engine, Limits};

        fn call(
            engine: &std::sync::Arc<Engine>,
            id: u64,
            target: Target,
            method: &str,
            args: Vec<Value>,
        ) -> Outcome {
            let session = engine.open_session("test");
            let request = Request {
                id,
                target,
                method: method.into(),
                args,
                kwargs: Kwargs::new(),
                thread: 1,
            };
            match engine.call(&session, request) {
                Reply::Ready(outcome) => outcome,
                Reply::Pending(_) => panic!("the tracker never waits"),
            }
        }

        #[test]
        fn tracked_names_count_against_the_servers_memory() {
            let limits = Limits {
                max_memory: 4096,
                ..Limits::default()
            };
            let engine = Engine::with_limits(tracker_registry(), &limits);
            let Outcome::Proxy(info) = call(
                &engine,
                1,
                Target::Server,
                ServerMethod::Create.name(),
                vec![TRACKER_TYPEID.into()],
            ) else {
                panic!("no tracker made");
            };
            let tracker = Target::Object(info.token.id);
            let mut refused = None;
            for i in 0..1000u64 {
                // Names of blocks that do not exist: nothing to unlink.
                let name = format!("psm_budget_test_{i:0>200}");
                match call(
                    &engine,
                    i + 2,
                    tracker,
                    TrackerMethod::TrackSegment.name(),
                    vec![name.into()],
                ) {
                    Outcome::Return(_) => {}
                    Outcome::Error(e) => {
                        refused = Some((i, e));
                        break;
                    }
                    Outcome::Proxy(_) => panic!("track_segment made an object"),
                }
            }
            let (tracked, error) = refused.expect("the budget never filled");
            assert_eq!(error.kind, ErrorKind::MemoryError, "{error}");
            assert!(tracked > 0);
            let Outcome::Return(Value::List(names)) = call(
                &engine,
                5000,
                tracker,
                TrackerMethod::ListSegments.name(),
                vec![],
            ) else {
                panic!("list_segments answered no list");
            };
            assert_eq!(names.len() as u64, tracked, "a refused name was kept");
        }

        #[test]
        fn a_name_no_block_can_have_is_refused() {
            let engine = Engine::new(tracker_registry());
            let Outcome::Proxy(info) = call(
                &engine,
                1,
                Target::Server,
                ServerMethod::Create.name(),
                vec![TRACKER_TYPEID.into()],
            ) else {
                panic!("no tracker made");
            };
            for bad in ["", "a/b", "x".repeat(300).as_str()] {
                match call(
                    &engine,
                    2,
                    Target::Object(info.token.id),
                    TrackerMethod::TrackSegment.name(),
                    vec![bad.into()],
                ) {
                    Outcome::Error(e) => assert_eq!(e.kind, ErrorKind::ValueError, "{e}"),
                    _ => panic!("{bad:?} was tracked"),
                }
            }
        }
    }
}
