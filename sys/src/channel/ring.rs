//! One direction of a channel: a single-producer, single-consumer byte
//! ring in the shared region, with the words each side sleeps on.
//!
//! Each side keeps its own position privately and publishes it; the
//! other side's position is read from shared memory and checked before it
//! is used (a peer that writes nonsense there gets [`ChannelError::Corrupt`],
//! never a read or write outside the ring). Bytes are copied in and out,
//! never parsed in place, so a peer scribbling on the ring can only spoil
//! its own messages, which the frame decoder then refuses.
//!
//! # Sleeping and waking
//!
//! A side about to sleep says so in its state word — `FUTEX` (it sleeps on
//! the other side's position word) or `SOCKET` (an event loop waiting on
//! the connection's socket) — then looks at the ring once more. The other
//! side publishes its position, then reads that state word, and wakes the
//! sleeper the way it asked. Both use sequentially consistent operations,
//! so at least one of them sees the other: no wake-up is lost.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use super::region::{Direction, Region};
use super::ChannelError;
use crate::futex;

/// Not sleeping: no need to wake.
const AWAKE: u32 = 0;
/// Sleeping on the futex of the other side's position.
const FUTEX: u32 = 1;
/// Waiting on the socket: wake it with a byte there.
const SOCKET: u32 = 2;

/// The control words of one ring, each on a cache line of its own.
#[repr(C, align(64))]
pub(crate) struct Control {
    /// Bytes written so far (wrapping), by the producer.
    tail: Line,
    /// Bytes read so far (wrapping), by the consumer.
    head: Line,
    /// The consumer's state: `AWAKE`, `FUTEX` or `SOCKET`.
    reader: Line,
    /// The producer's state when the ring is full.
    writer: Line,
}

#[repr(C, align(64))]
struct Line(AtomicU32);

impl Control {
    /// Wakes both sides of this ring, whatever they sleep on.
    pub(crate) fn wake_all(&self) {
        futex::wake_all(&self.tail.0);
        futex::wake_all(&self.head.0);
    }
}

/// What either end of a ring holds: the ring, this end's own position
/// (kept here, published to the peer, never read back from it) and the
/// socket to ring when the peer waits on one.
#[derive(Debug)]
struct End {
    region: Arc<Region>,
    direction: Direction,
    position: u32,
    doorbell: Option<RawFd>,
}

impl End {
    fn new(
        region: Arc<Region>,
        direction: Direction,
        doorbell: Option<RawFd>,
        own: fn(&Control) -> &Line,
    ) -> End {
        let position = own(region.control(direction)).0.load(SeqCst);
        End {
            region,
            direction,
            position,
            doorbell,
        }
    }

    fn control(&self) -> &Control {
        self.region.control(self.direction)
    }

    /// Where a transfer of `n` bytes at this end's position starts in the
    /// ring, and how many of them come before the ring wraps.
    fn span(&self, n: usize) -> (usize, usize) {
        let size = self.region.ring_size() as usize;
        let at = self.position as usize & (size - 1);
        (at, n.min(size - at))
    }

    /// Moves this end past `n` bytes, publishes it in its `own` word, and
    /// wakes the peer if the peer's `state` word says it sleeps on it.
    fn advance(&mut self, n: usize, own: fn(&Control) -> &Line, state: fn(&Control) -> &Line) {
        self.position = self.position.wrapping_add(n as u32);
        let control = self.region.control(self.direction);
        let (own, state) = (&own(control).0, &state(control).0);
        own.store(self.position, SeqCst);
        // Published before the peer's state is read, both sequentially
        // consistent: the peer either sees the new position before it
        // sleeps, or is seen sleeping here.
        match state.load(SeqCst) {
            FUTEX => futex::wake_all(own),
            SOCKET => {
                if let Some(fd) = self.doorbell {
                    // A full socket buffer means unread doorbells: the
                    // sleeper wakes anyway, so the result does not matter.
                    // SAFETY: send(2) of one byte from a live buffer on a
                    // descriptor the caller keeps open.
                    unsafe {
                        libc::send(
                            fd,
                            [0u8].as_ptr().cast(),
                            1,
                            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Says in `state` that this end sleeps on the peer's position `peer`,
    /// then sleeps while `blocked` holds for it and the channel is open,
    /// for at most `timeout`.
    fn sleep(
        &self,
        state: &AtomicU32,
        peer: &AtomicU32,
        blocked: impl Fn(u32) -> bool,
        timeout: Duration,
    ) {
        state.store(FUTEX, SeqCst);
        let seen = peer.load(SeqCst);
        if blocked(seen) && self.region.closed().load(SeqCst) == 0 {
            futex::wait(peer, seen, Some(timeout));
        }
        state.store(AWAKE, SeqCst);
    }
}

/// The reading end of one ring.
#[derive(Debug)]
pub struct Reader(End);

impl Reader {
    /// The reading end of the ring carrying `direction`; `doorbell` is the
    /// socket to ring when the writer waits on one (the client's side).
    pub fn new(region: Arc<Region>, direction: Direction, doorbell: Option<RawFd>) -> Self {
        Reader(End::new(region, direction, doorbell, |c| &c.head))
    }

    /// Bytes waiting to be read.
    #[inline]
    pub fn available(&self) -> Result<u32, ChannelError> {
        let tail = self.0.control().tail.0.load(SeqCst);
        let n = tail.wrapping_sub(self.0.position);
        let size = self.0.region.ring_size();
        if n > size {
            return Err(ChannelError::Corrupt(format!(
                "the writer claims {n} bytes in a ring of {size}"
            )));
        }
        Ok(n)
    }

    /// Copies what is waiting into `buf`, up to its length; 0 when the
    /// ring is empty. Wakes a writer waiting for room.
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        let n = (self.available()? as usize).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let (at, first) = self.0.span(n);
        let data = self.0.region.data(self.0.direction);
        // SAFETY: `at + first <= size` and `n - first <= size`: both copies
        // stay inside this ring's bytes and inside `buf`. The writer does
        // not touch these bytes until `head` moves past them below.
        unsafe {
            std::ptr::copy_nonoverlapping(data.add(at), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, buf.as_mut_ptr().add(first), n - first);
        }
        self.0.advance(n, |c| &c.head, |c| &c.writer);
        Ok(n)
    }

    /// Sleeps until bytes arrive, the peer leaves, or `timeout` passes
    /// (or spuriously: look again).
    pub fn sleep(&self, timeout: Duration) {
        let control = self.0.control();
        let head = self.0.position;
        self.0.sleep(
            &control.reader.0,
            &control.tail.0,
            |tail| tail == head,
            timeout,
        );
    }

    /// Asks the writer to ring the socket when it writes; the caller then
    /// looks at the ring once more before it waits on the socket.
    pub fn wait_on_socket(&self) {
        self.0.control().reader.0.store(SOCKET, SeqCst);
    }

    /// No longer waiting: the writer need not wake this side.
    #[inline]
    pub fn awake(&self) {
        self.0.control().reader.0.store(AWAKE, SeqCst);
    }
}

/// The writing end of one ring.
#[derive(Debug)]
pub struct Writer(End);

impl Writer {
    /// The writing end of the ring carrying `direction`; `doorbell` as for
    /// [`Reader::new`].
    pub fn new(region: Arc<Region>, direction: Direction, doorbell: Option<RawFd>) -> Self {
        Writer(End::new(region, direction, doorbell, |c| &c.tail))
    }

    /// Room left in the ring.
    #[inline]
    pub fn room(&self) -> Result<u32, ChannelError> {
        let head = self.0.control().head.0.load(SeqCst);
        let used = self.0.position.wrapping_sub(head);
        let size = self.0.region.ring_size();
        if used > size {
            return Err(ChannelError::Corrupt(format!(
                "the reader claims to be {used} bytes behind in a ring of {size}"
            )));
        }
        Ok(size - used)
    }

    /// Copies as much of `buf` as fits; 0 when the ring is full. Wakes a
    /// reader waiting for bytes.
    #[inline]
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, ChannelError> {
        let n = (self.room()? as usize).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let (at, first) = self.0.span(n);
        let data = self.0.region.data(self.0.direction);
        // SAFETY: as in `Reader::read`, both copies stay inside the ring
        // and `buf`; the reader does not look at these bytes until `tail`
        // moves past them below.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), data.add(at), first);
            std::ptr::copy_nonoverlapping(buf.as_ptr().add(first), data, n - first);
        }
        self.0.advance(n, |c| &c.tail, |c| &c.reader);
        Ok(n)
    }

    /// Sleeps until the reader makes room, the peer leaves, or `timeout`
    /// passes (or spuriously: look again).
    pub fn sleep(&self, timeout: Duration) {
        let control = self.0.control();
        let (tail, size) = (self.0.position, self.0.region.ring_size());
        let full = |head: u32| tail.wrapping_sub(head) >= size;
        self.0
            .sleep(&control.writer.0, &control.head.0, full, timeout);
    }

    /// Asks the reader to ring the socket when it makes room.
    pub fn wait_on_socket(&self) {
        self.0.control().writer.0.store(SOCKET, SeqCst);
    }

    /// No longer waiting for room.
    #[inline]
    pub fn awake(&self) {
        self.0.control().writer.0.store(AWAKE, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(ring: u32) -> (Writer, Reader) {
        let (region, _fd) = Region::create(ring, 7).unwrap();
        let region = Arc::new(region);
        (
            Writer::new(Arc::clone(&region), Direction::ToServer, None),
            Reader::new(region, Direction::ToServer, None),
        )
    }

    proptest! {
        /// Whatever the sizes of the writes and reads, the reader gets the
        /// writer's bytes in order, nothing lost or repeated.
        #[test]
        fn bytes_come_out_as_they_went_in(
            steps in proptest::collection::vec((0usize..9000, 0usize..9000), 1..40)
        ) {
            let (mut w, mut r) = pair(4096);
            let mut sent = Vec::new();
            let mut got = Vec::new();
            let mut next = 0u8;
            for (write, read) in steps {
                let chunk: Vec<u8> = (0..write).map(|_| { next = next.wrapping_add(1); next }).collect();
                let n = w.write(&chunk).unwrap();
                prop_assert!(n <= 4096);
                sent.extend_from_slice(&chunk[..n]);
                // What did not fit is sent again next time, as a socket
                // writer would.
                next = next.wrapping_sub((write - n) as u8);
                let mut buf = vec![0; read];
                let k = r.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..k]);
            }
            let mut rest = vec![0; 8192];
            let k = r.read(&mut rest).unwrap();
            got.extend_from_slice(&rest[..k]);
            prop_assert_eq!(got, sent);
        }
    }

    #[test]
    fn a_full_ring_takes_nothing_until_read() {
        let (mut w, mut r) = pair(4096);
        assert_eq!(w.write(&[1; 5000]).unwrap(), 4096);
        assert_eq!(w.write(&[2; 10]).unwrap(), 0);
        let mut buf = [0; 100];
        assert_eq!(r.read(&mut buf).unwrap(), 100);
        assert_eq!(w.write(&[2; 200]).unwrap(), 100);
    }

    #[test]
    fn a_peer_claiming_impossible_positions_is_refused() {
        let (mut w, mut r) = pair(4096);
        // The writer's published tail, made absurd by the "peer".
        w.0.control().tail.0.store(1 << 20, SeqCst);
        let mut buf = [0; 8];
        assert!(matches!(r.read(&mut buf), Err(ChannelError::Corrupt(_))));
        w.0.control().tail.0.store(0, SeqCst);
        r.0.control().head.0.store(1 << 20, SeqCst);
        assert!(matches!(w.write(&[0; 8]), Err(ChannelError::Corrupt(_))));
    }

    #[test]
    fn a_sleeping_reader_wakes_for_a_write_from_another_thread() {
        let (mut w, mut r) = pair(4096);
        let t = std::thread::spawn(move || {
            let mut buf = [0; 4];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n > 0 {
                    return buf[..n].to_vec();
                }
                r.sleep(Duration::from_secs(10));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        w.write(b"ping").unwrap();
        assert_eq!(t.join().unwrap(), b"ping");
    }
}
