//! The waiting engine shared by every primitive in [`crate::synchronize`].
//!
//! * [`deadline`]: when a blocking call gives up; the sleeping itself is
//!   [`mp_sys::futex`].
//! * [`identity`]: cached pid/tid, and whether an owner is still alive.
//! * [`owner`]: the owner word behind `Lock` and `RLock` (robust recovery).
//! * [`counter`]: the permit counter behind `Semaphore` and
//!   `BoundedSemaphore`.
//! * [`wakeups`]: which waiters a `Condition::notify` may wake.
//! * `waiter` (feature `asyncio`): `FutexWait`, awaiting a futex word
//!   without a thread per wait.

pub(crate) mod counter;
pub(crate) mod deadline;
pub(crate) mod identity;
pub(crate) mod owner;
#[cfg(feature = "asyncio")]
pub(crate) mod waiter;
pub(crate) mod wakeups;
