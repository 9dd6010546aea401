//! Reading TLS material from PEM files, for both ends: the server's
//! certificate chain and key, and the CA certificates either side trusts
//! (feature `tls`).
//!
//! No Python counterpart: CPython's manager has no TLS. `mpserver serve
//! --tls-cert …` and the SDK's `ConnectOptions::tls` load their files
//! here, so an operator's mistake (a key file holding a certificate, an
//! empty CA file) reads the same on both sides. Every configuration uses
//! rustls' *ring* provider ([`crypto_provider`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS certificate, key or configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file could not be read or is not valid PEM.
    #[error("cannot read {what} from {path}: {source}")]
    Pem {
        /// What was looked for (`certificates`, `private key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// The file is PEM but holds nothing of the kind looked for.
    #[error("{path} holds no {what}")]
    Empty {
        /// What was looked for.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate was refused as a trust anchor.
    #[error("{path}: not a usable CA certificate: {source}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// rustls refused the combination (a key that does not match the
    /// certificate, no usable protocol version).
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("invalid client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The cryptography every TLS configuration here uses: rustls' *ring*
/// provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file `path`, in order (a chain: the leaf
/// first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let what = "certificates";
    let pem_error = |source| TlsConfigError::Pem {
        what,
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsConfigError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let what = "private key";
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsConfigError::Empty {
            what,
            path: path.to_owned(),
        },
        source => TlsConfigError::Pem {
            what,
            path: path.to_owned(),
            source,
        },
    })
}

/// The CA certificates in the PEM file `path`, as trust anchors.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsConfigError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}
