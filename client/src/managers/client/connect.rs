//! Opening a [`ManagerClient`]: the socket (TCP, Unix, or TLS over TCP),
//! CPython's authkey handshake, the hello that negotiates the protocol
//! version, and the shared-memory channel the server may offer
//! ([`ConnectOptions`]).

use std::io::{self, BufReader};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mp_proto::auth::{client_handshake, AuthOptions};
use mp_proto::codec::{decode, encode_into};
use mp_proto::frame::{read_frame, write_frame};
use mp_proto::message::{ChannelAnswer, Hello, HelloReply};
use mp_sys::channel::Region;
use mp_sys::spin::SpinPolicy;

use super::reconnect::Reconnect;
use super::release::Releases;
use super::stream::Stream;
use super::{Inner, ManagerClient, State, READ_BUFFER};
use crate::connection::Address;
use crate::managers::error::ManagerError;
#[cfg(feature = "tls")]
use crate::managers::tls::TlsConnector;

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
    /// [`use_tls_for`](crate::managers::tls::use_tls_for)). Feature `tls`.
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
    /// Reconnect in the background when the connection breaks, with this
    /// backoff ([`Reconnect`]); `None` turns it off (a broken client then
    /// stays broken, as before). Default: on.
    pub reconnect: Option<Reconnect>,
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
            reconnect: Some(Reconnect::default()),
        }
    }
}

impl ManagerClient {
    /// Connects to the manager at `address` and authenticates with
    /// `authkey` (over TLS if [`use_tls_for`](crate::managers::tls::use_tls_for)
    /// registered `address`).
    pub fn connect(address: &Address, authkey: &[u8]) -> Result<Self, ManagerError> {
        let options = ConnectOptions {
            #[cfg(feature = "tls")]
            tls: crate::managers::tls::registered(address),
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
        let opened = open(address, authkey, options)?;
        Ok(ManagerClient {
            inner: Arc::new(Inner {
                address: address.clone(),
                authkey: authkey.to_vec(),
                options: options.clone(),
                writer: Mutex::new(opened.writer),
                state: Mutex::new(State {
                    reader: Some(BufReader::with_capacity(READ_BUFFER, opened.reader)),
                    slots: Default::default(),
                    dead: None,
                    spin: SpinPolicy::new(options.spin),
                    generation: 0,
                    reconnecting: false,
                    last_loss: String::new(),
                    nominee: None,
                    watchers: Vec::new(),
                }),
                generation: AtomicU64::new(0),
                reconnected: Condvar::new(),
                events: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                max_frame: options.max_frame_bytes,
                releases: Releases::default(),
                channel: AtomicBool::new(opened.channel),
                owner: std::process::id(),
                parker: Default::default(),
            }),
        })
    }
}

/// A connected, authenticated and greeted stream: its two halves.
pub(in crate::managers) struct Opened {
    /// Where requests are written.
    pub(in crate::managers) writer: Stream,
    /// Where answers are read.
    pub(in crate::managers) reader: Stream,
    /// Whether calls go through a shared-memory channel.
    pub(in crate::managers) channel: bool,
}

/// Connects to `address`, authenticates and says hello: what a client
/// does first, and again each time it reconnects.
pub(in crate::managers) fn open(
    address: &Address,
    authkey: &[u8],
    options: &ConnectOptions,
) -> Result<Opened, ManagerError> {
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
    let handshake_error = |e| crate::managers::tls::handshake_error(e, address);
    #[cfg(not(feature = "tls"))]
    let handshake_error = ManagerError::Authentication;
    client_handshake(&mut stream, authkey, &options.auth).map_err(handshake_error)?;
    let hello = Hello {
        channel: options.shared_memory && stream.is_local(),
        ..Hello::current(format!("multiprocessing-rs/{}", env!("CARGO_PKG_VERSION")))
    };
    let mut bytes = Vec::new();
    encode_into(&hello, &mut bytes).map_err(|e| ManagerError::Protocol(e.to_string()))?;
    write_frame(&mut stream, &bytes).map_err(|e| ManagerError::ConnectionLost(e.to_string()))?;
    let reply = read_frame(&mut stream, 64 * 1024)
        .map_err(|e| ManagerError::ConnectionLost(e.to_string()))?
        .ok_or_else(|| ManagerError::ConnectionLost("closed during hello".into()))?;
    let offer =
        match decode::<HelloReply>(&reply).map_err(|e| ManagerError::Protocol(e.to_string()))? {
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
        crate::managers::tls::use_tls_for(address, tls.clone());
    }
    let writer = stream.try_clone().map_err(connect_error)?;
    let channel = stream.is_channel();
    Ok(Opened {
        writer,
        reader: stream,
        channel,
    })
}
