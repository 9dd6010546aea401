//! What a pool runs: [`PoolFn`] (a function called with an unpacked
//! argument tuple, for `apply`/`starmap`), [`TaskResult`] (how a task's
//! return value becomes a result or an error), the default `chunksize`
//! rule, and the panic-catching call shared by process and thread pools.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::panic::{self, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use super::{NoError, PoolError};

/// A function a pool can call with an argument tuple: implemented for
/// every `Fn(A1, …, An) -> R` (n ≤ 8) with `Args = (A1, …, An)`.
/// `pool.apply(add, (1, 2))` calls `add(1, 2)`, as Python's
/// `pool.apply(add, (1, 2))`; `starmap` calls it once per tuple.
pub trait PoolFn<Args>: Send + Sync + 'static {
    /// What the function returns; see [`TaskResult`].
    type Output: TaskResult;
    /// Calls the function with the unpacked arguments.
    fn call(&self, args: Args) -> Self::Output;
}

macro_rules! impl_pool_fn {
    ($($a:ident),*) => {
        impl<Func, Ret, $($a,)*> PoolFn<($($a,)*)> for Func
        where
            Func: Fn($($a),*) -> Ret + Send + Sync + 'static,
            Ret: TaskResult,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn call(&self, args: ($($a,)*)) -> Ret {
                let ($($a,)*) = args;
                self($($a),*)
            }
        }
    };
}

impl_pool_fn!();
impl_pool_fn!(A1);
impl_pool_fn!(A1, A2);
impl_pool_fn!(A1, A2, A3);
impl_pool_fn!(A1, A2, A3, A4);
impl_pool_fn!(A1, A2, A3, A4, A5);
impl_pool_fn!(A1, A2, A3, A4, A5, A6);
impl_pool_fn!(A1, A2, A3, A4, A5, A6, A7);
impl_pool_fn!(A1, A2, A3, A4, A5, A6, A7, A8);

/// How a task's return value becomes its result: `Result<T, E>` gives `T`
/// or, for `Err(e)`, a failed task whose [`PoolError::Task`] carries that
/// `e` (the counterpart of a Python task raising); a plain value (numbers,
/// `bool`, `char`, `String`, `()`, `Vec`, `Option`, maps, sets, tuples up
/// to four) is the result itself, and its task cannot fail but by
/// panicking: its error type is [`NoError`]. Return `Result<T, E>` for any
/// other `T` (with `E = NoError` if nothing can fail).
///
/// A process pool sends `E` back from the worker, so there it must be a
/// serde type, like the result.
pub trait TaskResult {
    /// The result's type.
    type Ok;
    /// The task's own error type.
    type Err;
    /// The result, or the task's error.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
}

impl<T, E> TaskResult for Result<T, E> {
    type Ok = T;
    type Err = E;
    fn into_result(self) -> Result<T, E> {
        self
    }
}

macro_rules! plain_results {
    ($($t:ty),*) => {
        $(impl TaskResult for $t {
            type Ok = $t;
            type Err = NoError;
            fn into_result(self) -> Result<$t, NoError> {
                Ok(self)
            }
        })*
    };
}

plain_results!(
    (),
    bool,
    char,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    f32,
    f64,
    String
);

macro_rules! generic_results {
    ($([$($g:ident),*] $t:ty),*) => {
        $(impl<$($g),*> TaskResult for $t {
            type Ok = $t;
            type Err = NoError;
            fn into_result(self) -> Result<$t, NoError> {
                Ok(self)
            }
        })*
    };
}

generic_results!(
    [T] Vec<T>,
    [T] Option<T>,
    [K, V, S] HashMap<K, V, S>,
    [K, V] BTreeMap<K, V>,
    [T, S] HashSet<T, S>,
    [T] BTreeSet<T>,
    [A, B] (A, B),
    [A, B, C] (A, B, C),
    [A, B, C, D] (A, B, C, D)
);

/// The `chunksize` Python's `map` uses when none is given: the input split
/// into about four chunks per worker.
pub(crate) fn default_chunksize(len: usize, workers: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let per = workers.max(1) * 4;
    len.div_ceil(per)
}

/// The chunksize to use: the one given (checked), or Python's default
/// for `len` items over `workers` (at least 1).
pub(crate) fn chunksize_or_default(
    len: usize,
    chunksize: Option<usize>,
    workers: usize,
) -> Result<usize, PoolError> {
    match chunksize {
        Some(c) => check_chunksize(c),
        None => Ok(default_chunksize(len, workers).max(1)),
    }
}

/// Checks an explicit `chunksize` (Python: `ValueError` below 1).
pub(crate) fn check_chunksize(chunksize: usize) -> Result<usize, PoolError> {
    if chunksize == 0 {
        return Err(PoolError::ValueError("Chunksize must be 1+, not 0".into()));
    }
    Ok(chunksize)
}

/// How one task failed, as it travels from a worker to the parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Failure<E> {
    /// The function returned `Err`.
    Error(E),
    /// The function panicked.
    Panic {
        message: String,
        location: Option<String>,
    },
}

impl<E> Failure<E> {
    /// The error of the task at `index`.
    pub(crate) fn at(self, index: usize) -> PoolError<E> {
        match self {
            Failure::Error(error) => PoolError::Task { index, error },
            Failure::Panic { message, location } => PoolError::Panic {
                index,
                message,
                location,
            },
        }
    }
}

impl<E: Display> Failure<E> {
    /// A line saying what went wrong (for an initializer, whose failure
    /// is reported on stderr, not to a caller).
    pub(crate) fn describe(&self) -> String {
        match self {
            Failure::Error(e) => e.to_string(),
            Failure::Panic {
                message,
                location: Some(at),
            } => format!("panicked at {at}: {message}"),
            Failure::Panic { message, .. } => format!("panicked: {message}"),
        }
    }
}

thread_local! {
    /// Where the last panic on this thread happened, when the pool's
    /// worker hook is installed (the payload alone does not say).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook of a worker process: a task's panic becomes
/// that task's error, reported to the caller, so it is recorded rather
/// than printed (Python's workers do not print a task's traceback either).
pub(crate) fn install_quiet_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let at = info.location().map(ToString::to_string);
        LAST_PANIC.with(|p| *p.borrow_mut() = at);
    }));
}

/// Runs one task, turning a panic or an `Err` into its [`Failure`].
pub(crate) fn run_task<R: TaskResult>(f: impl FnOnce() -> R) -> Result<R::Ok, Failure<R::Err>> {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.into_result().map_err(Failure::Error),
        Err(payload) => Err(Failure::Panic {
            message: panic_message(payload.as_ref()),
            location: LAST_PANIC.with(|p| p.borrow_mut().take()),
        }),
    }
}

/// A panic's message, as the standard library's hook prints it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunksize_follows_python() {
        // divmod(len, workers * 4), rounded up.
        assert_eq!(default_chunksize(0, 2), 0);
        assert_eq!(default_chunksize(1, 2), 1);
        assert_eq!(default_chunksize(8, 2), 1);
        assert_eq!(default_chunksize(9, 2), 2);
        assert_eq!(default_chunksize(20_000, 2), 2_500);
        assert!(check_chunksize(0).is_err());
    }

    #[test]
    fn outcomes_of_values_errors_and_panics() {
        fn add(a: i32, b: i32) -> i32 {
            a + b
        }
        assert_eq!(PoolFn::call(&add, (2, 3)), 5);
        assert_eq!(run_task(|| 7u8), Ok(7));
        assert_eq!(
            run_task(|| Err::<u8, _>(42u64)),
            Err(Failure::Error(42u64)),
            "the function's own error, typed"
        );
        match run_task(|| -> u8 { panic!("boom {}", 1) }) {
            Err(Failure::Panic { message, .. }) => assert_eq!(message, "boom 1"),
            other => panic!("{other:?}"),
        }
        let e: PoolError<u64> = Failure::Error(3).at(9);
        assert_eq!(e, PoolError::Task { index: 9, error: 3 });
    }
}
