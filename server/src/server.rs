//! The serve loop: bind, accept, one task per connection, graceful stop.
//!
//! [`Server`] is configured with a registry, an authkey and [`Limits`];
//! [`Server::bind`] opens a TCP or Unix listener and returns a
//! [`BoundServer`] that knows its real address (port 0 resolved) and runs
//! until its engine's [`Shutdown`](crate::shutdown::Shutdown) fires: it
//! then stops accepting, lets every connection answer what it has read and
//! cancel its waits, and disposes of every object.
//!
//! With [`Server::tls`] every TCP connection is served inside TLS
//! ([`crate::tls`]); a plain TCP listener on a non-loopback address logs a
//! warning, since its traffic can be read by anyone on the path.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mp_proto::auth::AuthOptions;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::connection::{serve_connection, ConnContext};
use crate::durable::DurableOptions;
use crate::engine::Engine;
use crate::limits::Limits;
use crate::metrics::HandshakeFailure;
use crate::names::Declaration;
use crate::quiet_log;
use crate::registry::Registry;
use crate::tls::serve_tls_connection;

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `HOST:PORT` (port 0 picks a free one).
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Why the server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// What was asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another server is already listening on this Unix socket path.
    #[error("{0} is in use by a running server")]
    InUse(String),
    /// Something other than a socket is at the Unix socket path; the
    /// server will not remove it.
    #[error(
        "{0} exists and is not a socket: refusing to replace it (remove it or choose another path)"
    )]
    NotASocket(String),
    /// TLS was asked for on a Unix socket, which its file permissions
    /// protect instead.
    #[error(
        "TLS applies to TCP listeners; a Unix socket ({0}) is protected by its file permissions"
    )]
    TlsNeedsTcp(String),
    /// An object declared at start (`--shared`) could not be made.
    #[error("cannot make the shared object '{name}': {reason}")]
    Shared {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The data directory could not be used (`--data-dir`).
    #[error("{0}")]
    DataDir(#[from] crate::durable::DurableError),
}

/// A server not yet listening.
pub struct Server {
    registry: Registry,
    authkey: Vec<u8>,
    limits: Limits,
    auth: AuthOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Vec<Declaration>,
    data_dir: Option<DurableOptions>,
}

impl Server {
    /// A server for `registry`'s types, admitting peers that hold `authkey`.
    pub fn new(registry: Registry, authkey: Vec<u8>) -> Self {
        Server {
            registry,
            authkey,
            limits: Limits::default(),
            auth: AuthOptions::default(),
            tls: None,
            shared: Vec::new(),
            data_dir: None,
        }
    }

    /// Keeps the named objects, and what they hold, in a data directory
    /// across restarts (`mpserver serve --data-dir`, see
    /// [`crate::durable`]): restored when the server binds, before the
    /// `--shared` declarations (a declared name restored keeps its
    /// object).
    pub fn data_dir(mut self, options: DurableOptions) -> Self {
        self.data_dir = Some(options);
        self
    }

    /// Makes and names these objects when the server binds
    /// (`mpserver serve --shared jobs=Queue`, see [`crate::names`]).
    pub fn shared(mut self, declarations: Vec<Declaration>) -> Self {
        self.shared = declarations;
        self
    }

    /// Serves every connection inside TLS with `config` (see
    /// [`crate::tls::server_config`]); the authkey handshake then runs
    /// inside the encrypted stream.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Replaces the default limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the handshake options (accept CPython ≤ 3.11 peers with
    /// [`AuthOptions::legacy`]).
    pub fn auth_options(mut self, options: AuthOptions) -> Self {
        self.auth = options;
        self
    }

    /// Opens the listener.
    pub async fn bind(self, listen: &Listen) -> Result<BoundServer, ServeError> {
        // The data directory first: a second server on it stops here,
        // before it touches a socket.
        let engine = Engine::with_limits(self.registry, &self.limits);
        if let Some(options) = &self.data_dir {
            engine.open_data_dir(options, &self.limits)?;
        }
        let bind_error = |source| ServeError::Bind {
            address: match listen {
                Listen::Tcp(a) => a.clone(),
                Listen::Unix(p) => p.display().to_string(),
            },
            source,
        };
        let (listener, address) = match listen {
            Listen::Tcp(addr) => {
                let l = TcpListener::bind(addr.as_str()).await.map_err(bind_error)?;
                let local = l.local_addr().map_err(bind_error)?;
                if self.tls.is_none() && !local.ip().is_loopback() {
                    tracing::warn!(
                        address = %local,
                        "listening beyond this host without TLS: the authkey guards access, \
                         but anyone on the path can read the traffic; use --tls-cert and --tls-key"
                    );
                }
                (Acceptor::Tcp(l), local.to_string())
            }
            Listen::Unix(path) => {
                if self.tls.is_some() {
                    return Err(ServeError::TlsNeedsTcp(path.display().to_string()));
                }
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    // Only a socket is ours to replace: a regular file (or
                    // anything else) at the path is someone's data.
                    if !meta.file_type().is_socket() {
                        return Err(ServeError::NotASocket(path.display().to_string()));
                    }
                    // A socket file with a live server behind it is in
                    // use; one left by a dead server is removed.
                    if std::os::unix::net::UnixStream::connect(path).is_ok() {
                        return Err(ServeError::InUse(path.display().to_string()));
                    }
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(bind_error)?;
                let made = std::fs::symlink_metadata(path).map_err(bind_error)?;
                let socket = OwnSocket {
                    path: path.clone(),
                    dev: made.dev(),
                    ino: made.ino(),
                };
                (Acceptor::Unix(l, socket), path.display().to_string())
            }
        };
        engine.set_address(address.clone());
        for declaration in &self.shared {
            engine
                .declare(declaration)
                .map_err(|e| ServeError::Shared {
                    name: declaration.name.clone(),
                    reason: e.to_string(),
                })?;
        }
        let mut auth = self.auth;
        auth.timeout = self.limits.handshake_timeout;
        Ok(BoundServer {
            engine,
            listener,
            address,
            tls: self.tls.map(TlsAcceptor::from),
            ctx: Arc::new(ConnContext {
                authkey: self.authkey,
                auth,
                admission: Admission::new(&self.limits),
                limits: self.limits,
                throttle: crate::throttle::AuthThrottle::default(),
                python: Default::default(),
            }),
        })
    }
}

enum Acceptor {
    Tcp(TcpListener),
    Unix(UnixListener, OwnSocket),
}

/// The socket file this server made, told apart from whatever may have
/// replaced it at the same path by the time the server stops.
struct OwnSocket {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl OwnSocket {
    /// Removes the socket file if it is still the one this server made.
    fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A listening server.
pub struct BoundServer {
    engine: Arc<Engine>,
    listener: Acceptor,
    address: String,
    tls: Option<TlsAcceptor>,
    ctx: Arc<ConnContext>,
}

impl BoundServer {
    /// The address clients connect to (the real port if 0 was asked).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The engine: its table, its shutdown signal.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Serves until the shutdown signal, then stops gracefully.
    pub async fn run(self) -> Result<(), ServeError> {
        let BoundServer {
            engine,
            listener,
            address,
            tls,
            ctx,
        } = self;
        let mut connections = JoinSet::new();
        tracing::info!(%address, "serving");
        loop {
            tokio::select! {
                biased;
                _ = engine.shutdown.wait() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = accept(&listener, ctx.limits.keepalive) => match accepted {
                    Ok((stream, peer)) => {
                        let ticket = match ctx.admission.handshake(&peer) {
                            Ok(ticket) => ticket,
                            Err(busy) => {
                                // Closed unread: nothing is spent on a peer
                                // past the pre-authentication caps.
                                engine.metrics.handshake_failed(HandshakeFailure::Busy);
                                quiet_log::info("busy", || {
                                    tracing::info!(%peer, ?busy, "too many connections in their handshake; closed")
                                });
                                continue;
                            }
                        };
                        let engine = Arc::clone(&engine);
                        let ctx = Arc::clone(&ctx);
                        match (stream, &tls) {
                            (Stream::Tcp(s), Some(acceptor)) => {
                                let acceptor = acceptor.clone();
                                connections.spawn(serve_tls_connection(
                                    engine, ctx, acceptor, s, peer, ticket,
                                ));
                            }
                            (Stream::Tcp(s), None) => {
                                connections.spawn(serve_connection(engine, ctx, s, peer, ticket));
                            }
                            (Stream::Unix(s), _) => {
                                connections.spawn(serve_connection(engine, ctx, s, peer, ticket));
                            }
                        }
                    }
                    Err(e) => {
                        // Out of descriptors or a connection reset before
                        // accept: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        tracing::info!(connections = connections.len(), "shutting down");
        let drained = tokio::time::timeout(ctx.limits.drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections did not finish in time; closing them");
            connections.shutdown().await;
        }
        if let Acceptor::Unix(_, socket) = &listener {
            socket.remove();
        }
        // Disposing of every object is not deleting it: the log is
        // closed first.
        engine.close_data_dir();
        engine.table.clear();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Turns on TCP keepalive: first probe after `idle`, then every 10 s, and
/// the connection is dead after 3 unanswered probes.
fn set_keepalive(stream: &tokio::net::TcpStream, idle: Duration) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let idle = libc::c_int::try_from(idle.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    let options: [(libc::c_int, libc::c_int, libc::c_int); 4] = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    ];
    for (level, name, value) in options {
        // SAFETY: setsockopt on a socket we own, with a pointer to a live
        // c_int and its exact size.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(
    listener: &Acceptor,
    keepalive: Option<Duration>,
) -> std::io::Result<(Stream, String)> {
    match listener {
        Acceptor::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            // Requests and answers are small: never hold one back.
            let _ = s.set_nodelay(true);
            if let Some(idle) = keepalive {
                set_keepalive(&s, idle);
            }
            Ok((Stream::Tcp(s), peer.to_string()))
        }
        Acceptor::Unix(l, socket) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), socket.path.display().to_string()))
        }
    }
}
