//! Typed proxies of SyncManager's synchronization types: [`LockProxy`],
//! [`RLockProxy`], [`SemaphoreProxy`] (Python's `AcquirerProxy`) and
//! [`EventProxy`] (Python's `EventProxy`).
//!
//! The server records which thread of which connection holds a lock, so a
//! guard must be released by the thread that acquired it — as with
//! `threading.Lock` behind a manager.
//!
//! A release fails with the local primitives' [`ReleaseError`] (`NotLocked`,
//! `NotOwner`, `TooManyReleases` as there); what only a managed primitive
//! meets is [`ReleaseError::Manager`].

use std::time::Duration;

use mp_proto::methods::builtin::{EventMethod, SemaphoreMethod};
use mp_proto::Value;
use multiprocessing_macros::method_list;

use crate::managers::error::ManagerError;
use crate::managers::proxy::{proxy_common, secs, BaseProxy};
use crate::synchronize::ReleaseError;

/// A held acquisition; dropping it releases (a failed release is logged:
/// the server frees what a lost connection held).
#[must_use = "dropping the guard releases at once"]
pub struct AcquireGuard<'a> {
    base: &'a BaseProxy,
    /// The referent's `release` (its type's declaration names it).
    release: &'static str,
    released: bool,
}

#[method_list(LISTED)]
impl AcquireGuard<'_> {
    /// Releases now, reporting a failure.
    pub fn release(mut self) -> Result<(), ReleaseError> {
        self.released = true;
        self.base.call(self.release, vec![]).map(drop)?;
        Ok(())
    }
}

impl Drop for AcquireGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.base.call(self.release, vec![]) {
                tracing::warn!(error = %e, "releasing a manager lock failed");
            }
        }
    }
}

/// A semaphore's acquire and release.
const ACQUIRER: [&str; 2] = [
    SemaphoreMethod::Acquire.name(),
    SemaphoreMethod::Release.name(),
];

/// Calls `acquire` on `base` with `args`; a guard that calls `release`
/// when the call acquired. The two names come from the referent's
/// declaration (a semaphore's, a condition's).
pub(crate) fn acquire<'a>(
    base: &'a BaseProxy,
    [acquire, release]: [&'static str; 2],
    args: Vec<Value>,
) -> Result<Option<AcquireGuard<'a>>, ManagerError> {
    match base.call(acquire, args)? {
        Value::Bool(true) => Ok(Some(AcquireGuard {
            base,
            release,
            released: false,
        })),
        Value::Bool(false) => Ok(None),
        other => Err(ManagerError::Protocol(format!(
            "acquire answered {}",
            other.repr()
        ))),
    }
}

macro_rules! acquirer {
    ($name:ident, $what:literal, [$($typeid:literal),*]) => {
        #[doc = concat!("A shared `", $what, "`.")]
        pub struct $name {
            base: BaseProxy,
        }
        proxy_common!($name = [$($typeid),*]);

        #[method_list(LISTED)]
        impl $name {
            /// A copy of the referent (Python's `_getvalue()`); a lock
            /// has none, so the server raises `TypeError` as pickling one
            /// does in CPython.
            pub fn get_value(&self) -> Result<mp_proto::Value, ManagerError> {
                self.base.get_value_raw()
            }

            /// Wraps a reference to the object.
            pub fn from_base(base: BaseProxy) -> Self {
                $name { base }
            }

            /// Acquires, waiting as long as it takes.
            pub fn acquire(&self) -> Result<AcquireGuard<'_>, ManagerError> {
                acquire(&self.base, ACQUIRER, vec![Value::Bool(true)])?
                    .ok_or_else(|| ManagerError::Protocol("blocking acquire returned False".into()))
            }

            /// Acquires, waiting at most `timeout`; `None` if it timed out.
            pub fn acquire_timeout(
                &self,
                timeout: Duration,
            ) -> Result<Option<AcquireGuard<'_>>, ManagerError> {
                acquire(&self.base, ACQUIRER, vec![Value::Bool(true), secs(timeout)])
            }

            /// Acquires only if that needs no waiting (`acquire(False)`).
            pub fn try_acquire(&self) -> Result<Option<AcquireGuard<'_>>, ManagerError> {
                acquire(&self.base, ACQUIRER, vec![Value::Bool(false)])
            }

            /// Releases an acquisition made without a guard (one
            /// forgotten with `std::mem::forget`, or made by a call of
            /// the base proxy).
            pub fn release(&self) -> Result<(), ReleaseError> {
                self.base.call(SemaphoreMethod::Release, vec![]).map(drop)?;
                Ok(())
            }
        }
    };
}

acquirer!(LockProxy, "threading.Lock", ["Lock"]);
acquirer!(RLockProxy, "threading.RLock", ["RLock"]);
acquirer!(
    SemaphoreProxy,
    "threading.Semaphore` or `BoundedSemaphore",
    ["Semaphore", "BoundedSemaphore"]
);

/// A shared `threading.BoundedSemaphore`: the same proxy as a
/// [`SemaphoreProxy`] (CPython's `AcquirerProxy` serves both); releasing
/// past the initial value is [`ReleaseError::TooManyReleases`], as with a
/// local [`BoundedSemaphore`](crate::BoundedSemaphore).
pub type BoundedSemaphoreProxy = SemaphoreProxy;

#[method_list(LISTED_LOCK)]
impl LockProxy {
    /// Whether some thread holds the lock.
    pub fn locked(&self) -> Result<bool, ManagerError> {
        self.base.call_as(SemaphoreMethod::Locked, vec![])
    }
}

/// A shared `threading.Event`.
pub struct EventProxy {
    base: BaseProxy,
}
proxy_common!(EventProxy = ["Event"]);

#[method_list(LISTED)]
impl EventProxy {
    /// A copy of the referent (Python's `_getvalue()`). The server raises
    /// `TypeError` for a referent with no copyable value, as pickling one
    /// does in CPython.
    pub fn get_value(&self) -> Result<mp_proto::Value, ManagerError> {
        self.base.get_value_raw()
    }

    /// Wraps a reference to an `Event`.
    pub fn from_base(base: BaseProxy) -> Self {
        EventProxy { base }
    }

    /// Sets the flag, waking every waiter.
    pub fn set(&self) -> Result<(), ManagerError> {
        self.base.call(EventMethod::Set, vec![]).map(drop)
    }

    /// Clears the flag.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.base.call(EventMethod::Clear, vec![]).map(drop)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        self.base.call_as(EventMethod::IsSet, vec![])
    }

    /// Waits until the flag is set.
    pub fn wait(&self) -> Result<(), ManagerError> {
        self.base.call(EventMethod::Wait, vec![]).map(drop)
    }

    /// Waits at most `timeout`; whether the flag was set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        self.base.call_as(EventMethod::Wait, vec![secs(timeout)])
    }
}
