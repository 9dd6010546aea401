//! [`PoolBuilder`]: the settings of a [`Pool`] beyond its size (Python's
//! `Pool(processes, initializer, initargs, maxtasksperchild, context)`).

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::core::Core;
use super::func::{PoolFn, TaskResult};
use super::record::{init_entry, EntryRef, InitEntry};
use super::worker::Initializer;
use super::{Pool, PoolError};
use crate::process::{get_start_method, StartMethod};

/// Settings of a [`Pool`] beyond its size (Python's `Pool(processes,
/// initializer, initargs, maxtasksperchild, context)`).
pub struct PoolBuilder {
    pub(super) processes: Option<usize>,
    pub(super) maxtasksperchild: Option<u64>,
    pub(super) method: Option<StartMethod>,
    pub(super) initializer: Option<MakeInitializer>,
}

/// Encodes the initializer once the start method is known.
type MakeInitializer = Box<dyn FnOnce(StartMethod) -> Result<Initializer, PoolError>>;

impl PoolBuilder {
    /// The number of workers (default: [`cpu_count`](crate::cpu_count)).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Each worker exits after this many tasks (chunks) and is replaced
    /// with a fresh one (Python's `maxtasksperchild`).
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.maxtasksperchild = Some(n);
        self
    }

    /// The context whose start method starts the workers (default: the
    /// default context): a [`Context`](crate::Context), or just its
    /// [`StartMethod`].
    pub fn context(mut self, ctx: impl Into<StartMethod>) -> Self {
        self.method = Some(ctx.into());
        self
    }

    /// Each worker calls `f(args…)` when it starts (Python's
    /// `initializer`/`initargs`). A failing initializer (panic or `Err`)
    /// makes the worker exit, printing the error (hence `Display`) on its
    /// stderr, and the pool starts another, as in Python;
    /// when three rounds of new workers all fail it and no live worker got
    /// past it, the pool gives up: calls fail with
    /// [`PoolError::Broken`] instead of hanging.
    pub fn initializer<F, Args>(mut self, f: F, args: Args) -> Self
    where
        F: PoolFn<Args> + Copy,
        Args: Serialize + DeserializeOwned + 'static,
        <F::Output as TaskResult>::Err: Display,
    {
        const { assert_zero_sized::<F>() };
        let _ = f;
        self.initializer = Some(Box::new(move |method| {
            let entry: InitEntry = init_entry::<F, Args>;
            let entry = EntryRef::new::<F, Args>(entry as usize, method)?;
            let mut bytes = Vec::new();
            ciborium::into_writer(&args, &mut bytes).map_err(|e| PoolError::Transfer {
                index: 0,
                message: format!("cannot encode the initializer's arguments: {e}"),
            })?;
            Ok(Initializer { entry, args: bytes })
        }));
        self
    }

    /// Starts the workers.
    pub fn build(self) -> Result<Pool, PoolError> {
        let method = self.method.unwrap_or_else(get_start_method);
        let processes = match self.processes {
            Some(n) => n,
            None => crate::cpu_count().unwrap_or(1),
        };
        let initializer = match self.initializer {
            Some(make) => Some(make(method)?),
            None => None,
        };
        let (core, threads) = Core::start(method, processes, self.maxtasksperchild, initializer)?;
        Ok(Pool::started(core, threads))
    }
}

/// Compile-time guard: a function a worker must rebuild from nothing has
/// to be zero-sized.
pub(crate) const fn assert_zero_sized<F>() {
    assert!(
        std::mem::size_of::<F>() == 0,
        "a process pool needs a fn item or a non-capturing closure (a zero-sized type); \
         use a ThreadPool for capturing closures"
    );
}
