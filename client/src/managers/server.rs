//! [`ManagerServer`]: a manager's server run by the calling program
//! itself (Python's `BaseManager.get_server()` and
//! `Server.serve_forever()`), and [`Shared`], a registered typeid whose
//! every `create` hands out the same object (Python's
//! `register('get_queue', callable=lambda: queue)`).
//!
//! The server is the `mp-server` engine on a tokio runtime owned by the
//! [`ManagerServer`]. [`BaseManager::start`](super::BaseManager::start)
//! runs the same thing in a child process.

use std::sync::{Arc, Mutex, PoisonError};

use mp_proto::RemoteError;
use mp_server::registry::Registration;
use mp_server::{Args, CallContext, Engine, Held, Listen, Registry, Reply, Server, SharedObject};

use super::error::ManagerError;

/// A bound manager server, ready to serve.
pub struct ManagerServer {
    runtime: tokio::runtime::Runtime,
    bound: mp_server::BoundServer,
}

impl ManagerServer {
    /// Binds `listen` to serve `registry`'s typeids to clients knowing
    /// `authkey`.
    pub fn bind(registry: Registry, authkey: &[u8], listen: &Listen) -> Result<Self, ManagerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mp-manager-server")
            .enable_all()
            .build()
            .map_err(|e| ManagerError::Start(format!("cannot make the server's runtime: {e}")))?;
        let bound = runtime
            .block_on(Server::new(registry, authkey.to_vec()).bind(listen))
            .map_err(|e| ManagerError::Start(e.to_string()))?;
        Ok(ManagerServer { runtime, bound })
    }

    /// The address clients connect to (the real port if 0 was asked).
    pub fn address(&self) -> &str {
        self.bound.address()
    }

    /// The engine: its object table and its shutdown signal
    /// (`engine().shutdown().trigger()` stops [`serve_forever`] from
    /// another thread).
    ///
    /// [`serve_forever`]: Self::serve_forever
    pub fn engine(&self) -> Arc<Engine> {
        Arc::clone(self.bound.engine())
    }

    /// Serves until a client calls `shutdown` or the engine's shutdown is
    /// triggered, then stops gracefully.
    pub fn serve_forever(self) -> Result<(), ManagerError> {
        let ManagerServer { runtime, bound } = self;
        runtime
            .block_on(bound.run())
            .map_err(|e| ManagerError::Start(e.to_string()))
    }
}

impl std::fmt::Debug for ManagerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerServer")
            .field("address", &self.address())
            .finish()
    }
}

/// One object behind a typeid: every `create` of it gets a new id (with
/// its own references) for the same underlying object, made by the first
/// `create`.
pub struct Shared<T>(Arc<T>);

impl<T: SharedObject> SharedObject for Shared<T> {
    fn methods() -> &'static [mp_proto::methods::MethodSpec] {
        T::methods()
    }

    fn call(&self, ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        self.0.call(ctx, method, args)
    }

    fn repr(&self) -> Option<String> {
        self.0.repr()
    }

    fn get_value(&self) -> Result<Held, RemoteError> {
        self.0.get_value()
    }

    fn release_session(&self, session: mp_server::SessionId) {
        self.0.release_session(session)
    }
}

/// Registers `typeid` so that every `create` of it proxies the one object
/// `make` builds on the first `create` (Python's
/// `register(typeid, callable=lambda: obj)`): the remote `QueueManager`'s
/// `get_queue`. The object lives as long as the server.
pub fn register_shared<'r, T, F>(
    registry: &'r mut Registry,
    typeid: &str,
    make: F,
) -> Registration<'r>
where
    T: SharedObject,
    F: Fn(&CallContext<'_>) -> Result<T, RemoteError> + Send + Sync + 'static,
{
    let made: Mutex<Option<Arc<T>>> = Mutex::new(None);
    let name = typeid.to_owned();
    registry.register(typeid, move |ctx, args: Args| {
        args.none(&name)?;
        let mut slot = made.lock().unwrap_or_else(PoisonError::into_inner);
        let object = match &*slot {
            Some(o) => Arc::clone(o),
            None => {
                let o = Arc::new(make(ctx)?);
                *slot = Some(Arc::clone(&o));
                o
            }
        };
        Ok(Shared(object))
    })
}

/// A SyncManager server on a thread of this process, on a free loopback
/// port, for the SDK's unit tests; its address.
#[cfg(test)]
pub(crate) fn serve_for_tests(authkey: &[u8]) -> crate::connection::Address {
    let listen = mp_server::Listen::Tcp("127.0.0.1:0".into());
    let server = ManagerServer::bind(Registry::sync_manager(), authkey, &listen)
        .unwrap_or_else(|e| panic!("a test server: {e}"));
    let address = server
        .address()
        .parse()
        .unwrap_or_else(|e| panic!("the test server's address: {e}"));
    std::thread::spawn(move || server.serve_forever());
    address
}
