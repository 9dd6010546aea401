//! A process defined by a type: [`Run`], the counterpart of Python's
//! subclass-and-override (`class Worker(Process): def run(self): ...`),
//! and [`Process::from_run`].
//!
//! The worker value is the target's one argument: `from_run(w)` is
//! `Process::new(run_worker::<W>, (w,))`, with `run_worker` a `fn` item
//! generic over the type. So it reaches the child exactly as any target's
//! arguments do — moved under `fork`, serialized (CBOR, descriptors
//! beside it) under `spawn` and `forkserver` — and a re-executed child
//! finds `run_worker::<W>` by the same code offset (`code_offset.rs`).

use std::any::type_name;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::target::{FnTarget, TargetResult};
use super::Process;

/// A type whose value is a process's work (Python's `Process` subclass
/// overriding `run()`): the fields are what Python keeps on `self`,
/// [`run`](Run::run) is the body, and [`Process::from_run`] makes the
/// process.
///
/// `run` takes the value by value: it is called once, in the child, and
/// may move its fields out. What it returns decides the exit code, as a
/// target's result does ([`TargetResult`]): `()` gives 0, `Err(e)` gives 1
/// with `e` on stderr, an `i32` is the code; a panic gives 1.
///
/// Under `spawn` and `forkserver` the value crosses to a re-executed
/// child, so `from_run` needs it to be a serde type (descriptors inside
/// it travel as [`SharedFd`](crate::reduction::SharedFd)s). A type that
/// cannot be serde runs under `fork` with
/// [`Process::from_fn`]`(move || worker.run())`.
///
/// ```
/// use multiprocessing::{get_context, Queue, Run, StartMethod};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Squarer {
///     upto: u64,
///     results: Queue<u64>,
/// }
///
/// impl Run for Squarer {
///     type Output = Result<(), multiprocessing::queues::QueueError>;
///
///     fn run(self) -> Self::Output {
///         for i in 0..self.upto {
///             self.results.put(&(i * i))?;
///         }
///         Ok(())
///     }
/// }
///
/// // `fork` here; `spawn` and `forkserver` (the default once `main` calls
/// // `multiprocessing::init()`) send the value to the child with serde.
/// let ctx = get_context(StartMethod::Fork);
/// let results = Queue::new(0)?;
/// let p = ctx.process_run(Squarer { upto: 4, results: results.clone() });
/// assert!(p.name().starts_with("Squarer-")); // Python's subclass naming
/// p.start()?;
/// let got: Vec<u64> = (0..4).map(|_| results.get()).collect::<Result<_, _>>()?;
/// p.join()?;
/// assert_eq!(got, [0, 1, 4, 9]);
/// assert_eq!(p.exitcode()?, Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Run: Send + 'static {
    /// What `run` returns; decides the exit code (see [`TargetResult`]).
    type Output: TargetResult;

    /// The process's work (Python's `run()`), called once in the child.
    fn run(self) -> Self::Output;
}

/// The target of every `from_run` process: a `fn` item per worker type,
/// so a re-executed child can find it.
fn run_worker<W: Run>(worker: W) -> W::Output {
    worker.run()
}

impl Process {
    /// A process that will call `worker.run()` in the child (Python's
    /// `Worker(...)` for `class Worker(Process)`); it runs under every
    /// start method. See [`Run`].
    ///
    /// Its default name is the type's name and the process's numbers,
    /// `Squarer-1`, as Python names a subclass's processes
    /// (`type(self).__name__`); `with_name`, `with_daemon` and the other
    /// settings work as on any [`Process`]. A [`Context`](crate::Context)
    /// pins the start method: [`Context::process_run`](crate::Context::process_run).
    pub fn from_run<W>(worker: W) -> Process
    where
        W: Run + Serialize + DeserializeOwned,
    {
        let target = FnTarget {
            f: run_worker::<W>,
            args: (worker,),
        };
        Process::child(Box::new(target), None, class_name::<W>())
    }
}

/// The last path segment of `W`'s name, without generic arguments:
/// `my_crate::jobs::Worker<u8>` is `Worker` (Python's
/// `type(self).__name__`).
fn class_name<W>() -> &'static str {
    let full = type_name::<W>();
    let path = full.split('<').next().unwrap_or(full);
    path.rsplit("::").next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::start::method::StartMethod;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    struct Worker<T> {
        value: T,
    }

    impl<T: Send + 'static> Run for Worker<T> {
        type Output = ();
        fn run(self) {}
    }

    #[test]
    fn a_run_type_names_its_process_as_python_names_a_subclass() {
        assert_eq!(class_name::<Worker<u8>>(), "Worker");
        assert_eq!(class_name::<u8>(), "u8");
        let p = Process::from_run(Worker { value: 1u8 });
        let n: u32 = p
            .name()
            .strip_prefix("Worker-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}", p.name()));
        assert!(n >= 1);
        let q = Process::from_run(Worker { value: () })
            .with_name("custom")
            .with_daemon(true);
        assert_eq!(q.name(), "custom");
        assert!(q.daemon());
    }

    #[test]
    fn a_run_type_needs_init_for_reexecuting_methods() {
        // Unit tests run under libtest, whose main never calls init().
        let p = Process::from_run(Worker { value: 0u32 }).with_method(StartMethod::Spawn);
        assert!(matches!(
            p.start(),
            Err(crate::ProcessError::InitNotCalled(StartMethod::Spawn))
        ));
    }
}
