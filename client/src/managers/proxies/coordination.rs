//! [`ConditionProxy`] and [`BarrierProxy`]: typed proxies of a shared
//! `threading.Condition` and `threading.Barrier` (Python's
//! `ConditionProxy` and `BarrierProxy`).
//!
//! Their waits fail with the local primitives' errors:
//! [`ConditionError::NotOwned`] for a wait or notify without the lock,
//! [`BarrierError::Broken`] for a broken barrier, and the variant
//! `Manager` for what only a managed primitive meets.

use std::time::Duration;

use mp_proto::methods::builtin::{BarrierMethod, ConditionMethod};
use mp_proto::Value;
use multiprocessing_macros::method_list;

use super::sync::{acquire, AcquireGuard};
use crate::managers::error::ManagerError;
use crate::managers::proxy::{proxy_common, secs, BaseProxy};
use crate::synchronize::engine::deadline::Deadline;
use crate::synchronize::{BarrierError, ConditionError};

/// A condition's acquire and release (of its lock).
const CONDITION_LOCK: [&str; 2] = [
    ConditionMethod::Acquire.name(),
    ConditionMethod::Release.name(),
];

/// A shared condition variable, with its own lock (an `RLock` unless it
/// was made around a shared `Lock`/`RLock`).
pub struct ConditionProxy {
    base: BaseProxy,
}
proxy_common!(ConditionProxy = ["Condition"]);

#[method_list(LISTED)]
impl ConditionProxy {
    /// A copy of the referent (Python's `_getvalue()`). The server raises
    /// `TypeError` for a referent with no copyable value, as pickling one
    /// does in CPython.
    pub fn get_value(&self) -> Result<mp_proto::Value, ManagerError> {
        self.base.get_value_raw()
    }

    /// Wraps a reference to a `Condition`.
    pub fn from_base(base: BaseProxy) -> Self {
        ConditionProxy { base }
    }

    /// Acquires the condition's lock, waiting as long as it takes.
    pub fn acquire(&self) -> Result<AcquireGuard<'_>, ManagerError> {
        acquire(&self.base, CONDITION_LOCK, vec![Value::Bool(true)])?
            .ok_or_else(|| ManagerError::Protocol("blocking acquire returned False".into()))
    }

    /// Acquires the lock, waiting at most `timeout`; `None` if it timed
    /// out.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<AcquireGuard<'_>>, ManagerError> {
        acquire(
            &self.base,
            CONDITION_LOCK,
            vec![Value::Bool(true), secs(timeout)],
        )
    }

    /// Releases the lock, waits for a notification, takes the lock back.
    /// The calling thread must hold the lock
    /// ([`ConditionError::NotOwned`] otherwise).
    pub fn wait(&self) -> Result<(), ConditionError> {
        self.base.call(ConditionMethod::Wait, vec![]).map(drop)?;
        Ok(())
    }

    /// [`wait`](Self::wait) for at most `timeout`; whether it was
    /// notified.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ConditionError> {
        Ok(self
            .base
            .call_as(ConditionMethod::Wait, vec![secs(timeout)])?)
    }

    /// Waits until `predicate` holds, evaluating it here in the client
    /// after each wake-up, as Python's `wait_for` does; at most `timeout`
    /// in all (`None`: no limit). Returns the predicate's last result.
    /// The calling thread must hold the lock.
    pub fn wait_for<F: FnMut() -> bool>(
        &self,
        mut predicate: F,
        timeout: Option<Duration>,
    ) -> Result<bool, ConditionError> {
        let deadline = Deadline::after(timeout);
        let mut result = predicate();
        while !result && !deadline.expired() {
            match deadline.remaining() {
                Some(left) => {
                    self.wait_timeout(left)?;
                }
                None => self.wait()?,
            }
            result = predicate();
        }
        Ok(result)
    }

    /// Wakes one waiter. The calling thread must hold the lock.
    pub fn notify(&self) -> Result<(), ConditionError> {
        self.notify_n(1)
    }

    /// Wakes up to `n` waiters.
    pub fn notify_n(&self, n: usize) -> Result<(), ConditionError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.base
            .call(ConditionMethod::Notify, vec![Value::Int(n)])
            .map(drop)?;
        Ok(())
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> Result<(), ConditionError> {
        self.base
            .call(ConditionMethod::NotifyAll, vec![])
            .map(drop)?;
        Ok(())
    }
}

/// A shared barrier for a fixed number of parties.
pub struct BarrierProxy {
    base: BaseProxy,
}
proxy_common!(BarrierProxy = ["Barrier"]);

#[method_list(LISTED)]
impl BarrierProxy {
    /// A copy of the referent (Python's `_getvalue()`). The server raises
    /// `TypeError` for a referent with no copyable value, as pickling one
    /// does in CPython.
    pub fn get_value(&self) -> Result<mp_proto::Value, ManagerError> {
        self.base.get_value_raw()
    }

    /// Wraps a reference to a `Barrier`.
    pub fn from_base(base: BaseProxy) -> Self {
        BarrierProxy { base }
    }

    /// Waits for every party (up to the barrier's default timeout); the
    /// arrival index, `0..parties`. A broken barrier is
    /// [`BarrierError::Broken`].
    pub fn wait(&self) -> Result<usize, BarrierError> {
        Ok(self.base.call_as(BarrierMethod::Wait, vec![])?)
    }

    /// [`wait`](Self::wait) for at most `timeout`; timing out breaks the
    /// barrier.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, BarrierError> {
        Ok(self
            .base
            .call_as(BarrierMethod::Wait, vec![secs(timeout)])?)
    }

    /// Breaks the barrier: every waiter, now and later, fails.
    pub fn abort(&self) -> Result<(), ManagerError> {
        self.base.call(BarrierMethod::Abort, vec![]).map(drop)
    }

    /// Returns the barrier to its empty, unbroken state.
    pub fn reset(&self) -> Result<(), ManagerError> {
        self.base.call(BarrierMethod::Reset, vec![]).map(drop)
    }

    fn attr<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, ManagerError> {
        self.base.call_as(
            BarrierMethod::GetAttribute,
            vec![Value::Str(name.to_owned())],
        )
    }

    /// How many parties it waits for.
    pub fn parties(&self) -> Result<usize, ManagerError> {
        self.attr("parties")
    }

    /// How many parties wait now.
    pub fn n_waiting(&self) -> Result<usize, ManagerError> {
        self.attr("n_waiting")
    }

    /// Whether it is broken.
    pub fn broken(&self) -> Result<bool, ManagerError> {
        self.attr("broken")
    }
}
