//! A dedicated reader thread for a busy connection.
//!
//! An event loop pays twice per request where a thread-per-connection
//! server pays once: an `epoll_wait` to learn the socket is readable, then
//! the read, plus the runtime's task machinery around both. For a client
//! making one call at a time that is most of the gap between a manager
//! call and a bare loopback round trip. So a connection that keeps sending
//! requests back to back (see [`Promotion`]) is handed, its socket turned
//! blocking, to a thread of tokio's blocking pool, which reads, answers and
//! writes exactly as a thread-per-connection server would.
//!
//! Between requests the thread polls for the next one for up to [`SPIN`]
//! before it sleeps, while that catches them ([`ReaderSpin`]; a client on
//! another CPU calling back to back): a request caught by polling costs
//! neither the sleep nor the wake-up, which on a virtual machine take
//! longer than the call. The client does the same for its answers
//! ([`mp_sys::spin`]).
//!
//! The thread hands the connection back to the event loop as soon as it
//! would wait for anything but the peer's next request: a blocking call
//! (whose wait belongs in a task, so that ten thousand waiters cost tasks,
//! not threads), a peer that does not read its answers (the event loop
//! then waits for the socket to take them, reading no more requests while
//! the output is full), a connection quiet for [`QUIET`], the server
//! stopping, or a frame that ends the connection (the event loop sends the
//! error frame and closes). Like the event loop, it answers only while the
//! output is under the connection's cap. At most
//! [`Limits::dedicated_readers`](crate::limits::Limits::dedicated_readers)
//! connections are served this way at once; the others, and every idle
//! one, stay on the event loop. TLS connections always do. (CPython's
//! manager runs a thread per connection, always.)

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use super::requests::{answer, Bounds, Buffers, Fatal, Flow, Waiting};
use crate::engine::Engine;
use crate::session::Session;
use mp_sys::channel::Duplex;
use mp_sys::spin::{spin_until_readable, Spun};

/// How often a dedicated reader looks up from a quiet socket to check
/// whether the server is stopping.
const TICK: Duration = Duration::from_millis(10);
/// A dedicated connection this long without a request goes back to the
/// event loop.
pub(crate) const QUIET: Duration = Duration::from_millis(100);
/// Requests arriving within this long of the previous answer count as
/// back to back.
const PROMPT: Duration = Duration::from_millis(1);
/// The most one read takes in.
const READ_CHUNK: usize = 64 * 1024;
/// Back-to-back reads before a connection gets a thread.
const PROMOTE_AFTER: u32 = 16;
/// The longest a dedicated reader polls for the next request.
const SPIN: Duration = Duration::from_micros(50);
/// Requests a dedicated reader sleeps for at once after a poll missed.
const QUIET_AFTER_MISS: u32 = 64;

/// A socket a dedicated thread can serve: plain TCP or Unix, not TLS.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + Sized {
    /// Whether this kind of socket may be handed to a thread.
    const DEDICATED: bool;

    /// The descriptor a shared-memory channel may use as its lifeline, if
    /// this kind of socket can have one beside it (plain TCP and Unix).
    fn channel_fd(&self) -> Option<RawFd>;

    /// Takes the socket off the event loop and makes it blocking.
    fn into_blocking(self) -> io::Result<BlockingSocket>;

    /// Makes the socket non-blocking and puts it back on the event loop
    /// (the runtime of the calling task).
    fn from_blocking(socket: BlockingSocket) -> io::Result<Self>;
}

/// A socket in blocking mode, served by a dedicated thread.
pub(crate) enum BlockingSocket {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
    /// A shared-memory channel beside its lifeline socket.
    Channel {
        /// The rings.
        duplex: Duplex,
        /// The connection's socket, blocking too.
        lifeline: Box<BlockingSocket>,
    },
}

impl BlockingSocket {
    /// Blocking, with `TICK` timeouts on both directions: a read or write
    /// that cannot go on within a tick returns `WouldBlock`.
    fn prepare(&self) -> io::Result<()> {
        match self {
            BlockingSocket::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(TICK))?;
                s.set_write_timeout(Some(TICK))
            }
            BlockingSocket::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(TICK))?;
                s.set_write_timeout(Some(TICK))
            }
            BlockingSocket::Channel { lifeline, .. } => lifeline.prepare(),
        }
    }

    /// Polls for the next request for up to `spin` (see
    /// [`spin_until_readable`]).
    pub(crate) fn spin_until_readable(&self, spin: Duration) -> Spun {
        match self {
            // A look at a ring is a load, not a system call: finding the
            // request there at once is no reason to stop polling.
            BlockingSocket::Channel { duplex, .. } => duplex.spin_until_readable(spin),
            s => spin_until_readable(s.as_raw_fd(), spin),
        }
    }
}

impl AsRawFd for BlockingSocket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            BlockingSocket::Tcp(s) => s.as_raw_fd(),
            BlockingSocket::Unix(s) => s.as_raw_fd(),
            BlockingSocket::Channel { lifeline, .. } => lifeline.as_raw_fd(),
        }
    }
}

impl Read for BlockingSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BlockingSocket::Tcp(s) => s.read(buf),
            BlockingSocket::Unix(s) => s.read(buf),
            BlockingSocket::Channel { duplex, .. } => duplex.read_blocking(buf, TICK),
        }
    }
}

impl Write for BlockingSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlockingSocket::Tcp(s) => s.write(buf),
            BlockingSocket::Unix(s) => s.write(buf),
            BlockingSocket::Channel { duplex, .. } => duplex.write_blocking(buf, TICK),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `Socket` for a plain tokio stream whose std twin is the
/// `BlockingSocket` variant named.
macro_rules! plain_socket {
    ($stream:ty, $variant:ident, $what:literal) => {
        impl Socket for $stream {
            const DEDICATED: bool = true;

            fn channel_fd(&self) -> Option<RawFd> {
                Some(self.as_raw_fd())
            }

            fn into_blocking(self) -> io::Result<BlockingSocket> {
                let s = BlockingSocket::$variant(self.into_std()?);
                s.prepare()?;
                Ok(s)
            }

            fn from_blocking(socket: BlockingSocket) -> io::Result<Self> {
                match socket {
                    BlockingSocket::$variant(s) => {
                        s.set_nonblocking(true)?;
                        <$stream>::from_std(s)
                    }
                    _ => Err(io::Error::other(concat!("not a ", $what))),
                }
            }
        }
    };
}

plain_socket!(tokio::net::TcpStream, Tcp, "TCP socket");
plain_socket!(tokio::net::UnixStream, Unix, "Unix socket");

/// Watches an evented connection for a run of back-to-back requests.
#[derive(Default)]
pub(crate) struct Promotion {
    streak: u32,
    asleep: Option<Instant>,
}

impl Promotion {
    /// The loop is about to wait for the peer.
    pub(crate) fn waiting(&mut self) {
        self.asleep = Some(Instant::now());
    }

    /// Bytes arrived from the peer.
    pub(crate) fn read(&mut self) {
        let prompt = self.asleep.take().is_some_and(|t| t.elapsed() < PROMPT);
        self.streak = if prompt { self.streak + 1 } else { 0 };
    }

    /// Something other than a request woke the loop, or a call blocked:
    /// not a plain run of requests.
    pub(crate) fn reset(&mut self) {
        self.streak = 0;
        self.asleep = None;
    }

    /// Whether the run is long enough to dedicate a thread to.
    pub(crate) fn due(&self) -> bool {
        self.streak >= PROMOTE_AFTER
    }
}

/// Whether a dedicated reader polls for the next request before it
/// sleeps. It polls while polling catches requests: a client on another
/// CPU calling back to back. A poll that runs out (the client pauses
/// between calls), finds the request already there (the client runs on
/// this CPU and answered before the poll), or whose yield ran another
/// thread (the client on this CPU, or more runnable threads than CPUs,
/// where polling takes CPU time others need) makes it sleep at once for
/// the next [`QUIET_AFTER_MISS`] requests. No averages: the client's poll (see [`mp_sys::spin`]) learns
/// from its round trips, and a second learner here, chasing the same
/// round trips, made the two swing.
#[derive(Debug, Default)]
pub(crate) struct ReaderSpin {
    /// Requests left to sleep for at once.
    quiet_left: u32,
}

impl ReaderSpin {
    /// How long to poll before sleeping for the next request.
    pub(crate) fn next(&mut self) -> Duration {
        if self.quiet_left > 0 {
            self.quiet_left -= 1;
            Duration::ZERO
        } else {
            SPIN
        }
    }

    /// How the poll went. A request already there at the first look was
    /// not caught by polling: the poll only cost a system call (the
    /// client, on this CPU, ran as soon as it was answered).
    pub(crate) fn polled(&mut self, spun: Spun) {
        if matches!(spun, Spun::TimedOut | Spun::Contended | Spun::Immediate) {
            self.quiet_left = QUIET_AFTER_MISS;
        }
    }
}

/// Why a dedicated reader gave the connection back.
pub(super) enum Handback {
    /// Go on serving it on the event loop, first waiting on this blocking
    /// call if there is one.
    Resume(BlockingSocket, Option<(u64, Waiting)>),
    /// The peer sent what ends the connection: the event loop tells it
    /// why, flushing what is buffered, and closes.
    Close(BlockingSocket, Fatal),
    /// The connection is over, for this reason.
    Ended(String),
}

/// Serves `socket` on the calling (blocking-pool) thread until it must go
/// back to the event loop; the buffers go on where they stood.
pub(super) fn serve(
    engine: &Arc<Engine>,
    session: &Arc<Session>,
    bounds: &Bounds,
    mut socket: BlockingSocket,
    buffers: &mut Buffers,
    spin: &mut ReaderSpin,
) -> Handback {
    let mut quiet_since: Option<Instant> = None;
    loop {
        let mut waits = None;
        let answered = buffers.answer_frames(bounds, |frame, out| {
            // A dedicated thread serves only a connection with no
            // blocking call waiting: a `cancel` finds nothing to drop.
            Ok(
                match answer(engine, session, bounds, frame, out, &mut |_| false)? {
                    None => Flow::Next,
                    Some(blocking) => {
                        waits = Some(blocking);
                        Flow::Stop
                    }
                },
            )
        });
        let full = match answered {
            Ok(full) => full,
            Err(fatal) => return Handback::Close(socket, fatal),
        };
        match write_out(&mut socket, buffers, engine) {
            Ok(true) => {}
            // The peer is not reading: wait for it on the event loop.
            Ok(false) => return Handback::Resume(socket, waits),
            Err(e) => return Handback::Ended(format!("write failed: {e}")),
        }
        if waits.is_some() || engine.shutdown.is_triggered() {
            return Handback::Resume(socket, waits);
        }
        if full {
            // Frames left behind a full output: answer them before
            // reading more.
            continue;
        }
        let poll = spin.next();
        spin.polled(socket.spin_until_readable(poll));
        match read_in(&mut socket, buffers) {
            Ok(0) => return Handback::Ended("closed by peer".into()),
            Ok(n) => {
                engine.metrics.received(n);
                quiet_since = None;
            }
            Err(e) if is_timeout(&e) => {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUIET {
                    return Handback::Resume(socket, None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Handback::Ended(format!("read failed: {e}")),
        }
    }
}

/// Writes the output buffer; `false` when the peer stopped taking bytes
/// for a tick (what is left stays buffered).
fn write_out(
    socket: &mut BlockingSocket,
    buffers: &mut Buffers,
    engine: &Engine,
) -> io::Result<bool> {
    while !buffers.unwritten().is_empty() {
        match socket.write(buffers.unwritten()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                engine.metrics.sent(n);
                buffers.written(n);
            }
            Err(e) if is_timeout(&e) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads what the peer sent into the input buffer's spare room.
fn read_in(socket: &mut BlockingSocket, buffers: &mut Buffers) -> io::Result<usize> {
    let input = &mut buffers.input;
    let start = input.len();
    // Zeroed room, at most a chunk at a time so that a large frame
    // arriving in pieces is not zeroed over and over.
    input.resize(input.capacity().min(start + READ_CHUNK), 0);
    let read = socket.read(&mut input[start..]);
    input.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

/// A socket timeout shows as `WouldBlock` (or `TimedOut` on some systems).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_prompt_reads_is_due_and_a_reset_starts_over() {
        let mut p = Promotion::default();
        for _ in 0..PROMOTE_AFTER {
            assert!(!p.due());
            p.waiting();
            p.read();
        }
        assert!(p.due());
        p.reset();
        assert!(!p.due());
    }

    #[test]
    fn a_slow_read_breaks_the_run() {
        let mut p = Promotion::default();
        for _ in 0..PROMOTE_AFTER - 1 {
            p.waiting();
            p.read();
        }
        p.waiting();
        std::thread::sleep(PROMPT * 3);
        p.read();
        assert!(!p.due());
    }

    #[test]
    fn a_reader_polls_while_polling_catches_requests() {
        let mut s = ReaderSpin::default();
        assert_eq!(s.next(), SPIN);
        s.polled(Spun::Ready);
        assert_eq!(s.next(), SPIN);
        for miss in [Spun::TimedOut, Spun::Contended, Spun::Immediate] {
            s.polled(miss);
            assert!((0..QUIET_AFTER_MISS).all(|_| s.next().is_zero()));
            assert_eq!(s.next(), SPIN, "polls again after {miss:?}");
        }
        // While quiet, a skipped poll changes nothing.
        s.polled(Spun::Contended);
        s.next();
        s.polled(Spun::Skipped);
        assert!((1..QUIET_AFTER_MISS).all(|_| s.next().is_zero()));
        assert_eq!(s.next(), SPIN);
    }

    #[test]
    fn a_blocking_socket_round_trips_through_the_event_loop() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, b) = tokio::net::UnixStream::pair().unwrap();
            let mut blocking = a.into_blocking().unwrap();
            let mut peer = b.into_blocking().unwrap();
            blocking.write_all(b"hi").unwrap();
            let mut buf = [0; 2];
            peer.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            // Nothing to read: the tick's timeout, not a hang.
            let e = blocking.read(&mut buf).unwrap_err();
            assert!(is_timeout(&e), "{e}");
            let mut back = tokio::net::UnixStream::from_blocking(blocking).unwrap();
            peer.write_all(b"yo").unwrap();
            use tokio::io::AsyncReadExt;
            back.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"yo");
        });
    }
}
