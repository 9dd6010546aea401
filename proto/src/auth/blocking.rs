//! The handshake over `std::io::{Read, Write}`; see the parent module for
//! the protocol and for timeouts.

use std::io::{Read, Write};

use super::{check_verdict, create_response, new_challenge, verify_response};
use super::{AuthOptions, AuthenticationError, CHALLENGE, FAILURE, MAX_MESSAGE, WELCOME};
use crate::frame::{read_frame, write_frame, write_frame_parts};

/// Challenges the peer to prove it holds `authkey` (the listener's first
/// step). Sends `#FAILURE#` before returning an error about a wrong answer.
pub fn deliver_challenge<S: Read + Write + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    let challenge = new_challenge()?;
    write_frame_parts(stream, &[CHALLENGE, &challenge])?;
    let response = recv(stream)?;
    match verify_response(authkey, &challenge, &response, options) {
        Ok(()) => Ok(write_frame(stream, WELCOME)?),
        Err(err) => {
            // Best effort: the peer learns it failed if it is still
            // listening; our caller needs the original reason either way.
            let _ = write_frame(stream, FAILURE);
            Err(err)
        }
    }
}

/// Proves to the peer that we hold `authkey` (the client's first step).
pub fn answer_challenge<S: Read + Write + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    let message = recv(stream)?;
    let response = create_response(authkey, &message, options)?;
    write_frame(stream, &response)?;
    check_verdict(&recv(stream)?, authkey)
}

/// The listener's side of a mutual handshake: deliver, then answer.
pub fn server_handshake<S: Read + Write + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    deliver_challenge(stream, authkey, options)?;
    answer_challenge(stream, authkey, options)
}

/// The client's side of a mutual handshake: answer, then deliver.
pub fn client_handshake<S: Read + Write + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    answer_challenge(stream, authkey, options)?;
    deliver_challenge(stream, authkey, options)
}

fn recv<S: Read + ?Sized>(stream: &mut S) -> Result<Vec<u8>, AuthenticationError> {
    read_frame(stream, MAX_MESSAGE)?.ok_or(AuthenticationError::Closed)
}
