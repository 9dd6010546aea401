//! A CPython connection served by a thread of its own while it calls
//! back to back.
//!
//! The reason is the one `crate::connection`'s dedicated readers give
//! for SDK clients: on the event loop each request also costs an
//! `epoll_wait` and the runtime's task machinery, and with one event
//! loop thread for many busy clients, a client woken by its answer can
//! take the CPU from that thread while the others' requests wait. A
//! blocking thread per busy connection is what CPython's own server and
//! the `manager.python` bench's instant server run. With eight Python
//! processes on one dict it serves a few percent more calls per second
//! than the event loop (median; from 0.84x to 1.43x run to run), and
//! brings `mpserver` within the instant server's range.
//!
//! The thread reads, answers and writes, nothing else: it gives the
//! connection back to the event loop, where its state goes on, when a
//! call waits (a `Queue.get` belongs in a task, so that many waiters cost
//! tasks, not threads), when the peer does not take its answer within a
//! tick (the event loop then waits for it to), when the connection has
//! been quiet for [`QUIET`], and when the server stops. At most
//! `Limits::dedicated_readers` connections, SDK and CPython together, are
//! served this way at once.
//!
//! Between requests it polls for the next one before it sleeps, under
//! the SDK reader's rule (`ReaderSpin`: up to 50 µs, and not while polls
//! miss or other threads want the CPU). A Python client spends some tens
//! of microseconds between calls, so a poll mostly catches the next one;
//! then the answer is back before the client has gone to sleep in its
//! `recv`, and neither side pays a sleep and a wake-up per call, which on
//! a virtual machine cost as much CPU as the poll. With the poll one
//! Python client's calls run 1.4-2.5x as fast as against CPython's
//! server (0.8-1.3x without), at the same server CPU per call
//! (`bench/README.md`, `manager.python`).

use std::io::{self, Write};
use std::time::Instant;

use super::calls::Conn;
use super::State;
use crate::connection::{is_timeout, BlockingSocket, QUIET};
use mp_proto::frame::FrameError;

/// Why the thread gave the connection up.
pub(super) enum Handback {
    /// Go on serving it on the event loop, from its `State`.
    Resume,
    /// The connection is over, for this reason.
    Ended(String),
}

/// Serves `socket` on the calling (blocking-pool) thread until it must go
/// back to the event loop. `state` comes with nothing to write and no
/// call waiting, and goes back as the thread left it.
pub(super) fn serve(conn: &Conn, socket: &mut BlockingSocket, state: &mut State) -> Handback {
    let mut quiet_since: Option<Instant> = None;
    loop {
        if !state.input.has_frame(conn.max_frame) {
            let poll = state.spin.next();
            state.spin.polled(socket.spin_until_readable(poll));
        }
        if conn.engine.shutdown.is_triggered() {
            return Handback::Resume;
        }
        let frame = match state.input.next_blocking(socket, conn.max_frame, conn.tcp) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Handback::Ended("closed by the client".into()),
            Err(FrameError::Io(e)) if is_timeout(&e) => {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUIET {
                    return Handback::Resume;
                }
                continue;
            }
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Handback::Ended(format!("bad frame: {e}")),
        };
        quiet_since = None;
        let step = conn.begin(state.input.frame(frame));
        state.take(conn, step);
        if state.waiting.is_some() {
            return Handback::Resume;
        }
        match write_out(socket, &mut state.out) {
            Ok(true) => {}
            // The peer is not taking its answer: the event loop waits.
            Ok(false) => return Handback::Resume,
            Err(e) => return Handback::Ended(format!("write failed: {e}")),
        }
        if let Some(end) = state.end.take() {
            return Handback::Ended(end);
        }
    }
}

/// Writes `out` and empties it; `false` when the peer took no bytes for
/// a tick (what is left stays in `out`).
fn write_out(socket: &mut BlockingSocket, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut written = 0;
    let done = loop {
        if written == out.len() {
            break Ok(true);
        }
        match socket.write(&out[written..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if is_timeout(&e) => break Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    out.drain(..written);
    done
}
