//! The two tokio runtimes every async end-to-end test runs under: a
//! current-thread one (where a blocked runtime thread hangs the test) and
//! a multi-thread one.

use std::future::Future;
use std::time::Duration;

use tokio::time::timeout;

/// A small deterministic generator (xorshift) of numbers and delays, for
/// tests that drop futures at varied points.
pub struct Jitter(pub u64);

impl Jitter {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next delay, under `max` microseconds.
    pub fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.next_u64() % max)
    }
}

/// The longest one run of an async test may take before it fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `test` under a current-thread and then a two-worker multi-thread
/// runtime, each within [`LIMIT`].
pub fn on_both_runtimes<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    current.block_on(async { timeout(LIMIT, test()).await.expect("timed out") });
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a multi-thread runtime");
    multi.block_on(async { timeout(LIMIT, test()).await.expect("timed out") });
}
