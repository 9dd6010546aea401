//! [`BaseManager`]: starts a manager server in a child process, or
//! connects to one, and shuts down what it started (Python's
//! `multiprocessing.managers.BaseManager`); [`Manager`] and [`Manager()`]
//! give a started [`SyncManager`].
//!
//! The server runs the `mp-server` engine in a child made with the `fork`
//! start method: the child binds the address, reports the real one (port
//! 0 picks a free port) through a pipe, and serves until told to shut
//! down. Dropping a manager that started a server shuts it down — the
//! scope form of Python's `with manager:`.

use std::ops::Deref;
use std::time::Duration;

use mp_server::{Listen, Registry, Server};

use super::client::ManagerClient;
use super::error::ManagerError;
use super::proxies::AutoProxy;
use super::sync_manager::SyncManager;
use crate::connection::{Address, Pipe};
use crate::context::{get_context, StartMethod};
use crate::process::Process;

/// How long `start` waits for the child to report its address, and
/// `shutdown` for the child to exit before it is killed.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A manager: the address of a server, its authkey, the typeids it
/// serves, and — once started — the server's process.
pub struct BaseManager {
    listen: Listen,
    authkey: Vec<u8>,
    registry: Option<Registry>,
    address: Option<Address>,
    process: Option<Process>,
    client: Option<ManagerClient>,
    /// The process that made this manager: only it may stop the server.
    owner: u32,
}

impl BaseManager {
    /// A manager for `address` (`"127.0.0.1:0"`, a `host:port`, or a Unix
    /// socket path containing `/`) serving no typeids yet.
    pub fn new(address: &str, authkey: &[u8]) -> Self {
        let listen = if address.contains('/') {
            Listen::Unix(address.into())
        } else {
            Listen::Tcp(address.to_owned())
        };
        BaseManager {
            listen,
            authkey: authkey.to_vec(),
            registry: Some(Registry::new()),
            address: None,
            process: None,
            client: None,
            owner: std::process::id(),
        }
    }

    /// A manager serving SyncManager's built-in typeids.
    pub fn sync(address: &str, authkey: &[u8]) -> Self {
        let mut m = BaseManager::new(address, authkey);
        m.registry = Some(Registry::sync_manager());
        m
    }

    /// The typeids the server will serve, to register more (Python's
    /// `register`, with `exposed`, `method_to_typeid` and `create_method`
    /// on the returned registration). Only before [`start`](Self::start).
    pub fn registry(&mut self) -> Result<&mut Registry, ManagerError> {
        self.registry
            .as_mut()
            .ok_or_else(|| ManagerError::State("register after start".into()))
    }

    /// Starts the server in a child process and connects to it.
    pub fn start(&mut self) -> Result<(), ManagerError> {
        let registry = self
            .registry
            .take()
            .ok_or_else(|| ManagerError::State("the manager was already started".into()))?;
        let start_error = |e: &dyn std::fmt::Display| ManagerError::Start(e.to_string());
        let (mut reader, writer) = Pipe(false).map_err(|e| start_error(&e))?;
        let listen = self.listen.clone();
        let authkey = self.authkey.clone();
        let process = get_context(StartMethod::Fork)
            .process_fn(move || serve(registry, authkey, listen, writer))
            .with_name("SyncManager-server");
        process.start().map_err(|e| start_error(&e))?;
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
        let text = match &self.listen {
            Listen::Tcp(a) => a.clone(),
            Listen::Unix(p) => p.display().to_string(),
        };
        let address: Address = text
            .parse()
            .map_err(|e: crate::connection::ConnectionError| ManagerError::State(e.to_string()))?;
        self.client = Some(ManagerClient::connect(&address, &self.authkey)?);
        self.address = Some(address);
        Ok(())
    }

    /// The server's address, once started or connected.
    pub fn address(&self) -> Option<&Address> {
        self.address.as_ref()
    }

    /// The connection, once started or connected.
    pub fn client(&self) -> Option<&ManagerClient> {
        self.client.as_ref()
    }

    /// A new object of a registered `typeid` behind an [`AutoProxy`]
    /// (Python's `manager.<typeid>(*args)`).
    pub fn create(
        &self,
        typeid: &str,
        args: Vec<mp_proto::Value>,
    ) -> Result<AutoProxy, ManagerError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| ManagerError::State("neither started nor connected".into()))?;
        let info = client.create(typeid, args, Default::default())?;
        Ok(AutoProxy::from_info(client.clone(), info))
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

/// The server child's body: bind, report the address, serve.
fn serve(
    registry: Registry,
    authkey: Vec<u8>,
    listen: Listen,
    mut report: crate::connection::Connection,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string());
    let runtime = match runtime {
        Ok(r) => r,
        Err(why) => {
            let _ = report.send(&Err::<String, String>(why.clone()));
            return Err(why);
        }
    };
    runtime.block_on(async move {
        match Server::new(registry, authkey).bind(&listen).await {
            Ok(bound) => {
                report
                    .send(&Ok::<String, String>(bound.address().to_owned()))
                    .map_err(|e| e.to_string())?;
                drop(report);
                bound.run().await.map_err(|e| e.to_string())
            }
            Err(e) => {
                let _ = report.send(&Err::<String, String>(e.to_string()));
                Err(e.to_string())
            }
        }
    })
}

/// A started SyncManager: its proxies' constructors through `Deref`, its
/// server shut down on drop.
#[derive(Debug)]
pub struct Manager {
    base: BaseManager,
    sync: SyncManager,
}

impl Manager {
    /// Starts a SyncManager server at `address` with `authkey`.
    pub fn start(address: &str, authkey: &[u8]) -> Result<Self, ManagerError> {
        let mut base = BaseManager::sync(address, authkey);
        base.start()?;
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

impl Deref for Manager {
    type Target = SyncManager;
    fn deref(&self) -> &SyncManager {
        &self.sync
    }
}

/// Starts a SyncManager on a free local port, keyed with the current
/// process's authkey so children (which inherit it) can connect (Python's
/// `multiprocessing.Manager()`).
#[allow(non_snake_case)]
pub fn Manager() -> Result<Manager, ManagerError> {
    let key = crate::process::current_process().authkey();
    Manager::start("127.0.0.1:0", key.as_bytes())
}
