//! `BoundedSemaphore`: a semaphore that refuses to be released past its
//! initial value (Python's `multiprocessing.BoundedSemaphore`).

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::error::SyncError;
use super::handle::Handle;
use super::semaphore::Semaphore;

/// A [`Semaphore`] whose count may never exceed its initial value: a
/// release that would is
/// [`ReleaseError::TooManyReleases`](super::ReleaseError::TooManyReleases),
/// which catches a permit returned twice.
///
/// Every `Semaphore` method is available through `Deref`.
///
/// ```
/// use multiprocessing::synchronize::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1)?;
/// assert!(matches!(sem.release(), Err(ReleaseError::TooManyReleases)));
/// let _permit = sem.lock();
/// assert_eq!(sem.get_value(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl BoundedSemaphore {
    /// A semaphore holding `value` permits, and never more.
    pub fn new(value: u32) -> Result<BoundedSemaphore, SyncError> {
        Ok(BoundedSemaphore {
            inner: Semaphore {
                handle: Handle::create_sem(value, value)?,
            },
        })
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.inner
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.get_value())
            .finish()
    }
}
