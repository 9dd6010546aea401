//! TLS for a manager connection: [`TlsConnector`] (which CA to trust,
//! which certificate to show) and the blocking TLS stream under
//! [`ManagerClient`](super::ManagerClient).
//!
//! Python's `multiprocessing.managers` has no TLS; this is the client side
//! of `mpserver serve --tls-cert …` (see `mp_server::tls`). The TLS
//! handshake runs first, then CPython's authkey handshake inside it.
//!
//! # Sharing one TLS session between a reader and writers
//!
//! The client reads on one thread while others write (leader/followers,
//! see [`client`](super::client)), but a rustls session is one state
//! machine. So the socket is cloned for reading and writing while the
//! session sits behind a mutex that is only held to encrypt or decrypt,
//! never across a blocking socket call: the reader waits for bytes without
//! it, then takes it to decrypt; a writer encrypts under it and writes the
//! records under a second lock that keeps records in sequence order.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mp_sys::lock;
use std::time::Duration;

use mp_proto::tls::{crypto_provider, load_certs, load_key, load_roots, TlsConfigError};
use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;

/// How a client speaks TLS to a manager: the trusted CA, an optional
/// client certificate, and the name the server's certificate must carry.
///
/// Put it in [`ConnectOptions::tls`](super::ConnectOptions::tls).
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl TlsConnector {
    /// Trusts the CA certificates in the PEM file `ca`; shows no client
    /// certificate.
    pub fn from_ca_file(ca: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        Self::build(ca.as_ref(), None)
    }

    /// Trusts the CA certificates in `ca` and shows the certificate chain
    /// in `cert` with its private key `key` (for servers started with
    /// `--tls-client-ca`).
    pub fn with_client_cert(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        Self::build(ca.as_ref(), Some((cert.as_ref(), key.as_ref())))
    }

    fn build(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, TlsConfigError> {
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(load_roots(ca)?);
        let config = match identity {
            Some((cert, key)) => {
                builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Self::from_config(Arc::new(config)))
    }

    /// Uses a rustls configuration built by the caller.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        TlsConnector {
            config,
            server_name: None,
        }
    }

    /// Checks the server's certificate against `name` (a DNS name or an IP
    /// address) instead of the host of the address connected to.
    pub fn server_name(mut self, name: &str) -> Result<Self, TlsConfigError> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| rustls::Error::General(format!("{name:?} is not a valid server name")))?;
        self.server_name = Some(name);
        Ok(self)
    }

    /// Runs the TLS handshake on a connected socket, each socket operation
    /// bounded by `timeout`. `host` is the host part of the address, the
    /// name checked unless [`server_name`](Self::server_name) gave one.
    pub(crate) fn connect(
        &self,
        mut sock: TcpStream,
        host: &str,
        timeout: Duration,
    ) -> io::Result<TlsStream> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host.to_owned()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{host:?} is not a valid TLS server name"),
                )
            })?,
        };
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        let out = sock.try_clone()?;
        Ok(TlsStream {
            shared: Arc::new(Shared {
                conn: Mutex::new(conn),
                out: Mutex::new(out),
            }),
            sock,
            raw: Vec::new(),
            raw_start: 0,
            raw_end: 0,
        })
    }
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .field(
                "client_cert",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .finish()
    }
}

/// What every handle on one TLS connection shares.
struct Shared {
    conn: Mutex<ClientConnection>,
    /// The socket records are written to; held from encrypting to the end
    /// of the write so records leave in sequence order. Taken before
    /// `conn` whenever both are held.
    out: Mutex<TcpStream>,
}

/// The most a reader takes from the socket at once: about one TLS record,
/// so the decrypted bytes stay within rustls' plaintext buffer.
const RAW_CHUNK: usize = 16 * 1024 + 256;
/// Plaintext encrypted per write of the socket, bounding the ciphertext
/// buffered for a large frame.
const WRITE_CHUNK: usize = 64 * 1024;

/// One handle on a TLS connection: its own socket clone, the shared
/// session. Only one handle reads at a time (the client's reader role).
pub(crate) struct TlsStream {
    shared: Arc<Shared>,
    sock: TcpStream,
    /// Ciphertext read but not yet handed to rustls:
    /// `raw[raw_start..raw_end]` (the buffer is allocated on first read
    /// and never zeroed again).
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
}

impl TlsStream {
    /// Another handle on the same connection.
    pub(crate) fn try_clone(&self) -> io::Result<TlsStream> {
        Ok(TlsStream {
            shared: Arc::clone(&self.shared),
            sock: self.sock.try_clone()?,
            raw: Vec::new(),
            raw_start: 0,
            raw_end: 0,
        })
    }

    /// Whether bytes already read wait here (decrypted in the session, or
    /// ciphertext not yet handed to it), so the socket need not be polled.
    pub(crate) fn has_buffered(&self) -> bool {
        if self.raw_start < self.raw_end {
            return true;
        }
        // With no new ciphertext this only reports the session's state.
        lock(&self.shared.conn)
            .process_new_packets()
            .map_or(true, |state| state.plaintext_bytes_to_read() > 0)
    }

    /// The socket under the session.
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Says goodbye (when no write is under way) and shuts the socket.
    pub(crate) fn shutdown(&self) {
        if let Ok(mut out) = self.shared.out.try_lock() {
            let mut records = Vec::new();
            {
                let mut conn = lock(&self.shared.conn);
                conn.send_close_notify();
                let _ = drain(&mut conn, &mut records);
            }
            let _ = out.write_all(&records);
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// Hands buffered ciphertext to rustls and decrypts it; sends whatever
    /// the session must answer (alerts, key updates).
    fn feed(&mut self) -> io::Result<()> {
        let pending = {
            let mut conn = lock(&self.shared.conn);
            let mut data = &self.raw[self.raw_start..self.raw_end];
            let eof = data.is_empty();
            let taken = conn.read_tls(&mut data)?;
            self.raw_start += taken;
            if eof || self.raw_start == self.raw_end {
                self.raw_start = 0;
                self.raw_end = 0;
            }
            conn.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            conn.wants_write()
        };
        // A writer busy on the socket will send these records with its
        // next ones (they wait in the session, in order); waiting for it
        // here could deadlock against a peer that stopped reading until we
        // read.
        if pending {
            if let Ok(mut out) = self.shared.out.try_lock() {
                let mut records = Vec::new();
                drain(&mut lock(&self.shared.conn), &mut records)?;
                out.write_all(&records)?;
            }
        }
        Ok(())
    }
}

/// Moves every encrypted record out of the session into `records`.
fn drain(conn: &mut ClientConnection, records: &mut Vec<u8>) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(records)?;
    }
    Ok(())
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match lock(&self.shared.conn).reader().read(buf) {
                // Zero is the peer's close_notify: a clean end of stream.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.raw_start == self.raw_end {
                // Wait for the peer without holding the session, so
                // writers can go on encrypting meanwhile.
                if self.raw.is_empty() {
                    self.raw = vec![0; RAW_CHUNK];
                }
                self.raw_start = 0;
                self.raw_end = 0;
                self.raw_end = self.sock.read(&mut self.raw)?;
            }
            self.feed()?;
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = lock(&self.shared.out);
        let mut records = Vec::new();
        for chunk in buf.chunks(WRITE_CHUNK) {
            records.clear();
            {
                let mut conn = lock(&self.shared.conn);
                let mut rest = chunk;
                while !rest.is_empty() {
                    let n = conn.writer().write(rest)?;
                    rest = &rest[n..];
                    drain(&mut conn, &mut records)?;
                }
            }
            out.write_all(&records)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Servers this process speaks TLS to, by address: [`use_tls_for`] and
/// every successful TLS connection add theirs.
static REGISTERED: Mutex<Vec<(String, TlsConnector)>> = Mutex::new(Vec::new());

/// Makes every connection this process opens to `address` without
/// explicit options use `connector`:
/// [`ManagerClient::connect`](super::ManagerClient::connect),
/// `BaseManager::connect`, and the connection a received proxy opens to
/// its server. A connection made
/// with [`ConnectOptions::tls`](super::ConnectOptions::tls) registers its
/// connector this way too. Forked children inherit the registry; a
/// spawned child must call this itself.
pub fn use_tls_for(address: &crate::connection::Address, connector: TlsConnector) {
    let key = address.to_string();
    let mut all = lock(&REGISTERED);
    match all.iter_mut().find(|(a, _)| *a == key) {
        Some(entry) => entry.1 = connector,
        None => all.push((key, connector)),
    }
}

/// The connector registered for `address`, if any.
pub(crate) fn registered(address: &crate::connection::Address) -> Option<TlsConnector> {
    let key = address.to_string();
    lock(&REGISTERED)
        .iter()
        .find(|(a, _)| *a == key)
        .map(|(_, c)| c.clone())
}

/// Sorts a failed authkey handshake: over TLS, a session-level failure
/// (the server refusing our certificate, which TLS 1.3 reports only
/// after the handshake, on the first read) is a TLS error, not an
/// authentication one.
pub(crate) fn handshake_error(
    err: mp_proto::auth::AuthenticationError,
    address: &crate::connection::Address,
) -> super::ManagerError {
    use mp_proto::auth::AuthenticationError;
    use mp_proto::frame::FrameError;
    match err {
        AuthenticationError::Frame(FrameError::Io(source))
            if source
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            super::ManagerError::Tls {
                address: address.to_string(),
                source,
            }
        }
        other => super::ManagerError::Authentication(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_inputs_are_typed_errors() {
        let e = TlsConnector::from_ca_file("/nonexistent/ca.pem").unwrap_err();
        assert!(matches!(e, TlsConfigError::Pem { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not PEM at all\n").unwrap();
        let e = TlsConnector::from_ca_file(&empty).unwrap_err();
        assert!(matches!(e, TlsConfigError::Empty { .. }), "{e}");
    }

    #[test]
    fn registered_connectors_are_found_by_address() {
        let config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let connector = TlsConnector::from_config(Arc::new(config));
        assert!(connector.clone().server_name("bad name!").is_err());
        let named = connector.server_name("db.internal").unwrap();
        assert!(format!("{named:?}").contains("db.internal"));
        let here: crate::connection::Address = "127.0.0.1:1".parse().unwrap();
        let there: crate::connection::Address = "127.0.0.1:2".parse().unwrap();
        assert!(registered(&here).is_none());
        use_tls_for(&here, named);
        assert!(registered(&here).is_some());
        assert!(registered(&there).is_none());
    }
}
