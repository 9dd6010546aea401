//! Reconnection: when a [`ManagerClient`]'s connection breaks, a
//! background thread connects again with backoff ([`Reconnect`]), and the
//! client carries on over the new connection — the same `ManagerClient`,
//! shared by every proxy of the process (python/cpython#87495: CPython's
//! proxies stay broken until the program restarts).
//!
//! What a program sees:
//!
//! * A call in flight at the break fails with
//!   [`ConnectionLost`](ManagerError::ConnectionLost): it may or may not
//!   have run, so it is never sent again behind the caller's back. Calls
//!   made while reconnecting fail the same way, at once.
//! * A blocking call on a named object (a `get` waiting on a queue found
//!   with `lookup`) waits for the reconnection and is sent again: it had
//!   not finished, and the server cancels what a broken connection was
//!   waiting for. (If the server had finished it and its answer was lost
//!   with the connection, that answer is lost: at most once.)
//! * Every reconnection starts a new *generation*. References are per
//!   connection on the server, so a proxy from an older generation finds
//!   its object again by name if it was looked up by one, and otherwise
//!   fails with [`ObjectLost`](ManagerError::ObjectLost): the server
//!   released it with the old connection (or lost it in a restart).
//! * [`ManagerClient::on_connection_event`] and
//!   [`ManagerClient::connection_state`] tell the program what happens.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, Instant};

use mp_sys::lock;

use super::connect::open;
use super::{Inner, ManagerClient, State};

/// How to reconnect ([`ConnectOptions::reconnect`](super::ConnectOptions::reconnect)):
/// the first attempt after `initial_delay`, each next one after twice the
/// last delay, up to `max_delay`; give up after `give_up_after` of
/// failures, or never.
///
/// ```
/// use std::time::Duration;
/// use multiprocessing::managers::{ConnectOptions, Reconnect};
///
/// let options = ConnectOptions {
///     reconnect: Some(Reconnect {
///         max_delay: Duration::from_secs(1),
///         give_up_after: Some(Duration::from_secs(60)),
///         ..Reconnect::default()
///     }),
///     ..ConnectOptions::default()
/// };
/// let off = ConnectOptions { reconnect: None, ..ConnectOptions::default() };
/// # let _ = (options, off);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// The wait before the first attempt (default 50 ms).
    pub initial_delay: Duration,
    /// The longest wait between attempts (default 500 ms: a restarted
    /// server is found within about half a second).
    pub max_delay: Duration,
    /// Stop trying after failing for this long (default: never).
    pub give_up_after: Option<Duration>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            give_up_after: None,
        }
    }
}

/// What happened to a client's connection, as
/// [`ManagerClient::on_connection_event`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The connection broke; reconnection starts if it is on.
    Lost {
        /// Why.
        reason: String,
    },
    /// Connected again, after `attempts` tries.
    Reconnected {
        /// How many connection attempts it took.
        attempts: u32,
    },
    /// Reconnection gave up ([`Reconnect::give_up_after`]).
    GaveUp {
        /// The last attempt's error.
        reason: String,
    },
}

/// Where a client's connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Calls go through.
    Connected,
    /// Broken; a background thread is connecting again.
    Reconnecting,
    /// Broken for good: reconnection is off or gave up.
    Closed,
}

/// A callback for [`ConnectionEvent`]s.
pub(super) type Listener = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

impl ManagerClient {
    /// Calls `listener` on every change of this connection (lost,
    /// reconnected, given up), on the thread that saw it.
    pub fn on_connection_event(&self, listener: impl Fn(&ConnectionEvent) + Send + Sync + 'static) {
        lock(&self.inner.events).push(Arc::new(listener));
    }

    /// Where the connection stands now.
    pub fn connection_state(&self) -> ConnectionState {
        let state = lock(&self.inner.state);
        match (&state.dead, state.reconnecting) {
            (None, _) => ConnectionState::Connected,
            (Some(_), true) => ConnectionState::Reconnecting,
            (Some(_), false) => ConnectionState::Closed,
        }
    }

    /// How many times this client has reconnected: references taken in an
    /// earlier generation are gone from the server.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Waits until the connection is back (a generation after `seen`), up
    /// to `timeout` (`None`: as long as reconnection goes on). False if it
    /// did not come back.
    pub fn wait_reconnected(&self, seen: u64, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.inner.state);
        loop {
            if state.dead.is_none() && state.generation != seen {
                return true;
            }
            if state.dead.is_some() && !state.reconnecting {
                return false;
            }
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                // Re-check now and then: a dropped client ends the thread.
                None => Duration::from_secs(1),
            };
            state = self
                .inner
                .reconnected
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Starts the reconnecting thread, if reconnection is on and none
    /// runs; called with the state locked, when the connection dies. The
    /// thread also tells the listeners (never under the lock, which a
    /// listener may need).
    pub(super) fn start_reconnecting(&self, state: &mut State, why: String) {
        let policy = self.inner.options.reconnect;
        // A forked child never reconnects its parent's connection: it
        // makes its own (`managers::transfer`).
        let ours = self.inner.owner == std::process::id();
        let listened = !lock(&self.inner.events).is_empty();
        if state.reconnecting || !ours || (policy.is_none() && !listened) {
            return;
        }
        state.reconnecting = policy.is_some();
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("mp-manager-reconnect".into())
            .spawn(move || {
                if let Some(inner) = weak.upgrade() {
                    announce(&inner, &ConnectionEvent::Lost { reason: why });
                }
                if let Some(policy) = policy {
                    reconnect(weak, policy);
                }
            });
        if spawned.is_err() {
            state.reconnecting = false;
        }
    }
}

/// Tells every listener of `inner` about `event`.
pub(super) fn announce(inner: &Inner, event: &ConnectionEvent) {
    let listeners: Vec<Listener> = lock(&inner.events).clone();
    for listener in listeners {
        listener(event);
    }
}

/// The reconnecting thread's body: tries until it connects, gives up, or
/// nothing holds the client any more.
fn reconnect(weak: Weak<Inner>, policy: Reconnect) {
    let started = Instant::now();
    let mut delay = policy.initial_delay;
    let mut attempts = 0u32;
    loop {
        std::thread::sleep(delay);
        let Some(inner) = weak.upgrade() else { return };
        attempts = attempts.saturating_add(1);
        match open(&inner.address, &inner.authkey, &inner.options) {
            Ok(opened) => {
                inner.install(opened);
                tracing::info!(address = %inner.address, attempts, "reconnected to the manager");
                announce(&inner, &ConnectionEvent::Reconnected { attempts });
                return;
            }
            Err(e) => {
                tracing::debug!(address = %inner.address, error = %e, "reconnecting failed");
                if policy.give_up_after.is_some_and(|g| started.elapsed() >= g) {
                    {
                        let mut state = lock(&inner.state);
                        state.reconnecting = false;
                        state.wake_watchers();
                    }
                    inner.reconnected.notify_all();
                    tracing::warn!(address = %inner.address, error = %e, "gave up reconnecting to the manager");
                    announce(
                        &inner,
                        &ConnectionEvent::GaveUp {
                            reason: e.to_string(),
                        },
                    );
                    return;
                }
            }
        }
        delay = (delay * 2).min(policy.max_delay);
    }
}

impl Inner {
    /// Carries on over `opened`: a new generation, whose references start
    /// from none.
    fn install(&self, opened: super::connect::Opened) {
        let mut writer = lock(&self.writer);
        let mut state = lock(&self.state);
        *writer = opened.writer;
        state.reader = Some(std::io::BufReader::with_capacity(
            super::READ_BUFFER,
            opened.reader,
        ));
        state.generation += 1;
        state.dead = None;
        state.reconnecting = false;
        self.channel.store(opened.channel, Ordering::Relaxed);
        // Decrefs queued for the old connection name ids the new one does
        // not hold (and a restarted server may have reused).
        drop(self.releases.take());
        self.generation.store(state.generation, Ordering::Release);
        state.wake_watchers();
        drop(state);
        drop(writer);
        self.reconnected.notify_all();
    }
}
