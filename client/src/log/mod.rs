//! Logging (Python's `multiprocessing.util.get_logger` / `log_to_stderr`),
//! built on `tracing`.
//!
//! The crate reports what Python's `multiprocessing` logger reports
//! (children starting and exiting, daemons terminated at exit, …) as
//! `tracing` events whose target starts with `multiprocessing`.
//! [`log_to_stderr`] installs a subscriber that prints those events as
//! Python does:
//!
//! ```text
//! [INFO/Process-1] child process calling self.run()
//! [INFO/MainProcess] process shutting down
//! ```
//!
//! Children inherit the level, so their lines appear too, each with its
//! own process name. A program with its own subscriber adds a
//! [`StderrLayer`] to it instead. [`get_logger`] gives a [`Logger`] whose
//! messages go the same way, with Python's seven levels.
//!
//! [`log_to_stderr`] and [`StderrLayer`] are the feature `log` (on by
//! default, over `tracing-subscriber`); without it the events still go to
//! whatever `tracing` subscriber the program installs.

#[cfg(feature = "log")]
mod stderr;

#[cfg(feature = "log")]
pub use stderr::{log_to_stderr, LoggingError, StderrLayer};

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Python's logging levels, including `multiprocessing`'s own `SUBDEBUG`
/// and `SUBWARNING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// 5: finer than debug (tracing's `TRACE`).
    SubDebug = 5,
    /// 10 (tracing's `DEBUG`).
    Debug = 10,
    /// 20 (tracing's `INFO`).
    Info = 20,
    /// 25: between info and warning.
    SubWarning = 25,
    /// 30 (tracing's `WARN`).
    Warning = 30,
    /// 40 (tracing's `ERROR`).
    Error = 40,
    /// 50.
    Critical = 50,
}

impl Level {
    /// Python's level name.
    pub fn name(self) -> &'static str {
        match self {
            Level::SubDebug => "SUBDEBUG",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::SubWarning => "SUBWARNING",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    pub(crate) fn from_value(v: u64) -> Level {
        match v {
            0..=5 => Level::SubDebug,
            6..=10 => Level::Debug,
            11..=20 => Level::Info,
            21..=25 => Level::SubWarning,
            26..=30 => Level::Warning,
            31..=40 => Level::Error,
            _ => Level::Critical,
        }
    }

    #[cfg(feature = "log")]
    pub(crate) fn from_tracing(level: &tracing::Level) -> Level {
        match *level {
            tracing::Level::TRACE => Level::SubDebug,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warning,
            _ => Level::Error,
        }
    }
}

/// 0: no threshold set (nothing printed); otherwise a [`Level`] value.
pub(crate) static THRESHOLD: AtomicU8 = AtomicU8::new(0);
/// Whether [`log_to_stderr`] installed our subscriber in this process.
pub(crate) static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The `multiprocessing` logger (Python's `get_logger()`).
pub fn get_logger() -> Logger {
    Logger { _private: () }
}

/// The level a child should inherit, if logging to stderr is on.
pub(crate) fn inherited_level() -> Option<u8> {
    let level = THRESHOLD.load(Ordering::SeqCst);
    (INSTALLED.load(Ordering::SeqCst) && level != 0).then_some(level)
}

/// Applies the parent's level in a child (a forked child already has the
/// subscriber; a re-executed one installs it).
pub(crate) fn inherit_level(level: u8) {
    let level = Level::from_value(u64::from(level));
    #[cfg(feature = "log")]
    let _ = log_to_stderr(level);
    #[cfg(not(feature = "log"))]
    THRESHOLD.store(level as u8, Ordering::SeqCst);
}

/// The `multiprocessing` logger: its messages are `tracing` events with
/// target `multiprocessing`, shown by [`log_to_stderr`] / [`StderrLayer`].
#[derive(Debug, Clone)]
pub struct Logger {
    _private: (),
}

impl Logger {
    /// Sets the threshold (Python's `logger.setLevel`).
    pub fn set_level(&self, level: Level) {
        THRESHOLD.store(level as u8, Ordering::SeqCst);
    }

    /// The threshold, if one was set.
    pub fn level(&self) -> Option<Level> {
        match THRESHOLD.load(Ordering::SeqCst) {
            0 => None,
            v => Some(Level::from_value(u64::from(v))),
        }
    }

    /// Whether a message at `level` would be shown.
    pub fn is_enabled_for(&self, level: Level) -> bool {
        enabled(level)
    }

    /// Logs `msg` at `level`.
    pub fn log(&self, level: Level, msg: impl fmt::Display) {
        if !enabled(level) {
            return;
        }
        let v = level as u8;
        match level {
            Level::SubDebug => tracing::trace!(target: "multiprocessing", mp_level = v, "{msg}"),
            Level::Debug => tracing::debug!(target: "multiprocessing", mp_level = v, "{msg}"),
            Level::Info | Level::SubWarning => {
                tracing::info!(target: "multiprocessing", mp_level = v, "{msg}")
            }
            Level::Warning => tracing::warn!(target: "multiprocessing", mp_level = v, "{msg}"),
            Level::Error | Level::Critical => {
                tracing::error!(target: "multiprocessing", mp_level = v, "{msg}")
            }
        }
    }

    /// Logs at `SUBDEBUG`.
    pub fn subdebug(&self, msg: impl fmt::Display) {
        self.log(Level::SubDebug, msg)
    }
    /// Logs at `DEBUG`.
    pub fn debug(&self, msg: impl fmt::Display) {
        self.log(Level::Debug, msg)
    }
    /// Logs at `INFO`.
    pub fn info(&self, msg: impl fmt::Display) {
        self.log(Level::Info, msg)
    }
    /// Logs at `SUBWARNING`.
    pub fn subwarning(&self, msg: impl fmt::Display) {
        self.log(Level::SubWarning, msg)
    }
    /// Logs at `WARNING`.
    pub fn warning(&self, msg: impl fmt::Display) {
        self.log(Level::Warning, msg)
    }
    /// Logs at `ERROR`.
    pub fn error(&self, msg: impl fmt::Display) {
        self.log(Level::Error, msg)
    }
    /// Logs at `CRITICAL`.
    pub fn critical(&self, msg: impl fmt::Display) {
        self.log(Level::Critical, msg)
    }
}

pub(crate) fn enabled(level: Level) -> bool {
    let threshold = THRESHOLD.load(Ordering::Relaxed);
    threshold != 0 && level as u8 >= threshold
}
