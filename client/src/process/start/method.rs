//! Which start method a child gets: [`StartMethod`], and the process-wide
//! default (Python's `set_start_method`, `get_start_method`,
//! `get_all_start_methods` in `multiprocessing.context`).
//!
//! The state lives here, in `process`, because starting a process reads it
//! and a child started by spawn or forkserver inherits it;
//! [`crate::context`] re-exports these names where Python users look for
//! them, and builds its [`Context`](crate::context::Context) facade on top.
//! See the [`context`](crate::context) module docs for how the default is
//! chosen.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use crate::process::INIT_CALLED;

/// How a child process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// Copy the parent with `fork(2)`; the child runs the target directly.
    /// Fast and runs any closure, but unsafe in a process with threads.
    Fork,
    /// Execute this program again (`/proc/self/exe`); the child gets the
    /// target and arguments over a socket. Needs [`crate::init`].
    Spawn,
    /// Ask a single-threaded server process, started once, to fork the
    /// child. Needs [`crate::init`].
    Forkserver,
}

impl StartMethod {
    /// Python's name: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }

    fn code(self) -> u8 {
        match self {
            StartMethod::Fork => 1,
            StartMethod::Spawn => 2,
            StartMethod::Forkserver => 3,
        }
    }

    fn from_code(code: u8) -> Option<StartMethod> {
        match code {
            1 => Some(StartMethod::Fork),
            2 => Some(StartMethod::Spawn),
            3 => Some(StartMethod::Forkserver),
            _ => None,
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the context functions (Python's `ValueError` and
/// `RuntimeError` from `get_context`/`set_start_method`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextError {
    /// The name is not a start method.
    #[error("cannot find context for {0:?}")]
    UnknownStartMethod(String),
    /// `set_start_method` after the start method was fixed, without
    /// `force`.
    #[error("context has already been set")]
    AlreadySet,
}

impl FromStr for StartMethod {
    type Err = ContextError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::Forkserver),
            other => Err(ContextError::UnknownStartMethod(other.to_owned())),
        }
    }
}

/// 0 = not fixed yet; otherwise a [`StartMethod::code`]. An atomic, not a
/// lock, so a forked child can never inherit it locked.
static ACTUAL: AtomicU8 = AtomicU8::new(0);

/// Sets the default start method (Python's `set_start_method`). Only once,
/// and only before the default was used, unless `force`.
pub fn set_start_method(method: StartMethod, force: bool) -> Result<(), ContextError> {
    let code = method.code();
    if force {
        ACTUAL.store(code, Ordering::SeqCst);
        return Ok(());
    }
    ACTUAL
        .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
        .map(|_| ())
        .map_err(|_| ContextError::AlreadySet)
}

/// The default start method, fixing it if it was not set (Python's
/// `get_start_method()`); see the [`context`](crate::context) module docs
/// for the choice.
pub fn get_start_method() -> StartMethod {
    let preferred = natural_default();
    match ACTUAL.compare_exchange(0, preferred.code(), Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => preferred,
        Err(code) => StartMethod::from_code(code).unwrap_or(preferred),
    }
}

/// The start method if one was fixed (Python's
/// `get_start_method(allow_none=True)`).
pub fn get_start_method_if_set() -> Option<StartMethod> {
    StartMethod::from_code(ACTUAL.load(Ordering::SeqCst))
}

/// Every start method this platform supports, the default first (Python's
/// `get_all_start_methods()`).
pub fn get_all_start_methods() -> Vec<StartMethod> {
    let first = get_start_method_if_set().unwrap_or_else(natural_default);
    let mut all = vec![first];
    for m in [
        StartMethod::Forkserver,
        StartMethod::Spawn,
        StartMethod::Fork,
    ] {
        if m != first {
            all.push(m);
        }
    }
    all
}

fn natural_default() -> StartMethod {
    if INIT_CALLED.load(Ordering::SeqCst) {
        StartMethod::Forkserver
    } else {
        StartMethod::Fork
    }
}

/// The method a `Process` without a context starts with.
pub(crate) fn default_start_method() -> StartMethod {
    let method = get_start_method();
    if method == StartMethod::Fork {
        warn_if_threaded();
    }
    method
}

/// Sets the start method a child inherited from its parent.
pub(crate) fn force_start_method(method: StartMethod) {
    ACTUAL.store(method.code(), Ordering::SeqCst);
}

fn warn_if_threaded() {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads > 1 && !INIT_CALLED.load(Ordering::SeqCst) {
        tracing::debug!(
            target: "multiprocessing",
            "starting a process with fork in a process running {threads} threads; call \
             multiprocessing::init() in main to default to forkserver"
        );
    }
}
