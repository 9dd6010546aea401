//! [`ManagerError`]: why a call to a manager server failed.
//!
//! Defined below the modules that use it: `managers` returns it, and the
//! error types shared by a primitive's local and managed flavours
//! ([`QueueError`](crate::queues::QueueError),
//! [`ReleaseError`](crate::synchronize::ReleaseError),
//! [`ConditionError`](crate::synchronize::ConditionError),
//! [`BarrierError`](crate::synchronize::BarrierError)) carry it, so that a
//! local module never has to import `managers` to name it. Its public path
//! is `managers::ManagerError`.

use mp_proto::auth::AuthenticationError;
use mp_proto::RemoteError;

/// Why a manager call failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The method raised on the server; `kind` names the Python exception
    /// (`KeyError`, `Empty`, …).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The connection broke (server gone, socket cut): every call in
    /// flight on it fails with this — it is never retried behind the
    /// caller's back, except a blocking call on a named object, which
    /// resumes once reconnected. Unless reconnection is off
    /// ([`ConnectOptions::reconnect`](crate::managers::ConnectOptions::reconnect)),
    /// the client reconnects in the background; calls made meanwhile fail
    /// with this too.
    #[error("connection to the manager lost: {0}")]
    ConnectionLost(String),
    /// The object was owned through a connection that broke, and the
    /// server released it with that connection: only named objects are
    /// found again after a reconnection (`publish`/`lookup`, `mpserver
    /// serve --shared`).
    #[error("the shared '{typeid}' object {id} was lost with the connection that held it; publish objects that must outlive a reconnection, and look them up by name")]
    ObjectLost {
        /// Its id on the server it lived on.
        id: mp_proto::ObjectId,
        /// Its typeid.
        typeid: String,
    },
    /// The authkey was refused, or the server's was wrong.
    #[error("authentication with the manager failed: {0}")]
    Authentication(#[from] AuthenticationError),
    /// The server refused the connection after the handshake (too many
    /// connections, no shared protocol version).
    #[error("the manager refused the connection: {0}")]
    Refused(String),
    /// The server could not be reached.
    #[error("cannot connect to the manager at {address}: {source}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS layer failed: the server's certificate is not trusted or
    /// does not name the host, the server demands a client certificate,
    /// or the peer does not speak TLS.
    #[error("TLS with the manager at {address} failed: {source}")]
    Tls {
        /// Where.
        address: String,
        /// Why (the rustls error inside).
        source: std::io::Error,
    },
    /// The server sent something this client cannot read, or an answer of
    /// the wrong shape.
    #[error("manager protocol error: {0}")]
    Protocol(String),
    /// A value could not be converted to or from its wire form (a proxy
    /// typed for `i64` reading a string).
    #[error("cannot convert a shared value: {0}")]
    Conversion(String),
    /// A manager's server process could not be started, or died before it
    /// reported its address.
    #[error("cannot start the manager's server: {0}")]
    Start(String),
    /// The operation needs a manager in another state (`connect` before
    /// `start`, `start` twice).
    #[error("manager in the wrong state: {0}")]
    State(String),
}

impl ManagerError {
    /// The Python exception behind a [`ManagerError::Remote`], if it is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            ManagerError::Remote(e) => Some(e),
            _ => None,
        }
    }
}
