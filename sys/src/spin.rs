//! Poll-before-sleep for a thread waiting on a socket — a client waiting
//! for a manager's answer, or a server's dedicated reader waiting for the
//! next request — and the rule that learns, per connection, whether
//! polling pays for a client.
//!
//! No Python counterpart: CPython's `Connection.recv` always sleeps. Here a
//! waiting thread may poll its socket for a short while (yielding the CPU
//! between polls) before it sleeps in `read`. When the server runs on
//! another CPU, an answer caught by polling saves the sleep and the
//! wake-up, which cost more than the call itself. When the server shares
//! the caller's CPU, or more runnable processes than CPUs compete, the
//! polls only add system calls and take CPU time the server needs.
//!
//! So for a client the choice is measured, not fixed: [`SpinPolicy`]
//! keeps a moving average of the round-trip time with and without polling
//! and uses the faster mode. Once every [`EPOCH`] calls it runs [`PROBE`] calls in the
//! other mode, so that it notices when the situation changes (a process
//! moved to another CPU, the machine got busy). A probe is a run, not a
//! single call, and its first [`SETTLE`] calls are not counted: which
//! mode is faster depends on where the scheduler puts the two processes,
//! and it only moves them after a few calls of the new pattern (a waiting
//! client that sleeps draws the server to its CPU; one that polls keeps
//! it away).
//!
//! Polling yields the CPU between polls; a yield that takes long means
//! another process was waiting for this CPU — the machine has more
//! runnable processes than CPUs, and polling only takes CPU time from them
//! (the server among them). Then the policy stops polling for an epoch,
//! whatever the round trips say.
//!
//! Through a shared-memory channel ([`crate::channel`]) a poll is a load,
//! not a system call, and the yield between two polls gives a busy CPU to
//! whoever wants it; so there a yield that ran another thread does not
//! stop the poll ([`Contention::Continues`]), and a client waiting for an
//! answer always polls rather than learning whether to.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Calls between the starts of two probes of the other mode.
pub const EPOCH: u32 = 1024;
/// Calls in one probe.
pub const PROBE: u32 = 32;
/// Calls after a change of mode whose round trips are not counted.
pub const SETTLE: u32 = 16;
/// Weight of a new sample in the moving averages (1/8).
const SHIFT: u32 = 3;
/// A yield longer than this ran another process: the CPU is contended.
pub const CONTENDED_YIELD: Duration = Duration::from_micros(5);
/// Samples are capped here, so that a call that blocks on purpose (a
/// lock held elsewhere, an empty queue) does not swamp the averages.
const SAMPLE_CAP_NS: u64 = 1_000_000;

/// Learns whether polling before sleeping shortens round trips.
#[derive(Debug)]
pub struct SpinPolicy {
    /// The longest poll; zero disables polling altogether.
    max: Duration,
    /// Moving average of a round trip in ns: `[without, with]` polling;
    /// zero until measured.
    average: [u64; 2],
    /// Calls started, for the probe schedule.
    calls: u32,
    /// Calls left without polling (a contended CPU was seen).
    quiet_left: u32,
}

impl SpinPolicy {
    /// A policy polling for at most `max`.
    pub fn new(max: Duration) -> Self {
        SpinPolicy {
            max,
            average: [0, 0],
            calls: 0,
            quiet_left: 0,
        }
    }

    /// Whether polling looks faster now (an unmeasured mode looks
    /// fastest, so each is tried early).
    fn best_is_spin(&self) -> bool {
        let [without, with] = self.average;
        with <= without
    }

    /// The longest poll.
    #[inline]
    pub fn max(&self) -> Duration {
        self.max
    }

    /// How long the next call should poll (zero: sleep at once).
    #[inline]
    pub fn next_spin(&mut self) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        self.calls = self.calls.wrapping_add(1);
        if self.quiet_left > 0 {
            self.quiet_left -= 1;
            return Duration::ZERO;
        }
        let probing = self.calls % EPOCH < PROBE;
        if self.best_is_spin() != probing {
            self.max
        } else {
            Duration::ZERO
        }
    }

    /// Records that polling found the CPU contended: no polling for the
    /// next [`EPOCH`] calls.
    #[inline]
    pub fn contended(&mut self) {
        self.quiet_left = EPOCH;
    }

    /// Records that a call which polled for up to `spin` took `elapsed`.
    #[inline]
    pub fn record(&mut self, spin: Duration, elapsed: Duration) {
        if self.max.is_zero() {
            return;
        }
        // Calls just after a change of mode measure the transition.
        let pos = self.calls % EPOCH;
        if pos < SETTLE || (PROBE..PROBE + SETTLE).contains(&pos) {
            return;
        }
        let sample = u64::try_from(elapsed.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, SAMPLE_CAP_NS);
        let slot = &mut self.average[usize::from(!spin.is_zero())];
        *slot = if *slot == 0 {
            sample
        } else {
            *slot - (*slot >> SHIFT) + (sample >> SHIFT)
        };
    }

    /// The current averages, `[without, with]` polling, in ns.
    #[cfg(test)]
    fn averages(&self) -> [u64; 2] {
        self.average
    }
}

/// How a poll before sleeping ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spun {
    /// No polling was asked for.
    Skipped,
    /// There was data (or the peer closed, or an error was pending) at
    /// the first look: polling was not needed.
    Immediate,
    /// Data (or a close, or an error) came while polling.
    Ready,
    /// The time ran out first.
    TimedOut,
    /// A yield ran another process: polling takes CPU from others.
    Contended,
}

/// Polls `fd` for readable data for up to `spin`, yielding the CPU between
/// polls; a yield that ran another thread ends it ([`Spun::Contended`]).
pub fn spin_until_readable(fd: RawFd, spin: Duration) -> Spun {
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    spin_until(spin, Contention::Stops, || {
        // SAFETY: poll(2) on one valid pollfd we own, zero timeout.
        unsafe { libc::poll(&mut fds, 1, 0) != 0 }
    })
}

/// Whether polling goes on when a yield ran another thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contention {
    /// It stops: each poll of a socket is a system call, which on a CPU
    /// others wait for is time taken from them.
    Stops,
    /// It goes on: a poll of shared memory is a load, and the yield
    /// between two gave the others the CPU. On a busy machine this is the
    /// cheapest way to wait: the peer finds this side awake and need not
    /// wake it, and this side never sleeps.
    Continues,
}

/// Polls `ready` for up to `spin`, yielding the CPU between polls: the
/// rule of [`spin_until_readable`] for any source (a shared-memory
/// channel's ring, say), with `contention` saying what a yield that ran
/// another thread does.
pub fn spin_until(spin: Duration, contention: Contention, mut ready: impl FnMut() -> bool) -> Spun {
    if spin.is_zero() {
        return Spun::Skipped;
    }
    let start = Instant::now();
    let mut first = true;
    loop {
        if ready() {
            return if first { Spun::Immediate } else { Spun::Ready };
        }
        first = false;
        let before = Instant::now();
        if before - start >= spin {
            return Spun::TimedOut;
        }
        std::thread::yield_now();
        if contention == Contention::Stops && before.elapsed() > CONTENDED_YIELD {
            return Spun::Contended;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_micros(50);

    /// Feeds `calls` calls whose round trip is `with`/`without` µs and
    /// returns how many of the last `EPOCH` polled.
    fn settle(policy: &mut SpinPolicy, with: u64, without: u64, calls: u32) -> u32 {
        let mut polled = 0;
        for i in 0..calls {
            let spin = policy.next_spin();
            let rt = if spin.is_zero() { without } else { with };
            policy.record(spin, Duration::from_micros(rt));
            if i >= calls - EPOCH && !spin.is_zero() {
                polled += 1;
            }
        }
        polled
    }

    #[test]
    fn polls_when_polling_is_faster() {
        let mut p = SpinPolicy::new(MAX);
        assert_eq!(settle(&mut p, 20, 60, 5 * EPOCH), EPOCH - PROBE);
    }

    #[test]
    fn sleeps_when_polling_is_slower() {
        let mut p = SpinPolicy::new(MAX);
        assert_eq!(settle(&mut p, 25, 15, 5 * EPOCH), PROBE);
    }

    #[test]
    fn follows_a_change() {
        let mut p = SpinPolicy::new(MAX);
        settle(&mut p, 20, 60, 5 * EPOCH);
        // The server moved to the caller's CPU: polling now costs more.
        assert_eq!(settle(&mut p, 25, 15, 5 * EPOCH), PROBE);
        let [without, with] = p.averages();
        assert!(without < with, "{without} < {with}");
    }

    #[test]
    fn transitions_are_not_counted() {
        let mut p = SpinPolicy::new(MAX);
        settle(&mut p, 20, 60, 5 * EPOCH);
        let before = p.averages();
        // Calls right after a switch of mode leave the averages alone.
        p.calls = EPOCH - 1;
        for _ in 0..SETTLE {
            let spin = p.next_spin();
            p.record(spin, Duration::from_millis(1));
        }
        assert_eq!(p.averages(), before);
    }

    #[test]
    fn contention_stops_polling_for_an_epoch() {
        let mut p = SpinPolicy::new(MAX);
        settle(&mut p, 20, 60, 5 * EPOCH);
        // Past the probe, so the next call would poll.
        p.calls += PROBE;
        assert!(!p.next_spin().is_zero());
        p.contended();
        let polled = (0..EPOCH - 1).filter(|_| !p.next_spin().is_zero()).count();
        assert_eq!(polled, 0);
        // Then the round trips decide again.
        assert_eq!(settle(&mut p, 20, 60, 2 * EPOCH), EPOCH - PROBE);
    }

    #[test]
    fn zero_never_polls_and_long_waits_are_capped() {
        let mut p = SpinPolicy::new(Duration::ZERO);
        assert_eq!(settle(&mut p, 1, 100, 2 * EPOCH), 0);
        let mut p = SpinPolicy::new(MAX);
        p.calls = SETTLE;
        p.record(MAX, Duration::from_secs(5));
        assert_eq!(p.averages()[1], SAMPLE_CAP_NS);
    }

    #[test]
    fn polling_sees_data_and_gives_up_without() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let idle = spin_until_readable(b.as_raw_fd(), Duration::from_micros(200));
        // Another process may take the CPU during a yield on a busy machine.
        assert!(matches!(idle, Spun::TimedOut | Spun::Contended), "{idle:?}");
        assert_eq!(
            spin_until_readable(b.as_raw_fd(), Duration::ZERO),
            Spun::Skipped
        );
        a.write_all(b"x").unwrap();
        assert_eq!(
            spin_until_readable(b.as_raw_fd(), Duration::from_secs(30)),
            Spun::Immediate
        );
        // Data that comes while polling.
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            a.write_all(b"x").unwrap();
        });
        let spun = spin_until_readable(b.as_raw_fd(), Duration::from_secs(30));
        // A busy machine may run another process during a yield.
        assert!(matches!(spun, Spun::Ready | Spun::Contended), "{spun:?}");
        writer.join().unwrap();
    }
}
