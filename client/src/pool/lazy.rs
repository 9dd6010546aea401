//! The input of an `imap`, taken lazily (Python's pool iterates it on its
//! task handler thread): each item is announced to its job before its
//! task is queued, the job learns its length when the input runs out, and
//! an input that panics fails the next position and ends the job, as a
//! raising iterable does in Python.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::func::panic_message;
use super::job::IMapJob;

/// Items of an `imap` input, announced to `job` as they are taken.
pub(crate) struct LazyInput<A, T, E> {
    items: Box<dyn Iterator<Item = A> + Send>,
    job: Arc<IMapJob<T, E>>,
    /// Called once if the input's end completes the job (every outcome
    /// already in), so the pool drops it from its cache.
    on_done: Option<Box<dyn FnOnce() + Send>>,
    ended: bool,
}

impl<A, T, E> LazyInput<A, T, E> {
    pub(crate) fn new(
        items: Box<dyn Iterator<Item = A> + Send>,
        job: Arc<IMapJob<T, E>>,
        on_done: impl FnOnce() + Send + 'static,
    ) -> Self {
        LazyInput {
            items,
            job,
            on_done: Some(Box::new(on_done)),
            ended: false,
        }
    }

    fn end(&mut self, done: bool) {
        self.ended = true;
        if done {
            if let Some(f) = self.on_done.take() {
                f();
            }
        }
    }
}

impl<A, T, E> Iterator for LazyInput<A, T, E> {
    type Item = A;

    fn next(&mut self) -> Option<A> {
        if self.ended {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| self.items.next())) {
            Ok(Some(item)) if self.job.submitted(1) => Some(item),
            // The job was aborted (terminate): take no more.
            Ok(Some(_)) => {
                self.ended = true;
                None
            }
            Ok(None) => {
                let done = self.job.set_length();
                self.end(done);
                None
            }
            Err(payload) => {
                let done = self.job.input_failed(panic_message(payload.as_ref()));
                self.end(done);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{NoError, PoolError};
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn items_are_announced_and_the_end_completes_the_job() {
        let job = Arc::new(IMapJob::<u32, NoError>::new(true));
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let mut input = LazyInput::new(Box::new(0..2u32), job.clone(), move || {
            d.store(true, Ordering::SeqCst)
        });
        assert_eq!(input.next(), Some(0));
        assert_eq!(job.remaining(), (1, None));
        assert_eq!(input.next(), Some(1));
        use crate::pool::job::Sink;
        job.deliver(0, Ok(0));
        job.deliver(1, Ok(1));
        assert!(!done.load(Ordering::SeqCst));
        assert_eq!(input.next(), None);
        assert!(done.load(Ordering::SeqCst), "the end completed the job");
        assert_eq!(input.next(), None);
    }

    #[test]
    fn a_panicking_input_fails_the_next_position() {
        let job = Arc::new(IMapJob::<u32, NoError>::new(true));
        let items = (0..3u32).inspect(|&i| assert!(i < 1, "no more input"));
        let mut input = LazyInput::new(Box::new(items), job.clone(), || {});
        assert_eq!(input.next(), Some(0));
        assert_eq!(input.next(), None);
        assert_eq!(input.next(), None);
        use crate::pool::job::Sink;
        job.deliver(0, Ok(5));
        assert_eq!(job.next(None), Some(Ok(5)));
        match job.next(None) {
            Some(Err(PoolError::InputPanic { index: 1, message })) => {
                assert_eq!(message, "no more input")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(job.next(None), None);
    }
}
