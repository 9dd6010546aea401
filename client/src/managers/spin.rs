//! Poll-before-sleep for a thread waiting on a manager's answer, and the
//! rule that learns, per connection, whether polling pays.
//!
//! No Python counterpart: CPython's `Connection.recv` always sleeps. Here a
//! waiting thread may poll its socket for a short while (yielding the CPU
//! between polls) before it sleeps in `read`. When the server runs on
//! another CPU, an answer caught by polling saves the sleep and the
//! wake-up, which cost more than the call itself. When the server shares
//! the caller's CPU, or more runnable processes than CPUs compete, the
//! polls only add system calls and take CPU time the server needs.
//!
//! So the choice is measured, not fixed: [`SpinPolicy`] keeps a moving
//! average of the round-trip time with and without polling, uses the
//! faster mode, and tries the other one every [`EXPLORE_EVERY`] calls so
//! that it notices when the situation changes (a process moved to another
//! CPU, the machine got busy).

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// One call in this many uses the mode that currently looks slower, to
/// keep its estimate fresh.
pub(crate) const EXPLORE_EVERY: u32 = 64;
/// Weight of a new sample in the moving averages (1/8).
const SHIFT: u32 = 3;
/// Samples are capped here, so that a call that blocks on purpose (a
/// lock held elsewhere, an empty queue) does not swamp the averages.
const SAMPLE_CAP_NS: u64 = 1_000_000;

/// Learns whether polling before sleeping shortens round trips.
#[derive(Debug)]
pub(crate) struct SpinPolicy {
    /// The longest poll; zero disables polling altogether.
    max: Duration,
    /// Moving average of a round trip in ns: `[without, with]` polling;
    /// zero until measured.
    average: [u64; 2],
    /// Calls started, for the exploration schedule.
    calls: u32,
}

impl SpinPolicy {
    /// A policy polling for at most `max`.
    pub(crate) fn new(max: Duration) -> Self {
        SpinPolicy {
            max,
            average: [0, 0],
            calls: 0,
        }
    }

    /// How long the next call should poll (zero: sleep at once).
    pub(crate) fn next(&mut self) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        self.calls = self.calls.wrapping_add(1);
        let [without, with] = self.average;
        // An unmeasured mode (0) looks fastest, so each is tried at once.
        let mut spin = with <= without;
        if self.calls % EXPLORE_EVERY == 0 {
            spin = !spin;
        }
        if spin {
            self.max
        } else {
            Duration::ZERO
        }
    }

    /// Records that a call which polled for up to `spin` took `elapsed`.
    pub(crate) fn record(&mut self, spin: Duration, elapsed: Duration) {
        if self.max.is_zero() {
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
    pub(crate) fn averages(&self) -> [u64; 2] {
        self.average
    }
}

/// Polls `fd` for readable data for up to `spin`, yielding the CPU between
/// polls; returns `true` once there is some (or the peer closed, or an
/// error is pending), `false` when `spin` has passed first.
pub(crate) fn spin_until_readable(fd: RawFd, spin: Duration) -> bool {
    if spin.is_zero() {
        return false;
    }
    let start = Instant::now();
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: poll(2) on one valid pollfd we own, zero timeout.
        let ready = unsafe { libc::poll(&mut fds, 1, 0) };
        if ready != 0 {
            return true;
        }
        if start.elapsed() >= spin {
            return false;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_micros(50);

    /// Feeds `calls` calls whose round trip is `with`/`without` µs and
    /// returns how many of the last `EXPLORE_EVERY` polled.
    fn settle(policy: &mut SpinPolicy, with: u64, without: u64, calls: u32) -> u32 {
        let mut polled = 0;
        for i in 0..calls {
            let spin = policy.next();
            let rt = if spin.is_zero() { without } else { with };
            policy.record(spin, Duration::from_micros(rt));
            if i >= calls - EXPLORE_EVERY && !spin.is_zero() {
                polled += 1;
            }
        }
        polled
    }

    #[test]
    fn polls_when_polling_is_faster() {
        let mut p = SpinPolicy::new(MAX);
        let polled = settle(&mut p, 20, 60, 1000);
        assert_eq!(polled, EXPLORE_EVERY - 1);
    }

    #[test]
    fn sleeps_when_polling_is_slower() {
        let mut p = SpinPolicy::new(MAX);
        let polled = settle(&mut p, 25, 15, 1000);
        assert_eq!(polled, 1);
    }

    #[test]
    fn follows_a_change() {
        let mut p = SpinPolicy::new(MAX);
        settle(&mut p, 20, 60, 1000);
        // The server moved to the caller's CPU: polling now costs more.
        let polled = settle(&mut p, 25, 15, 3000);
        assert_eq!(polled, 1);
        let [without, with] = p.averages();
        assert!(without < with, "{without} < {with}");
    }

    #[test]
    fn zero_never_polls_and_long_waits_are_capped() {
        let mut p = SpinPolicy::new(Duration::ZERO);
        assert_eq!(settle(&mut p, 1, 100, 200), 0);
        let mut p = SpinPolicy::new(MAX);
        p.record(MAX, Duration::from_secs(5));
        assert_eq!(p.averages()[1], SAMPLE_CAP_NS);
    }

    #[test]
    fn polling_sees_data_and_gives_up_without() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!spin_until_readable(
            b.as_raw_fd(),
            Duration::from_micros(200)
        ));
        assert!(!spin_until_readable(b.as_raw_fd(), Duration::ZERO));
        a.write_all(b"x").unwrap();
        assert!(spin_until_readable(b.as_raw_fd(), Duration::from_secs(30)));
    }
}
