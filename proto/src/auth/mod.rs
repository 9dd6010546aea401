//! The authentication handshake of CPython's `multiprocessing.connection`
//! (`deliver_challenge` / `answer_challenge`): mutual HMAC
//! challenge-response over framed messages, so that both sides prove they
//! hold the authkey without sending it.
//!
//! # Protocol
//!
//! ```text
//! deliverer                                answerer
//!   "#CHALLENGE#{sha256}" + 40 random  ──▶
//!                                      ◀──  "{sha256}" + HMAC-SHA256(key, "{sha256}" + random)
//!   "#WELCOME#" or "#FAILURE#"         ──▶
//! ```
//!
//! A listener delivers then answers ([`server_handshake`]); a client answers
//! then delivers ([`client_handshake`]). Every message is one frame read
//! with a 256-byte limit.
//!
//! # Legacy peers
//!
//! CPython ≤ 3.11 sends an unprefixed 20-byte challenge and answers any
//! challenge with a raw 16-byte HMAC-MD5. Both are refused with
//! [`AuthenticationError::LegacyDisabled`] unless [`AuthOptions::legacy`] is
//! set; then we answer a 20-byte challenge with raw MD5 and accept a 16-byte
//! MD5 answer to our own (modern) challenge, which is how a 3.11 client
//! answers it. Any MD5, prefixed or not, counts as legacy.
//!
//! # Layout
//!
//! The rules are sans-I/O functions here ([`new_challenge`],
//! [`create_response`], [`verify_response`], [`check_verdict`]); the
//! drivers over `std::io` and tokio are thin.
//!
//! # Timeouts
//!
//! The async functions run under [`AuthOptions::timeout`]. The blocking
//! ones cannot bound a generic `Read + Write`: set read and write timeouts on
//! the socket first (`set_read_timeout` / `set_write_timeout`); a read that
//! times out then ends the handshake with [`AuthenticationError::Timeout`].

#[cfg(feature = "tokio")]
mod async_io;
mod blocking;

use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Sha256, Sha384};

use crate::frame::FrameError;

#[cfg(feature = "tokio")]
pub use async_io::{
    answer_challenge_async, client_handshake_async, deliver_challenge_async, server_handshake_async,
};
pub use blocking::{answer_challenge, client_handshake, deliver_challenge, server_handshake};

/// The prefix of a challenge message.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The deliverer's verdict when the answer was right.
pub const WELCOME: &[u8] = b"#WELCOME#";
/// The deliverer's verdict when the answer was wrong.
pub const FAILURE: &[u8] = b"#FAILURE#";
/// The largest handshake message either side reads (CPython's
/// `recv_bytes(256)`).
pub const MAX_MESSAGE: u64 = 256;
/// Random bytes in a modern challenge, after its `{sha256}` prefix.
pub const CHALLENGE_RANDOM_LEN: usize = 40;
/// The length of a legacy (CPython ≤ 3.11) challenge after `#CHALLENGE#`.
pub const LEGACY_CHALLENGE_LEN: usize = 20;
/// The length of a raw HMAC-MD5 answer.
const MD5_LEN: usize = 16;
/// How long an async handshake may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How a handshake is carried out.
#[derive(Clone, Debug)]
pub struct AuthOptions {
    /// Accept and answer CPython ≤ 3.11's HMAC-MD5 form. Off by default:
    /// MD5 is only for talking to old CPython peers.
    pub legacy: bool,
    /// The bound on a whole async handshake (see the module's "Timeouts").
    pub timeout: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            legacy: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl AuthOptions {
    /// Options that also accept CPython ≤ 3.11 peers.
    pub fn legacy() -> Self {
        AuthOptions {
            legacy: true,
            ..AuthOptions::default()
        }
    }
}

/// Why a handshake failed (Python's `AuthenticationError`).
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    /// The peer judged our answer wrong.
    #[error("digest sent was rejected: the peer answered #FAILURE#; check that both sides use the same authkey")]
    Rejected,
    /// The peer judged our answer wrong, and our key ends in a newline:
    /// most likely a key file read with it, where the peer dropped it.
    #[error("digest sent was rejected: the authkey ends in a newline, which mpserver drops from --authkey-file; read key files with read_key_file (multiprocessing::managers::read_authkey_file)")]
    RejectedKeyEndsInNewline,
    /// The peer's answer to our challenge was wrong.
    #[error("digest received was wrong: the peer does not hold this authkey")]
    WrongDigest,
    /// The peer uses the CPython ≤ 3.11 HMAC-MD5 form and legacy mode is off.
    #[error("the peer uses the legacy CPython <= 3.11 handshake (HMAC-MD5); set AuthOptions::legacy to accept it")]
    LegacyDisabled,
    /// The peer named a digest we do not implement.
    #[error(
        "unsupported digest {0:?} in the handshake; supported: sha256, sha384 (md5 in legacy mode)"
    )]
    UnsupportedDigest(String),
    /// The peer sent something that is not part of the handshake.
    #[error("authentication protocol error: {0}")]
    Protocol(String),
    /// The peer closed the connection before the handshake ended.
    #[error("the peer closed the connection during the authentication handshake")]
    Closed,
    /// The handshake took longer than allowed.
    #[error(
        "authentication handshake timed out; is the peer speaking the multiprocessing protocol?"
    )]
    Timeout,
    /// Reading or writing a handshake frame failed.
    #[error("authentication handshake failed: {0}")]
    Frame(FrameError),
}

impl From<FrameError> for AuthenticationError {
    fn from(err: FrameError) -> Self {
        match err {
            FrameError::Io(e) => e.into(),
            FrameError::TooLarge { len, max } => AuthenticationError::Protocol(format!(
                "handshake message of {len} bytes, the limit is {max}"
            )),
            other => AuthenticationError::Frame(other),
        }
    }
}

impl From<std::io::Error> for AuthenticationError {
    fn from(err: std::io::Error) -> Self {
        match err.kind() {
            // What a socket read or write timeout looks like.
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                AuthenticationError::Timeout
            }
            _ => AuthenticationError::Frame(FrameError::Io(err)),
        }
    }
}

/// The digests a handshake may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Digest {
    Md5,
    Sha256,
    Sha384,
}

impl Digest {
    fn from_name(name: &[u8]) -> Result<Self, AuthenticationError> {
        match name {
            b"md5" => Ok(Digest::Md5),
            b"sha256" => Ok(Digest::Sha256),
            b"sha384" => Ok(Digest::Sha384),
            other => Err(AuthenticationError::UnsupportedDigest(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Result<Vec<u8>, AuthenticationError> {
        Ok(match self {
            Digest::Md5 => mac::<Hmac<Md5>>(key, message)?
                .finalize()
                .into_bytes()
                .to_vec(),
            Digest::Sha256 => mac::<Hmac<Sha256>>(key, message)?
                .finalize()
                .into_bytes()
                .to_vec(),
            Digest::Sha384 => mac::<Hmac<Sha384>>(key, message)?
                .finalize()
                .into_bytes()
                .to_vec(),
        })
    }

    /// Constant-time check of `tag` (hmac's `verify_slice`).
    fn verify(self, key: &[u8], message: &[u8], tag: &[u8]) -> Result<bool, AuthenticationError> {
        Ok(match self {
            Digest::Md5 => mac::<Hmac<Md5>>(key, message)?.verify_slice(tag).is_ok(),
            Digest::Sha256 => mac::<Hmac<Sha256>>(key, message)?.verify_slice(tag).is_ok(),
            Digest::Sha384 => mac::<Hmac<Sha384>>(key, message)?.verify_slice(tag).is_ok(),
        })
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(
    key: &[u8],
    message: &[u8],
) -> Result<M, AuthenticationError> {
    // HMAC accepts keys of any length; the error path exists only because
    // the trait is shared with fixed-key MACs.
    let mut mac = <M as Mac>::new_from_slice(key)
        .map_err(|_| AuthenticationError::Protocol("the authkey has an invalid length".into()))?;
    mac.update(message);
    Ok(mac)
}

/// Splits a challenge or answer into its digest and the rest, as CPython
/// 3.12's `_get_digest_name_and_payload`: `None` for the legacy unprefixed
/// forms (16 or 20 bytes), else the `{name}` prefix.
fn split_digest(message: &[u8]) -> Result<(Option<Digest>, &[u8]), AuthenticationError> {
    if message.len() == MD5_LEN || message.len() == LEGACY_CHALLENGE_LEN {
        return Ok((None, message));
    }
    let close = message
        .strip_prefix(b"{")
        .and_then(|rest| rest.iter().take(16).position(|&b| b == b'}'));
    match close {
        Some(i) => Ok((Some(Digest::from_name(&message[1..=i])?), &message[i + 2..])),
        None => Err(AuthenticationError::Protocol(format!(
            "expected a {{digest}} prefix or a legacy 16/20-byte message, got {} bytes: {}",
            message.len(),
            escape(message)
        ))),
    }
}

/// Shows a peer's bytes in an error, bounded (handshake messages are
/// ≤ 256 bytes anyway).
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(64)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

/// A fresh challenge payload, `{sha256}` and 40 bytes from the OS's random
/// source; the frame to send is [`CHALLENGE`] followed by it.
pub fn new_challenge() -> Result<Vec<u8>, AuthenticationError> {
    let mut random = [0u8; CHALLENGE_RANDOM_LEN];
    getrandom::fill(&mut random)
        .map_err(|e| AuthenticationError::Frame(FrameError::Io(std::io::Error::other(e))))?;
    let mut payload = b"{sha256}".to_vec();
    payload.extend_from_slice(&random);
    Ok(payload)
}

/// The answer to a challenge `message` (the whole frame, starting with
/// [`CHALLENGE`]): `{digest}` + HMAC over everything after `#CHALLENGE#`,
/// or a raw HMAC-MD5 for a legacy 20-byte challenge.
pub fn create_response(
    authkey: &[u8],
    message: &[u8],
    options: &AuthOptions,
) -> Result<Vec<u8>, AuthenticationError> {
    let Some(payload) = message.strip_prefix(CHALLENGE) else {
        return Err(AuthenticationError::Protocol(format!(
            "expected a #CHALLENGE# message, got {}",
            escape(message)
        )));
    };
    if payload.len() < LEGACY_CHALLENGE_LEN {
        return Err(AuthenticationError::Protocol(format!(
            "challenge too short: {} bytes",
            payload.len()
        )));
    }
    match split_digest(payload)? {
        (None, _) if !options.legacy => Err(AuthenticationError::LegacyDisabled),
        (None, _) => Digest::Md5.mac(authkey, payload),
        (Some(Digest::Md5), _) if !options.legacy => Err(AuthenticationError::LegacyDisabled),
        (Some(digest), _) => {
            let mut response = format!("{{{}}}", digest.name()).into_bytes();
            response.extend_from_slice(&digest.mac(authkey, payload)?);
            Ok(response)
        }
    }
}

/// Checks the peer's `response` to the challenge `payload` we sent
/// (without its `#CHALLENGE#`), in constant time.
pub fn verify_response(
    authkey: &[u8],
    payload: &[u8],
    response: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    let (digest, tag) = match split_digest(response)? {
        (None | Some(Digest::Md5), _) if !options.legacy => {
            return Err(AuthenticationError::LegacyDisabled)
        }
        (None, tag) => (Digest::Md5, tag),
        (Some(digest), tag) => (digest, tag),
    };
    if digest.verify(authkey, payload, tag)? {
        Ok(())
    } else {
        Err(AuthenticationError::WrongDigest)
    }
}

/// Reads the deliverer's verdict on our answer to a challenge made with
/// `authkey`.
pub fn check_verdict(message: &[u8], authkey: &[u8]) -> Result<(), AuthenticationError> {
    match message {
        WELCOME => Ok(()),
        // The likeliest cause, named: a key file read with its newline.
        FAILURE if authkey.last() == Some(&b'\n') => {
            Err(AuthenticationError::RejectedKeyEndsInNewline)
        }
        FAILURE => Err(AuthenticationError::Rejected),
        other => Err(AuthenticationError::Protocol(format!(
            "expected #WELCOME# or #FAILURE#, got {}",
            escape(other)
        ))),
    }
}

/// Reads an authkey from a file, the one rule for servers and clients:
/// the file's bytes without one trailing newline (`\n` or `\r\n`), as
/// `echo key > file` writes it; an empty key is refused. `mpserver
/// --authkey-file` reads its key this way.
pub fn read_key_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut key = std::fs::read(path)?;
    if key.last() == Some(&b'\n') {
        key.pop();
        if key.last() == Some(&b'\r') {
            key.pop();
        }
    }
    if key.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the key file {} holds no key", path.display()),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
