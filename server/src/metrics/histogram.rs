//! The call-latency histogram: fixed buckets of atomic counters.
//!
//! `prometheus-client`'s own histogram takes a lock per observation; this
//! one is a bucket search over a short constant array and two relaxed
//! atomic adds, so it can sit on every call. Counts are kept per bucket;
//! the encoder makes them cumulative (as Prometheus wants) at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from 50 µs (a dict lookup on
/// loopback) to 10 s (a long wait on a lock or queue); slower calls land in
/// `+Inf`.
pub const BOUNDS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram.
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    /// Sum of every observation, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// A consistent-enough read of a histogram for one scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Sum of observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound, count in this bucket alone)`, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The buckets, count and sum.
    pub fn snapshot(&self) -> Snapshot {
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        Snapshot {
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_every_observation_once() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), BOUNDS.len() + 1);
        // 10 µs and exactly 50 µs are both in the first bucket (`le`).
        assert_eq!(s.buckets[0], (0.000_05, 2));
        assert_eq!(s.buckets[5], (0.002_5, 0));
        assert_eq!(s.buckets[6], (0.005, 1));
        assert_eq!(s.buckets[BOUNDS.len() - 1], (10.0, 0));
        assert_eq!(s.buckets[BOUNDS.len()], (f64::INFINITY, 1));
        assert!((s.sum - 60.003_06).abs() < 1e-9, "{}", s.sum);
    }
}
