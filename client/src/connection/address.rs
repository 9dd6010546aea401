//! Where a [`Listener`](super::Listener) listens and a
//! [`Client`](super::Client) connects: Python's `(host, port)` tuples and
//! socket paths, with the family inferred from the address.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::ConnectionError;

/// An address family (Python's `'AF_INET'` / `'AF_UNIX'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// TCP over IPv4 or IPv6.
    Inet,
    /// A Unix-domain stream socket.
    Unix,
}

/// A listener's or client's address.
///
/// Parsed from text by [`FromStr`]: `"host:port"` or `"[v6]:port"` is
/// TCP; anything else — a path, absolute or relative — is a Unix socket.
///
/// ```
/// use multiprocessing::connection::{Address, Family};
/// let tcp: Address = "127.0.0.1:5000".parse()?;
/// assert_eq!(tcp.family(), Family::Inet);
/// let unix: Address = "/tmp/mp.sock".parse()?;
/// assert_eq!(unix.family(), Family::Unix);
/// # Ok::<(), multiprocessing::connection::ConnectionError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address: a host name or IP literal, and a port (Python's
    /// `(host, port)`). The name is resolved when binding or connecting.
    Tcp {
        /// Host name or IP literal, without IPv6 brackets.
        host: String,
        /// The port; 0 asks the system for a free one when binding.
        port: u16,
    },
    /// A Unix-domain socket at a filesystem path.
    Unix(PathBuf),
}

impl Address {
    /// The family this address belongs to.
    pub fn family(&self) -> Family {
        match self {
            Address::Tcp { .. } => Family::Inet,
            Address::Unix(_) => Family::Unix,
        }
    }

    /// The socket addresses a TCP address resolves to.
    pub(crate) fn resolve(&self) -> Result<Vec<SocketAddr>, ConnectionError> {
        let Address::Tcp { host, port } = self else {
            return Err(self.bad("not a TCP address"));
        };
        let addrs: Vec<SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))
                .map_err(|e| self.bad(&e.to_string()))?
                .collect();
        if addrs.is_empty() {
            return Err(self.bad("the host name resolves to no address"));
        }
        Ok(addrs)
    }

    fn bad(&self, reason: &str) -> ConnectionError {
        ConnectionError::BadAddress {
            address: self.to_string(),
            reason: reason.to_owned(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

impl FromStr for Address {
    type Err = ConnectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ConnectionError::BadAddress {
                address: String::new(),
                reason: "empty address".into(),
            });
        }
        if !s.contains('/') {
            if let Some((host, port)) = s.rsplit_once(':') {
                if let Ok(port) = port.parse::<u16>() {
                    let host = host
                        .strip_prefix('[')
                        .and_then(|h| h.strip_suffix(']'))
                        .unwrap_or(host);
                    return Ok(Address::Tcp {
                        host: host.to_owned(),
                        port,
                    });
                }
            }
        }
        Ok(Address::Unix(PathBuf::from(s)))
    }
}

impl From<(&str, u16)> for Address {
    fn from((host, port): (&str, u16)) -> Self {
        Address::Tcp {
            host: host.to_owned(),
            port,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Self {
        Address::Unix(path)
    }
}

impl From<&Path> for Address {
    fn from(path: &Path) -> Self {
        Address::Unix(path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_is_inferred() {
        let cases = [
            ("localhost:80", Address::from(("localhost", 80))),
            ("[::1]:9", Address::from(("::1", 9))),
            ("/run/x.sock", Address::Unix("/run/x.sock".into())),
            ("./a:1", Address::Unix("./a:1".into())),
            ("sock", Address::Unix("sock".into())),
            ("host:notaport", Address::Unix("host:notaport".into())),
        ];
        for (text, expected) in cases {
            let parsed: Address = text.parse().unwrap();
            assert_eq!(parsed, expected, "{text}");
        }
        assert!("".parse::<Address>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["127.0.0.1:5000", "[::1]:7", "/tmp/s"] {
            assert_eq!(text.parse::<Address>().unwrap().to_string(), text);
        }
    }
}
