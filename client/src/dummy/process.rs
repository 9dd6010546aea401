//! [`Process`] on a thread (Python's `multiprocessing.dummy.DummyProcess`),
//! with [`current_process`] and [`active_children`] over such threads.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use crate::pool::wait_until;
use crate::process::ProcessError;

type Target = Box<dyn FnOnce() + Send>;

struct State {
    name: String,
    target: Option<Target>,
    started: bool,
    finished: bool,
    panicked: bool,
    thread: Option<ThreadId>,
    parent: Option<ThreadId>,
}

struct Inner {
    state: Mutex<State>,
    done: Condvar,
    daemon: AtomicBool,
}

/// A thread with [`Process`](crate::Process)'s API (Python's
/// `DummyProcess`). Clones refer to the same thread.
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

thread_local! {
    static CURRENT: RefCell<Option<Process>> = const { RefCell::new(None) };
}

fn children() -> MutexGuard<'static, Vec<Process>> {
    static CHILDREN: OnceLock<Mutex<Vec<Process>>> = OnceLock::new();
    CHILDREN
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

impl Process {
    /// A process that will run `target` on a new thread; named
    /// `Thread-N` as Python's threads are.
    pub fn new(target: impl FnOnce() + Send + 'static) -> Process {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        Process::make(format!("Thread-{n}"), Some(Box::new(target)), false)
    }

    fn make(name: String, target: Option<Target>, started: bool) -> Process {
        Process {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    name,
                    target,
                    started,
                    finished: false,
                    panicked: false,
                    thread: None,
                    parent: None,
                }),
                done: Condvar::new(),
                daemon: AtomicBool::new(false),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the name (builder form).
    pub fn with_name(self, name: impl Into<String>) -> Process {
        self.set_name(name);
        self
    }

    /// The name.
    pub fn name(&self) -> String {
        self.state().name.clone()
    }

    /// Renames the process.
    pub fn set_name(&self, name: impl Into<String>) {
        self.state().name = name.into();
    }

    /// The daemon flag (kept for the API; a thread never outlives the
    /// program either way).
    pub fn daemon(&self) -> bool {
        self.inner.daemon.load(Ordering::SeqCst)
    }

    /// Sets the daemon flag; only before `start`.
    pub fn set_daemon(&self, daemon: bool) -> Result<(), ProcessError> {
        if self.state().started {
            return Err(ProcessError::AlreadyRunning("the daemon flag"));
        }
        self.inner.daemon.store(daemon, Ordering::SeqCst);
        Ok(())
    }

    /// Starts the thread. At most once.
    pub fn start(&self) -> Result<(), ProcessError> {
        let (target, name) = {
            let mut st = self.state();
            if st.started {
                return Err(ProcessError::AlreadyStarted);
            }
            st.started = true;
            st.parent = Some(std::thread::current().id());
            (st.target.take(), st.name.clone())
        };
        let me = self.clone();
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            me.state().thread = Some(std::thread::current().id());
            CURRENT.with(|c| *c.borrow_mut() = Some(me.clone()));
            let ok = match target {
                Some(t) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(t)).is_ok(),
                None => true,
            };
            let mut st = me.state();
            st.finished = true;
            st.panicked = !ok;
            drop(st);
            me.inner.done.notify_all();
        });
        match spawned {
            Ok(_) => {
                children().push(self.clone());
                Ok(())
            }
            Err(e) => {
                self.state().started = false;
                Err(ProcessError::os("starting a thread", e))
            }
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool, ProcessError> {
        let st = self.state();
        if !st.started {
            return Err(ProcessError::NotStarted);
        }
        if st.thread == Some(std::thread::current().id()) {
            return Err(ProcessError::JoinSelf);
        }
        Ok(wait_until(&self.inner.done, st, timeout, |s| s.finished).1)
    }

    /// Waits until the thread finishes.
    pub fn join(&self) -> Result<(), ProcessError> {
        self.wait(None).map(drop)
    }

    /// Waits at most `timeout`; whether the thread finished.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, ProcessError> {
        self.wait(Some(timeout))
    }

    /// Whether the thread is running.
    pub fn is_alive(&self) -> bool {
        let st = self.state();
        st.started && !st.finished
    }

    /// `None` before `start` and while running; then 0, or 1 if the
    /// target panicked (Python's dummy gives 0 once finished).
    pub fn exitcode(&self) -> Option<i32> {
        let st = self.state();
        match (st.finished, st.panicked) {
            (false, _) => None,
            (true, false) => Some(0),
            (true, true) => Some(1),
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        let status = match (st.started, st.finished) {
            (false, _) => "initial",
            (true, false) => "started",
            (true, true) => "stopped",
        };
        write!(f, "<DummyProcess({}, {status})>", st.name)
    }
}

/// The process standing for the calling thread (Python's dummy
/// `current_process`, i.e. `threading.current_thread()`): the
/// [`Process`] that started it, or a handle named after the thread
/// (`MainThread` for the main one).
pub fn current_process() -> Process {
    if let Some(p) = CURRENT.with(|c| c.borrow().clone()) {
        return p;
    }
    let t = std::thread::current();
    let name = match t.name() {
        Some("main") => "MainThread".to_string(),
        Some(n) => n.to_string(),
        None => format!("{:?}", t.id()),
    };
    let p = Process::make(name, None, true);
    p.state().thread = Some(t.id());
    CURRENT.with(|c| *c.borrow_mut() = Some(p.clone()));
    p
}

/// The processes the calling thread started that are still running
/// (Python's dummy `active_children`).
pub fn active_children() -> Vec<Process> {
    let me = std::thread::current().id();
    let mut all = children();
    all.retain(Process::is_alive);
    all.iter()
        .filter(|p| p.state().parent == Some(me))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_behaves_like_a_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let p = Process::new(move || {
            tx.send(current_process().name()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        })
        .with_name("worker");
        assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
        assert_eq!(p.exitcode(), None);
        p.start().unwrap();
        assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
        assert_eq!(rx.recv().unwrap(), "worker");
        assert!(active_children().iter().any(|c| c.name() == "worker"));
        p.join().unwrap();
        assert!(!p.is_alive());
        assert_eq!(p.exitcode(), Some(0));
        assert!(!active_children().iter().any(|c| c.name() == "worker"));
        let bad = Process::new(|| panic!("boom"));
        bad.start().unwrap();
        assert!(bad.join_timeout(Duration::from_secs(30)).unwrap());
        assert_eq!(bad.exitcode(), Some(1));
    }
}
