//! The wire protocol shared by `mpserver` and the `multiprocessing` SDK.
//!
//! Nothing here knows about servers or clients: it is the bytes on the wire
//! and the types they carry, checked before they are trusted.
//!
//! # Layout
//!
//! * [`frame`]: CPython's `multiprocessing.connection` length-prefixed
//!   framing, over `std::io` and over tokio, one set of rules for both.
//! * [`auth`]: the HMAC challenge-response handshake (`deliver_challenge`,
//!   `answer_challenge`), CPython 3.12+ and, on request, 3.11 legacy.
//! * [`value`]: [`Value`], the dynamic value a shared object stores, with
//!   serde conversions to and from Rust types.
//! * [`codec`]: the [`codec::Wire`] trait: how each message writes and
//!   reads its CBOR form.
//! * [`message`]: the CBOR messages after the handshake: hello, request,
//!   response.
//! * [`error`]: [`RemoteError`] and the error kinds named after Python's
//!   exceptions.
//! * [`slice`](mod@slice): Python's `slice` and its wire form.
//! * [`methods`]: each shared type's methods, declared once
//!   ([`shared_methods!`](crate::shared_methods)), and the built-in types' declarations.
//! * [`reports`]: what the server's own calls report (`debug_info`,
//!   `status`, `typeids`).
//! * `tls` (feature `tls`): TLS material from PEM files, for both ends.
//!
//! # Features
//!
//! * `tokio`: the async framing and handshake drivers (`*_async`), for a
//!   server on tokio. Off by default: the SDK's clients are blocking.
//! * `tls`: the PEM loaders, over rustls.

pub mod auth;
pub mod codec;
pub mod error;
pub mod frame;
pub mod message;
pub mod methods;
pub mod reports;
pub mod slice;
#[cfg(feature = "tls")]
pub mod tls;
pub mod value;

pub use error::{ErrorKind, RemoteError};
pub use value::{ObjectId, Token, Value};
