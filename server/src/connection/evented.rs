//! Serving a connection on the event loop: many calls in flight, blocking
//! calls as tasks.
//!
//! One task owns the socket. It reads into a buffer and answers every
//! complete request in it: a call that finishes at once is encoded
//! straight into the output buffer, a blocking one becomes a task in a
//! `JoinSet` whose outcome comes back to this loop. Output is written once
//! per batch, so pipelined requests cost one write. A blocking call
//! therefore never holds up the others on this connection, and a
//! connection never holds up another. A connection sending requests back
//! to back may be handed to a dedicated thread and back
//! ([`super::dedicated`]).

use std::collections::HashMap;
use std::sync::Arc;

use mp_proto::message::Outcome;
use mp_proto::{ErrorKind, RemoteError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use super::dedicated::{self, Handback, Promotion, ReaderSpin, Socket};
use super::requests::{answer, respond, Answer, Buffers, Flow, Waiting};
use super::ConnContext;
use crate::engine::Engine;
use crate::errors::shutting_down;
use crate::session::Session;

pub(super) struct Connection<'a> {
    pub(super) engine: &'a Arc<Engine>,
    pub(super) ctx: &'a ConnContext,
    pub(super) session: &'a Arc<Session>,
    /// Blocking calls, each yielding its request id and outcome.
    pub(super) waiting: JoinSet<(u64, Outcome)>,
    /// Request id of each waiting task, to answer one that failed.
    waiting_ids: HashMap<tokio::task::Id, u64>,
    buffers: Buffers,
}

impl<'a> Connection<'a> {
    pub(super) fn new(
        engine: &'a Arc<Engine>,
        ctx: &'a ConnContext,
        session: &'a Arc<Session>,
    ) -> Self {
        Connection {
            engine,
            ctx,
            session,
            waiting: JoinSet::new(),
            waiting_ids: HashMap::new(),
            buffers: Buffers::new(),
        }
    }

    /// Serves requests until the peer leaves, misbehaves or the server
    /// stops; returns why it ended.
    pub(super) async fn run<S: Socket>(&mut self, mut stream: S) -> String {
        // One shutdown future for the whole connection: making one per
        // request would register and unregister a waiter every time.
        let engine = Arc::clone(self.engine);
        let stopping = engine.shutdown.wait();
        tokio::pin!(stopping);
        let mut stopped = false;
        let mut promotion = Promotion::default();
        // Learned across this connection's turns on a dedicated thread.
        let mut spin = ReaderSpin::default();
        let max = self.ctx.limits.max_frame_bytes;
        loop {
            // Answer every complete frame already buffered.
            let mut blocked = false;
            let mut buffers = std::mem::take(&mut self.buffers);
            let answered = buffers.answer_frames(max, |frame, out| {
                if let Answer::Waits(id, future) = answer(self.engine, self.session, frame, out)? {
                    blocked = true;
                    self.wait_on(id, future, out);
                }
                Ok(Flow::Next)
            });
            self.buffers = buffers;
            if let Err(e) = answered {
                self.engine.metrics.error(&ErrorKind::ProtocolError);
                return e;
            }
            if blocked {
                promotion.reset();
            }
            while let Some(done) = self.waiting.try_join_next_with_id() {
                self.finished(done);
            }
            if let Err(e) = self.flush(&mut stream).await {
                return e;
            }
            if stopped {
                return self.stop(&mut stream).await;
            }
            if S::DEDICATED && promotion.due() && self.waiting.is_empty() {
                promotion.reset();
                let place = engine
                    .metrics
                    .dedicated_reader(self.ctx.limits.dedicated_readers);
                if let Some(_place) = place {
                    match self.dedicate(stream, &mut spin).await {
                        Ok(back) => stream = back,
                        Err(end) => return end,
                    }
                    continue;
                }
            }
            promotion.waiting();
            // Biased: the order is fixed, which spares a random number per
            // request; the stop comes first so a flood cannot starve it.
            tokio::select! {
                biased;
                () = &mut stopping, if !stopped => {
                    stopped = true;
                    promotion.reset();
                }
                read = stream.read_buf(&mut self.buffers.input) => match read {
                    Ok(0) => return "closed by peer".into(),
                    Ok(n) => {
                        self.engine.metrics.received(n);
                        promotion.read();
                    }
                    Err(e) => return format!("read failed: {e}"),
                },
                Some(done) = self.waiting.join_next_with_id(), if !self.waiting.is_empty() => {
                    self.finished(done);
                    promotion.reset();
                }
            }
        }
    }

    /// Hands the connection to a dedicated thread until it gives it back;
    /// `Err` is why the connection ended meanwhile.
    async fn dedicate<S: Socket>(&mut self, stream: S, spin: &mut ReaderSpin) -> Result<S, String> {
        let socket = stream
            .into_blocking()
            .map_err(|e| format!("cannot hand the socket to a thread: {e}"))?;
        let engine = Arc::clone(self.engine);
        let session = Arc::clone(self.session);
        let max = self.ctx.limits.max_frame_bytes;
        let mut buffers = std::mem::take(&mut self.buffers);
        let mut reader_spin = std::mem::take(spin);
        let served = tokio::task::spawn_blocking(move || {
            let handback = dedicated::serve(
                &engine,
                &session,
                max,
                socket,
                &mut buffers,
                &mut reader_spin,
            );
            (handback, buffers, reader_spin)
        })
        .await;
        let (handback, buffers, reader_spin) =
            served.map_err(|e| format!("dedicated reader failed: {e}"))?;
        self.buffers = buffers;
        *spin = reader_spin;
        match handback {
            Handback::Ended(why) => Err(why),
            Handback::Resume(socket, waits) => {
                let stream = S::from_blocking(socket)
                    .map_err(|e| format!("cannot take the socket back from its thread: {e}"))?;
                if let Some((id, future)) = waits {
                    let mut out = std::mem::take(&mut self.buffers.output);
                    self.wait_on(id, future, &mut out);
                    self.buffers.output = out;
                }
                Ok(stream)
            }
        }
    }

    /// Starts waiting on a blocking call, or answers `LimitExceeded` into
    /// `out` when this connection already has its fill of them.
    fn wait_on(&mut self, id: u64, future: Waiting, out: &mut Vec<u8>) {
        if self.waiting.len() >= self.ctx.limits.max_in_flight {
            // Dropping the future cancels the wait it registered.
            drop(future);
            self.engine.metrics.error(&ErrorKind::LimitExceeded);
            let error = RemoteError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "too many blocking calls in flight on this connection (limit {})",
                    self.ctx.limits.max_in_flight
                ),
            );
            // Encoding only fails when memory runs out; the connection
            // ends at the next flush in that case.
            let _ = respond(out, id, Outcome::Error(error));
            return;
        }
        let handle = self.waiting.spawn(async move { (id, future.await) });
        self.waiting_ids.insert(handle.id(), id);
    }

    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, (u64, Outcome)), tokio::task::JoinError>,
    ) {
        let answer = match done {
            Ok((task, (id, outcome))) => {
                self.waiting_ids.remove(&task);
                Some((id, outcome))
            }
            Err(e) => {
                let id = self.waiting_ids.remove(&e.id());
                let message = if e.is_panic() {
                    tracing::error!(
                        peer = self.session.peer(),
                        "a shared object's method panicked"
                    );
                    "internal error in the shared object's method"
                } else {
                    "the call was cancelled"
                };
                id.map(|id| {
                    (
                        id,
                        Outcome::Error(RemoteError::new(ErrorKind::RuntimeError, message)),
                    )
                })
            }
        };
        if let Some((id, outcome)) = answer {
            // As in `wait_on`: a failed encoding surfaces at the flush.
            let _ = respond(&mut self.buffers.output, id, outcome);
        }
    }

    async fn flush<S: Socket>(&mut self, stream: &mut S) -> Result<(), String> {
        if self.buffers.output.is_empty() {
            return Ok(());
        }
        self.engine.metrics.sent(self.buffers.output.len());
        let result = stream.write_all(&self.buffers.output).await;
        let n = self.buffers.output.len();
        self.buffers.written(n);
        result.map_err(|e| format!("write failed: {e}"))
    }

    /// The server is stopping: answer the waiting calls and close.
    async fn stop<S: Socket>(&mut self, stream: &mut S) -> String {
        self.waiting.abort_all();
        while let Some(done) = self.waiting.join_next_with_id().await {
            match done {
                Ok(done) => self.finished(Ok(done)),
                Err(e) => {
                    if let Some(id) = self.waiting_ids.remove(&e.id()) {
                        let _ = respond(
                            &mut self.buffers.output,
                            id,
                            Outcome::Error(shutting_down()),
                        );
                    }
                }
            }
        }
        let _ = self.flush(stream).await;
        let _ = stream.shutdown().await;
        "server shutting down".into()
    }
}
