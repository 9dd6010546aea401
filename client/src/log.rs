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

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;

use crate::process::current_process_name;

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

    fn from_value(v: u64) -> Level {
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

    fn from_tracing(level: &tracing::Level) -> Level {
        match *level {
            tracing::Level::TRACE => Level::SubDebug,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warning,
            _ => Level::Error,
        }
    }
}

/// Could not install the stderr subscriber.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// The program already installed a global `tracing` subscriber; add a
    /// [`StderrLayer`] to it instead.
    #[error(
        "a global tracing subscriber is already installed; add multiprocessing::log::StderrLayer \
         to it instead"
    )]
    SubscriberAlreadySet,
}

/// 0: no threshold set (nothing printed); otherwise a [`Level`] value.
static THRESHOLD: AtomicU8 = AtomicU8::new(0);
/// Whether [`log_to_stderr`] installed our subscriber in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The `multiprocessing` logger (Python's `get_logger()`).
pub fn get_logger() -> Logger {
    Logger { _private: () }
}

/// Prints the crate's log events at `level` and above on stderr as
/// `[LEVEL/ProcessName] message` (Python's `log_to_stderr(level)`), in this
/// process and in the children it starts from now on.
///
/// Calling it again only changes the level.
pub fn log_to_stderr(level: Level) -> Result<Logger, LoggingError> {
    THRESHOLD.store(level as u8, Ordering::SeqCst);
    if !INSTALLED.load(Ordering::SeqCst) {
        let subscriber = tracing_subscriber::registry().with(StderrLayer::new());
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| LoggingError::SubscriberAlreadySet)?;
        INSTALLED.store(true, Ordering::SeqCst);
    }
    Ok(get_logger())
}

/// The level a child should inherit, if logging to stderr is on.
pub(crate) fn inherited_level() -> Option<u8> {
    let level = THRESHOLD.load(Ordering::SeqCst);
    (INSTALLED.load(Ordering::SeqCst) && level != 0).then_some(level)
}

/// Applies the parent's level in a child (a forked child already has the
/// subscriber; a re-executed one installs it).
pub(crate) fn inherit_level(level: u8) {
    let _ = log_to_stderr(Level::from_value(u64::from(level)));
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

fn enabled(level: Level) -> bool {
    let threshold = THRESHOLD.load(Ordering::Relaxed);
    threshold != 0 && level as u8 >= threshold
}

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// A `tracing-subscriber` layer printing the crate's events as
/// `[LEVEL/ProcessName] message key=value…`, filtered by the
/// [`Logger`]'s level. Events of other targets are ignored (not filtered
/// out for other layers).
pub struct StderrLayer {
    sink: Option<Sink>,
}

impl StderrLayer {
    /// A layer writing to stderr.
    pub fn new() -> Self {
        StderrLayer { sink: None }
    }

    /// A layer writing to `writer` instead (tests, log files).
    pub fn with_writer(writer: impl Write + Send + 'static) -> Self {
        StderrLayer {
            sink: Some(Arc::new(Mutex::new(Box::new(writer)))),
        }
    }
}

impl Default for StderrLayer {
    fn default() -> Self {
        StderrLayer::new()
    }
}

impl<S: Subscriber> Layer<S> for StderrLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("multiprocessing") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = fields
            .level
            .map(Level::from_value)
            .unwrap_or_else(|| Level::from_tracing(meta.level()));
        if !enabled(level) {
            return;
        }
        let line = format!(
            "[{}/{}] {}{}\n",
            level.name(),
            current_process_name(),
            fields.message,
            fields.rest
        );
        match &self.sink {
            // One write call per line, so lines of concurrent processes
            // sharing stderr do not interleave.
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Some(sink) => {
                let _ = sink
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .write_all(line.as_bytes());
            }
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    level: Option<u64>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "mp_level" {
            self.level = Some(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_look_like_pythons() {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::registry().with(StderrLayer::with_writer(buf.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let logger = get_logger();
            logger.set_level(Level::Info);
            logger.info("hello");
            logger.subwarning("careful");
            logger.critical("bad");
            logger.debug("hidden");
            tracing::info!(target: "other", "not ours");
            tracing::warn!(target: "multiprocessing", pid = 7u64, "raw event");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out,
            "[INFO/MainProcess] hello\n[SUBWARNING/MainProcess] careful\n\
             [CRITICAL/MainProcess] bad\n[WARNING/MainProcess] raw event pid=7\n"
        );
    }
}
