//! Process objects (Python's `multiprocessing.process`): a [`Process`] runs
//! a target in a child OS process started by `fork`, `spawn` or
//! `forkserver` (see [`crate::context`]).
//!
//! ```no_run
//! use multiprocessing::Process;
//!
//! fn greet(name: String, times: u32) {
//!     for _ in 0..times {
//!         println!("hello {name}");
//!     }
//! }
//!
//! fn main() -> Result<(), multiprocessing::ProcessError> {
//!     multiprocessing::init(); // first: a spawned child runs from here
//!     let p = Process::new(greet, ("bob".to_string(), 2));
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(p.exitcode()?, Some(0));
//!     Ok(())
//! }
//! ```
//!
//! # Passing objects to a child
//!
//! The arguments of [`Process::new`] reach the child under every start
//! method:
//!
//! * under `fork` they are **moved** into the child as they are (nothing is
//!   serialized; descriptors and memory mappings are inherited by the copy);
//! * under `spawn` and `forkserver` they are serialized with serde (CBOR)
//!   and rebuilt in the child. A type that is a file descriptor at bottom (a
//!   `Connection`, a lock's shared memory, a `SharedMemory` block) embeds a
//!   [`SharedFd`](crate::reduction::SharedFd) in its serde form: the
//!   descriptors travel beside the bytes with `SCM_RIGHTS`.
//!
//! Either way the parent's copy of the arguments is dropped once the child
//! has started (Python deletes `_args` after `start()` too), so the parent
//! no longer holds, say, the child's end of a pipe.
//!
//! # Layout
//!
//! * this file: the [`Process`] handle; `handles`: the handles of the
//!   current and parent processes; `repr`: its `Display`; `sentinel`:
//!   [`Sentinel`];
//! * `current`: process-wide state, [`current_process`],
//!   [`parent_process`], [`active_children`], [`cpu_count`], [`AuthKey`];
//! * `target`: [`Target`], [`TargetResult`] and how a re-executed child
//!   finds its function; `run`: [`Run`], a process defined by a type
//!   (Python's subclass overriding `run()`), and [`Process::from_run`];
//! * `start/`: the three start methods and the payload spawned children
//!   read; `bootstrap`: the child's side; `popen`: the parent's handle on
//!   a child; `sys`: the Linux calls underneath.

pub(crate) mod at_fork;
mod bootstrap;
pub(crate) mod code_offset;
mod current;
mod error;
mod handles;
#[cfg(feature = "asyncio")]
mod join_async;
mod popen;
mod repr;
mod run;
mod sentinel;
pub(crate) mod start;
/// The checked Linux calls, shared with `connection` (see [`crate::sys`]).
pub(crate) use crate::sys;
pub(crate) mod target;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use current::{
    active_children, cpu_count, current_process, parent_process, AuthKey, CpuCountError,
};
pub use error::ProcessError;
pub use run::Run;
pub use sentinel::Sentinel;
pub use target::{Target, TargetResult};

pub(crate) use current::INIT_CALLED;
pub(crate) use start::forkserver::FORKSERVER_FLAG;
pub(crate) use start::spawn::SPAWN_FLAG;

use bootstrap::{ChildSpec, Lifeline};
use popen::Popen;
use start::method;
pub(crate) use start::method::{get_start_method, StartMethod};
use target::{ClosureTarget, FnTarget, Launch};

/// A child process running a target (Python's `multiprocessing.Process`).
///
/// Make one with [`Process::new`] (a `fn` item or non-capturing closure
/// plus serializable arguments: runs under every start method),
/// [`Process::from_run`] (a serializable value whose type implements
/// [`Run`], Python's subclass overriding `run()`: every start method) or
/// [`Process::from_fn`] (any closure: `fork` only), then [`start`] and
/// [`join`] it. The start method is the default one
/// ([`crate::context::get_start_method`]) unless the process came from a
/// [`Context`](crate::context::Context).
///
/// A `Process` is a handle: clones refer to the same process, as Python
/// references do, and it can be shared between threads. Dropping every
/// handle of a running child neither kills nor waits for it; the child
/// stays in [`active_children`] until it has finished and been reaped.
///
/// [`start`]: Process::start
/// [`join`]: Process::join
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    state: Mutex<State>,
}

/// Which process a handle stands for: the rules of `start`, `join`, … differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A child this process makes and starts.
    Child,
    /// The process itself (`current_process()`).
    Current,
    /// The parent (`parent_process()`).
    Parent,
}

struct State {
    name: String,
    /// Python's `_identity`: the name's numbers, `[]` in the main process.
    identity: Vec<u32>,
    daemon: bool,
    authkey: AuthKey,
    /// Python's `_parent_pid`: the pid that made this object (for a child),
    /// or the parent's pid (for the current and parent processes). Only
    /// the maker may start or join a child.
    creator: Option<u32>,
    /// Pinned by a `Context`; `None` resolves the default at `start`.
    method: Option<StartMethod>,
    /// Taken by `start`.
    target: Option<Box<dyn Launch>>,
    /// Set by a successful `start`; an `Arc` so waiting needs no lock.
    popen: Option<Arc<Popen>>,
    started: bool,
    closed: bool,
    /// For the parent handle: a pidfd that becomes readable when it exits
    /// (`None` if it had already exited when we looked).
    parent_pidfd: Option<Arc<OwnedFd>>,
}

impl Process {
    /// A process that will call `target` with `args` unpacked:
    /// `Process::new(worker, (1, "x".to_string()))` runs `worker(1, "x")`.
    ///
    /// Works under every start method: the arguments are serialized (CBOR)
    /// for `spawn` and `forkserver` children, moved as they are into a
    /// `fork` child. They may contain file descriptors as
    /// [`SharedFd`](crate::reduction::SharedFd)s.
    ///
    /// `target` must be a `fn` item or a closure that captures nothing
    /// (a zero-sized type): anything else is refused at compile time,
    /// because a re-executed child could not rebuild it. Use
    /// [`Process::from_fn`] for a capturing closure under `fork`:
    ///
    /// ```compile_fail,E0080
    /// let n = 5u32; // captured: the closure is not zero-sized
    /// let p = multiprocessing::Process::new(move || println!("{n}"), ());
    /// ```
    pub fn new<F, Args>(target: F, args: Args) -> Process
    where
        F: Target<Args>,
        Args: Serialize + DeserializeOwned + Send + 'static,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "Process::new needs a fn item or a non-capturing closure (a zero-sized type); \
                 use Process::from_fn for a capturing closure (fork start method only)"
            )
        };
        Process::child(Box::new(FnTarget { f: target, args }), None, "Process")
    }

    /// A process that will call any closure; it runs only under the `fork`
    /// start method (`start` under another is
    /// [`ProcessError::TargetNotPortable`]).
    pub fn from_fn<C, R>(target: C) -> Process
    where
        C: FnOnce() -> R + Send + 'static,
        R: TargetResult,
    {
        Process::child(Box::new(ClosureTarget(target)), None, "Process")
    }

    /// Pins the start method (what a [`Context`](crate::context::Context)
    /// does).
    pub(crate) fn with_method(self, method: StartMethod) -> Process {
        self.state().method = Some(method);
        self
    }

    /// A new child handle named `{class}-N1:N2:…` (Python's
    /// `type(self).__name__` and the identity).
    fn child(target: Box<dyn Launch>, method: Option<StartMethod>, class: &str) -> Process {
        let (identity, daemon, authkey) = {
            let mut table = current::table();
            table.counter += 1;
            let n = table.counter;
            let me = table.current.state();
            let mut identity = me.identity.clone();
            identity.push(n);
            (identity, me.daemon, me.authkey.clone())
        };
        let name = format!(
            "{class}-{}",
            identity
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(":")
        );
        Process::make(
            Kind::Child,
            State {
                name,
                identity,
                daemon,
                authkey,
                creator: Some(std::process::id()),
                method,
                target: Some(target),
                popen: None,
                started: false,
                closed: false,
                parent_pidfd: None,
            },
        )
    }

    fn make(kind: Kind, state: State) -> Process {
        Process {
            inner: Arc::new(Inner {
                kind,
                state: Mutex::new(state),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the name before `start` (builder form of [`set_name`]).
    ///
    /// [`set_name`]: Process::set_name
    pub fn with_name(self, name: impl Into<String>) -> Process {
        self.set_name(name);
        self
    }

    /// Sets the daemon flag before `start` (builder form of
    /// [`set_daemon`]); ignored on a started process.
    ///
    /// [`set_daemon`]: Process::set_daemon
    pub fn with_daemon(self, daemon: bool) -> Process {
        let _ = self.set_daemon(daemon);
        self
    }

    /// The process's name, used in logging and `Display`; by default
    /// `Process-N1:N2:…`, one number per generation (the type's name
    /// instead of `Process` for [`Process::from_run`]).
    pub fn name(&self) -> String {
        if self.inner.kind == Kind::Current {
            return current::current_name().to_string();
        }
        self.state().name.clone()
    }

    /// Renames the process. Any time is allowed, as in Python: the name of
    /// a started child changes only in this handle, the current process's
    /// name changes what its log lines show.
    pub fn set_name(&self, name: impl Into<String>) {
        let name = name.into();
        if self.inner.kind == Kind::Current {
            current::set_current_name(&name);
        }
        self.state().name = name;
    }

    /// Whether the process is daemonic: terminated when its parent exits,
    /// and not allowed to start children.
    pub fn daemon(&self) -> bool {
        self.state().daemon
    }

    /// Sets the daemon flag; only before `start`.
    pub fn set_daemon(&self, daemon: bool) -> Result<(), ProcessError> {
        let mut st = self.state();
        if st.started {
            return Err(ProcessError::AlreadyRunning("the daemon flag"));
        }
        st.daemon = daemon;
        Ok(())
    }

    /// The authentication key: the parent's by default.
    pub fn authkey(&self) -> AuthKey {
        self.state().authkey.clone()
    }

    /// Sets the key the child will have; only before `start`, or on the
    /// current process (which changes the key its own children inherit).
    pub fn set_authkey(&self, key: impl Into<AuthKey>) -> Result<(), ProcessError> {
        let mut st = self.state();
        if st.started && self.inner.kind != Kind::Current {
            return Err(ProcessError::AlreadyRunning("the authkey"));
        }
        st.authkey = key.into();
        Ok(())
    }

    /// The process id: `None` before `start`.
    pub fn pid(&self) -> Result<Option<u32>, ProcessError> {
        let st = self.state();
        if st.closed {
            return Err(ProcessError::Closed);
        }
        Ok(match self.inner.kind {
            Kind::Current => Some(std::process::id()),
            Kind::Parent => st.creator,
            Kind::Child => st.popen.as_ref().map(|p| p.pid() as u32),
        })
    }

    /// The exit code: `None` while running or before `start`; 0 on success,
    /// 1 after a panic or an `Err`, `-N` when killed by signal `N`.
    pub fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        let popen = {
            let st = self.state();
            if st.closed {
                return Err(ProcessError::Closed);
            }
            match &st.popen {
                Some(p) => p.clone(),
                None => return Ok(None),
            }
        };
        popen.poll()
    }

    /// Whether the process is running. Reaps a finished child.
    pub fn is_alive(&self) -> Result<bool, ProcessError> {
        match self.inner.kind {
            Kind::Current => return Ok(true),
            Kind::Parent => {
                let fd = self.state().parent_pidfd.clone();
                return match fd {
                    Some(fd) => Ok(!sys::wait_readable(fd.as_fd(), Some(Duration::ZERO))
                        .map_err(|e| ProcessError::os("polling the parent", e))?),
                    None => Ok(false),
                };
            }
            Kind::Child => {}
        }
        let popen = {
            let st = self.state();
            self.check_child(&st, "test")?;
            match &st.popen {
                Some(p) => p.clone(),
                None => return Ok(false),
            }
        };
        if popen.poll()?.is_some() {
            self.forget();
            return Ok(false);
        }
        Ok(true)
    }

    fn check_child(&self, st: &State, what: &'static str) -> Result<(), ProcessError> {
        if st.closed {
            return Err(ProcessError::Closed);
        }
        if st.creator != Some(std::process::id()) {
            return Err(ProcessError::NotAChild(what));
        }
        Ok(())
    }

    fn started_popen(&self, what: &'static str) -> Result<Arc<Popen>, ProcessError> {
        let st = self.state();
        match self.inner.kind {
            Kind::Child => {}
            Kind::Current if what == "join" => return Err(ProcessError::JoinSelf),
            _ => return Err(ProcessError::NotAChild(what)),
        }
        self.check_child(&st, what)?;
        st.popen.clone().ok_or(ProcessError::NotStarted)
    }

    /// Drops this child from the active children.
    fn forget(&self) {
        current::table()
            .children
            .retain(|c| !Arc::ptr_eq(&c.inner, &self.inner));
    }

    /// Used by the table's cleanup: `false` once finished (and reaped).
    pub(crate) fn poll_for_cleanup(&self) -> bool {
        let popen = self.state().popen.clone();
        match popen {
            Some(p) => matches!(p.poll(), Ok(None)),
            None => false,
        }
    }

    /// Starts the child. At most once per process object.
    pub fn start(&self) -> Result<(), ProcessError> {
        if self.inner.kind != Kind::Child {
            return Err(ProcessError::AlreadyStarted);
        }
        let mut table = current::table();
        if table.current.daemon() {
            return Err(ProcessError::DaemonChildren);
        }
        table.cleanup();
        let (mut launch, spec, method) = {
            let mut st = self.state();
            if st.started {
                return Err(ProcessError::AlreadyStarted);
            }
            self.check_child(&st, "start")?;
            let method = st.method.unwrap_or_else(method::default_start_method);
            if method != StartMethod::Fork
                && !current::INIT_CALLED.load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(ProcessError::InitNotCalled(method));
            }
            let spec = ChildSpec {
                name: st.name.clone(),
                identity: st.identity.clone(),
                daemon: st.daemon,
                authkey: st.authkey.as_bytes().to_vec(),
                parent_pid: std::process::id(),
                parent_name: current::current_name().to_string(),
                start_method: method::get_start_method_if_set(),
                log_level: crate::log::inherited_level(),
                lifeline: if method == StartMethod::Forkserver || sys::is_main_thread() {
                    Lifeline::DeathSignal
                } else {
                    Lifeline::WatchParent
                },
            };
            st.started = true;
            (st.target.take(), spec, method)
        };
        let result = match (method, launch.as_ref()) {
            (_, None) => Err(ProcessError::AlreadyStarted),
            (StartMethod::Fork, Some(_)) => {
                let (t, r) = start::fork::start(table, &spec, &mut launch);
                table = t;
                r
            }
            (StartMethod::Spawn, Some(l)) => start::spawning::portable(&**l, method, &spec.authkey)
                .and_then(|p| start::spawn::start(&mut table, &spec, &p)),
            (StartMethod::Forkserver, Some(l)) => {
                start::spawning::portable(&**l, method, &spec.authkey)
                    .and_then(|p| start::forkserver::start(&mut table, &spec, &p))
            }
        };
        let mut st = self.state();
        match result {
            Ok(popen) => {
                tracing::debug!(target: "multiprocessing", "started {} as pid {} by {method}", spec.name, popen.pid());
                st.popen = Some(Arc::new(popen));
                drop(st);
                table.children.push(self.clone());
                bootstrap::register_exit_hook();
                Ok(())
            }
            Err(e) => {
                st.started = false;
                st.target = launch;
                Err(e)
            }
        }
    }

    /// Waits until the process finishes (Python's `join()`).
    pub fn join(&self) -> Result<(), ProcessError> {
        self.join_inner(None).map(|_| ())
    }

    /// Waits at most `timeout` for the process to finish; returns whether
    /// it did (Python's `join(timeout)`, then checking `exitcode`).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, ProcessError> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(&self, timeout: Option<Duration>) -> Result<bool, ProcessError> {
        if self.inner.kind == Kind::Parent {
            let fd = self.state().parent_pidfd.clone();
            return match fd {
                Some(fd) => sys::wait_readable(fd.as_fd(), timeout)
                    .map_err(|e| ProcessError::os("waiting for the parent", e)),
                None => Ok(true),
            };
        }
        let popen = self.started_popen("join")?;
        let done = popen.wait(timeout)?.is_some();
        if done {
            self.forget();
        }
        Ok(done)
    }

    /// Asks the process to stop with `SIGTERM` (Python's `terminate()`).
    /// Nothing happens if it has already finished.
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.started_popen("terminate")?.send_signal(libc::SIGTERM)
    }

    /// Kills the process with `SIGKILL` (Python's `kill()`).
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.started_popen("kill")?.send_signal(libc::SIGKILL)
    }

    /// A descriptor that becomes readable when the process ends (Python's
    /// `sentinel`), for `poll`, `epoll` or `connection::wait`. An owned
    /// duplicate: it stays valid after `close()`.
    pub fn sentinel(&self) -> Result<Sentinel, ProcessError> {
        let fd = match self.inner.kind {
            Kind::Parent => match self.state().parent_pidfd.clone() {
                Some(fd) => fd.try_clone(),
                None => return Err(ProcessError::NotStarted),
            },
            _ => self.started_popen("watch")?.sentinel().try_clone_to_owned(),
        };
        fd.map(Sentinel)
            .map_err(|e| ProcessError::os("duplicating the sentinel", e))
    }

    /// Releases the process's resources (pidfd, sockets). Errors if it is
    /// still running; afterwards most methods return
    /// [`ProcessError::Closed`].
    pub fn close(&self) -> Result<(), ProcessError> {
        if self.inner.kind != Kind::Child {
            return Err(ProcessError::NotAChild("close"));
        }
        let mut st = self.state();
        if let Some(popen) = &st.popen {
            if popen.poll()?.is_none() {
                return Err(ProcessError::StillRunning);
            }
        }
        st.popen = None;
        st.target = None;
        st.closed = true;
        drop(st);
        self.forget();
        Ok(())
    }
}

/// Dispatches a child started by `spawn` or the forkserver; see
/// [`crate::init`].
pub(crate) fn dispatch_child() {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    let child: fn(Option<std::ffi::OsString>) -> ! = match first.as_ref().and_then(|a| a.to_str()) {
        Some(SPAWN_FLAG) => start::spawn::child_main,
        Some(FORKSERVER_FLAG) => start::forkserver::server_main,
        _ => return,
    };
    let arg = args.next();
    // A panic must not unwind into the program's `main`, which must not run
    // in a child.
    let _ = std::panic::catch_unwind(move || child(arg));
    bootstrap::abort_child()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::get_context;

    fn noop() {}

    // Unit tests run under libtest, whose main never calls init().
    #[test]
    fn reexecuting_methods_need_init() {
        for method in [StartMethod::Spawn, StartMethod::Forkserver] {
            let p = get_context(method).process(noop, ());
            assert!(matches!(p.start(), Err(ProcessError::InitNotCalled(m)) if m == method));
            // The failed start left the process startable.
            assert!(p.to_string().contains(" initial"), "{p}");
        }
    }

    #[test]
    fn handles_can_be_shared_between_threads() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Process>();
    }

    #[test]
    fn names_count_up_and_settings_stick() {
        let a = Process::new(noop, ());
        let b = Process::new(noop, ()).with_name("worker").with_daemon(true);
        let na: u32 = a.name().trim_start_matches("Process-").parse().unwrap();
        assert_eq!(b.name(), "worker");
        assert!(b.daemon() && !a.daemon());
        assert!(na >= 1);
        b.set_authkey(b"abc".to_vec()).unwrap();
        assert_eq!(b.authkey().as_bytes(), b"abc");
        assert_eq!(a.authkey(), current_process().authkey());
        assert_eq!(a.pid().unwrap(), None);
        assert_eq!(a.exitcode().unwrap(), None);
        assert!(!a.is_alive().unwrap());
    }
}
