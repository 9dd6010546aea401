//! Serving a connection on the event loop: many calls in flight, blocking
//! calls as tasks.
//!
//! One task owns the socket. It reads into a buffer and answers every
//! complete request in it: a call that finishes at once is encoded
//! straight into the output buffer, a blocking one becomes a task in a
//! `JoinSet` whose outcome comes back to this loop. Output is written as
//! soon as a batch is answered, so pipelined requests cost one write. A
//! blocking call therefore never holds up the others on this connection,
//! and a connection never holds up another. A connection sending requests
//! back to back may be handed to a dedicated thread and back
//! ([`super::dedicated`]).
//!
//! # Backpressure
//!
//! What the socket does not take at once stays in the output buffer, and
//! the loop waits for the socket to take it while it goes on reading and
//! answering, until the output reaches the connection's cap
//! ([`Limits::max_output_bytes`](crate::limits::Limits::max_output_bytes)).
//! From then on it neither answers nor reads that connection's requests,
//! nor encodes the outcomes of its finished blocking calls (they wait in
//! their tasks, at most `max_in_flight` of them), until the peer has read
//! enough: a peer that pipelines requests and never reads costs the cap
//! plus one answer, not an answer per request. The server stopping is
//! heard all along.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;

use mp_proto::message::Outcome;
use mp_proto::{ErrorKind, RemoteError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::{AbortHandle, JoinSet};

use super::dedicated::{self, Handback, Promotion, ReaderSpin, Socket};
use super::requests::{answer, respond, respond_fatal, Bounds, Buffers, Fatal, Flow, Waiting};
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
    /// Each waiting task by request id, for `cancel` (as many as
    /// `waiting`: at most `max_in_flight`).
    cancels: HashMap<u64, AbortHandle>,
    buffers: Buffers,
    bounds: Bounds,
}

/// What a connection's socket did first.
enum Transfer {
    /// Took this many output bytes.
    Wrote(io::Result<usize>),
    /// Gave this many input bytes (0 at its end).
    Read(io::Result<usize>),
}

/// How a connection came back from a dedicated thread.
enum Back<S> {
    /// To be served here.
    Resume(S),
    /// To be told why and closed.
    Close(S, Fatal),
    /// Over, for this reason.
    Ended(String),
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
            cancels: HashMap::new(),
            buffers: Buffers::new(),
            bounds: Bounds::new(&ctx.limits),
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
        loop {
            match self.answer_ready() {
                Ok(true) => promotion.reset(),
                Ok(false) => {}
                Err(fatal) => return self.close(stream, fatal).await,
            }
            if let Err(e) = self.write_now(&mut stream).await {
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
                        Back::Resume(back) => stream = back,
                        Back::Close(back, fatal) => return self.close(back, fatal).await,
                        Back::Ended(why) => return why,
                    }
                    continue;
                }
            }
            promotion.waiting();
            let full = self.buffers.is_full(&self.bounds);
            // Biased: the order is fixed, which spares a random number per
            // request; the stop comes first so a flood cannot starve it.
            tokio::select! {
                biased;
                () = &mut stopping, if !stopped => {
                    stopped = true;
                    promotion.reset();
                }
                io = transfer(&mut stream, &mut self.buffers, !full) => match io {
                    Transfer::Read(Ok(0)) => return "closed by peer".into(),
                    Transfer::Read(Ok(n)) => {
                        self.engine.metrics.received(n);
                        promotion.read();
                    }
                    Transfer::Read(Err(e)) => return format!("read failed: {e}"),
                    Transfer::Wrote(wrote) => {
                        if let Err(e) = self.wrote(wrote) {
                            return e;
                        }
                        promotion.reset();
                    }
                },
                Some(done) = self.waiting.join_next_with_id(),
                    if !full && !self.waiting.is_empty() =>
                {
                    if let Err(fatal) = self.finished(done) {
                        return self.close(stream, fatal).await;
                    }
                    promotion.reset();
                }
            }
        }
    }

    /// Answers, while the output has room, the blocking calls that
    /// finished (they are older), then the complete requests buffered;
    /// `Ok(true)` when one of those requests blocked.
    fn answer_ready(&mut self) -> Result<bool, Fatal> {
        while !self.buffers.is_full(&self.bounds) {
            match self.waiting.try_join_next_with_id() {
                Some(done) => self.finished(done)?,
                None => break,
            }
        }
        let mut blocked = false;
        let bounds = self.bounds;
        let mut buffers = std::mem::take(&mut self.buffers);
        let answered = buffers.answer_frames(&bounds, |frame, out| {
            let cancels = &mut self.cancels;
            // Aborting drops the call's future, which gives back whatever
            // it was granted (`wait.rs`); a task that finished meanwhile
            // keeps its answer. Either way `finished` answers its id.
            let mut cancel = |id| {
                cancels.remove(&id).is_some_and(|task| {
                    task.abort();
                    true
                })
            };
            let answered = answer(self.engine, self.session, &bounds, frame, out, &mut cancel)?;
            if let Some((id, future)) = answered {
                blocked = true;
                self.wait_on(id, future, out)?;
            }
            Ok(Flow::Next)
        });
        self.buffers = buffers;
        answered.map(|_| blocked)
    }

    /// Hands the connection to a dedicated thread until it gives it back.
    async fn dedicate<S: Socket>(&mut self, stream: S, spin: &mut ReaderSpin) -> Back<S> {
        let socket = match stream.into_blocking() {
            Ok(socket) => socket,
            Err(e) => return Back::Ended(format!("cannot hand the socket to a thread: {e}")),
        };
        let engine = Arc::clone(self.engine);
        let session = Arc::clone(self.session);
        let bounds = self.bounds;
        let mut buffers = std::mem::take(&mut self.buffers);
        let mut reader_spin = std::mem::take(spin);
        let served = tokio::task::spawn_blocking(move || {
            let handback = dedicated::serve(
                &engine,
                &session,
                &bounds,
                socket,
                &mut buffers,
                &mut reader_spin,
            );
            (handback, buffers, reader_spin)
        })
        .await;
        let (handback, buffers, reader_spin) = match served {
            Ok(served) => served,
            Err(e) => return Back::Ended(format!("dedicated reader failed: {e}")),
        };
        self.buffers = buffers;
        *spin = reader_spin;
        let back = |socket| {
            S::from_blocking(socket)
                .map_err(|e| format!("cannot take the socket back from its thread: {e}"))
        };
        match handback {
            Handback::Ended(why) => Back::Ended(why),
            Handback::Close(socket, fatal) => match back(socket) {
                Ok(stream) => Back::Close(stream, fatal),
                Err(why) => Back::Ended(why),
            },
            Handback::Resume(socket, waits) => {
                let stream = match back(socket) {
                    Ok(stream) => stream,
                    Err(why) => return Back::Ended(why),
                };
                if let Some((id, future)) = waits {
                    let mut out = std::mem::take(self.buffers.output());
                    let waited = self.wait_on(id, future, &mut out);
                    *self.buffers.output() = out;
                    if let Err(fatal) = waited {
                        return Back::Close(stream, fatal);
                    }
                }
                Back::Resume(stream)
            }
        }
    }

    /// Starts waiting on a blocking call, or answers `LimitExceeded` into
    /// `out` when this connection already has its fill of them (finished
    /// ones whose answers wait for room in the output count too).
    fn wait_on(&mut self, id: u64, future: Waiting, out: &mut Vec<u8>) -> Result<(), Fatal> {
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
            return respond(
                out,
                id,
                Outcome::Error(error),
                &self.bounds,
                &self.engine.metrics,
            );
        }
        let handle = self.waiting.spawn(async move { (id, future.await) });
        self.waiting_ids.insert(handle.id(), id);
        self.cancels.insert(id, handle);
        Ok(())
    }

    /// Answers a blocking call that finished (or failed).
    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, (u64, Outcome)), tokio::task::JoinError>,
    ) -> Result<(), Fatal> {
        let answer = match done {
            Ok((task, (id, outcome))) => {
                self.waiting_ids.remove(&task);
                self.cancels.remove(&id);
                Some((id, outcome))
            }
            Err(e) => {
                let id = self.waiting_ids.remove(&e.id());
                if let Some(id) = id {
                    self.cancels.remove(&id);
                }
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
        match answer {
            Some((id, outcome)) => respond(
                self.buffers.output(),
                id,
                outcome,
                &self.bounds,
                &self.engine.metrics,
            ),
            None => Ok(()),
        }
    }

    /// Writes as much output as the socket takes without waiting.
    async fn write_now<S: Socket>(&mut self, stream: &mut S) -> Result<(), String> {
        while !self.buffers.unwritten().is_empty() {
            let unwritten = self.buffers.unwritten();
            let wrote = poll_fn(|cx| {
                Poll::Ready(match Pin::new(&mut *stream).poll_write(cx, unwritten) {
                    Poll::Ready(wrote) => Some(wrote),
                    Poll::Pending => None,
                })
            })
            .await;
            match wrote {
                Some(wrote) => self.wrote(wrote)?,
                // Full: the loop waits for room, reading meanwhile.
                None => break,
            }
        }
        Ok(())
    }

    /// Writes all the output, waiting for the socket as long as it takes
    /// (the caller bounds that).
    async fn write_all<S: Socket>(&mut self, stream: &mut S) -> Result<(), String> {
        while !self.buffers.unwritten().is_empty() {
            let wrote = stream.write(self.buffers.unwritten()).await;
            self.wrote(wrote)?;
        }
        Ok(())
    }

    /// Takes note of a write to the socket.
    fn wrote(&mut self, wrote: io::Result<usize>) -> Result<(), String> {
        match wrote {
            Ok(0) => Err("write failed: the socket takes no more bytes".into()),
            Ok(n) => {
                self.engine.metrics.sent(n);
                self.buffers.written(n);
                Ok(())
            }
            Err(e) => Err(format!("write failed: {e}")),
        }
    }

    /// The peer sent what ends the connection: tell it why after the
    /// answers already made, give them the drain time at most to go out
    /// (the peer may not read), and close.
    async fn close<S: Socket>(&mut self, mut stream: S, fatal: Fatal) -> String {
        let Fatal(error) = &fatal;
        self.engine.metrics.error(&error.kind);
        tracing::warn!(peer = self.session.peer(), error = %error, "closing a connection for what it sent");
        respond_fatal(self.buffers.output(), &fatal);
        let drain = self.ctx.limits.drain_timeout;
        let _ = tokio::time::timeout(drain, async {
            self.write_all(&mut stream).await?;
            stream.shutdown().await.map_err(|e| e.to_string())
        })
        .await;
        error.to_string()
    }

    /// The server is stopping: answer the waiting calls and close.
    async fn stop<S: Socket>(&mut self, stream: &mut S) -> String {
        self.waiting.abort_all();
        while let Some(done) = self.waiting.join_next_with_id().await {
            let answered = match done {
                Ok(done) => self.finished(Ok(done)),
                Err(e) => match self.waiting_ids.remove(&e.id()) {
                    Some(id) => respond(
                        self.buffers.output(),
                        id,
                        Outcome::Error(shutting_down()),
                        &self.bounds,
                        &self.engine.metrics,
                    ),
                    None => Ok(()),
                },
            };
            // Held to the cap here too: a full output is written before
            // the next answer is made (the server's drain timeout bounds
            // the wait).
            let full = self.buffers.is_full(&self.bounds);
            if answered.is_err() || (full && self.write_all(stream).await.is_err()) {
                return "server shutting down".into();
            }
        }
        let _ = self.write_all(stream).await;
        let _ = stream.shutdown().await;
        "server shutting down".into()
    }
}

/// Waits until the socket takes some of the unwritten output or, when
/// `read`, gives more input, and says which; cancelling it loses nothing.
fn transfer<'b, S: Socket>(
    stream: &'b mut S,
    buffers: &'b mut Buffers,
    read: bool,
) -> impl Future<Output = Transfer> + 'b {
    poll_fn(move |cx| {
        if !buffers.unwritten().is_empty() {
            if let Poll::Ready(wrote) = Pin::new(&mut *stream).poll_write(cx, buffers.unwritten()) {
                return Poll::Ready(Transfer::Wrote(wrote));
            }
        }
        if read {
            if let Poll::Ready(got) = pin!(stream.read_buf(&mut buffers.input)).poll(cx) {
                return Poll::Ready(Transfer::Read(got));
            }
        }
        Poll::Pending
    })
}
