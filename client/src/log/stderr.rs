//! Printing the crate's log events on stderr as Python's `log_to_stderr`
//! does (feature `log`): a `tracing-subscriber` layer, and the function
//! that installs it.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;

use super::{enabled, get_logger, Level, Logger, INSTALLED, THRESHOLD};
use crate::process_name::current_name as current_process_name;

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
