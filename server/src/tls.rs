//! TLS for links that leave the host: PEM loading, the rustls server
//! configuration, and serving a connection inside TLS.
//!
//! Python's `multiprocessing.managers` has no TLS (its `Listener` takes
//! raw sockets); this is `mpserver`'s own layer under the same protocol:
//! the TLS handshake comes first, then CPython's authkey handshake runs
//! inside the encrypted stream, unchanged. With a client CA the server
//! also demands a certificate from every peer (mutual TLS).
//!
//! Cryptography is rustls with the *ring* provider, named explicitly so
//! that no other provider linked into the program can make the choice
//! ambiguous. The PEM loaders are [`mp_proto::tls`], shared with the SDK's
//! client side.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mp_proto::tls::{crypto_provider, load_certs, load_key, load_roots};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::admission::HandshakeTicket;
use crate::connection::{serve_connection, ConnContext};
use crate::engine::Engine;
use crate::metrics::HandshakeFailure;
use crate::quiet_log;

pub use mp_proto::tls::TlsConfigError;

/// The server's TLS configuration from PEM files: its certificate chain
/// and key, and, with `client_ca`, the CA every client's certificate must
/// chain to (clients without one are refused during the TLS handshake).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider)
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(
        builder.with_single_cert(load_certs(cert)?, load_key(key)?)?,
    ))
}

/// Runs the TLS handshake (bounded by the handshake timeout) on an
/// accepted socket, then serves the connection inside it. A peer that
/// fails the TLS handshake — plain TCP, an untrusted certificate, no
/// client certificate when one is required — is logged and dropped.
pub(crate) async fn serve_tls_connection(
    engine: Arc<Engine>,
    ctx: Arc<ConnContext>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: String,
    ticket: HandshakeTicket,
) {
    let handshake = tokio::time::timeout(ctx.limits.handshake_timeout, acceptor.accept(stream));
    // A stop does not wait for peers still in their TLS handshake.
    let accepted = tokio::select! {
        accepted = handshake => accepted,
        () = engine.shutdown.wait() => return,
    };
    match accepted {
        Ok(Ok(tls)) => {
            let stream = Flushing {
                inner: tls,
                unflushed: false,
            };
            serve_connection(engine, ctx, stream, peer, ticket).await;
        }
        // Info, as for failed authkey handshakes: scanners must not flood
        // the log at warning level.
        Ok(Err(e)) => {
            engine.metrics.tls_failed(HandshakeFailure::Tls);
            quiet_log::info(
                "tls",
                || tracing::info!(%peer, error = %e, "TLS handshake failed"),
            );
        }
        Err(_) => {
            engine.metrics.tls_failed(HandshakeFailure::Timeout);
            quiet_log::info(
                "tls-timeout",
                || tracing::info!(%peer, "TLS handshake timed out"),
            );
        }
    }
}

/// A TLS stream that never leaves encrypted output behind.
///
/// rustls encrypts into its own buffer and tokio-rustls writes that buffer
/// to the socket as far as it can; what a full socket left over is only
/// sent by a later write or an explicit flush. The connection loop writes
/// an answer and then waits to read, so a leftover would sit until the
/// peer, who waits for that answer, sends something. Here a write flushes
/// what it can, and reads keep flushing the rest (the task is woken when
/// the socket turns writable).
struct Flushing<S> {
    inner: S,
    unflushed: bool,
}

/// A TLS session's state lives in user space, so its socket stays on the
/// event loop.
impl crate::connection::Socket for Flushing<tokio_rustls::server::TlsStream<TcpStream>> {
    const DEDICATED: bool = false;

    fn channel_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    fn into_blocking(self) -> io::Result<crate::connection::BlockingSocket> {
        Err(io::Error::other(
            "TLS connections are not served by a dedicated thread",
        ))
    }

    fn from_blocking(_: crate::connection::BlockingSocket) -> io::Result<Self> {
        Err(io::Error::other(
            "TLS connections are not served by a dedicated thread",
        ))
    }
}

impl<S: AsyncWrite + Unpin> Flushing<S> {
    fn push(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => self.unflushed = false,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => self.unflushed = true,
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Flushing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unflushed {
            this.push(cx)?;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Flushing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.push(cx)?;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx));
        this.unflushed = false;
        Poll::Ready(flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn pem_files_load_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(dir.path(), "cert.pem", &ca.cert.pem());
        let key = write(dir.path(), "key.pem", &ca.key_pair.serialize_pem());
        assert_eq!(load_certs(&cert).unwrap().len(), 1);
        load_key(&key).unwrap();
        assert_eq!(load_roots(&cert).unwrap().len(), 1);
        server_config(&cert, &key, None).unwrap();
        server_config(&cert, &key, Some(&cert)).unwrap();

        // A key where a certificate belongs, and the other way round.
        let e = load_certs(&key).unwrap_err();
        assert!(matches!(e, TlsConfigError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("no certificates"), "{e}");
        let e = load_key(&cert).unwrap_err();
        assert!(e.to_string().contains("holds no private key"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = load_certs(&missing).unwrap_err();
        assert!(matches!(e, TlsConfigError::Pem { .. }), "{e}");

        // A key that does not match the certificate.
        let other = rcgen::KeyPair::generate().unwrap();
        let wrong = write(dir.path(), "wrong.pem", &other.serialize_pem());
        let e = server_config(&cert, &wrong, None).unwrap_err();
        assert!(matches!(e, TlsConfigError::Rustls(_)), "{e}");
    }
}
