//! What a pool runs: [`PoolFn`] (a function called with an unpacked
//! argument tuple, for `apply`/`starmap`), [`TaskResult`] (how a task's
//! return value becomes a result or an error), the default `chunksize`
//! rule, and the panic-catching call shared by process and thread pools.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::panic::{self, AssertUnwindSafe};

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
/// or, for `Err(e)`, a failed task whose message is `e`'s `Display` (the
/// counterpart of a Python task raising); a plain value (numbers, `bool`,
/// `char`, `String`, `()`, `Vec`, `Option`, maps, sets, tuples up to four)
/// is the result itself. Return `Result<T, E>` for any other `T`.
pub trait TaskResult {
    /// The result's type.
    type Ok;
    /// The result, or the error message of a failed task.
    fn into_outcome(self) -> Result<Self::Ok, String>;
}

impl<T, E: Display> TaskResult for Result<T, E> {
    type Ok = T;
    fn into_outcome(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

macro_rules! plain_results {
    ($($t:ty),*) => {
        $(impl TaskResult for $t {
            type Ok = $t;
            fn into_outcome(self) -> Result<$t, String> {
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
            fn into_outcome(self) -> Result<$t, String> {
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
) -> Result<usize, super::PoolError> {
    match chunksize {
        Some(c) => check_chunksize(c),
        None => Ok(default_chunksize(len, workers).max(1)),
    }
}

/// Checks an explicit `chunksize` (Python: `ValueError` below 1).
pub(crate) fn check_chunksize(chunksize: usize) -> Result<usize, super::PoolError> {
    if chunksize == 0 {
        return Err(super::PoolError::ValueError(
            "Chunksize must be 1+, not 0".into(),
        ));
    }
    Ok(chunksize)
}

thread_local! {
    /// The report of the last panic on this thread, when the pool's
    /// worker hook is installed (it has the location; the payload alone
    /// does not).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook of a worker process: a task's panic becomes
/// that task's error, reported to the caller, so it is recorded rather
/// than printed (Python's workers do not print a task's traceback either).
pub(crate) fn install_quiet_panic_hook() {
    panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
}

/// Runs one task, turning a panic or an `Err` into the error message.
pub(crate) fn run_task<R: TaskResult>(f: impl FnOnce() -> R) -> Result<R::Ok, String> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.into_outcome(),
        Err(payload) => {
            if let Some(report) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
                return Err(report);
            }
            Err(panic_message(payload.as_ref()))
        }
    }
}

/// `panicked: ` and a panic's message, when it has one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
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
            run_task(|| Err::<u8, _>("bad input")),
            Err("bad input".to_string())
        );
        let e = run_task(|| -> u8 { panic!("boom") }).unwrap_err();
        assert!(e.contains("boom"), "{e}");
    }
}
