//! Log lines a peer can provoke, rate-limited.
//!
//! Every connection that fails its handshake used to log a line; a peer
//! opening eleven thousand connections a second then wrote tens of
//! thousands of lines a second, drowning what an operator needs and
//! filling disks. Lines a peer can cause go through [`info`]: per kind,
//! the first [`BURST`] of each [`WINDOW`] are written, the rest are
//! counted, and the first line of the next window that writes says how
//! many were left out (as `suppressed`). The count also goes to
//! `mpserver_log_lines_suppressed_total`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock;

/// Lines of one kind written per window.
pub const BURST: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Lines left out since the server started, every kind together.
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// One kind's window.
struct Window {
    started: Instant,
    written: u32,
    left_out: u64,
}

fn windows() -> &'static Mutex<HashMap<&'static str, Window>> {
    static WINDOWS: std::sync::OnceLock<Mutex<HashMap<&'static str, Window>>> =
        std::sync::OnceLock::new();
    WINDOWS.get_or_init(Mutex::default)
}

/// Writes the line `write` makes, unless `kind` has had its fill in this
/// window; before it, a line saying how many of `kind` were left out.
pub fn info(kind: &'static str, write: impl FnOnce()) {
    let now = Instant::now();
    let left_out = {
        let mut windows = lock(windows());
        let w = windows.entry(kind).or_insert(Window {
            started: now,
            written: 0,
            left_out: 0,
        });
        if now.saturating_duration_since(w.started) >= WINDOW {
            w.started = now;
            w.written = 0;
        }
        if w.written >= BURST {
            w.left_out += 1;
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        w.written += 1;
        std::mem::take(&mut w.left_out)
    };
    if left_out > 0 {
        tracing::info!(
            kind,
            suppressed = left_out,
            "similar lines were left out to keep the log readable"
        );
    }
    write();
}

/// Lines left out so far.
pub fn suppressed() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_written_and_the_rest_counted() {
        let before = suppressed();
        let mut written = 0;
        for _ in 0..(BURST + 25) {
            info("quiet-log-test", || written += 1);
        }
        assert_eq!(written, BURST);
        assert!(suppressed() - before >= 25);
    }
}
