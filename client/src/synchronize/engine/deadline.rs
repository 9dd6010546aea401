//! When a blocking call gives up. Every primitive sleeps in
//! [`mp_sys::futex`] for at most the time its [`Deadline`] leaves.

use std::time::{Duration, Instant};

/// When a blocking call gives up: never, or at an instant.
///
/// Python takes a timeout in seconds where a negative value means zero; a
/// [`Duration`] cannot be negative, and a timeout too large to add to the
/// clock means "never" instead of overflowing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// Block until the condition holds.
    Never,
    /// Give up at this instant.
    At(Instant),
}

impl Deadline {
    /// The deadline `timeout` from now (`None`: block forever).
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Never,
            Some(d) => match Instant::now().checked_add(d) {
                Some(at) => Deadline::At(at),
                None => Deadline::Never,
            },
        }
    }

    /// Time left, `None` for "forever"; zero once passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
        }
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        matches!(self.remaining(), Some(d) if d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_mean_never() {
        assert!(matches!(
            Deadline::after(Some(Duration::MAX)),
            Deadline::Never
        ));
        assert!(Deadline::after(Some(Duration::ZERO)).expired());
        assert!(!Deadline::after(None).expired());
    }
}
