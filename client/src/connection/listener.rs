//! [`Listener`] and [`Client`]: authenticated connections over TCP and
//! Unix sockets (Python's `multiprocessing.connection.Listener` / `Client`),
//! byte-compatible with CPython's at the `send_bytes` / `recv_bytes` level.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use mp_proto::auth::{self, AuthOptions};
use nix::sys::socket::{self, sockopt, Backlog};
use nix::sys::time::TimeVal;

use super::{Address, Connection, ConnectionError, Family};

/// A listening socket that hands out authenticated [`Connection`]s.
///
/// Dropping it closes it and, for a Unix socket, removes the socket file
/// (and the private directory it was made in): the scope of a `Listener`
/// value is Python's `with Listener(...) as listener:` block.
///
/// ```
/// use multiprocessing::connection::{Client, Listener};
/// let mut listener = Listener::builder().authkey(b"secret").bind()?;
/// let address = listener.address().clone();
/// let client = std::thread::spawn(move || -> Result<Vec<u8>, multiprocessing::connection::ConnectionError> {
///     let mut conn = Client(&address, Some(b"secret"))?;
///     conn.recv_bytes(None)
/// });
/// let mut conn = listener.accept()?;
/// conn.send_bytes(b"welcome")?;
/// assert_eq!(client.join().unwrap()?, b"welcome");
/// # Ok::<(), multiprocessing::connection::ConnectionError>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    /// `None` once closed.
    socket: Option<Bound>,
    /// The address actually bound (a free port filled in).
    address: Address,
    /// `None`: no handshake, as in Python when `authkey` is `None`.
    authkey: Option<Vec<u8>>,
    auth: AuthOptions,
    last_accepted: Option<Address>,
    /// What to remove on close: a Unix socket's file, and the private
    /// directory it was created in when no address was given.
    /// A Unix socket's file to remove at close, and the private directory
    /// made for it, if any.
    cleanup: Option<(PathBuf, Option<PathBuf>)>,
}

#[derive(Debug)]
enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Options for [`Listener`]; Python's `Listener(address, family, backlog,
/// authkey)`.
#[derive(Clone, Debug)]
pub struct ListenerBuilder {
    address: Option<Address>,
    family: Option<Family>,
    backlog: i32,
    authkey: Option<Vec<u8>>,
    auth: AuthOptions,
}

impl ListenerBuilder {
    /// Where to listen. Without it: a fresh Unix socket in a private
    /// temporary directory, or `127.0.0.1` on a free port for
    /// [`Family::Inet`].
    pub fn address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// The family, when no address is given (an address implies its own).
    pub fn family(mut self, family: Family) -> Self {
        self.family = Some(family);
        self
    }

    /// The length of the queue of connections not yet accepted (Python's
    /// default: 1).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Requires every peer to prove it holds `authkey` (the mutual HMAC
    /// handshake of `mp_proto::auth`). Without it there is no handshake.
    pub fn authkey(mut self, authkey: &[u8]) -> Self {
        self.authkey = Some(authkey.to_vec());
        self
    }

    /// Handshake options: [`AuthOptions::legacy`] to accept CPython ≤ 3.11
    /// clients, and the handshake's timeout.
    pub fn auth_options(mut self, options: AuthOptions) -> Self {
        self.auth = options;
        self
    }

    /// Creates the socket, binds it and listens.
    pub fn bind(self) -> Result<Listener, ConnectionError> {
        let family = self
            .address
            .as_ref()
            .map(Address::family)
            .or(self.family)
            .unwrap_or(Family::Unix);
        if let (Some(address), Some(asked)) = (&self.address, self.family) {
            if address.family() != asked {
                return Err(ConnectionError::BadAddress {
                    address: address.to_string(),
                    reason: format!("not an address of family {asked:?}"),
                });
            }
        }
        let backlog = Backlog::new(self.backlog)
            .map_err(|_| ConnectionError::BadRange(format!("bad backlog {}", self.backlog)))?;
        let (socket, address, cleanup) = match (family, self.address) {
            (Family::Inet, address) => {
                let address = address.unwrap_or_else(|| Address::from(("127.0.0.1", 0)));
                let listener = bind_tcp(&address, backlog)?;
                let bound = Address::from(listener.local_addr()?);
                (Bound::Tcp(listener), bound, None)
            }
            (Family::Unix, Some(Address::Unix(path))) => {
                let listener = bind_unix(&path, backlog)?;
                (
                    Bound::Unix(listener),
                    Address::Unix(path.clone()),
                    Some((path, None)),
                )
            }
            (Family::Unix, _) => {
                // Python's `tempfile.mkdtemp(prefix='pymp-')`: a directory
                // only this user can enter, so nobody else can connect.
                let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("pymp-XXXXXX"))
                    .map_err(std::io::Error::from)?;
                let suffix = getrandom::u64().map_err(std::io::Error::other)?;
                let path = dir.join(format!("listener-{suffix:016x}"));
                let listener = bind_unix(&path, backlog)?;
                (
                    Bound::Unix(listener),
                    Address::Unix(path.clone()),
                    Some((path, Some(dir))),
                )
            }
        };
        Ok(Listener {
            socket: Some(socket),
            address,
            authkey: self.authkey,
            auth: self.auth,
            last_accepted: None,
            cleanup,
        })
    }
}

fn bind_tcp(address: &Address, backlog: Backlog) -> Result<TcpListener, ConnectionError> {
    // std sets SO_REUSEADDR, as CPython does on POSIX, so a restarted
    // server can rebind at once.
    let listener = TcpListener::bind(&address.resolve()?[..])?;
    // Listening again sets the queue length (std always asks for 128).
    socket::listen(&listener, backlog)?;
    Ok(listener)
}

fn bind_unix(path: &std::path::Path, backlog: Backlog) -> Result<UnixListener, ConnectionError> {
    let listener = UnixListener::bind(path)?;
    socket::listen(&listener, backlog)?;
    Ok(listener)
}

impl Listener {
    /// Starts a [`ListenerBuilder`].
    pub fn builder() -> ListenerBuilder {
        ListenerBuilder {
            address: None,
            family: None,
            backlog: 1,
            authkey: None,
            auth: AuthOptions::default(),
        }
    }

    /// Listens at `address`, authenticating peers with `authkey` if given.
    pub fn bind(address: Address, authkey: Option<&[u8]>) -> Result<Listener, ConnectionError> {
        let builder = Listener::builder().address(address);
        match authkey {
            Some(key) => builder.authkey(key),
            None => builder,
        }
        .bind()
    }

    /// Waits for a peer, runs the handshake when an authkey is set, and
    /// returns the connection. A failed handshake is an
    /// [`ConnectionError::Authentication`] and the peer is dropped; the
    /// listener stays usable.
    pub fn accept(&mut self) -> Result<Connection, ConnectionError> {
        let (fd, peer): (OwnedFd, Address) =
            match self.socket.as_ref().ok_or(ConnectionError::Closed)? {
                Bound::Tcp(l) => {
                    let (stream, peer) = l.accept()?;
                    // Replies are small writes; don't let Nagle hold them back.
                    stream.set_nodelay(true)?;
                    (stream.into(), Address::from(peer))
                }
                Bound::Unix(l) => {
                    let (stream, peer) = l.accept()?;
                    let path = peer.as_pathname().map(PathBuf::from).unwrap_or_default();
                    (stream.into(), Address::Unix(path))
                }
            };
        let mut conn = Connection::from_fd(fd, true, true, true);
        if let Some(key) = &self.authkey {
            handshake(&mut conn, key, &self.auth, true)?;
        }
        self.last_accepted = Some(peer);
        Ok(conn)
    }

    /// The address being listened on (with the real port when 0 was asked).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The peer address of the last accepted connection (an unnamed Unix
    /// client shows as an empty path).
    pub fn last_accepted(&self) -> Option<&Address> {
        self.last_accepted.as_ref()
    }

    /// Stops listening and removes a Unix socket's file; later `accept`s
    /// fail with [`ConnectionError::Closed`]. Dropping does the same.
    pub fn close(&mut self) {
        if self.socket.take().is_some() {
            if let Some((path, dir)) = self.cleanup.take() {
                // Best effort, as Python's finalizer: the file may already be
                // gone, and there is nobody to report to from Drop.
                let _ = std::fs::remove_file(path);
                if let Some(dir) = dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}

/// Connects to a [`Listener`] (or CPython's) at `address` and, if `authkey`
/// is given, runs the mutual handshake (Python's `Client(address,
/// authkey=...)`).
#[allow(non_snake_case)]
pub fn Client(address: &Address, authkey: Option<&[u8]>) -> Result<Connection, ConnectionError> {
    client_with(address, authkey, &AuthOptions::default())
}

/// [`Client`] with handshake options, e.g. [`AuthOptions::legacy`] to reach
/// a CPython ≤ 3.11 listener.
pub fn client_with(
    address: &Address,
    authkey: Option<&[u8]>,
    options: &AuthOptions,
) -> Result<Connection, ConnectionError> {
    let fd: OwnedFd = match address {
        Address::Tcp { .. } => {
            let stream = TcpStream::connect(&address.resolve()?[..])?;
            stream.set_nodelay(true)?;
            stream.into()
        }
        Address::Unix(path) => UnixStream::connect(path)?.into(),
    };
    let mut conn = Connection::from_fd(fd, true, true, true);
    if let Some(key) = authkey {
        handshake(&mut conn, key, options, false)?;
    }
    Ok(conn)
}

/// Runs the handshake on a fresh socket connection with the socket's send
/// and receive timeouts set to the handshake's, then clears them. It runs
/// over the connection's own buffer, so a message the peer sends right
/// after the handshake is not lost.
fn handshake(
    conn: &mut Connection,
    key: &[u8],
    options: &AuthOptions,
    server: bool,
) -> Result<(), ConnectionError> {
    set_timeouts(conn, Some(options.timeout))?;
    let result = conn.with_io(|io| {
        if server {
            auth::server_handshake(io, key, options)
        } else {
            auth::client_handshake(io, key, options)
        }
    })?;
    set_timeouts(conn, None)?;
    Ok(result?)
}

fn set_timeouts(conn: &Connection, timeout: Option<Duration>) -> Result<(), ConnectionError> {
    let fd = conn.borrowed_fd().ok_or(ConnectionError::Closed)?;
    let tv = timeout.map_or_else(
        || TimeVal::new(0, 0),
        |t| TimeVal::new(t.as_secs() as _, t.subsec_micros() as _),
    );
    socket::setsockopt(&fd.as_fd(), sockopt::ReceiveTimeout, &tv)?;
    socket::setsockopt(&fd.as_fd(), sockopt::SendTimeout, &tv)?;
    Ok(())
}
