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
//!   response, and the error kinds named after Python's exceptions.

pub mod auth;
pub mod codec;
pub mod frame;
pub mod message;
pub mod value;

pub use message::{ErrorKind, RemoteError};
pub use value::{ObjectId, Token, Value};
