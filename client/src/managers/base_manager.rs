//! [`BaseManager`]: starts a manager server in a child process, or
//! connects to one, and shuts down what it started (Python's
//! `multiprocessing.managers.BaseManager`); [`Manager`](struct@Manager) and [`Manager()`]
//! give a started [`SyncManager`].
//!
//! The server runs the `mp-server` engine in a child process: the child
//! binds the address, reports the real one (port 0 picks a free port)
//! through a pipe, and serves until told to shut down. Dropping a manager
//! that started a server shuts it down — the scope form of Python's
//! `with manager:`. [`BaseManager::get_server`] serves in the calling
//! process instead.
//!
//! # Start methods
//!
//! [`start`](BaseManager::start) forks: the child takes the registry as
//! built with [`registry`](BaseManager::registry), constructors and all.
//! A `spawn` or `forkserver` child re-executes the program, so it cannot
//! be handed closures: [`start_in`](BaseManager::start_in) takes the
//! registry as a function the child calls (as Python's `register` is a
//! class-level table the child imports again), and an initializer that is
//! a `fn` item or a non-capturing closure.
//!
//! # Registering typeids
//!
//! Python's `register(typeid, callable, proxytype, exposed,
//! method_to_typeid, create_method)` does two things, split here:
//!
//! * the server side — `callable`, `exposed`, `method_to_typeid`,
//!   `create_method` — is [`registry`](BaseManager::registry)`().register`
//!   (or [`register_shared`](super::server::register_shared) for a
//!   callable returning one fixed object);
//! * the client side is [`register`](BaseManager::register): a narrower
//!   `exposed`, `create_method(false)`, and the `method_to_typeid` a client
//!   expects; `proxytype` is the type parameter of
//!   [`create_as`](BaseManager::create_as) and
//!   [`AutoProxy::call_method_as`].

use std::collections::{BTreeMap, HashMap};
#[cfg(feature = "server")]
use std::ops::Deref;
use std::time::Duration;

#[cfg(feature = "server")]
use mp_server::{Listen, Registry};

use super::client::ManagerClient;
use super::error::ManagerError;
use super::proxies::{AutoProxy, AutoReturn};
use super::proxy::{BaseProxy, ProxyType};
#[cfg(feature = "server")]
use super::server::ManagerServer;
use super::shared_type::SharedType;
#[cfg(feature = "server")]
use super::sync_manager::SyncManager;
use crate::connection::Address;
#[cfg(feature = "server")]
use crate::connection::{Connection, Pipe};
#[cfg(feature = "server")]
use crate::context::{get_context, StartMethod};
use crate::process::Process;

/// How long `start` waits for the child to report its address, and
/// `shutdown` for the child to exit before it is killed.
#[cfg(feature = "server")]
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A manager: the address of a server, its authkey, the typeids it
/// serves, and — once started — the server's process.
pub struct BaseManager {
    /// Where to serve or connect: `host:port`, or a Unix socket path.
    listen: String,
    authkey: Vec<u8>,
    #[cfg(feature = "server")]
    registry: Option<Registry>,
    address: Option<Address>,
    process: Option<Process>,
    client: Option<ManagerClient>,
    /// The process that made this manager: only it may stop the server.
    owner: u32,
    /// Client-side registrations.
    client_types: HashMap<String, ClientType>,
}

/// A typeid as this client sees it (the client half of Python's
/// `register`).
#[derive(Clone, Debug, Default)]
struct ClientType {
    exposed: Option<Vec<String>>,
    method_to_typeid: BTreeMap<String, String>,
    no_create: bool,
}

/// A client-side registration in progress ([`BaseManager::register`]).
pub struct ClientRegistration<'m> {
    entry: &'m mut ClientType,
}

impl ClientRegistration<'_> {
    /// Proxies of this typeid may call only `names` (and only those the
    /// server exposes).
    pub fn exposed<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entry.exposed = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// `method` returns a new shared object of `typeid`: an
    /// [`AutoProxy::call_method`] answer of another kind is a protocol
    /// error.
    pub fn method_to_typeid(self, method: &str, typeid: &str) -> Self {
        self.entry
            .method_to_typeid
            .insert(method.to_owned(), typeid.to_owned());
        self
    }

    /// Whether this manager creates the typeid (default `true`); `false`
    /// for a typeid only methods return, as Python's
    /// `create_method=False`.
    pub fn create_method(self, yes: bool) -> Self {
        self.entry.no_create = !yes;
        self
    }
}

impl BaseManager {
    /// A manager for `address` (`"127.0.0.1:0"`, a `host:port`, or a Unix
    /// socket path containing `/`) serving no typeids yet.
    pub fn new(address: &str, authkey: &[u8]) -> Self {
        BaseManager {
            listen: address.to_owned(),
            authkey: authkey.to_vec(),
            #[cfg(feature = "server")]
            registry: Some(Registry::new()),
            address: None,
            process: None,
            client: None,
            owner: std::process::id(),
            client_types: HashMap::new(),
        }
    }

    /// A manager serving SyncManager's built-in typeids.
    #[cfg(feature = "server")]
    pub fn sync(address: &str, authkey: &[u8]) -> Self {
        let mut m = BaseManager::new(address, authkey);
        m.registry = Some(Registry::sync_manager());
        m
    }

    #[cfg(feature = "server")]
    /// The typeids the server will serve, to register more (Python's
    /// `register`, with `exposed`, `method_to_typeid` and `create_method`
    /// on the returned registration). Only before [`start`](Self::start).
    pub fn registry(&mut self) -> Result<&mut Registry, ManagerError> {
        self.registry
            .as_mut()
            .ok_or_else(|| ManagerError::State("register after start".into()))
    }

    /// Registers the [`#[shared]`](super::shared) type `T` (Python's
    /// `register('Maths', MathsClass)`): the server this manager starts
    /// will serve it, with the types its methods return; a manager that
    /// only connects needs no registration for typed proxies. An error
    /// after [`start`](Self::start), when the server is built already.
    pub fn register<T: SharedType>(&mut self) -> Result<&mut Self, ManagerError> {
        #[cfg(feature = "server")]
        super::shared_type::register_type::<T>(self.registry()?);
        Ok(self)
    }

    #[cfg(feature = "server")]
    /// [`register`](Self::register) under another `typeid`, exposing
    /// `exposed` if given (Python's `register('Foo2', Foo, exposed=('g',
    /// '_h'))`); create it with [`create_as`](Self::create_as).
    pub fn register_as<T: SharedType>(
        &mut self,
        typeid: &str,
        exposed: Option<&[&str]>,
    ) -> Result<&mut Self, ManagerError> {
        let registration = super::shared_type::register_type_as::<T>(self.registry()?, typeid);
        if let Some(names) = exposed {
            registration.exposed(names.iter().copied());
        }
        Ok(self)
    }

    /// Registers `typeid` on the client side, by name (Python's
    /// `register` in a client that only connects): see
    /// [`ClientRegistration`].
    pub fn register_typeid(&mut self, typeid: &str) -> ClientRegistration<'_> {
        ClientRegistration {
            entry: self.client_types.entry(typeid.to_owned()).or_default(),
        }
    }

    #[cfg(feature = "server")]
    /// Starts the server in a child process (forked) and connects to it.
    pub fn start(&mut self) -> Result<(), ManagerError> {
        self.start_with(|| {})
    }

    #[cfg(feature = "server")]
    /// [`start`](Self::start), running `initializer` in the server's
    /// process before it serves (Python's `start(initializer)`).
    pub fn start_with<I>(&mut self, initializer: I) -> Result<(), ManagerError>
    where
        I: FnOnce() + Send + 'static,
    {
        let registry = self.take_registry()?;
        let (reader, writer) = Pipe(false).map_err(|e| start_error(&e))?;
        let listen = parse_listen(&self.listen);
        let authkey = self.authkey.clone();
        let process = get_context(StartMethod::Fork)
            .process_fn(move || {
                initializer();
                serve(registry, authkey, listen, writer)
            })
            .with_name("SyncManager-server");
        self.launch(process, reader)
    }

    #[cfg(feature = "server")]
    /// Starts the server in a child made with `method` — `spawn` and
    /// `forkserver` included. The child builds its registry with
    /// `registry` (the one from [`registry`](Self::registry) is not used),
    /// then runs `initializer`, then serves; a manager whose
    /// [`registry`](Self::registry) was filled in is refused. Both must be
    /// `fn` items or
    /// non-capturing closures, so a re-executed child can call them; the
    /// program must call [`crate::init`] first in `main`.
    ///
    /// ```no_run
    /// use multiprocessing::managers::BaseManager;
    /// use multiprocessing::StartMethod;
    /// use mp_server::Registry;
    ///
    /// let mut m = BaseManager::new("127.0.0.1:0", b"key");
    /// m.start_in(StartMethod::Spawn, Registry::sync_manager, || {})?;
    /// # Ok::<(), multiprocessing::managers::ManagerError>(())
    /// ```
    pub fn start_in<B, I>(
        &mut self,
        method: StartMethod,
        registry: B,
        initializer: I,
    ) -> Result<(), ManagerError>
    where
        B: Fn() -> Registry + Copy + Send + 'static,
        I: Fn() + Copy + Send + 'static,
    {
        if self
            .registry
            .as_ref()
            .is_some_and(|r| r.typeids().next().is_some())
        {
            // Silently serving another registry than the one filled in
            // would be a trap.
            return Err(ManagerError::State(
                "start_in builds the registry in the child: register there, not with registry()"
                    .into(),
            ));
        }
        self.take_registry()?;
        let (reader, writer) = Pipe(false).map_err(|e| start_error(&e))?;
        let listen = self.listen.clone();
        // Captures only `registry` and `initializer`: zero-sized when they
        // are, as `Process::new` requires.
        let body = move |listen: String, authkey: Vec<u8>, report: Connection| {
            initializer();
            serve(registry(), authkey, parse_listen(&listen), report)
        };
        let process = get_context(method)
            .process(body, (listen, self.authkey.clone(), writer))
            .with_name("SyncManager-server");
        self.launch(process, reader)
    }

    #[cfg(feature = "server")]
    fn take_registry(&mut self) -> Result<Registry, ManagerError> {
        self.registry
            .take()
            .ok_or_else(|| ManagerError::State("the manager was already started".into()))
    }

    #[cfg(feature = "server")]
    /// Starts `process`, reads the address it reports, connects.
    fn launch(&mut self, process: Process, mut reader: Connection) -> Result<(), ManagerError> {
        process.start().map_err(|e| start_error(&e))?;
        if let Ok(Some(pid)) = process.pid() {
            super::after_fork::note_server(pid);
        }
        self.process = Some(process);
        let reported = match reader.poll(Some(START_TIMEOUT)) {
            Ok(true) => reader
                .recv::<Result<String, String>>()
                .map_err(|e| start_error(&e)),
            Ok(false) => Err(ManagerError::Start("no address reported in time".into())),
            Err(e) => Err(start_error(&e)),
        };
        let address = match reported {
            Ok(Ok(a)) => a,
            Ok(Err(why)) => {
                self.stop_process();
                return Err(ManagerError::Start(why));
            }
            Err(e) => {
                self.stop_process();
                return Err(e);
            }
        };
        let address: Address = address.parse().map_err(|e| start_error(&e))?;
        let client = ManagerClient::connect(&address, &self.authkey);
        self.address = Some(address);
        match client {
            Ok(c) => {
                super::transfer::register_keyed(&c, Some(&self.authkey));
                self.client = Some(c);
                Ok(())
            }
            Err(e) => {
                self.stop_process();
                Err(e)
            }
        }
    }

    /// Connects to a server already running at the manager's address.
    pub fn connect(&mut self) -> Result<(), ManagerError> {
        let address: Address = self
            .listen
            .parse()
            .map_err(|e: crate::connection::ConnectionError| ManagerError::State(e.to_string()))?;
        self.client = Some(super::transfer::shared_connection(&address, &self.authkey)?);
        self.address = Some(address);
        Ok(())
    }

    #[cfg(feature = "server")]
    /// Binds the manager's address to serve its registry in this process
    /// (Python's `get_server()`); then call
    /// [`serve_forever`](ManagerServer::serve_forever). Uses up the
    /// registry, as `start` does.
    pub fn get_server(&mut self) -> Result<ManagerServer, ManagerError> {
        let registry = self.take_registry()?;
        ManagerServer::bind(registry, &self.authkey, &parse_listen(&self.listen))
    }

    /// The server's address, once started or connected.
    pub fn address(&self) -> Option<&Address> {
        self.address.as_ref()
    }

    /// The connection, once started or connected.
    pub fn client(&self) -> Option<&ManagerClient> {
        self.client.as_ref()
    }

    /// A new object of the [`#[shared]`](super::shared) type `T`, made
    /// with `Default` (or a constructor without parameters), behind its
    /// typed proxy (Python's `manager.Maths()`).
    pub fn create<T: SharedType<NewArgs = ()>>(&self) -> Result<T::Proxy, ManagerError> {
        super::shared_type::create::<T>(self.connected()?, ())
    }

    /// [`create`](Self::create) with the constructor's arguments as a
    /// tuple: `create_with::<Counter>((5,))`.
    pub fn create_with<T: SharedType>(&self, args: T::NewArgs) -> Result<T::Proxy, ManagerError> {
        super::shared_type::create::<T>(self.connected()?, args)
    }

    fn connected(&self) -> Result<&ManagerClient, ManagerError> {
        self.client
            .as_ref()
            .ok_or_else(|| ManagerError::State("neither started nor connected".into()))
    }

    /// Names the object `proxy` refers to `name` on the server, so that
    /// other clients find it with [`lookup`](Self::lookup); a taken name
    /// is an error (see [`ManagerClient::publish`] to replace one).
    pub fn publish(&self, name: &str, proxy: &impl AsRef<BaseProxy>) -> Result<(), ManagerError> {
        self.connected()?.publish(name, proxy, false)
    }

    /// Removes a name (the object lives on while referred to).
    pub fn unpublish(&self, name: &str) -> Result<(), ManagerError> {
        self.connected()?.unpublish(name)
    }

    /// A typed proxy to the object published as `name` (by a client, or
    /// by `mpserver serve --shared NAME=TYPEID`): `KeyError` for a name
    /// nothing has, `TypeError` for an object `P` does not serve.
    pub fn lookup<P: ProxyType>(&self, name: &str) -> Result<P, ManagerError> {
        self.connected()?.lookup(name)
    }

    /// A new object of a registered `typeid` behind an [`AutoProxy`]
    /// (Python's `manager.<typeid>(*args)`, by name), limited to the
    /// client-side `exposed` if one was registered.
    pub fn create_auto(
        &self,
        typeid: &str,
        args: Vec<mp_proto::Value>,
    ) -> Result<AutoProxy, ManagerError> {
        let proxy: AutoProxy = self.create_as(typeid, args)?;
        match self
            .client_types
            .get(typeid)
            .and_then(|t| t.exposed.as_ref())
        {
            Some(names) => Ok(proxy.restrict(names)),
            None => Ok(proxy),
        }
    }

    /// A new object of `typeid` behind the proxy type `P` (Python's
    /// `register(typeid, proxytype=P)` then `manager.<typeid>(*args)`).
    pub fn create_as<P: ProxyType>(
        &self,
        typeid: &str,
        args: Vec<mp_proto::Value>,
    ) -> Result<P, ManagerError> {
        let client = self.connected()?;
        if self.client_types.get(typeid).is_some_and(|t| t.no_create) {
            return Err(ManagerError::Remote(mp_proto::RemoteError::new(
                mp_proto::ErrorKind::AttributeError,
                format!("typeid '{typeid}' was registered with create_method(false)"),
            )));
        }
        let info = client.create(typeid, args, Default::default())?;
        let exposed = info.exposed.clone();
        Ok(P::from_parts(
            BaseProxy::from_owned(client.clone(), info),
            exposed,
        ))
    }

    /// Calls `method` on `proxy`, checking the answer against the
    /// client-side `method_to_typeid` of its typeid: a method registered
    /// as returning a typeid must return a new object of it.
    pub fn call_checked(
        &self,
        proxy: &AutoProxy,
        method: &str,
        args: Vec<mp_proto::Value>,
    ) -> Result<AutoReturn, ManagerError> {
        let expected = self
            .client_types
            .get(&proxy.base().token().typeid)
            .and_then(|t| t.method_to_typeid.get(method));
        let answer = proxy.call_method(method, args)?;
        match (expected, &answer) {
            (Some(typeid), AutoReturn::Proxy(p)) if p.base().token().typeid != *typeid => {
                Err(ManagerError::Protocol(format!(
                    "'{method}' returned a '{}' object, registered as '{typeid}'",
                    p.base().token().typeid
                )))
            }
            (Some(typeid), AutoReturn::Value(_)) => Err(ManagerError::Protocol(format!(
                "'{method}' returned a value, registered as returning '{typeid}'"
            ))),
            _ => Ok(answer),
        }
    }

    /// The server process, if this manager started one.
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// Stops the server this manager started (idempotent; a manager that
    /// only connected just drops its connection). Waits for the child to
    /// exit, killing it if it does not in time.
    pub fn shutdown(&mut self) -> Result<(), ManagerError> {
        if std::process::id() != self.owner {
            // A forked copy: the server belongs to the parent.
            self.process = None;
            self.client = None;
            return Ok(());
        }
        if self.process.is_some() {
            if let Some(c) = &self.client {
                // A lost connection means the server is already going.
                let _ = c.shutdown();
            }
        }
        self.client = None;
        self.stop_process();
        Ok(())
    }

    fn stop_process(&mut self) {
        if let Some(p) = self.process.take() {
            if !matches!(p.join_timeout(STOP_TIMEOUT), Ok(true)) {
                let _ = p.kill();
                let _ = p.join_timeout(STOP_TIMEOUT);
            }
        }
    }
}

impl Drop for BaseManager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for BaseManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseManager")
            .field("address", &self.address)
            .field("started", &self.process.is_some())
            .finish()
    }
}

#[cfg(feature = "server")]
fn start_error(e: &dyn std::fmt::Display) -> ManagerError {
    ManagerError::Start(e.to_string())
}

/// The address to serve at: a path contains `/`.
#[cfg(feature = "server")]
fn parse_listen(text: &str) -> Listen {
    if text.contains('/') {
        Listen::Unix(text.into())
    } else {
        Listen::Tcp(text.to_owned())
    }
}

/// The server child's body: bind, report the address, serve.
#[cfg(feature = "server")]
fn serve(
    registry: Registry,
    authkey: Vec<u8>,
    listen: Listen,
    mut report: Connection,
) -> Result<(), String> {
    match ManagerServer::bind(registry, &authkey, &listen) {
        Ok(server) => {
            report
                .send(&Ok::<String, String>(server.address().to_owned()))
                .map_err(|e| e.to_string())?;
            drop(report);
            server.serve_forever().map_err(|e| e.to_string())
        }
        Err(e) => {
            let _ = report.send(&Err::<String, String>(e.to_string()));
            Err(e.to_string())
        }
    }
}

#[cfg(feature = "server")]
/// A started SyncManager: its proxies' constructors through `Deref`, its
/// server shut down on drop.
#[derive(Debug)]
pub struct Manager {
    base: BaseManager,
    sync: SyncManager,
}

#[cfg(feature = "server")]
impl Manager {
    /// Starts a SyncManager server at `address` with `authkey`.
    pub fn start(address: &str, authkey: &[u8]) -> Result<Self, ManagerError> {
        let mut base = BaseManager::sync(address, authkey);
        base.start()?;
        Self::wrap(base)
    }

    /// [`start`](Self::start) with a child made by `method` (`spawn` and
    /// `forkserver` need [`crate::init`] called first in `main`).
    pub fn start_in(
        address: &str,
        authkey: &[u8],
        method: StartMethod,
    ) -> Result<Self, ManagerError> {
        let mut base = BaseManager::new(address, authkey);
        base.start_in(method, Registry::sync_manager, || {})?;
        Self::wrap(base)
    }

    fn wrap(base: BaseManager) -> Result<Self, ManagerError> {
        let client = base
            .client()
            .cloned()
            .ok_or_else(|| ManagerError::State("started without a connection".into()))?;
        Ok(Manager {
            base,
            sync: SyncManager::from_client(client),
        })
    }

    /// The underlying manager (address, process).
    pub fn base(&self) -> &BaseManager {
        &self.base
    }

    /// Shuts the server down now (idempotent); proxies fail afterwards.
    pub fn shutdown(&mut self) -> Result<(), ManagerError> {
        self.base.shutdown()
    }
}

#[cfg(feature = "server")]
impl Deref for Manager {
    type Target = SyncManager;
    fn deref(&self) -> &SyncManager {
        &self.sync
    }
}

#[cfg(feature = "server")]
/// Starts a SyncManager on a free local port, keyed with the current
/// process's authkey so children (which inherit it) can connect (Python's
/// `multiprocessing.Manager()`).
#[allow(non_snake_case)]
pub fn Manager() -> Result<Manager, ManagerError> {
    let key = crate::process::current_process().authkey();
    Manager::start("127.0.0.1:0", key.as_bytes())
}
