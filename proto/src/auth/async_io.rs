//! The handshake over tokio streams, each call bounded by
//! [`AuthOptions::timeout`]; see the parent module for the protocol.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{check_verdict, create_response, new_challenge, verify_response};
use super::{AuthOptions, AuthenticationError, CHALLENGE, FAILURE, MAX_MESSAGE, WELCOME};
use crate::frame::{read_frame_async, write_frame_async, write_frame_parts_async};

/// Async [`deliver_challenge`](super::deliver_challenge), under the timeout.
pub async fn deliver_challenge_async<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    bounded(options, deliver(stream, authkey, options)).await
}

/// Async [`answer_challenge`](super::answer_challenge), under the timeout.
pub async fn answer_challenge_async<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    bounded(options, answer(stream, authkey, options)).await
}

/// Async [`server_handshake`](super::server_handshake); the timeout bounds
/// both steps together.
pub async fn server_handshake_async<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    bounded(options, async {
        deliver(stream, authkey, options).await?;
        answer(stream, authkey, options).await
    })
    .await
}

/// Async [`client_handshake`](super::client_handshake); the timeout bounds
/// both steps together.
pub async fn client_handshake_async<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    bounded(options, async {
        answer(stream, authkey, options).await?;
        deliver(stream, authkey, options).await
    })
    .await
}

async fn bounded(
    options: &AuthOptions,
    work: impl Future<Output = Result<(), AuthenticationError>>,
) -> Result<(), AuthenticationError> {
    tokio::time::timeout(options.timeout, work)
        .await
        .unwrap_or(Err(AuthenticationError::Timeout))
}

async fn deliver<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    let challenge = new_challenge()?;
    write_frame_parts_async(stream, &[CHALLENGE, &challenge]).await?;
    let response = recv(stream).await?;
    match verify_response(authkey, &challenge, &response, options) {
        Ok(()) => Ok(write_frame_async(stream, WELCOME).await?),
        Err(err) => {
            // Best effort, as in the blocking driver.
            let _ = write_frame_async(stream, FAILURE).await;
            Err(err)
        }
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    authkey: &[u8],
    options: &AuthOptions,
) -> Result<(), AuthenticationError> {
    let message = recv(stream).await?;
    let response = create_response(authkey, &message, options)?;
    write_frame_async(stream, &response).await?;
    check_verdict(&recv(stream).await?, authkey)
}

async fn recv<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
) -> Result<Vec<u8>, AuthenticationError> {
    read_frame_async(stream, MAX_MESSAGE)
        .await?
        .ok_or(AuthenticationError::Closed)
}
