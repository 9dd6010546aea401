//! The public call API shared by [`Pool`](super::Pool) and
//! [`ThreadPool`](super::ThreadPool): Python's `apply`, `map`, `starmap`,
//! `imap` families, written once over each pool's private `*_inner`
//! methods. The pools differ only in bounds: a process pool needs
//! zero-sized (`Copy`) functions and serde values and errors, a thread
//! pool only `Send` ones.
//!
//! Every call generic over a task function returns the `PoolError<E>` of
//! that function's error type `E` (see [`TaskResult`](super::TaskResult)),
//! submission errors included, so that `?` works throughout a function
//! returning that error.

/// Implements the call API for `$pool`, whose functions also satisfy
/// `$copy` and whose arguments and results satisfy `$val`.
macro_rules! pool_api {
    ($pool:ident, [$($copy:tt)*], [$($val:tt)*]) => {
        impl $pool {
    /// Calls `f(args…)` on the pool and waits for the result (Python's
    /// `apply`). A function returning `Result<T, E>` gives `T`, or its
    /// `Err(e)` as [`PoolError::Task`] with that `e`.
    pub fn apply<F, Args>(&self, f: F, args: Args) -> Result<ApplyOutput<F, Args>, PoolError<ApplyError<F, Args>>>
    where
        F: PoolFn<Args> $($copy)*,
        Args: $($val)*,
        ApplyOutput<F, Args>: $($val)*,
        ApplyError<F, Args>: $($val)*,
    {
        self.apply_inner(f, args, None, None)?.get()
    }

    /// Calls `f(args…)` on the pool; the result comes later (Python's
    /// `apply_async`).
    pub fn apply_async<F, Args>(
        &self,
        f: F,
        args: Args,
    ) -> Result<AsyncResult<ApplyOutput<F, Args>, ApplyError<F, Args>>, PoolError<ApplyError<F, Args>>>
    where
        F: PoolFn<Args> $($copy)*,
        Args: $($val)*,
        ApplyOutput<F, Args>: $($val)*,
        ApplyError<F, Args>: $($val)*,
    {
        self.apply_inner(f, args, None, None)
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` (called
    /// with the value) and `error_callback` (called with the error), run
    /// on a thread of the pool (a process pool's result thread, the
    /// thread that ran the task in a thread pool) before the result is
    /// marked ready. They must not block on the pool's other results.
    pub fn apply_async_with<F, Args, C, X>(
        &self,
        f: F,
        args: Args,
        callback: C,
        error_callback: X,
    ) -> Result<AsyncResult<ApplyOutput<F, Args>, ApplyError<F, Args>>, PoolError<ApplyError<F, Args>>>
    where
        F: PoolFn<Args> $($copy)*,
        Args: $($val)*,
        ApplyOutput<F, Args>: $($val)*,
        ApplyError<F, Args>: $($val)*,
        C: FnOnce(&ApplyOutput<F, Args>) + Send + 'static,
        X: FnOnce(&PoolError<ApplyError<F, Args>>) + Send + 'static,
    {
        self.apply_inner(
            f,
            args,
            Some(Box::new(callback)),
            Some(Box::new(error_callback)),
        )
    }

    /// Calls `f(item)` for every item on the pool; the results in input
    /// order, or the first error (Python's `map`). The input is split into
    /// chunks of about `len / (4 × processes)` items.
    pub fn map<F, A, R, I>(&self, f: F, iterable: I) -> Result<Vec<R::Ok>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
    {
        self.map_inner(f, iterable.into_iter().collect(), None, None, None)?
            .get()
    }

    /// [`map`](Self::map) with chunks of `chunksize` items.
    pub fn map_chunked<F, A, R, I>(
        &self,
        f: F,
        iterable: I,
        chunksize: usize,
    ) -> Result<Vec<R::Ok>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
    {
        self.map_inner(
            f,
            iterable.into_iter().collect(),
            Some(chunksize),
            None,
            None,
        )?
        .get()
    }

    /// [`map`](Self::map) without waiting (Python's `map_async`).
    pub fn map_async<F, A, R, I>(&self, f: F, iterable: I) -> Result<MapResult<R::Ok, R::Err>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
    {
        self.map_inner(f, iterable.into_iter().collect(), None, None, None)
    }

    /// [`map_async`](Self::map_async) with Python's `chunksize`,
    /// `callback` (called with the list) and `error_callback`.
    pub fn map_async_with<F, A, R, I, C, X>(
        &self,
        f: F,
        iterable: I,
        chunksize: Option<usize>,
        callback: C,
        error_callback: X,
    ) -> Result<MapResult<R::Ok, R::Err>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
        C: FnOnce(&Vec<R::Ok>) + Send + 'static,
        X: FnOnce(&PoolError<R::Err>) + Send + 'static,
    {
        self.map_inner(
            f,
            iterable.into_iter().collect(),
            chunksize,
            Some(Box::new(callback)),
            Some(Box::new(error_callback)),
        )
    }

    /// Calls `f(a1, …, an)` for every argument tuple; the results in input
    /// order, or the first error (Python's `starmap`).
    pub fn starmap<F, Args, I>(
        &self,
        f: F,
        iterable: I,
    ) -> Result<Vec<ApplyOutput<F, Args>>, PoolError<ApplyError<F, Args>>>
    where
        F: PoolFn<Args> $($copy)*,
        I: IntoIterator<Item = Args>,
        Args: $($val)*,
        ApplyOutput<F, Args>: $($val)*,
        ApplyError<F, Args>: $($val)*,
    {
        self.starmap_inner(f, iterable.into_iter().collect(), None, None, None)?
            .get()
    }

    /// [`starmap`](Self::starmap) with chunks of `chunksize` tuples.
    pub fn starmap_chunked<F, Args, I>(
        &self,
        f: F,
        iterable: I,
        chunksize: usize,
    ) -> Result<Vec<ApplyOutput<F, Args>>, PoolError<ApplyError<F, Args>>>
    where
        F: PoolFn<Args> $($copy)*,
        I: IntoIterator<Item = Args>,
        Args: $($val)*,
        ApplyOutput<F, Args>: $($val)*,
        ApplyError<F, Args>: $($val)*,
    {
        self.starmap_inner(
            f,
            iterable.into_iter().collect(),
            Some(chunksize),
            None,
            None,
        )?
        .get()
    }

    /// [`starmap`](Self::starmap) without waiting (Python's
    /// `starmap_async`).
    pub fn starmap_async<F, Args, I>(
        &self,
        f: F,
        iterable: I,
    ) -> Result<MapResult<ApplyOutput<F, Args>, ApplyError<F, Args>>, PoolError<ApplyError<F, Args>>>
    where
        F: PoolFn<Args> $($copy)*,
        I: IntoIterator<Item = Args>,
        Args: $($val)*,
        ApplyOutput<F, Args>: $($val)*,
        ApplyError<F, Args>: $($val)*,
    {
        self.starmap_inner(f, iterable.into_iter().collect(), None, None, None)
    }

    /// [`starmap_async`](Self::starmap_async) with `chunksize`, `callback`
    /// and `error_callback`.
    pub fn starmap_async_with<F, Args, I, C, X>(
        &self,
        f: F,
        iterable: I,
        chunksize: Option<usize>,
        callback: C,
        error_callback: X,
    ) -> Result<MapResult<ApplyOutput<F, Args>, ApplyError<F, Args>>, PoolError<ApplyError<F, Args>>>
    where
        F: PoolFn<Args> $($copy)*,
        I: IntoIterator<Item = Args>,
        Args: $($val)*,
        ApplyOutput<F, Args>: $($val)*,
        ApplyError<F, Args>: $($val)*,
        C: FnOnce(&Vec<ApplyOutput<F, Args>>) + Send + 'static,
        X: FnOnce(&PoolError<ApplyError<F, Args>>) + Send + 'static,
    {
        self.starmap_inner(
            f,
            iterable.into_iter().collect(),
            chunksize,
            Some(Box::new(callback)),
            Some(Box::new(error_callback)),
        )
    }

    /// Calls `f(item)` for every item; an iterator over the results in
    /// input order, each a value or that task's error (Python's `imap`,
    /// chunksize 1).
    ///
    /// The input is consumed lazily, as in Python: a pool thread takes
    /// items as workers get free, so a long, slow or endless iterator
    /// works (hence `Send + 'static`: pass owned items, a `Vec` rather
    /// than `vec.iter()`). Submissions are served in order, so later ones
    /// wait until this input runs out.
    pub fn imap<F, A, R, I>(&self, f: F, iterable: I) -> Result<IMapIterator<R::Ok, R::Err>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
    {
        self.imap_inner(f, Box::new(iterable.into_iter()), 1, true)
    }

    /// [`imap`](Self::imap) with chunks of `chunksize` items.
    pub fn imap_chunked<F, A, R, I>(
        &self,
        f: F,
        iterable: I,
        chunksize: usize,
    ) -> Result<IMapIterator<R::Ok, R::Err>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
    {
        self.imap_inner(
            f,
            Box::new(iterable.into_iter()),
            check_chunksize(chunksize).map_err(PoolError::widen)?,
            true,
        )
    }

    /// Like [`imap`](Self::imap), the results in the order they finish
    /// (Python's `imap_unordered`).
    pub fn imap_unordered<F, A, R, I>(
        &self,
        f: F,
        iterable: I,
    ) -> Result<IMapIterator<R::Ok, R::Err>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
    {
        self.imap_inner(f, Box::new(iterable.into_iter()), 1, false)
    }

    /// [`imap_unordered`](Self::imap_unordered) with chunks of `chunksize`
    /// items.
    pub fn imap_unordered_chunked<F, A, R, I>(
        &self,
        f: F,
        iterable: I,
        chunksize: usize,
    ) -> Result<IMapIterator<R::Ok, R::Err>, PoolError<R::Err>>
    where
        F: Fn(A) -> R + Send + Sync + 'static $($copy)*,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        A: $($val)*,
        R: TaskResult + 'static,
        R::Ok: $($val)*,
        R::Err: $($val)*,
    {
        self.imap_inner(
            f,
            Box::new(iterable.into_iter()),
            check_chunksize(chunksize).map_err(PoolError::widen)?,
            false,
        )
    }
        }
    };
}

pub(crate) use pool_api;
